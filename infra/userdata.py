"""Cloud-init user-data for the Ray nodes, rendered from the spec.

A `#cloud-config` document that writes three files — the settings (`/etc/gpt-oss/boot.env`, shell
assignments, every value single-quoted), the boot script (`infra/boot.sh`, kept as a real file so shellcheck reads
it) and the systemd unit that runs it — then enables the unit. systemd, not cloud-init, runs the boot: it
retries a failed boot (`Restart=on-failure`) and runs it again after a reboot, where cloud-init's runcmd runs
once per instance. Nothing secret is here: the API key, the Ray token and the hub token are read from SSM
Parameter Store at boot.
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
BOOT_UNIT = "gpt-oss-boot.service"
BOOT_UNIT_PATH = f"/etc/systemd/system/{BOOT_UNIT}"
# What the boot leaves for operators: status.json (state, step, reason), ready (Ray joined), boot.log.
STATE_DIR = "/var/lib/gpt-oss"
# The weights' path inside the serving container (the Serve config names it); on the host they are on the
# instance-store NVMe when the Deep Learning AMI mounted one there, else at the same path on the root volume.
MODELS_ROOT = "/opt/models"
NVME_DIR = "/opt/dlami/nvme"
# Failed boots before a node gives up and reports itself unhealthy; seconds between tries; how long Ray may
# take to join the head.
MAX_ATTEMPTS = 3
RESTART_SEC = 20
JOIN_TIMEOUT_S = 300
# What vLLM loads from a gpt-oss hub repository is the root checkpoint: its original/ (PyTorch) and metal/
# (Apple) copies double or triple the download and the disk it needs.
HUB_EXCLUDE = ("original/*", "metal/*")
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
    ray_token_param: str = ""
    image_user: tuple[int, int] = (1000, 100)  # uid, gid the serving image runs as (Ray's images: ray, users)


def model_dir(spec: DeploymentSpec) -> str:
    """Same path in every worker's container, so the Serve config can name it as the model source."""
    return f"{MODELS_ROOT}/{spec.model}"


def weights_s3(spec: DeploymentSpec, bucket: str) -> str:
    """The spec's s3:// source, else the stack bucket's mirror prefix (used only if it holds a config.json)."""
    src = spec.model_source or ""
    if src.startswith("s3://"):
        return src.rstrip("/")
    return mirror_prefix(spec, bucket)


def mirror_prefix(spec: DeploymentSpec, bucket: str) -> str:
    """Where the stack bucket mirrors the checkpoint (`aws s3 sync DIR s3://BUCKET/models/MODEL/`)."""
    return f"s3://{bucket}/models/{spec.model}" if bucket else ""


def weights_only_from_s3(spec: DeploymentSpec) -> bool:
    """The checkpoint has no hub to fall back to: an s3:// source, or a model with no hub id (the tiny one)."""
    return (spec.model_source or "").startswith("s3://") or (not spec.model_source and not spec.resolved_model_source)


def ray_args(spec: DeploymentSpec, ctx: BootContext) -> list[str]:
    labels = {f"{LABEL_PREFIX}/role": ctx.role, f"{LABEL_PREFIX}/stack": ctx.stack,
              f"{LABEL_PREFIX}/model": spec.model}
    cpu = spec.accelerator == "CPU"
    if ctx.role == "head":
        # On a CPU cluster the head offers no CPUs to Ray, so no replica (whose weights only the workers
        # hold) is placed on it; the Serve controller and proxies need none.
        return ports.ray_start_args(head=True, num_gpus=0, num_cpus=0 if cpu else None, labels=labels)
    it = spec.instance_type
    assert it is not None and ctx.head_address, "workers need an instance type and the head's address"
    labels[f"{LABEL_PREFIX}/accelerator"] = spec.accelerator
    if cpu:
        # The instance type's vCPUs, stated: one replica of the tiny model takes a placement group of 2 CPUs
        # beside the ingress replica's one, which must fit a 4-vCPU instance whatever Ray detects.
        return ports.ray_start_args(head=False, head_address=ctx.head_address, num_gpus=0, num_cpus=it.vcpus,
                                    labels=labels)
    ray_type = spec.accelerator_info.ray_type
    # The accelerator_type:<GPU> resource is what Ray Serve LLM's `accelerator_type` schedules on.
    return ports.ray_start_args(head=False, head_address=ctx.head_address, num_gpus=it.gpus,
                                resources={f"accelerator_type:{ray_type}": 1}, labels=labels)


def boot_env(spec: DeploymentSpec, ctx: BootContext) -> str:
    """Shell assignments sourced by the boot script; every value quoted, arrays for argument lists."""
    m = spec.model_info
    it = spec.instance_type
    scalars = {
        "ROLE": ctx.role,
        "STACK": ctx.stack,
        "REGION": spec.aws.region,
        "IMAGE": ctx.image,
        "IMAGE_UID": str(ctx.image_user[0]),
        "IMAGE_GID": str(ctx.image_user[1]),
        "BUCKET": ctx.bucket,
        "LOG_GROUP": ctx.log_group,
        "AUTH_ENABLED": "true" if spec.auth.enabled else "false",
        "API_KEY_ENV": spec.auth.api_key_env,
        "API_KEY_PARAM": ctx.api_key_param,
        "RAY_TOKEN_PARAM": ctx.ray_token_param,
        "HUB_TOKEN_PARAM": ctx.hub_token_param,
        # Same path on the host and in the image (where the project's image bakes them, and where the cluster
        # target expects them on the nodes).
        "ENCODINGS_DIR": IMAGE_ENCODINGS_DIR,
        "OPERATOR_USER": OPERATOR_USER,
        "REMOTE_DIR": REMOTE_DIR,
        "ENCODINGS_URL": ENCODINGS_URL,
        "MODELS_ROOT": MODELS_ROOT,
        "MODEL": spec.model,
        "NVME_DIR": NVME_DIR,
        "WEIGHTS_S3": weights_s3(spec, ctx.bucket),
        "WEIGHTS_S3_REQUIRED": "1" if weights_only_from_s3(spec) else "",
        "USE_MODELSCOPE": "true" if spec.use_modelscope else "false",
        "HF_ID": m.hf_id or "",
        "MODELSCOPE_ID": m.modelscope_id or "",
        "GPUS": str(it.gpus if it and ctx.role == "worker" else 0),
        "GRAFANA_PORT": str(ports.GRAFANA),
        "PROMETHEUS_PORT": str(ports.PROMETHEUS),
        "MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "JOIN_TIMEOUT_S": str(JOIN_TIMEOUT_S),
        "HEAD_ADDRESS": ctx.head_address or "",
    }
    lines = ["# Rendered from the deployment spec by infra/userdata.py; holds no secrets."]
    lines += [f"{k}={_quote(v)}" for k, v in scalars.items()]
    lines.append("ENCODINGS=(" + " ".join(_quote(f"{n}:{h}") for n, h in ENCODINGS_SHA256.items()) + ")")
    lines.append("RAY_START_ARGS=(" + " ".join(_quote(a) for a in ray_args(spec, ctx)) + ")")
    lines.append("HUB_EXCLUDE_ARGS=(" + " ".join(f"--exclude {_quote(p)}" for p in HUB_EXCLUDE) + ")")
    return "\n".join(lines) + "\n"


def boot_unit() -> str:
    """The systemd unit that runs the boot until it succeeds (or gives up: exit 75 stops the retries)."""
    return "\n".join([
        "[Unit]",
        "Description=gpt-oss-ops node boot: secrets, encodings, serving image, weights, Ray",
        "Wants=network-online.target",
        "After=network-online.target docker.service",
        "Requires=docker.service",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        f"ExecStart={BOOT_SCRIPT_PATH}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        "RestartPreventExitStatus=75",
        # A 120b checkpoint from the hub takes a while; the step that hangs is what times out.
        "TimeoutStartSec=4h",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def _quote(value: str) -> str:
    """Single-quote every value (shlex.quote leaves safe-looking words bare, e.g. `head`, which shellcheck
    rightly reads as a command name)."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def encode(text: str) -> str:
    """What the launch template carries: the document gzip-compressed (cloud-init recognises gzip user-data),
    then base64. The boot script alone is over EC2's 16 KB user-data limit; compressed, the whole document is a
    third of it. mtime=0 keeps the bytes (and so the launch template) the same for the same document."""
    import base64
    import gzip

    return base64.b64encode(gzip.compress(text.encode(), compresslevel=9, mtime=0)).decode()


def decode(data: str) -> str:
    """The document back from launch-template user-data (base64, gzip-compressed or not)."""
    import base64
    import gzip

    raw = base64.b64decode(data)
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


def render(spec: DeploymentSpec, ctx: BootContext) -> str:
    """The `#cloud-config` document for one node role."""
    doc = {
        "write_files": [
            {"path": BOOT_ENV_PATH, "owner": "root:root", "permissions": "0644", "content": boot_env(spec, ctx)},
            {"path": BOOT_SCRIPT_PATH, "owner": "root:root", "permissions": "0755",
             "content": BOOT_SCRIPT.read_text()},
            {"path": BOOT_UNIT_PATH, "owner": "root:root", "permissions": "0644", "content": boot_unit()},
        ],
        "runcmd": [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "--no-block", BOOT_UNIT]],
    }
    return "#cloud-config\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the user-data reads like the files it writes."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
