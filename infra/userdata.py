"""Cloud-init user-data for the Ray nodes, rendered from the spec.

A `#cloud-config` document that writes three files — the settings (`/etc/gpt-oss/boot.env`, shell
assignments quoted with shlex), the boot script (`infra/boot.sh`, kept as a real file so shellcheck reads
it) and nothing secret — then runs the script once. The API key and hub token never appear here: the script
reads them from SSM Parameter Store at boot.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra import ports
from infra.options import GRAFANA_IMAGE, PROMETHEUS_IMAGE
from ops.spec import DeploymentSpec

BOOT_SCRIPT = Path(__file__).with_name("boot.sh")
BOOT_SCRIPT_PATH = "/usr/local/sbin/gpt-oss-boot"
BOOT_ENV_PATH = "/etc/gpt-oss/boot.env"
MODELS_ROOT = "/opt/models"
HOST_ENCODINGS_DIR = "/opt/gpt-oss/tiktoken_encodings"
# Where the serving image expects them (app/llm_config.py sets TIKTOKEN_ENCODINGS_BASE to it).
IMAGE_ENCODINGS_DIR = "/opt/tiktoken_encodings"
ENCODINGS_URL = "https://openaipublic.blob.core.windows.net/encodings"
# SHA-256 of the encodings harmony loads (o200k_base for gpt-oss, cl100k_base beside it), pinned.
ENCODINGS_SHA256 = {
    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
LABEL_PREFIX = "gpt-oss-ops.io"


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
        "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
        "GRAFANA_IMAGE": GRAFANA_IMAGE,
        "BUCKET": ctx.bucket,
        "LOG_GROUP": ctx.log_group,
        "AUTH_ENABLED": "true" if spec.auth.enabled else "false",
        "API_KEY_ENV": spec.auth.api_key_env,
        "API_KEY_PARAM": ctx.api_key_param,
        "HUB_TOKEN_PARAM": ctx.hub_token_param,
        "ENCODINGS_DIR": HOST_ENCODINGS_DIR,
        "IMAGE_ENCODINGS_DIR": IMAGE_ENCODINGS_DIR,
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
    lines += [f"{k}={shlex.quote(v)}" for k, v in scalars.items()]
    lines.append("ENCODINGS=(" + shlex.join(f"{n}:{h}" for n, h in ENCODINGS_SHA256.items()) + ")")
    lines.append("RAY_START_ARGS=(" + shlex.join(ray_args(spec, ctx)) + ")")
    return "\n".join(lines) + "\n"


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
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False, width=120)
