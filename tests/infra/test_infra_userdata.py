"""The rendered user-data, checked by the real tools: cloud-init's schema validator, bash -n, shellcheck,
bash itself (the settings file sourced back), Ray's own `ray start` option parser and label validator."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra_mocks import run_main
from infra_specs import FULL_SPEC_YAML, user_data
from infra import ports, userdata
from infra.options import InfraOptions
from ops.spec import resolve

EC2_USER_DATA_LIMIT = 16 * 1024  # bytes, before base64 (EC2 API reference, RunInstances UserData)


def _tools():
    for tool in ("cloud-init", "shellcheck", "bash"):
        assert shutil.which(tool), f"{tool} missing: run scripts/system-deps.sh (apt-get install -y {tool})"


@pytest.fixture(scope="module", params=["gpt-oss-20b", "gpt-oss-120b", "full"])
def rendered(request, tmp_path_factory):
    """(name, {role: user-data text}) from the real program's launch templates under mocks."""
    if request.param == "full":
        path = tmp_path_factory.mktemp("spec") / "spec.yaml"
        path.write_text(FULL_SPEC_YAML)
        run = run_main({"specFile": str(path), "keyName": "ops-key"}, region="us-west-2")
    else:
        run = run_main({"preset": request.param})
    lts = run.mocks.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    by_role = {("head" if "head" in lt.name else "worker"): user_data(lt) for lt in lts}
    head = run.mocks.one("aws:ec2/instance:Instance")
    return request.param, by_role, head


def _files(text: str) -> dict[str, str]:
    doc = yaml.safe_load(text)
    return {f["path"]: f["content"] for f in doc["write_files"]}


def test_user_data_passes_cloud_init_schema(rendered, tmp_path):
    _tools()
    name, by_role, _ = rendered
    assert set(by_role) == {"head", "worker"}
    for role, text in by_role.items():
        assert text.startswith("#cloud-config\n")
        sent = base64.b64decode(userdata.encode(text))  # what EC2 receives (gzip; cloud-init unpacks it)
        assert len(sent) < EC2_USER_DATA_LIMIT, (name, role, len(sent))
        f = tmp_path / f"{role}.yaml"
        f.write_text(text)
        res = subprocess.run(["cloud-init", "schema", "--config-file", str(f)], capture_output=True, text=True)
        assert res.returncode == 0 and "Valid cloud-config" in res.stdout, (name, role, res.stdout, res.stderr)


def test_cloud_init_schema_rejects_a_broken_document(tmp_path):
    """The validator really checks: the same document with a wrong type fails."""
    _tools()
    spec = resolve(preset="gpt-oss-20b").spec
    ctx = userdata.BootContext("head", "ci", "img:1", "bucket", "/a", "/h", "/g")
    doc = yaml.safe_load(userdata.render(spec, ctx))
    doc["write_files"][0]["permissions"] = 420  # an int, not the '0644' string cloud-init requires
    f = tmp_path / "bad.yaml"
    f.write_text("#cloud-config\n" + yaml.safe_dump(doc))
    res = subprocess.run(["cloud-init", "schema", "--config-file", str(f)], capture_output=True, text=True)
    assert res.returncode != 0 and "permissions" in res.stdout + res.stderr


def test_boot_scripts_pass_bash_n_and_shellcheck(rendered, tmp_path):
    _tools()
    name, by_role, _ = rendered
    for role, text in by_role.items():
        files = _files(text)
        script = tmp_path / f"{role}-boot.sh"
        script.write_text(files[userdata.BOOT_SCRIPT_PATH])
        env = tmp_path / f"{role}-boot.env"
        env.write_text(files[userdata.BOOT_ENV_PATH])
        for f in (script, env):
            res = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True)
            assert res.returncode == 0, (name, role, f.name, res.stderr)
        res = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
        assert res.returncode == 0, (name, role, res.stdout)
        # The settings file is only assignments the script reads; SC2034 ("appears unused") is expected there.
        res = subprocess.run(["shellcheck", "-s", "bash", "-e", "SC2034", str(env)], capture_output=True, text=True)
        assert res.returncode == 0, (name, role, res.stdout)


def _sourced(env_text: str, tmp_path: Path, expr: str) -> list[str]:
    f = tmp_path / "boot.env"
    f.write_text(env_text)
    out = subprocess.run(["bash", "-c", f'source "$1"; printf "%s\\n" {expr}', "_", str(f)],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_host_tool_wrappers_pass_shellcheck(tmp_path):
    """The `ray` / `serve` / `gpt-oss-python` wrappers the boot script writes onto the host."""
    text = userdata.BOOT_SCRIPT.read_text()
    wrapper = re.search(r"<<'WRAPPER'\n(.*?)\nWRAPPER\n", text, re.S).group(1)
    f = tmp_path / "wrapper"
    f.write_text(wrapper + "\n")
    res = subprocess.run(["shellcheck", str(f)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert wrapper.startswith("#!/usr/bin/env bash") and "docker exec -i" in wrapper


def test_ray_start_arguments_parse_with_rays_own_cli(rendered, tmp_path):
    from ray._private.label_utils import parse_node_labels_string, validate_node_label_syntax
    from ray.scripts.scripts import start

    name, by_role, _ = rendered
    for role, text in by_role.items():
        args = _sourced(_files(text)[userdata.BOOT_ENV_PATH], tmp_path, '"${RAY_START_ARGS[@]}"')
        ctx = start.make_context("start", list(args))  # Ray's click command: parses, does not start
        p = ctx.params
        assert p["metrics_export_port"] == ports.METRICS_EXPORT
        assert (p["node_manager_port"], p["object_manager_port"]) == (ports.NODE_MANAGER, ports.OBJECT_MANAGER)
        assert (p["min_worker_port"], p["max_worker_port"]) == (ports.WORKER_MIN, ports.WORKER_MAX)
        assert p["dashboard_agent_listen_port"] == ports.DASHBOARD_AGENT_HTTP
        assert p["runtime_env_agent_port"] == ports.RUNTIME_ENV_AGENT
        labels = parse_node_labels_string(p["labels"])
        validate_node_label_syntax(labels)
        assert labels["gpt-oss-ops.io/role"] == role
        if role == "head":
            assert p["head"] and p["port"] == ports.GCS and p["dashboard_port"] == ports.DASHBOARD
            assert p["ray_client_server_port"] == ports.CLIENT and p["num_gpus"] == 0
        else:
            assert not p["head"] and p["num_gpus"] >= 1
            assert re.fullmatch(rf"10\.42\.\d+\.\d+:{ports.GCS}", p["address"]), p["address"]
            assert p["resources"].startswith('{"accelerator_type:')


def test_workers_join_the_head_and_prefetch_weights(rendered, tmp_path):
    name, by_role, _ = rendered
    env = _files(by_role["worker"])[userdata.BOOT_ENV_PATH]
    role, root, model_name, hf_id, weights, required, excludes = _sourced(
        env, tmp_path, '"$ROLE" "$MODELS_ROOT" "$MODEL" "$HF_ID" "$WEIGHTS_S3" "$WEIGHTS_S3_REQUIRED" '
                       '"${HUB_EXCLUDE_ARGS[*]}"')
    model = "gpt-oss-120b" if name == "gpt-oss-120b" else "gpt-oss-20b"
    assert role == "worker" and f"{root}/{model_name}" == userdata.model_dir(resolve(preset=model).spec)
    assert model_name == model and hf_id == f"openai/{model}"
    assert weights.startswith("s3://") and weights.endswith(f"/models/{model}") and required == ""
    # Only what vLLM loads is downloaded from the hub: not the original/ and metal/ copies.
    assert excludes == "--exclude original/* --exclude metal/*"
    args = _sourced(env, tmp_path, '"${RAY_START_ARGS[@]}"')
    assert args[0].startswith("--address=10.42.") and args[0].endswith(":6379")


def test_no_secrets_in_user_data_only_parameter_names(rendered):
    name, by_role, _ = rendered
    for role, text in by_role.items():
        assert "--with-decryption" in text and "aws ssm get-parameter" in text
        assert "API_KEY_PARAM='/gpt-oss-ops/ci/api-key'" in text
        assert "HUB_TOKEN_PARAM='/gpt-oss-ops/ci/hub-token'" in text
        assert "HF_TOKEN=hf_" not in text and "sk-" not in text


def test_pinned_encoding_hashes_match_the_verified_files(encodings_dir, tmp_path):
    spec = resolve(preset="gpt-oss-20b").spec
    env = userdata.boot_env(spec, userdata.BootContext("head", "ci", "img:1", "b", "/a", "/h", "/g"))
    entries = _sourced(env, tmp_path, '"${ENCODINGS[@]}"')
    assert len(entries) == 2
    for entry in entries:
        fname, digest = entry.split(":")
        assert hashlib.sha256((encodings_dir / fname).read_bytes()).hexdigest() == digest


def test_settings_survive_quoting(tmp_path):
    """Values with quotes, spaces and shell metacharacters come back from `source` exactly as rendered."""
    spec = resolve(preset="gpt-oss-20b").spec
    odd = "registry.example/it's a $(image):tag`x`"
    env = userdata.boot_env(spec, userdata.BootContext("head", "ci", odd, "b", "/a", "/h", "/g"))
    assert _sourced(env, tmp_path, '"$IMAGE"') == [odd]


def test_boot_script_is_the_packaged_file():
    spec = resolve(preset="gpt-oss-20b").spec
    text = userdata.render(spec, userdata.BootContext("head", "ci", "img:1", "b", "/a", "/h", "/g"))
    assert _files(text)[userdata.BOOT_SCRIPT_PATH] == userdata.BOOT_SCRIPT.read_text()
    assert InfraOptions().image in text or "img:1" in text
