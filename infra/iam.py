"""The nodes' instance role: SSM Session Manager, read-only weights, its own two secrets, its own logs.

Only one AWS-managed policy is attached (AmazonSSMManagedInstanceCore, which Session Manager needs). The
CloudWatch agent's permissions are granted inline and scoped instead of attaching CloudWatchAgentServerPolicy
(which allows log writes to every group): log streams only in the stack's log group, metrics only in the
`gpt-oss-ops` namespace (PutMetricData has no resource-level permissions, so its "*" is fenced by the
`cloudwatch:namespace` condition). No write action has a "*" resource otherwise. With a serving image in a
private ECR repository, pull rights on that one repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

SSM_CORE = "AmazonSSMManagedInstanceCore"
METRICS_NAMESPACE = "gpt-oss-ops"


@dataclass
class IamArgs:
    tags: dict[str, str]
    bucket_arn: pulumi.Input[str]
    secret_arns: list[pulumi.Input[str]]
    log_group_arn: pulumi.Input[str]
    ecr_repository_arn: str | None = None


def node_policy(bucket_arn: str, secret_arns: list[str], log_group_arn: str,
                ecr_repository_arn: str | None = None) -> dict:
    """The inline policy document (pure, so tests read it as data)."""
    doc = {
        "Version": "2012-10-17",
        "Statement": [
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


class NodeIdentity(pulumi.ComponentResource):
    role: aws.iam.Role
    profile: aws.iam.InstanceProfile

    def __init__(self, name: str, args: IamArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:NodeIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        assume = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        self.role = aws.iam.Role(f"{name}-role", assume_role_policy=assume,
                                 description="gpt-oss-ops Ray nodes", tags=args.tags, opts=child)
        partition = aws.get_partition_output(opts=pulumi.InvokeOptions(parent=self)).partition
        aws.iam.RolePolicyAttachment(f"{name}-ssm-core", role=self.role.name,
                                     policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", SSM_CORE),
                                     opts=child)
        doc = pulumi.Output.all(args.bucket_arn, args.log_group_arn, *args.secret_arns).apply(
            lambda v: json.dumps(node_policy(v[0], list(v[2:]), v[1], args.ecr_repository_arn)))
        aws.iam.RolePolicy(f"{name}-node", role=self.role.id, policy=doc, opts=child)
        self.profile = aws.iam.InstanceProfile(f"{name}-profile", role=self.role.name, tags=args.tags, opts=child)
        self.register_outputs({"role_arn": self.role.arn, "instance_profile_arn": self.profile.arn})
