"""The CLI: fast start without heavy SDKs, data on stdout / people on stderr, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import run_ops

HEAVY = ("ray", "vllm", "pulumi", "pulumi_aws", "anyscale", "fabric", "torch", "transformers", "boto3")




@pytest.mark.parametrize("argv", [["--help"], ["spec", "show"], ["spec", "show", "--preset", "gpt-oss-20b", "--json"]])
def test_cli_imports_no_heavy_sdk(argv):
    """`python -X importtime` lists every module imported; none of the heavy SDKs may appear."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "ops", *argv], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_help_lists_every_command_group():
    r = run_ops("--help")
    assert r.returncode == 0
    for group in ["deploy", "status", "smoke", "terminate", "dashboards", "doctor", "plan", "bench", "render",
                  "encodings", "spec"]:
        assert group in r.stdout, group


def test_spec_options_help_names_every_preset_model_and_gpu_of_the_catalog():
    """The --preset / --model / --accelerator help is written from the catalog, so a new preset shows there."""
    from ops.catalog import ACCELERATORS, MODELS, PRESETS

    r = run_ops("plan", "--help", env={"COLUMNS": "400"})
    assert r.returncode == 0, r.stderr
    for name in [*PRESETS, *MODELS, *ACCELERATORS]:
        assert name in r.stdout, name


def test_spec_show_json_on_stdout_only():
    r = run_ops("spec", "show", "--preset", "gpt-oss-120b", "--set", "replicas.max=3", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["spec"]["model"] == "gpt-oss-120b" and data["spec"]["tensor_parallel_size"] == 2
    assert data["sources"]["replicas.max"] == "flag:--set replicas.max"
    assert data["sources"]["model"] == "preset:gpt-oss-120b"
    assert data["derived"]["attention_backend"] == "TRITON_ATTN"


def test_spec_show_table_goes_to_stderr():
    r = run_ops("spec", "show", "--preset", "gpt-oss-20b")
    assert r.returncode == 0 and r.stdout == ""
    assert "gpt-oss-20b" in r.stderr and "preset:gpt-oss-20b" in r.stderr


def test_bad_flag_exits_2_with_field_and_fix():
    r = run_ops("spec", "show", "--preset", "gpt-oss-20b", "--max-model-len", "0")
    assert r.returncode == 2
    assert "max_model_len" in r.stderr and "Fix:" in r.stderr
    assert r.stdout == ""


def test_spec_validate(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("preset: gpt-oss-20b\nnetwork:\n  allow_cidrs: [203.0.113.0/24]\n")
    r = run_ops("spec", "validate", str(good))
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: gpt-oss-20b\nnetwork:\n  allow_cidrs: [0.0.0.0/0]\n")
    r = run_ops("spec", "validate", str(bad))
    assert r.returncode == 2
    assert "network.allow_cidrs" in r.stderr and "allow_world" in r.stderr
    r = run_ops("spec", "validate", str(bad), "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["problems"][0]["field"] == "network.allow_cidrs"
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [gpt-oss-20b\n")
    r = run_ops("spec", "validate", str(broken))
    assert r.returncode == 2 and "line 2" in r.stderr
