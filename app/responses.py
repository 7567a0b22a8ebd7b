"""The OpenAI Responses API (`POST /v1/responses`) on the Ray Serve endpoint.

Ray Serve LLM 2.60's ingress routes chat, completions and embeddings but not `/v1/responses`, which the
OpenAI SDK's `client.responses.create` and the Agents SDK (`OpenAIResponsesModel`) use. vLLM already
implements the Responses API for gpt-oss (harmony rendering, reasoning items, function calls) in
`OpenAIServingResponses`, and `VLLMEngine.start()` builds one on the same engine client (vLLM's
`init_app_state`) without exposing it. So rather than translating Responses <-> Chat Completions, the LLM
replica runs vLLM's own implementation on its engine, and the ingress forwards the request to it the way it
forwards chat requests (model lookup, Serve handle, streaming).

Replica -> ingress protocol: the first item is either a dict `{"status": int, "body": {...}}` (a complete
JSON answer or an error) or an SSE string, in which case every item is an SSE event string.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator

from app.openai_errors import openai_error


async def run_on_engine(engine: Any, body: dict[str, Any], raw_request_info: Any = None
                        ) -> AsyncGenerator[dict | str, None]:
    """Serve one Responses request with vLLM's OpenAIServingResponses on the replica's running engine."""
    from pydantic import ValidationError
    from ray.llm._internal.serve.core.protocol import RawRequestInfo
    from vllm.entrypoints.openai.responses.protocol import ResponsesRequest, ResponsesResponse
    from vllm.entrypoints.serve.engine.protocol import ErrorResponse

    state = getattr(engine, "_app_state", None)
    handler = getattr(state, "openai_serving_responses", None) if state is not None else None
    if handler is None:
        yield openai_error(501, "this engine does not serve the Responses API (no generate task)",
                           type_="not_implemented")
        return
    try:
        request = ResponsesRequest.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {}
        loc = ".".join(str(p) for p in first.get("loc", ()))
        yield openai_error(400, f"Invalid request format: {first.get('msg', str(e))} at {loc or 'body'}",
                           param=loc or None)
        return

    raw_request = RawRequestInfo.to_starlette_request_optional(raw_request_info)
    try:
        result = await handler.create_responses(request, raw_request)
    except ValueError as e:  # vLLM raises its validation errors (e.g. context length) as ValueError subclasses
        err = handler.create_error_response(e)
        yield {"status": err.error.code, "body": err.model_dump(mode="json")}
        return

    if isinstance(result, ErrorResponse):
        yield {"status": result.error.code, "body": result.model_dump(mode="json")}
    elif isinstance(result, ResponsesResponse):
        yield {"status": 200, "body": result.model_dump(mode="json", by_alias=True)}
    else:
        async for event in result:
            event_type = getattr(event, "type", "unknown")
            yield f"event: {event_type}\ndata: {event.model_dump_json(indent=None, by_alias=True)}\n\n"
