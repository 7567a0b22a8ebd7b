"""The boundary to the Anyscale SDK: where `ops` meets Anyscale's control plane, and the fake that stands in
for it when no Anyscale account can be reached.

The target (`ops/targets/anyscale.py`) only ever talks to an `anyscale.service.ServiceSDK` — the object behind
the SDK's module-level `anyscale.service.deploy/status/terminate`, which takes its client as an argument. In
production that client is the SDK's real `AnyscaleClient` (credentials from `anyscale login` or
`ANYSCALE_CLI_TOKEN`); in tests it is `FakeControlPlane`, built on the SDK's own `FakeAnyscaleClient` (the one
Anyscale's tests use) plus the lifecycle a real service goes through (STARTING -> RUNNING, TERMINATING ->
TERMINATED, failures with the backend's status checklist). Everything above the client — config models,
rollout strategy, working_dir packaging, status mapping — is the real SDK code.

Nothing here imports `anyscale` at module import time: `ops --help` must not pay for it.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator

from ops.errors import OpsError

RUNBOOK = "docs/anyscale.md#troubleshooting"
_BEARER = re.compile(r"(Bearer\s+)[^\s\"']+")


def redact(text: str) -> str:
    """Hide bearer tokens in a line the SDK logs (it prints a ready-to-run curl command with the token)."""
    return _BEARER.sub(r"\1<token>", text)


def _console_logger() -> Any:
    """A BlockLogger that sends the SDK's progress lines to our stderr console, with the query token redacted."""
    from anyscale.cli_logger import BlockLogger

    from ops.console import err

    class _Logger(BlockLogger):
        def info(self, *msg: str, block_label: str | None = None, end: str = "\n") -> None:  # noqa: ARG002
            err.print(f"[dim]anyscale:[/] {redact(' '.join(str(m) for m in msg))}", markup=True, highlight=False,
                      soft_wrap=True)

        def warning(self, *msg: str) -> None:
            err.print(f"[yellow]anyscale warning:[/] {redact(' '.join(str(m) for m in msg))}", soft_wrap=True)

        def error(self, *msg: str) -> None:
            err.print(f"[red]anyscale error:[/] {redact(' '.join(str(m) for m in msg))}", soft_wrap=True)

    return _Logger(log_output=True)


def service_sdk(client: Any = None, *, logger: Any = None) -> Any:
    """An `anyscale.service.ServiceSDK` bound to `client` (the real control plane when None).

    Creating the real client reads the credentials; a missing or rejected token becomes an OpsError that says
    how to log in, instead of the SDK's click exception.
    """
    try:
        from anyscale.service import ServiceSDK
    except ImportError as e:
        raise OpsError(f"the Anyscale SDK is not installed ({e}).",
                       fix='pip install "gpt-oss-ops[anyscale]"', code=3) from e
    try:
        return ServiceSDK(client=client, logger=logger if logger is not None else _console_logger())
    except Exception as e:  # click.ClickException from the SDK's authentication block, or a network error
        message = getattr(e, "message", None) or str(e)
        raise OpsError(f"cannot reach Anyscale: {message}",
                       fix="log in with `anyscale login`, or export ANYSCALE_CLI_TOKEN=<an API key from "
                           "https://console.anyscale.com/v2/api-keys>, then run the command again.",
                       runbook=RUNBOOK, code=3) from e


def is_not_found(error: BaseException, name: str) -> bool:
    """The SDK's way of saying a service does not exist: RuntimeError("Service with name 'X' was not found.")."""
    return isinstance(error, RuntimeError) and f"Service with name '{name}' was not found" in str(error)


@contextmanager
def sdk_errors(action: str, name: str) -> Iterator[None]:
    """Turn the SDK's errors into one actionable OpsError.

    The real client raises ValueError with the server's text for 4xx answers (its `handle_api_exceptions`),
    RuntimeError for lookups that find nothing, and the OpenAPI `ApiException` for 5xx.
    """
    try:
        yield
    except OpsError:
        raise
    except (ValueError, TypeError) as e:
        raise OpsError(f"Anyscale refused to {action} service {name!r}: {redact(str(e))}",
                       fix="fix what the message names (cloud, project, compute config or quota), then run the "
                           "command again; `ops render anyscale -o DIR` shows the exact service.yaml sent.",
                       runbook=RUNBOOK, code=1) from e
    except RuntimeError as e:
        raise OpsError(f"could not {action} service {name!r}: {redact(str(e))}",
                       fix=f"check the name, cloud and project (`anyscale service list --name {name}`).",
                       runbook=RUNBOOK, code=1) from e
    except Exception as e:  # ApiException (5xx), network errors
        status = getattr(e, "status", None)
        detail = f"HTTP {status}: {getattr(e, 'reason', '')}" if status else f"{type(e).__name__}: {e}"
        raise OpsError(f"the Anyscale API failed while trying to {action} service {name!r} ({redact(detail)}).",
                       fix="retry in a minute; every ops verb is safe to repeat. If it persists, check "
                           "https://status.anyscale.com.", runbook=RUNBOOK, code=1) from e


# --------------------------------------------------------------------------------------------- the fake


def fake_control_plane(**kwargs: Any) -> Any:
    """A `FakeControlPlane` (built lazily: the class derives from the SDK's own fake client)."""
    return _fake_class()(**kwargs)


def _fake_class() -> type:
    from anyscale._private.anyscale_client import FakeAnyscaleClient
    from anyscale.client.openapi_client.models.service_status_checklist import ServiceStatusChecklist
    from anyscale.client.openapi_client.models.status_checklist_item import StatusChecklistItem
    from anyscale.client.openapi_client.models.version_checklist import VersionChecklist
    from anyscale.sdk.anyscale_client.models import ServiceEventCurrentState as S
    from anyscale.sdk.anyscale_client.models import ServiceVersionState as V

    no_validation = FakeAnyscaleClient.OPENAPI_NO_VALIDATION

    class FakeControlPlane(FakeAnyscaleClient):
        """The SDK's FakeAnyscaleClient, with services that take time to start and stop, and can fail.

        Each lookup of a service (every `status`, every poll) moves a pending service one step along its path:
        a new service STARTING -> RUNNING, an update ROLLING_OUT -> RUNNING, a terminate TERMINATING ->
        TERMINATED. Knobs for tests:
          steps_to_running   lookups a start or rollout takes
          fail_rollout       state a rollout ends in instead of RUNNING (UNHEALTHY, SYSTEM_FAILURE), with
                             `failure_message` in the status checklist as the backend reports it
          never_ready        a rollout stays STARTING / ROLLING_OUT forever (for timeouts)
          reject_rollout     the API refuses the rollout: ValueError(text), as the real client raises on 4xx
        `rollouts` counts the rollouts the control plane accepted.
        """

        def __init__(self, *, steps_to_running: int = 2, steps_to_terminated: int = 1,
                     fail_rollout: str | None = None, failure_message: str = "", never_ready: bool = False,
                     reject_rollout: str | None = None):
            super().__init__()
            self.steps_to_running = steps_to_running
            self.steps_to_terminated = steps_to_terminated
            self.fail_rollout = fail_rollout
            self.failure_message = failure_message
            self.never_ready = never_ready
            self.reject_rollout = reject_rollout
            self.rollouts = 0
            self._paths: dict[str, list[str]] = {}

        # -- lifecycle --------------------------------------------------------------------------------
        def get_service(self, name: str, **kwargs: Any) -> Any:
            service = super().get_service(name, **kwargs)
            if service is not None:
                self._advance(service)
            return service

        def _advance(self, service: Any) -> None:
            path = self._paths.get(service.id)
            if not path:
                return
            state = path.pop(0)
            service.current_state = state
            version = service.primary_version
            if version is not None and not isinstance(version, str):
                version.current_state = {S.RUNNING: V.RUNNING, S.TERMINATED: V.TERMINATED,
                                         S.UNHEALTHY: V.UNHEALTHY, S.SYSTEM_FAILURE: V.SYSTEM_FAILURE,
                                         S.TERMINATING: V.TERMINATING}.get(state, V.STARTING)
            if state in (S.UNHEALTHY, S.SYSTEM_FAILURE):
                service.error_message = self.failure_message or None
                service.service_status_checklist = ServiceStatusChecklist(
                    shared=[],
                    per_version=[VersionChecklist(
                        version_id=version.id[-8:] if version is not None else "",
                        items=[StatusChecklistItem(kind="APPLICATION", label="Ray Serve application", state=state,
                                                   message=self.failure_message,
                                                   local_vars_configuration=no_validation)],
                        local_vars_configuration=no_validation)],
                    local_vars_configuration=no_validation)

        def rollout_service(self, model: Any) -> Any:
            if self.reject_rollout:
                raise ValueError(self.reject_rollout)
            before = super().get_service(model.name)
            was = before.current_state if before is not None else None
            service = super().rollout_service(model)
            self.rollouts += 1
            service.service_status_checklist = None
            # An update of a live service rolls out beside it (ROLLING_OUT); a new or terminated one STARTs.
            first = S.ROLLING_OUT if was in (S.RUNNING, S.UNHEALTHY, S.ROLLING_OUT, S.UPDATING) else S.STARTING
            service.current_state = first
            service.primary_version.current_state = V.STARTING
            end = self.fail_rollout or S.RUNNING
            self._paths[service.id] = [] if self.never_ready else (
                [first] * max(self.steps_to_running - 1, 0) + [end])
            return service

        def terminate_service(self, service_id: str) -> None:
            super().terminate_service(service_id)
            service = self._services[service_id]
            self._paths[service_id] = ([S.TERMINATING] * self.steps_to_terminated) + [S.TERMINATED]
            service.current_state = S.TERMINATING

    return FakeControlPlane
