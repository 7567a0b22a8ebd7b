"""Cloud-init user-data for the Ray nodes, rendered from the spec.

A `#cloud-config` document that writes three files — the settings (`/etc/gpt-oss/boot.env`, shell
assignments, every value single-quoted), the boot script (`infra/boot.sh`, kept as a real file so shellcheck reads
it) and nothing secret — then runs the script once. The API key and hub token never appear here: the script
reads them from SSM Parameter Store at boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from app.fetch_encodings import ENCODINGS, OFFICIAL_BASE_URL
from app.llm_config import IMAGE_ENCODINGS_DIR
from infra import ports
from ops.remote.settings import ClusterSettings
from ops.spec import DeploymentSpec

BOOT_SCRIPT = Path(__file__).with_name("boot.sh")
BOOT_SCRIPT_PATH = "/usr/local/sbin/gpt-oss-boot"
BOOT_ENV_PATH = "/etc/gpt-oss/boot.env"
MODELS_ROOT = "/opt/models"
# The pins and the official host come from app/fetch_encodings.py (tiktoken's own SHA-256 pins); the
# in-image directory from app/llm_config.py, which points TIKTOKEN_ENCODINGS_BASE at it.
ENCODINGS_SHA256 = ENCODINGS
ENCODINGS_URL = OFFICIAL_BASE_URL.rstrip("/")
LABEL_PREFIX = "gpt-oss-ops.io"
# The login user of the Deep Learning AMI (Ubuntu), and the directory the cluster target keeps its bundle,
# configs and API key file in on every node (ops.remote.settings), mounted into the Ray container.
OPERATOR_USER = "ubuntu"
REMOTE_DIR = ClusterSettings(user=OPERATOR_USER).resolved_remote_dir


@dataclass(frozen=True)
class BootContext:
    """The plain values a node needs besides the spec (resolved Outputs, by the time this renders)."""

    role: str  # "head" | "worker"
    stack: str
    image: str
    bucket: str
    api_key_param: str
    hub_token_param: str
    log_group: str
    head_address: str | None = None  # workers only


def model_dir(spec: DeploymentSpec) -> str:
    """Same path on every worker, so the Serve config can name it as the model source."""
    return f"{MODELS_ROOT}/{spec.model}"


def weights_s3(spec: DeploymentSpec, bucket: str) -> str:
    """The spec's s3:// source, else the stack bucket's mirror prefix (used only if it holds a config.json)."""
    src = spec.model_source or ""
    if src.startswith("s3://"):
        return src.rstrip("/")
    return f"s3://{bucket}/models/{spec.model}" if bucket else ""


def ray_args(spec: DeploymentSpec, ctx: BootContext) -> list[str]:
    labels = {f"{LABEL_PREFIX}/role": ctx.role, f"{LABEL_PREFIX}/stack": ctx.stack,
              f"{LABEL_PREFIX}/model": spec.model}
    if ctx.role == "head":
        return ports.ray_start_args(head=True, num_gpus=0, labels=labels)
    it = spec.instance_type
    assert it is not None and ctx.head_address, "workers need a GPU instance type and the head's address"
    labels[f"{LABEL_PREFIX}/accelerator"] = spec.accelerator
    ray_type = spec.accelerator_info.ray_type
    # The accelerator_type:<GPU> resource is what Ray Serve LLM's `accelerator_type` schedules on.
    return ports.ray_start_args(head=False, head_address=ctx.head_address, num_gpus=it.gpus,
                                resources={f"accelerator_type:{ray_type}": 1}, labels=labels)


def boot_env(spec: DeploymentSpec, ctx: BootContext) -> str:
    """Shell assignments sourced by the boot script; every value quoted, arrays for argument lists."""
    m = spec.model_info
    scalars = {
        "ROLE": ctx.role,
        "REGION": spec.aws.region,
        "IMAGE": ctx.image,
        "BUCKET": ctx.bucket,
        "LOG_GROUP": ctx.log_group,
        "AUTH_ENABLED": "true" if spec.auth.enabled else "false",
        "API_KEY_ENV": spec.auth.api_key_env,
        "API_KEY_PARAM": ctx.api_key_param,
        "HUB_TOKEN_PARAM": ctx.hub_token_param,
        # Same path on the host and in the image (where the project's image bakes them, and where the cluster
        # target expects them on the nodes).
        "ENCODINGS_DIR": IMAGE_ENCODINGS_DIR,
        "OPERATOR_USER": OPERATOR_USER,
        "REMOTE_DIR": REMOTE_DIR,
        "ENCODINGS_URL": ENCODINGS_URL,
        "MODELS_ROOT": MODELS_ROOT,
        "MODEL_DIR": model_dir(spec),
        "WEIGHTS_S3": weights_s3(spec, ctx.bucket),
        "USE_MODELSCOPE": "true" if spec.use_modelscope else "false",
        "HF_ID": m.hf_id or "",
        "MODELSCOPE_ID": m.modelscope_id or "",
        "GRAFANA_PORT": str(ports.GRAFANA),
        "PROMETHEUS_PORT": str(ports.PROMETHEUS),
    }
    lines = ["# Rendered from the deployment spec by infra/userdata.py; holds no secrets."]
    lines += [f"{k}={_quote(v)}" for k, v in scalars.items()]
    lines.append("ENCODINGS=(" + " ".join(_quote(f"{n}:{h}") for n, h in ENCODINGS_SHA256.items()) + ")")
    lines.append("RAY_START_ARGS=(" + " ".join(_quote(a) for a in ray_args(spec, ctx)) + ")")
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    """Single-quote every value (shlex.quote leaves safe-looking words bare, e.g. `head`, which shellcheck
    rightly reads as a command name)."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def render(spec: DeploymentSpec, ctx: BootContext) -> str:
    """The `#cloud-config` document for one node role."""
    doc = {
        "write_files": [
            {"path": BOOT_ENV_PATH, "owner": "root:root", "permissions": "0644", "content": boot_env(spec, ctx)},
            {"path": BOOT_SCRIPT_PATH, "owner": "root:root", "permissions": "0755",
             "content": BOOT_SCRIPT.read_text()},
        ],
        "runcmd": [[BOOT_SCRIPT_PATH]],
    }
    return "#cloud-config\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the user-data reads like the files it writes."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
