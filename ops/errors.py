"""Errors the CLI knows how to present: a cause, a fix, and the runbook that explains it."""

from __future__ import annotations


class OpsError(RuntimeError):
    """A failure the user can act on. The CLI prints `message`, `fix` and `runbook` and exits with `code`."""

    def __init__(self, message: str, *, fix: str | None = None, runbook: str | None = None, code: int = 1):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.runbook = runbook
        self.code = code
