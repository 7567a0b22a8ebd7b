"""The `local` deploy target. Not built yet: every verb says so."""

from __future__ import annotations

from ops.errors import OpsError


def _missing(*_a, **_k):
    raise OpsError("the local target is not available in this version.", fix="use another --target.", code=3)


deploy = status = wait = terminate = _missing
