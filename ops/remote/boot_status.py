"""Where each node's own boot stands, as the boot script reports it (infra/boot.sh, `STATE_DIR/status.json`):
booting (and at which step), failed (the step, the last error line; systemd retries), gave-up (after the last
attempt: a worker has marked itself Unhealthy and its Auto Scaling group replaces it), ready (Ray joined).

The cluster target waits on this before it touches Ray on a stack-built cluster, so a node still booting is
waited for (with the step shown) instead of being sent `docker exec ray ...` with no container yet, and a node
whose boot failed is reported with its reason instead of a timeout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ops.errors import OpsError

RUNBOOK = "docs/cluster.md"
READY, FAILED, GAVE_UP, BOOTING, UNKNOWN = "ready", "failed", "gave-up", "booting", "unknown"


@dataclass(frozen=True)
class NodeBoot:
    host: str
    state: str
    step: str = ""
    reason: str = ""
    attempt: int = 0
    timeline: tuple[tuple[str, float], ...] = field(default=(), compare=False)  # (step, began at) this attempt

    def seconds_by_step(self) -> dict[str, float]:
        """How long each finished step of this attempt took (the last one runs until "complete")."""
        return {step: round(nxt - at, 1) for (step, at), (_, nxt) in zip(self.timeline, self.timeline[1:])}

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "step": self.step, "reason": self.reason, "attempt": self.attempt,
                "seconds_by_step": self.seconds_by_step()}

    def describe(self) -> str:
        if self.state == READY:
            return f"{self.host}: ready"
        where = f" at step {self.step}" if self.step else ""
        why = f": {self.reason}" if self.reason else ""
        tries = f" (attempt {self.attempt})" if self.attempt else ""
        return f"{self.host}: {self.state}{where}{tries}{why}"


def read(conns: dict[str, Any], settings) -> dict[str, NodeBoot]:
    """Every node's boot status (UNKNOWN when the node has not written one yet, or cannot be read)."""
    from ops.remote.connection import fanout

    path = f"{settings.state_dir}/status.json"
    res = fanout(conns, settings, ["cat", path], check=False, timeout=30, what="reading the node's boot status")
    out = {}
    for host, r in res.items():
        try:
            data = json.loads(r.stdout) if r.exited == 0 else {}
        except ValueError:
            data = {}
        timeline = tuple((str(e.get("step")), float(e.get("at"))) for e in data.get("timeline") or []
                         if isinstance(e, dict) and isinstance(e.get("at"), (int, float)))
        out[host] = NodeBoot(host, data.get("state") or UNKNOWN, data.get("step") or "", data.get("reason") or "",
                             int(data.get("attempt") or 0), timeline)
    return out


def wait(conns: dict[str, Any], settings, *, head: str, timeout_s: float,
         on_change: Callable[[str], None] | None = None) -> dict[str, NodeBoot]:
    """Wait until every node is ready or has given up. The head giving up, or no worker ready, is an error
    naming each node's reason; workers that gave up are returned for the caller to report."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        states = read(conns, settings)
        line = "; ".join(b.describe() for b in states.values())
        if on_change and line != last:
            on_change(line)
        last = line
        if all(b.state in (READY, GAVE_UP) for b in states.values()):
            break
        if time.monotonic() > deadline:
            raise OpsError(f"the nodes did not finish booting within {timeout_s:.0f}s: {line}",
                           fix="a first boot pulls the serving image and the weights (minutes for a large model); "
                               "re-run the deploy to keep waiting (GPT_OSS_DEPLOY_TIMEOUT=SECONDS), or read a "
                               f"node's log: journalctl -u gpt-oss-boot, {settings.state_dir}/boot.log.",
                           runbook=RUNBOOK)
        time.sleep(3)
    if states[head].state != READY:
        raise OpsError(f"the head's boot gave up: {states[head].describe()}",
                       fix="fix the cause named above, then on the head: sudo systemctl restart gpt-oss-boot (or "
                           "replace the head with `pulumi up --replace` of its instance); then deploy again.",
                       runbook=RUNBOOK)
    workers = [b for h, b in states.items() if h != head]
    if workers and not any(b.state == READY for b in workers):
        raise OpsError("no worker finished booting: " + "; ".join(b.describe() for b in workers),
                       fix="fix the cause named above (the weights mirror, the image, SSM parameters); the Auto "
                           "Scaling group replaces workers that gave up; deploy again once one is ready.",
                       runbook=RUNBOOK)
    return states
