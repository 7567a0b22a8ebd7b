"""Target options given on the command line reach the target module (checked through the errors they cause
before any network traffic)."""

from __future__ import annotations

import json

from tests.support import run_ops


def ops(*args):
    return run_ops(*args, timeout=120)


def test_cluster_outputs_file_option(tmp_path):
    missing = tmp_path / "outputs.json"
    r = ops("status", "--target", "cluster", "--preset", "tiny", "--outputs", str(missing))
    assert r.returncode == 2
    assert str(missing) in r.stderr and "pulumi stack output --json" in r.stderr


def test_cluster_identity_option(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"head": "10.255.255.1", "workers": []}))
    key = tmp_path / "no-such-key"
    r = ops("terminate", "--target", "cluster", "--preset", "tiny", "--outputs", str(outputs), "--identity", str(key))
    assert r.returncode == 2
    assert str(key) in r.stderr and "--identity" in r.stderr


def test_cluster_via_option_is_checked(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"head": "10.255.255.1", "workers": []}))
    r = ops("logs", "--target", "cluster", "--preset", "tiny", "--outputs", str(outputs), "--via", "bastion")
    assert r.returncode == 2 and "bastion" in r.stderr
