"""Rendered configs: the production Serve config and the Anyscale service, for every preset, checked with Ray's
own `ServeDeploySchema` and `LLMConfig` and the Anyscale SDK's own `ServiceConfig`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.llm_config import IMAGE_ENCODINGS_DIR, app_args
from ops import catalog, render
from ops.cli import app as ops_app
from ops.errors import OpsError
from ops.spec import resolve
from tests.support import run_ops

ROOT = Path(__file__).resolve().parents[1]
TINY_SOURCE = "/models/tiny-gpt-oss"

# preset -> (model_source to pass, how the accelerator shows up in the LLMConfig, attention backend)
PRESETS = {
    "gpt-oss-20b": (None, {"accelerator_type": "L4"}, "TRITON_ATTN"),
    "gpt-oss-120b": (None, {"accelerator_type": "L40S"}, "TRITON_ATTN"),
    "tiny": (TINY_SOURCE, {"accelerator_config": {"kind": "cpu"}}, None),
}


@pytest.fixture(scope="module")
def ray_models():
    from ray.serve.llm import LLMConfig
    from ray.serve.schema import ServeDeploySchema

    return ServeDeploySchema, LLMConfig


@pytest.fixture(scope="module")
def service_config_cls():
    from anyscale.service.models import ServiceConfig

    return ServiceConfig


def _spec(preset: str, **flags):
    return resolve(preset=preset, flags=flags).spec


@pytest.mark.parametrize("preset", PRESETS)
def test_serve_config_per_preset(preset, ray_models):
    ServeDeploySchema, LLMConfig = ray_models
    source, accel, backend = PRESETS[preset]
    spec = _spec(preset)
    config = render.serve_config(spec, model_source=source)

    schema = ServeDeploySchema.model_validate(config)
    assert schema.http_options.port == spec.port
    (application,) = schema.applications
    assert application.import_path == "app.serve_gpt_oss:build_app" and application.route_prefix == "/"

    args = config["applications"][0]["args"]
    assert args == app_args(spec, model_source=source)  # rendered from the contract, nothing re-derived
    (entry,) = args["llm_configs"]
    llm = LLMConfig(**entry)
    assert llm.log_engine_metrics is True
    assert entry["runtime_env"]["env_vars"]["TIKTOKEN_ENCODINGS_BASE"] == IMAGE_ENCODINGS_DIR
    for key, value in accel.items():
        assert entry[key] == value
    assert entry["engine_kwargs"].get("attention_backend") == backend
    assert args["auth"]["enabled"] is True
    render.validate_serve_config(config)


@pytest.mark.parametrize("preset", PRESETS)
def test_anyscale_service_per_preset(preset, service_config_cls):
    source, accel, backend = PRESETS[preset]
    spec = _spec(preset)
    service = render.anyscale_service(spec, model_source=source)
    parsed = service_config_cls(**service)
    assert parsed.name == "deploy-gpt-oss"
    assert parsed.containerfile == "./Dockerfile"
    assert parsed.query_auth_token_enabled is True
    assert service["compute_config"] == {"auto_select_worker_config": True}
    assert parsed.compute_config.auto_select_worker_config is True
    # Same Serve application as the production config, except that Anyscale's query token replaces the app's
    # own bearer-key check (nothing on Anyscale sets GPT_OSS_API_KEY).
    (app,) = service["applications"]
    (expected,) = render.serve_config(spec, model_source=source)["applications"]
    assert app["args"]["auth"]["enabled"] is False
    assert app["args"]["llm_configs"] == expected["args"]["llm_configs"]
    assert {k: v for k, v in app.items() if k != "args"} == {k: v for k, v in expected.items() if k != "args"}
    render.validate_anyscale_service(service)


def test_anyscale_service_without_auth_has_no_token(service_config_cls):
    spec = _spec("gpt-oss-20b", auth={"enabled": False})
    service = render.anyscale_service(spec)
    assert service_config_cls(**service).query_auth_token_enabled is False


@pytest.mark.parametrize("preset", ["gpt-oss-20b", "gpt-oss-120b", "gpt-oss-120b-h100"])
def test_gpu_presets_stream_twenty_tokens_to_a_message_and_a_spec_can_undo_it(preset):
    """Measured through the Serve app on one H100 (docs/plan.md): token-by-token streaming caps a replica at 256
    streams. The engine argument reaches vLLM as the preset's; engine_args can set it back to 1."""
    (entry,) = render.serve_config(_spec(preset))["applications"][0]["args"]["llm_configs"]
    assert entry["engine_kwargs"]["stream_interval"] == catalog.GPU_STREAM_INTERVAL == 20
    (entry,) = render.serve_config(_spec(preset, engine_args={"stream_interval": 1}))["applications"][0]["args"][
        "llm_configs"]
    assert entry["engine_kwargs"]["stream_interval"] == 1


def test_the_local_preset_streams_token_by_token():
    (entry,) = render.serve_config(_spec("tiny"), model_source=TINY_SOURCE)["applications"][0]["args"]["llm_configs"]
    assert "stream_interval" not in entry["engine_kwargs"]


def test_hopper_keeps_the_default_attention_backend(ray_models):
    _, LLMConfig = ray_models
    spec = _spec("gpt-oss-120b", accelerator="H100", tensor_parallel_size=1)
    (entry,) = render.serve_config(spec)["applications"][0]["args"]["llm_configs"]
    assert "attention_backend" not in entry["engine_kwargs"]
    assert entry["accelerator_type"] == "H100"
    LLMConfig(**entry)


def test_instance_type_becomes_the_worker_group(service_config_cls):
    spec = _spec("gpt-oss-20b", aws={"instance_type": "g6.2xlarge"}, replicas={"min": 1, "max": 3})
    service = render.anyscale_service(spec)
    parsed = service_config_cls(**service)
    (group,) = parsed.compute_config.worker_nodes
    assert (group.instance_type, group.min_nodes, group.max_nodes) == ("g6.2xlarge", 1, 3)
    assert parsed.compute_config.auto_select_worker_config is False


def test_validation_is_real():
    """A config Ray or Anyscale would refuse is refused at render time, with exit code 2."""
    config = render.serve_config(_spec("gpt-oss-20b"))
    config["applications"][0]["args"]["llm_configs"][0]["accelerator_type"] = "NOT-A-GPU"
    with pytest.raises(OpsError) as exc:
        render.validate_serve_config(config)
    assert exc.value.code == 2 and "LLMConfig" in exc.value.message

    config = render.serve_config(_spec("gpt-oss-20b"))
    del config["applications"][0]["import_path"]
    with pytest.raises(OpsError) as exc:
        render.validate_serve_config(config)
    assert "ServeDeploySchema" in exc.value.message

    service = render.anyscale_service(_spec("gpt-oss-20b"))
    service["http_options"] = {"host": "0.0.0.0"}
    with pytest.raises(OpsError) as exc:
        render.validate_anyscale_service(service)
    assert "Anyscale" in exc.value.message and "host" in exc.value.message


def test_tiny_without_a_model_source_says_what_to_pass():
    with pytest.raises(OpsError) as exc:
        render.serve_config(_spec("tiny"))
    assert exc.value.code == 2 and "--model-source" in exc.value.fix


# ------------------------------------------------------------------------------------------ the CLI

runner = CliRunner()


def test_cli_serve_config_writes_the_file(tmp_path, ray_models):
    out = tmp_path / "deploy" / "serve-config.yaml"
    result = runner.invoke(ops_app, ["render", "serve-config", "-p", "gpt-oss-120b", "--set", "replicas.max=4",
                                     "-o", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    text = out.read_text()
    assert text.startswith("# Rendered from the deployment spec")
    data = yaml.safe_load(text)
    assert data == render.serve_config(_spec("gpt-oss-120b", replicas={"max": 4}))
    assert data["applications"][0]["args"]["llm_configs"][0]["deployment_config"]["autoscaling_config"]["max_replicas"] == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["serve-config.yaml"], "a temp file was left behind"
    ray_models[0].model_validate(data)


def test_cli_serve_config_to_stdout(ray_models):
    result = runner.invoke(ops_app, ["render", "serve-config", "-p", "tiny", "--model-source", TINY_SOURCE, "-o", "-"])
    assert result.exit_code == 0, (result.output, result.exception)
    data = yaml.safe_load(result.stdout)
    ray_models[0].model_validate(data)
    assert data["applications"][0]["args"]["llm_configs"][0]["model_loading_config"]["model_source"] == TINY_SOURCE


def test_cli_anyscale_writes_service_and_containerfile(tmp_path, service_config_cls):
    out = tmp_path / "anyscale"
    result = runner.invoke(ops_app, ["render", "anyscale", "-p", "gpt-oss-20b", "-o", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert sorted(p.name for p in out.iterdir()) == ["Dockerfile", "service.yaml"]
    parsed = service_config_cls.from_yaml(str(out / "service.yaml"))  # the SDK's own loader
    assert (out / parsed.containerfile).read_text() == render.self_contained_dockerfile()
    # Paths are relative to DIR: the uploaded working_dir is this project, holding the Serve application.
    assert (out / parsed.working_dir / "app" / "llm_config.py").is_file()
    assert parsed.applications[0]["import_path"] == "app.serve_gpt_oss:build_app"


def _elsewhere(cwd) -> dict:
    """Run from another directory, with the project importable as if installed."""
    return {"env": {"PYTHONPATH": str(ROOT)}, "timeout": 120, "cwd": cwd}


@pytest.mark.parametrize("command", ["serve-config", "anyscale"])
def test_bad_input_exits_2_and_writes_nothing(command, tmp_path):
    out = tmp_path / ("serve.yaml" if command == "serve-config" else "svc")
    bad_flag = run_ops("render", command, "-p", "gpt-oss-20b", "--accelerator", "L5", "-o", str(out),
                       **_elsewhere(tmp_path))
    assert bad_flag.returncode == 2, bad_flag.stderr
    assert "accelerator" in bad_flag.stderr and "L4" in bad_flag.stderr  # names the field and the choices
    bad_set = run_ops("render", command, "-p", "gpt-oss-20b", "--set", "replicas.min=3", "--set", "replicas.max=1",
                      "-o", str(out), **_elsewhere(tmp_path))
    assert bad_set.returncode == 2 and "replicas" in bad_set.stderr
    no_source = run_ops("render", command, "-p", "tiny", "-o", str(out), **_elsewhere(tmp_path))
    assert no_source.returncode == 2 and "--model-source" in no_source.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_render_keeps_the_previous_file(tmp_path):
    out = tmp_path / "serve.yaml"
    out.write_text("previous: true\n")
    failed = run_ops("render", "serve-config", "-p", "gpt-oss-20b", "--max-model-len", "999999999", "-o", str(out),
                     **_elsewhere(tmp_path))
    assert failed.returncode == 2 and "max_model_len" in failed.stderr
    assert out.read_text() == "previous: true\n"


def test_stdout_is_only_yaml(tmp_path, ray_models):
    """In a fresh process the first import of Ray's LLM config imports vLLM, which logs; none of it on stdout."""
    out = run_ops("render", "serve-config", "-p", "tiny", "--model-source", TINY_SOURCE, "-o", "-",
                  **_elsewhere(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# Rendered from the deployment spec")
    ray_models[0].model_validate(yaml.safe_load(out.stdout))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("preset", ["tiny", "gpt-oss-20b"])
def test_tool_calls_reach_the_client(preset, ray_models):
    """vLLM parses gpt-oss's harmony tool calls into `tool_calls` only with the openai tool parser and auto tool
    choice on: Ray Serve LLM's own config split hands them to vLLM's OpenAI frontend, not to the engine."""
    from ray.llm._internal.serve.engines.vllm.vllm_models import VLLMEngineConfig

    _, LLMConfig = ray_models
    (entry,) = render.serve_config(_spec(preset), model_source="/opt/models/x")["applications"][0]["args"]["llm_configs"]
    engine = VLLMEngineConfig.from_llm_config(LLMConfig(**entry))
    assert engine.frontend_kwargs == {"enable_auto_tool_choice": True, "tool_call_parser": "openai"}
    assert "tool_call_parser" not in engine.engine_kwargs


@pytest.mark.parametrize("interval", [None, 0, 200])
def test_stream_batching_interval_reaches_the_llm_server(interval, ray_models):
    """The spec's stream_batching_interval_ms is what Ray Serve LLM's server batches streamed chunks by (its own
    method reads it from the LLMConfig the Serve config carries); unset, Ray's default stays."""
    from types import SimpleNamespace

    from ray.llm._internal.serve.constants import MODEL_RESPONSE_BATCH_TIMEOUT_MS
    from ray.llm._internal.serve.core.server.llm_server import LLMServer

    _, LLMConfig = ray_models
    spec = _spec("gpt-oss-20b", stream_batching_interval_ms=interval)
    (entry,) = render.serve_config(spec)["applications"][0]["args"]["llm_configs"]
    server = SimpleNamespace(_llm_config=LLMConfig(**entry))
    expected = MODEL_RESPONSE_BATCH_TIMEOUT_MS if interval is None else interval
    assert LLMServer._get_batch_interval_ms(server) == expected
    assert ("experimental_configs" in entry) is (interval is not None)
