"""The nodes' instance role: Session Manager, read-only weights and code, its own secrets, its own logs, and
reporting its own health.

No AWS-managed policy is attached. AmazonSSMManagedInstanceCore (the usual one for Session Manager) also allows
`ssm:GetParameter*` on every parameter, so any container on a node could read every secret of the account;
instead the inline policy grants Session Manager's own actions (the SSM Agent's registration and its message
channels, which have no resource-level permissions) and reads exactly this stack's parameters. The CloudWatch
agent's permissions are scoped the same way: log streams only in the stack's log group, metrics only in the
`gpt-oss-ops` namespace (PutMetricData has no resource-level permissions, so its "*" is fenced by the
`cloudwatch:namespace` condition). A worker whose boot fails for good marks itself Unhealthy in its own Auto
Scaling group (SetInstanceHealth on the stack's worker groups only). With a serving image in a private ECR
repository, pull rights on that one repository. Every rendered document is checked with `parliament`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

METRICS_NAMESPACE = "gpt-oss-ops"
# What the SSM Agent needs for Session Manager (and Run Command), as in AmazonSSMManagedInstanceCore minus its
# parameter, document and inventory reads; none of these actions takes a resource ARN.
SESSION_MANAGER_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
    "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
]


@dataclass
class IamArgs:
    tags: dict[str, str]
    bucket_arn: pulumi.Input[str]
    secret_arns: list[pulumi.Input[str]]
    log_group_arn: pulumi.Input[str]
    worker_group_arn: pulumi.Input[str]
    ecr_repository_arn: str | None = None


def worker_group_arn(partition: str, region: str, account: str, stack: str) -> str:
    """Every Auto Scaling group this stack names (`gpt-oss-STACK-workers-*`), as an IAM resource pattern."""
    return (f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:"
            f"autoScalingGroupName/gpt-oss-{stack}-workers-*")


def node_policy(bucket_arn: str, secret_arns: list[str], log_group_arn: str, worker_group_arn: str,
                ecr_repository_arn: str | None = None) -> dict:
    """The inline policy document (pure, so tests read it as data and parliament audits it)."""
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SessionManager", "Effect": "Allow", "Action": list(SESSION_MANAGER_ACTIONS), "Resource": ["*"]},
            {"Sid": "WeightsRead", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
             "Resource": [f"{bucket_arn}/*"]},
            {"Sid": "WeightsList", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": [bucket_arn]},
            {"Sid": "SecretsRead", "Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"],
             "Resource": sorted(secret_arns)},
            {"Sid": "LogsWrite", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": [log_group_arn, f"{log_group_arn}:*"]},
            {"Sid": "MetricsWrite", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": ["*"],
             "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}}},
            {"Sid": "OwnHealth", "Effect": "Allow", "Action": ["autoscaling:SetInstanceHealth"],
             "Resource": [worker_group_arn]},
        ],
    }
    if ecr_repository_arn:
        # Pulling the serving image from a private ECR repository: the token call has no resource scope.
        doc["Statement"] += [
            {"Sid": "EcrToken", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]},
            {"Sid": "EcrPull", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                                             "ecr:BatchCheckLayerAvailability"],
             "Resource": [ecr_repository_arn]},
        ]
    return doc


def assume_role_policy() -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


class NodeIdentity(pulumi.ComponentResource):
    role: aws.iam.Role
    profile: aws.iam.InstanceProfile

    def __init__(self, name: str, args: IamArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:NodeIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(f"{name}-role", assume_role_policy=json.dumps(assume_role_policy()),
                                 description="gpt-oss-ops Ray nodes", tags=args.tags, opts=child)
        doc = pulumi.Output.all(args.bucket_arn, args.log_group_arn, args.worker_group_arn, *args.secret_arns).apply(
            lambda v: json.dumps(node_policy(v[0], list(v[3:]), v[1], v[2], args.ecr_repository_arn)))
        aws.iam.RolePolicy(f"{name}-node", role=self.role.id, policy=doc, opts=child)
        self.profile = aws.iam.InstanceProfile(f"{name}-profile", role=self.role.name, tags=args.tags, opts=child)
        self.register_outputs({"role_arn": self.role.arn, "instance_profile_arn": self.profile.arn})
