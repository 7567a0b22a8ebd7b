"""Config files rendered from the spec: the production Ray Serve config and the Anyscale service.

Neither file is ever written by hand. Both carry the same Serve application, `app.serve_gpt_oss:build_app`
with the `args` that `app.llm_config.app_args(spec)` derives, so a value changes in one place (the spec) and
every target sees it. The functions here return plain dicts; `validate_*` check them with Ray's and
Anyscale's own config models (imported only when called), and `write_text` / `write_anyscale_dir` put them
on disk atomically.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.llm_config import IMAGE_ENCODINGS_DIR, app_args
from ops.errors import OpsError
from ops.spec import DeploymentSpec

IMPORT_PATH = "app.serve_gpt_oss:build_app"
DOCKERFILE = Path(__file__).resolve().parents[1] / "app" / "Dockerfile"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The one build-context file app/Dockerfile copies; the Anyscale rendering inlines it.
_COPY_FETCH = "COPY app/fetch_encodings.py /tmp/fetch_encodings.py"
FETCH_SCRIPT = PROJECT_ROOT / "app" / "fetch_encodings.py"
# Kept out of the Anyscale working_dir upload: environments, caches and VCS data, never needed by replicas.
WORKING_DIR_EXCLUDES = [".git", ".venv", "**/__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info"]


def _args(spec: DeploymentSpec, model_source: str | None, encodings_dir: str | None) -> dict[str, Any]:
    try:
        return app_args(spec, model_source=model_source, encodings_dir=encodings_dir)
    except ValueError as e:
        raise OpsError(f"cannot render the Serve application: {e}.",
                       fix="pass --model-source DIR (a directory the replicas can read), or --set model_source=...",
                       code=2) from e


def serve_application(spec: DeploymentSpec, *, model_source: str | None = None,
                      encodings_dir: str | None = IMAGE_ENCODINGS_DIR) -> dict[str, Any]:
    """The one Serve application entry both files carry."""
    return {
        "name": spec.name,
        "route_prefix": "/",
        "import_path": IMPORT_PATH,
        "args": _args(spec, model_source, encodings_dir),
    }


def serve_config(spec: DeploymentSpec, *, model_source: str | None = None,
                 encodings_dir: str | None = IMAGE_ENCODINGS_DIR) -> dict[str, Any]:
    """The production Serve config file (`serve deploy FILE`).

    The proxy listens on all interfaces of the head node at spec.port: who can reach it is decided by the
    network layer (security groups, allow-list) and the endpoint's own authentication, not by the bind address.
    """
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": spec.port},
        "applications": [serve_application(spec, model_source=model_source, encodings_dir=encodings_dir)],
    }


def compute_config(spec: DeploymentSpec) -> dict[str, Any]:
    """Anyscale picks GPU workers from the Serve resource requests, unless the spec names an instance type."""
    if not spec.aws.instance_type:
        return {"auto_select_worker_config": True}
    return {
        "auto_select_worker_config": False,
        "worker_nodes": [{
            "instance_type": spec.aws.instance_type,
            # One replica needs one node's GPUs (the spec checks that the instance holds a replica).
            "min_nodes": spec.replicas.min,
            "max_nodes": spec.replicas.max,
        }],
    }


def anyscale_service(spec: DeploymentSpec, *, working_dir: str = ".", containerfile: str = "./Dockerfile",
                     model_source: str | None = None, encodings_dir: str | None = IMAGE_ENCODINGS_DIR) -> dict[str, Any]:
    """service.yaml for `anyscale service deploy -f service.yaml`.

    Anyscale's query auth token guards the endpoint when spec.auth is on; Anyscale forbids http host/port, so
    none are set.
    """
    application = serve_application(spec, model_source=model_source, encodings_dir=encodings_dir)
    # On Anyscale the endpoint is guarded by Anyscale's own query auth token; the app's bearer-key check would
    # find no key in the service's environment and refuse to start, so the token takes its place.
    application["args"]["auth"]["enabled"] = False
    return {
        "name": spec.name,
        "containerfile": containerfile,
        "compute_config": compute_config(spec),
        "working_dir": working_dir,
        "excludes": list(WORKING_DIR_EXCLUDES),
        "query_auth_token_enabled": bool(spec.auth.enabled),
        "applications": [application],
    }


def self_contained_dockerfile() -> str:
    """app/Dockerfile with its one COPY replaced by an inline copy of the fetch script.

    Anyscale builds a containerfile from its text alone (no build context), so COPY cannot work there.
    """
    text = DOCKERFILE.read_text()
    if _COPY_FETCH not in text:
        raise OpsError(f"{DOCKERFILE} no longer contains {_COPY_FETCH!r}.",
                       fix="keep that COPY line in app/Dockerfile, or update ops/render.py to match.", code=3)
    blob = base64.b64encode(FETCH_SCRIPT.read_bytes()).decode("ascii")
    inline = f"RUN echo '{blob}' | base64 -d > /tmp/fetch_encodings.py"
    header = ("# Rendered by `ops render anyscale` from app/Dockerfile: do not edit, re-render.\n"
              "# app/fetch_encodings.py is inlined (base64) because Anyscale builds without a build context.\n")
    return header + text.replace(_COPY_FETCH, inline)


# ------------------------------------------------------------------------------------------ validation


def validate_serve_config(config: dict[str, Any]) -> None:
    """Check the file with Ray's own models: ServeDeploySchema for the file, LLMConfig for each llm_configs entry.

    Importing Ray's LLM config imports vLLM, which logs to stdout by default: that output goes to stderr here
    so `-o -` stays a clean YAML stream.
    """
    with contextlib.redirect_stdout(sys.stderr):
        _validate_serve_config(config)


def _validate_serve_config(config: dict[str, Any]) -> None:
    try:
        from ray.serve.llm import LLMConfig
        from ray.serve.schema import ServeDeploySchema
    except ImportError as e:
        raise OpsError(f"cannot validate against Ray's config models: {e}.",
                       fix='install the serving stack: pip install "gpt-oss-ops[gpu]" (or the [local] extra).',
                       code=3) from e
    try:
        ServeDeploySchema.model_validate(config)
    except Exception as e:  # pydantic ValidationError; message names the field
        raise OpsError(f"Ray's ServeDeploySchema rejects the rendered config: {e}",
                       fix="change the spec field named above (see `ops spec show`).", code=2) from e
    for application in config["applications"]:
        for entry in application["args"]["llm_configs"]:
            try:
                LLMConfig(**entry)
            except Exception as e:
                raise OpsError(f"Ray's LLMConfig rejects the rendered llm_config: {e}",
                               fix="change the spec field named above (see `ops spec show`).", code=2) from e


def validate_anyscale_service(service: dict[str, Any]) -> None:
    """Check service.yaml with the Anyscale SDK's ServiceConfig, and its applications with Ray's models."""
    try:
        from anyscale.service.models import ServiceConfig
    except ImportError as e:
        raise OpsError(f"cannot validate against the Anyscale SDK's ServiceConfig: {e}.",
                       fix='install the Anyscale SDK: pip install "gpt-oss-ops[anyscale]".', code=3) from e
    try:
        ServiceConfig(**service)
    except (TypeError, ValueError) as e:
        raise OpsError(f"the Anyscale SDK rejects the rendered service config: {e}",
                       fix="change the spec field named above (see `ops spec show`).", code=2) from e
    validate_serve_config({"applications": service["applications"]})


# --------------------------------------------------------------------------------------------- writing


def to_yaml(data: dict[str, Any], header: str | None = None) -> str:
    import yaml

    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)
    return (header or "") + body


def write_text(path: str | os.PathLike, text: str) -> Path | None:
    """Write atomically (temp file in the same directory + os.replace); '-' writes to stdout."""
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise OpsError(f"{p} is a directory.", fix="pass a file path with -o, e.g. -o serve-config.yaml.", code=2)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise OpsError(f"cannot write {p}: {e.strerror}.", fix="pick an output path you can write to.", code=2) from e
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_anyscale_dir(directory: str | os.PathLike, service: dict[str, Any], dockerfile: str) -> list[Path]:
    """DIR/Dockerfile and DIR/service.yaml, each written atomically (the Dockerfile first: the service names it)."""
    d = Path(directory).expanduser()
    if d.exists() and not d.is_dir():
        raise OpsError(f"{d} is a file.", fix="pass a directory with -o, e.g. -o anyscale/.", code=2)
    written = [write_text(d / "Dockerfile", dockerfile),
               write_text(d / "service.yaml", to_yaml(service, RENDERED_HEADER))]
    return [p for p in written if p is not None]


RENDERED_HEADER = "# Rendered from the deployment spec by `ops render`: do not edit by hand, re-render instead.\n"
