"""The GPU bench's other server: our Ray Serve LLM application, deployed the way `ops deploy --target local` deploys
it, on the same checkpoint and with the same engine arguments as the bare vLLM run it is compared with.

`start()` resolves the deployment spec of the configuration on the local target with the bench's engine arguments
(`engine_args`: its overrides, `load_format: dummy`, the observation flags) and the weightless checkpoint as
`model_source`, checks that the Serve config carries exactly the engine arguments the bare run gets, then calls
`ops.targets.local.deploy` (Ray head with token auth, the Serve config through the dashboard, the application
RUNNING): launch -> RUNNING is the time to ready. The endpoint is authenticated: requests carry the key the
target generated. `stop()` is `ops.targets.local.terminate` (serve shutdown, ray stop, the engines it left).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.llm_config import llm_config_kwargs
from ops import api_key, ray_local
from ops.spec import DeploymentSpec, resolve

RANDOM_WEIGHTS = {"load_format": "dummy"}


@dataclass
class ServeApp:
    spec: DeploymentSpec
    url: str
    api_key: str | None
    deploy: dict[str, Any] = field(default_factory=dict)


def log_files() -> list[Path]:
    """Where vLLM's lines land under Ray: the replica workers' stdout/stderr (the engine core process inherits
    them) and Serve's own replica logs."""
    logs = ray_local.logs_dir()
    return sorted([*logs.glob("worker-*.out"), *logs.glob("worker-*.err"), *logs.glob("serve/replica_*.log")])


def spec_for(model: str, accelerator: str, tp: int, max_model_len: int, checkpoint: Path,
             engine_args: dict[str, object], sets: dict[str, Any] | None = None) -> DeploymentSpec:
    """The spec `ops deploy --target local` gets for this configuration: the model's preset, the bench's engine
    arguments on top of the preset's, the checkpoint the bench wrote, and the fields the bench's `--set` gives."""
    return resolve(preset=model, flags={**(sets or {}), "accelerator": accelerator, "tensor_parallel_size": tp,
                                        "max_model_len": max_model_len, "target": "local",
                                        "model_source": str(checkpoint), "engine_args": engine_args}).spec


def check_same_engine(spec: DeploymentSpec, bare_kwargs: dict[str, object], extra: dict[str, object]) -> None:
    """The Serve config's engine arguments are the bare run's plus `extra`, or the comparison is not a peer one."""
    serve_kwargs = dict(llm_config_kwargs(spec, model_source="unused", encodings_dir=None)["engine_kwargs"])
    want = {**bare_kwargs, **extra}
    if serve_kwargs != want:
        diff = {k: (serve_kwargs.get(k), want.get(k)) for k in serve_kwargs.keys() | want.keys()
                if serve_kwargs.get(k) != want.get(k)}
        raise SystemExit(f"the Serve config's engine arguments differ from the bare run's: {json.dumps(diff)}")


def start(spec: DeploymentSpec, home: Path, encodings: str, timeout_s: float) -> ServeApp:
    """Deploy with the local target, its state (key file, Ray token, rendered config) under `home`."""
    from ops.targets import local

    os.environ["GPT_OSS_OPS_HOME"] = str(home)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = encodings
    started = time.monotonic()
    result = local.deploy(spec, timeout_s=timeout_s, smoke=False)
    deployed = local.local_spec(spec, local.key_file())
    return ServeApp(spec=deployed, url=f"http://{local.HOST}:{spec.port}",
                    api_key=api_key.find(deployed, local.key_file())[0],
                    deploy={"seconds": round(time.monotonic() - started, 1), **result.to_dict(),
                            "serve_config": str(local.config_file())})


def stop(spec: DeploymentSpec) -> dict[str, Any]:
    """Serve shutdown, ray stop, and the engines the deployment left (also after a deploy that failed)."""
    from ops.targets import local

    return local.terminate(spec).to_dict()
