"""ops bench refuses bad input before sending anything, with the flag and the fix in the message."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.errors import OpsError


@pytest.mark.parametrize("args,needle", [
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "1,x"], "--concurrency"),
    (["--api", "responses"], "--api"),
    (["--plot", "out.svg"], "--plot"),
])
def test_bad_flags_are_refused(args, needle):
    result = CliRunner().invoke(app, ["bench", "--endpoint", "http://127.0.0.1:9", "--model", "m", *args])
    assert isinstance(result.exception, OpsError), result.output
    assert needle in result.exception.message and result.exception.fix


@pytest.mark.parametrize("warmup,counted", [(1, 1), (0, 3)])
def test_unreachable_endpoint_counts_connect_errors_and_fails(tmp_path, warmup, counted):
    """With the default warm-up, its one failure stops the level before the timed requests are sent."""
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["bench", "--endpoint", "http://127.0.0.1:9", "--model", "m", "--requests", "3",
                                      "--concurrency", "2", "--timeout", "5", "--warmup", str(warmup), "--json", str(out)])
    assert isinstance(result.exception, OpsError) and "every request failed" in result.exception.message
    import json

    run = json.loads(out.read_text())["runs"][0]
    assert run["failed"] == counted and run["errors_by_status"] == {"connect": counted}
    assert run.get("warmup_failed", False) == bool(warmup)
