"""The endpoint's API-key check, exercised through a real ASGI app (no serving stack needed): keys from the
env var and the secret file, OpenAI-shaped 401s, open health routes, and the refusal to run keyless."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.auth import ApiKeyMiddleware, AuthConfigError, AuthSettings, load_keys


def _app(auth: dict) -> Starlette:
    async def ok(_request):
        return JSONResponse({"object": "list", "data": []})

    app = Starlette(routes=[Route("/v1/models", ok), Route("/v1/chat/completions", ok, methods=["POST"]),
                            Route("/health", ok)])
    app.add_middleware(ApiKeyMiddleware, auth=auth)
    return app


def _get(app, path: str, key: str | None = None, method: str = "GET") -> httpx.Response:
    async def go():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.request(method, path, headers=headers)

    return asyncio.run(go())


def test_keys_from_env_and_file(tmp_path, monkeypatch):
    f = tmp_path / "keys"
    f.write_text("file-key-1\n\n# comment\nfile-key-2\n")
    monkeypatch.setenv("MY_KEYS", "env-a, env-b")
    app = _app({"enabled": True, "api_key_env": "MY_KEYS", "api_key_file": str(f)})
    for key in ("env-a", "env-b", "file-key-1", "file-key-2"):
        assert _get(app, "/v1/models", key).status_code == 200
    assert _get(app, "/v1/chat/completions", "env-a", "POST").status_code == 200


def test_wrong_or_missing_key_is_openai_shaped_401(monkeypatch):
    monkeypatch.setenv("MY_KEYS", "right")
    app = _app({"enabled": True, "api_key_env": "MY_KEYS"})
    for key in ("wrong", None, "right-but-longer"):
        r = _get(app, "/v1/models", key)
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == "invalid_api_key"
        assert err["param"] is None and err["message"]
        assert "right" not in err["message"]


def test_health_stays_open(monkeypatch):
    monkeypatch.setenv("MY_KEYS", "right")
    assert _get(_app({"enabled": True, "api_key_env": "MY_KEYS"}), "/health").status_code == 200


def test_disabled_auth_lets_everyone_in(monkeypatch):
    monkeypatch.delenv("GPT_OSS_API_KEY", raising=False)
    assert _get(_app({"enabled": False}), "/v1/models").status_code == 200


def test_refuses_to_start_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("GPT_OSS_API_KEY", raising=False)
    with pytest.raises(AuthConfigError, match="GPT_OSS_API_KEY"):
        load_keys(AuthSettings.from_args({"enabled": True}))
    with pytest.raises(AuthConfigError, match="cannot be read"):
        load_keys(AuthSettings.from_args({"enabled": True, "api_key_file": str(tmp_path / "absent")}))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(AuthConfigError, match="no API key"):
        load_keys(AuthSettings.from_args({"enabled": True, "api_key_file": str(tmp_path / "empty")}))


def test_importing_the_app_module_builds_nothing():
    import subprocess
    import sys

    code = ("import sys, app.serve_gpt_oss as m; "
            "assert 'ray' not in sys.modules and 'vllm' not in sys.modules, 'heavy import'; "
            "assert callable(m.build_app); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
