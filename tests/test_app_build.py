"""The application builder, without starting Ray: what `serve deploy` / `serve run` would get from
`app.serve_gpt_oss:build_app` (deployments, LLMConfig, auth settings), and its refusal to build keyless."""

from __future__ import annotations

import pytest

from app.auth import AuthConfigError
from app.llm_config import app_args
from ops.spec import resolve


def _args(tmp_path, **auth):
    spec = resolve(flags={"auth": auth} if auth else None).spec
    return app_args(spec, model_source=str(tmp_path / "model"), encodings_dir="/opt/enc")


def test_build_app_wires_ingress_server_routes_and_auth(tmp_path, monkeypatch):
    from app.serve_gpt_oss import build_app

    monkeypatch.setenv("GPT_OSS_API_KEY", "k1,k2")
    application = build_app(_args(tmp_path))
    ingress = application._bound_deployment
    assert ingress.name == "GptOssIngress"
    kwargs = ingress.init_kwargs
    assert kwargs["auth"] == {"enabled": True, "api_key_env": "GPT_OSS_API_KEY", "api_key_file": None}
    (server_app,) = kwargs["llm_deployments"].values()
    server = server_app._bound_deployment
    assert server.name == "GptOssServer:my-gpt-oss"
    llm_config = server.init_kwargs["llm_config"]
    assert llm_config.model_id == "my-gpt-oss" and llm_config.log_engine_metrics is True
    assert llm_config.runtime_env["env_vars"]["TIKTOKEN_ENCODINGS_BASE"] == "/opt/enc"
    assert hasattr(server.func_or_class, "responses")
    assert hasattr(ingress.func_or_class, "responses")  # the route itself is exercised in test_local_stack


def test_build_app_refuses_without_a_key(tmp_path, monkeypatch):
    from app.serve_gpt_oss import build_app

    monkeypatch.delenv("GPT_OSS_API_KEY", raising=False)
    with pytest.raises(AuthConfigError, match="no API key"):
        build_app(_args(tmp_path))


def test_build_app_without_auth_when_disabled(tmp_path, monkeypatch):
    from app.serve_gpt_oss import build_app

    monkeypatch.delenv("GPT_OSS_API_KEY", raising=False)
    assert build_app(_args(tmp_path, enabled=False))._bound_deployment.init_kwargs["auth"]["enabled"] is False
