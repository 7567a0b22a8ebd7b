"""Where the stack keeps data: the weights/encodings bucket and the log group.

The bucket is private (public access blocked, TLS-only policy), versioned and encrypted (SSE-KMS with the
AWS-managed key, bucket keys on). Layout: `models/<model>/` holds a mirrored checkpoint (nodes sync from it
when it has a config.json, else download from the hub), `encodings/` the tiktoken files (verified by hash at
boot either way). With spec.aws.weights_bucket the stack uses that existing bucket and creates none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

LOG_RETENTION_DAYS = 30


@dataclass
class StorageArgs:
    tags: dict[str, str]
    existing_bucket: str | None = None


class Storage(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        if args.existing_bucket:
            self.bucket = None
            self.bucket_name = pulumi.Output.from_input(args.existing_bucket)
            self.bucket_arn = pulumi.Output.from_input(f"arn:aws:s3:::{args.existing_bucket}")
        else:
            self.bucket = aws.s3.Bucket(f"{name}-weights", force_destroy=False, tags=args.tags, opts=child)
            aws.s3.BucketPublicAccessBlock(f"{name}-weights-pab", bucket=self.bucket.id, block_public_acls=True,
                                           block_public_policy=True, ignore_public_acls=True,
                                           restrict_public_buckets=True, opts=child)
            aws.s3.BucketVersioning(f"{name}-weights-versioning", bucket=self.bucket.id,
                                    versioning_configuration={"status": "Enabled"}, opts=child)
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-weights-sse", bucket=self.bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                        "bucket_key_enabled": True}], opts=child)
            aws.s3.BucketPolicy(f"{name}-weights-tls-only", bucket=self.bucket.id,
                                policy=self.bucket.arn.apply(_tls_only_policy), opts=child)
            self.bucket_name = self.bucket.bucket
            self.bucket_arn = self.bucket.arn

        self.log_group = aws.cloudwatch.LogGroup(f"{name}-logs", name_prefix=f"/gpt-oss-ops/{pulumi.get_stack()}/",
                                                 retention_in_days=LOG_RETENTION_DAYS, tags=args.tags, opts=child)
        self.register_outputs({"bucket_name": self.bucket_name, "log_group": self.log_group.name})


def _tls_only_policy(arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })
