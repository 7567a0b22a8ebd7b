"""Deploy targets: one module per place gpt-oss can run, all exposing the same verbs.

Like SkyPilot's per-cloud provision modules, every target (local Ray on this machine, a provisioned cluster
over SSH, Anyscale) implements `deploy`, `status`, `wait` and `terminate` with the same signatures, so the CLI
never branches on the target beyond picking the module here.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ops.spec import DeploymentSpec

TARGETS = ("local", "cluster", "anyscale")


@dataclass
class DeployResult:
    endpoint: str
    model_id: str
    api_key_hint: str  # where the key is (a file path, an env var, the Anyscale console), never the key itself
    changed: list[str] = field(default_factory=list)  # what this run changed
    unchanged: list[str] = field(default_factory=list)  # what was already so

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Status:
    target: str
    running: bool
    endpoint: str | None = None
    model_id: str | None = None
    app_status: str | None = None  # Serve application status: RUNNING, DEPLOYING, DEPLOY_FAILED, ...
    deployments: dict[str, Any] = field(default_factory=dict)  # name -> {status, replicas: {state: count}}
    nodes: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TerminateResult:
    stopped: list[str] = field(default_factory=list)
    already_stopped: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Target(Protocol):
    """The verbs every target module implements (module-level functions)."""

    def deploy(self, spec: DeploymentSpec, **options: Any) -> DeployResult: ...

    def status(self, spec: DeploymentSpec, **options: Any) -> Status: ...

    def wait(self, spec: DeploymentSpec, timeout_s: float, **options: Any) -> Status: ...

    def terminate(self, spec: DeploymentSpec, **options: Any) -> TerminateResult: ...


def get(name: str) -> Target:
    """The module for a target. Imported on demand so each target's SDK loads only when used."""
    if name not in TARGETS:
        from ops.errors import OpsError

        raise OpsError(f"unknown target {name!r}.", fix=f"use one of {', '.join(TARGETS)}.", code=2)
    return importlib.import_module(f"ops.targets.{name}")  # type: ignore[return-value]
