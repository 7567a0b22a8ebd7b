"""The application's code for the replicas of a stack-built cluster: a zip in the stack's bucket, named by its
content hash, that Ray's runtime_env `working_dir` points at.

Every node that runs a replica (also one the Auto Scaling group brings up after the deploy: a replacement, a
spot rebalance) fetches it from there with its own instance role, as Ray's runtime-env agent does for any
`s3://` working_dir; nothing has to be copied to a node by hand. The zip holds one top-level directory (Ray
strips it) with the project's `ops/` and `app/`, byte-for-byte reproducible, so the same code is uploaded once
and a new hash rolls the replicas.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ops.errors import OpsError

PREFIX = "code"
TOP = "gpt-oss-ops"
RUNBOOK = "docs/cluster.md"


@dataclass(frozen=True)
class AppCode:
    data: bytes
    sha256: str

    def key(self) -> str:
        return f"{PREFIX}/gpt-oss-ops-{self.sha256[:16]}.zip"

    def uri(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.key()}"


def build(root: Path | None = None) -> AppCode:
    """The zip of ops/ and app/ (the same files as the SSH bundle), with fixed timestamps and modes."""
    from ops.remote import bundle

    root = root or bundle.PROJECT_ROOT
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for p in bundle._members(root):
            info = zipfile.ZipInfo(f"{TOP}/{p.relative_to(root).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, p.read_bytes())
    data = raw.getvalue()
    return AppCode(data, hashlib.sha256(data).hexdigest())


def ensure_uploaded(code: AppCode, bucket: str, region: str | None) -> bool:
    """Upload the zip unless the bucket already holds it; True when it was uploaded."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client("s3", region_name=region)
    try:
        s3.head_object(Bucket=bucket, Key=code.key())
        return False
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise _denied(bucket, e) from None
    except BotoCoreError as e:
        raise _denied(bucket, e) from None
    try:
        s3.put_object(Bucket=bucket, Key=code.key(), Body=code.data, ChecksumAlgorithm="SHA256")
    except (ClientError, BotoCoreError) as e:
        raise _denied(bucket, e) from None
    return True


def _denied(bucket: str, e: Exception) -> OpsError:
    return OpsError(f"cannot put the application's code into the stack's bucket s3://{bucket}/{PREFIX}/: {e}.",
                    fix="run the deploy with AWS credentials that may write to the stack's bucket (the ones "
                        "`pulumi up` used), in the stack's region.", runbook=RUNBOOK)
