"""The endpoint's API key, found the same way by every verb and target.

Order: the spec's environment variable (`auth.api_key_env`, comma-separated keys: the first is used), the
spec's `auth.api_key_file`, then the key file the target manages (the local target's, or the one the cluster
target generated for the stack). The value itself is never printed; callers show where it came from.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ops import secret_files
from ops.spec import DeploymentSpec


def new() -> str:
    return f"sk-gpt-oss-{secrets.token_urlsafe(24)}"


def from_env(spec: DeploymentSpec) -> str | None:
    keys = [k.strip() for k in os.environ.get(spec.auth.api_key_env, "").split(",") if k.strip()]
    return keys[0] if keys else None


def find(spec: DeploymentSpec, *target_files: str | os.PathLike | None) -> tuple[str | None, str]:
    """(key, where it came from); (None, "") when there is none."""
    key = from_env(spec)
    if key:
        return key, f"${spec.auth.api_key_env}"
    for path in (spec.auth.api_key_file, *target_files):
        key = secret_files.first_line(path)
        if key:
            return key, str(Path(path).expanduser())
    return None, ""


def ensure_file(path: Path) -> tuple[Path, bool]:
    """The target's key file (0600), generated once."""
    return secret_files.ensure(path, new)


def from_ssm(parameter: str, region: str) -> str:
    """The key of a stack this project built: its SSM SecureString, which every node's boot hands to the Ray
    container (so a replica on a node that joins later has it too). Read with the operator's credentials."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from ops.errors import OpsError

    try:
        value = boto3.client("ssm", region_name=region).get_parameter(Name=parameter, WithDecryption=True)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "ParameterNotFound":
            raise OpsError(f"the stack's API key parameter {parameter} does not exist in {region}.",
                           fix=f"create it: aws ssm put-parameter --region {region} --type SecureString --name "
                               f"{parameter} --value \"$(openssl rand -hex 24)\" (or `pulumi config set --secret "
                               "gpt-oss-ops:apiKey` and `pulumi up`), then restart the nodes' boot.",
                           runbook="docs/runbooks/endpoint-401-unauthorized.md", code=2) from None
        raise OpsError(f"cannot read the stack's API key {parameter}: {code or e}.",
                       fix="check your AWS credentials (ssm:GetParameter with decryption on that parameter), or pass "
                           "the key with --api-key-file / $GPT_OSS_API_KEY.") from None
    except BotoCoreError as e:
        raise OpsError(f"cannot read the stack's API key {parameter}: {e}.",
                       fix="check your AWS credentials and network, or pass the key with --api-key-file.") from None
    return value["Parameter"]["Value"].strip()
