"""The Ray Serve LLM application that serves gpt-oss behind an OpenAI-compatible endpoint.

Two entry points, both Ray Serve conventions:
- `build_app(args)`: the application builder a Serve config names (`import_path: app.serve_gpt_oss:build_app`,
  `args:` rendered by `app.llm_config.app_args(spec)`), used by every target.
- `app`: the ready application for `serve run app.serve_gpt_oss:app`, as in Ray's "Deploy gpt-oss" guide.
  It is built lazily from the spec in $GPT_OSS_SPEC (a spec YAML), else the default spec, so importing this
  module never builds or loads anything.

On top of Ray's `build_openai_app` wiring (one LLMServer deployment per model + the OpenAI ingress) it adds
what Ray Serve LLM 2.60 lacks and the gpt-oss clients use: `POST /v1/responses` (vLLM's own Responses
implementation on the replica's engine, see app/responses.py) and bearer-token authentication
(app/auth.py). Ray and vLLM are imported inside the functions, so the CLI can import this module cheaply.
"""

# No `from __future__ import annotations`: FastAPI must see the real `Request` class on the route methods
# defined inside the factories below, not a string it cannot resolve from module globals.
import os
from typing import Any

RESPONSES_ROUTE = "/v1/responses"


def _server_cls():
    """LLMServer plus a `responses` method that runs vLLM's Responses implementation on the same engine."""
    from ray.llm._internal.serve.core.server.llm_server import LLMServer

    from app.responses import batched, run_on_engine

    class GptOssServer(LLMServer):
        async def responses(self, body: dict[str, Any], raw_request_info: Any = None):
            await self._maybe_resolve_lora_from_multiplex()
            async for item in batched(run_on_engine(self.engine, body, raw_request_info), self._batch_output_stream):
                yield item

    return GptOssServer


def _ingress_cls():
    """Ray's OpenAiIngress plus the `/v1/responses` route, the spec's default reasoning effort, reasoning under
    both field names, and a refusal to start without keys."""
    from fastapi import HTTPException, Request
    from ray.llm._internal.serve.constants import DEFAULT_LLM_ROUTER_HTTP_TIMEOUT
    from ray.llm._internal.serve.core.configs.openai_api_models import ChatCompletionRequest
    from ray.llm._internal.serve.core.ingress.ingress import OpenAiIngress, router_request_timeout
    from ray.llm._internal.serve.core.protocol import RawRequestInfo
    from starlette.responses import JSONResponse, Response, StreamingResponse

    from app import reasoning_fields
    from app.auth import AuthSettings, load_keys
    from app.openai_errors import ModelNotFound, openai_error

    class GptOssIngress(OpenAiIngress):
        def __init__(self, llm_deployments, model_cards, *, lora_paths=None, auth: dict | None = None,
                     defaults: dict | None = None, **kwargs):
            # Fail the replica (and so the deploy, with this message) rather than serve without a key.
            load_keys(AuthSettings.from_args(auth))
            self._reasoning_effort = (defaults or {}).get("reasoning_effort")
            super().__init__(llm_deployments, model_cards, lora_paths=lora_paths, **kwargs)

        async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
            """Chat completions with the deployment's reasoning effort when the request names none, and the
            reasoning text under `reasoning` and `reasoning_content` alike."""
            if body.reasoning_effort is None and self._reasoning_effort:
                body.reasoning_effort = self._reasoning_effort
            response = await super().chat(body, request)
            if isinstance(response, StreamingResponse):
                return StreamingResponse(reasoning_fields.sse_stream(response.body_iterator),
                                         status_code=response.status_code, media_type=response.media_type)
            if isinstance(response, JSONResponse) and response.status_code == 200:
                import json

                return JSONResponse(reasoning_fields.completion(json.loads(response.body)))
            return response

        async def _get_model_id(self, model):
            try:
                return await super()._get_model_id(model)
            except HTTPException as e:
                if e.status_code == 404:
                    raise ModelNotFound(model, sorted(self._model_cards)) from None
                raise

        async def responses(self, request: Request) -> Response:
            """OpenAI Responses API: forwarded to the model's replica, which runs vLLM's implementation."""
            try:
                body = await request.json()
            except ValueError:
                err = openai_error(400, "the request body is not valid JSON")
                return JSONResponse(err["body"], status_code=400)
            if not isinstance(body, dict):
                err = openai_error(400, "the request body must be a JSON object")
                return JSONResponse(err["body"], status_code=400)
            if body.get("reasoning") is None and self._reasoning_effort:
                body["reasoning"] = {"effort": self._reasoning_effort}
            model = body.get("model")
            model_id = await self._get_model_id(model if isinstance(model, str) else None)
            handle = self._get_configured_serve_handle(model_id)
            async with router_request_timeout(DEFAULT_LLM_ROUTER_HTTP_TIMEOUT):
                stream = handle.responses.remote(body, RawRequestInfo.from_starlette_request(request))
                first = await stream.__anext__()
            if isinstance(first, dict):
                return JSONResponse(first["body"], status_code=first["status"])

            async def events():
                yield first
                async for item in stream:
                    yield item

            return StreamingResponse(events(), media_type="text/event-stream")

    return GptOssIngress


def build_app(args: dict[str, Any]):
    """Serve application builder: `args` is `app.llm_config.app_args(spec)` (Ray's `llm_configs` + `auth`).

    Mirrors `ray.serve.llm.build_openai_app` (same deployments, names, options and ingress middleware), with
    the ingress and server classes above and the auth middleware outermost on the FastAPI app.
    """
    from ray import serve
    from ray.llm._internal.common.dict_utils import maybe_apply_llm_deployment_config_defaults
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
    from ray.llm._internal.serve.core.ingress.builder import LLMServingArgs
    from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS, init, make_fastapi_ingress
    from ray.llm._internal.serve.core.server.builder import build_llm_deployment

    from app.auth import ApiKeyMiddleware, AuthSettings, load_keys
    from app.openai_errors import ModelNotFound, model_not_found_handler
    from app.request_guard import RequestGuardMiddleware

    args = dict(args or {})
    auth = dict(args.pop("auth", None) or {"enabled": True})
    limits = dict(args.pop("limits", None) or {})
    defaults = dict(args.pop("defaults", None) or {})
    # Checked here too so `serve run` / `serve deploy` fail at build time with the reason, not at first request.
    load_keys(AuthSettings.from_args(auth))

    serving = LLMServingArgs.model_validate({"llm_configs": args.pop("llm_configs", [])} | args)
    llm_configs = serving.llm_configs
    server_cls = _server_cls()
    llm_deployments = {c.model_id: build_llm_deployment(c, deployment_cls=server_cls) for c in llm_configs}
    model_cards = {c.model_id: to_model_metadata(c.model_id, c) for c in llm_configs}
    lora_paths = {c.model_id: c.lora_config.dynamic_lora_loading_path
                  for c in llm_configs if c.lora_config is not None}

    ingress_base = _ingress_cls()
    options = maybe_apply_llm_deployment_config_defaults(ingress_base.get_deployment_options(llm_configs),
                                                         serving.ingress_deployment_config)
    fastapi_app = init()
    fastapi_app.add_exception_handler(ModelNotFound, model_not_found_handler)
    fastapi_app.add_middleware(RequestGuardMiddleware, limits=limits)  # bad input: after the key check
    fastapi_app.add_middleware(ApiKeyMiddleware, auth=auth)  # added last = runs first
    endpoints = dict(DEFAULT_ENDPOINTS)
    endpoints["responses"] = lambda a: a.post(RESPONSES_ROUTE)
    ingress = make_fastapi_ingress(ingress_base, endpoint_map=endpoints, app=fastapi_app)
    return serve.deployment(ingress, **options).bind(llm_deployments=llm_deployments, model_cards=model_cards,
                                                     lora_paths=lora_paths, auth=auth, defaults=defaults)


def _default_app():
    """The application for `serve run app.serve_gpt_oss:app`, from $GPT_OSS_SPEC or the default spec.

    The tiny model has no hub id: its checkpoint is generated (and cached) from the local encodings.
    """
    from app.llm_config import app_args
    from ops.spec import resolve

    spec = resolve(file=os.environ.get("GPT_OSS_SPEC") or None).spec
    encodings = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    if not encodings:
        raise RuntimeError("TIKTOKEN_ENCODINGS_BASE is not set: point it at a directory holding the verified "
                           "o200k_base/cl100k_base encodings (`ops encodings fetch --dest DIR`).")
    source = None
    if spec.resolved_model_source is None:
        from ops import tiny_model

        source = str(tiny_model.ensure(encodings))
    return build_app(app_args(spec, model_source=source, encodings_dir=encodings))


def __getattr__(name: str):
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
