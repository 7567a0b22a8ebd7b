"""What `ops doctor` reports: one finding per check or recognised log signature, and how it is shown.

People get a Rich table on stderr; scripts get a JSON list on stdout (`--json`). Any `fail` makes the exit
code 1, so `ops doctor` can gate a deploy script.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ops.doctor.registry import runbook as _runbook

OK, WARN, FAIL = "ok", "warn", "fail"
_ORDER = {FAIL: 0, WARN: 1, OK: 2}


@dataclass
class Finding:
    id: str  # a check id from ops.doctor.registry
    status: str  # ok | warn | fail
    summary: str  # what was found, one line
    cause: str = ""
    fix: str = ""
    runbook: str | None = None
    signature: str | None = None  # the log signature that matched, for log findings
    sources: list[str] = field(default_factory=list)  # log files (host:path for remote ones)
    evidence: str | None = None  # the matching log line

    def __post_init__(self) -> None:
        if self.runbook is None:
            self.runbook = _runbook(self.id)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], "") or k in ("id", "status", "summary",
                                                                                          "runbook")}


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.status == FAIL for f in findings) else 0


def sort(findings: list[Finding]) -> list[Finding]:
    """Failures first, then warnings, then what is fine; stable within each."""
    return sorted(findings, key=lambda f: _ORDER.get(f.status, 3))


def render(findings: list[Finding], console) -> None:
    """A table on the given (stderr) console: status, check, what was found, and what to do."""
    from rich.table import Table

    style = {OK: "green", WARN: "yellow", FAIL: "bold red"}
    table = Table(title="ops doctor", show_lines=True, expand=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("found / cause")
    table.add_column("fix")
    table.add_column("runbook", overflow="fold")
    for f in findings:
        found = _esc(f.summary) + (f"\n[dim]cause:[/] {_esc(f.cause)}" if f.cause and f.status != OK else "")
        if f.sources:
            found += f"\n[dim]in:[/] {_esc(', '.join(f.sources[:3]))}" + (" …" if len(f.sources) > 3 else "")
        table.add_row(f"[{style.get(f.status, '')}]{f.status}[/]", f.id, found if f.summary else "",
                      _esc(f.fix) if f.status != OK else "", f.runbook or "")
    console.print(table)
    fails = sum(f.status == FAIL for f in findings)
    warns = sum(f.status == WARN for f in findings)
    console.print(f"{fails} failed, {warns} warnings, {len(findings) - fails - warns} ok")


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
