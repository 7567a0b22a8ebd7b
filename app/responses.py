"""The OpenAI Responses API (`POST /v1/responses`) on the Ray Serve endpoint.

Ray Serve LLM 2.60's ingress routes chat, completions and embeddings but not `/v1/responses`, which the
OpenAI SDK's `client.responses.create` and the Agents SDK (`OpenAIResponsesModel`) use. vLLM already
implements the Responses API for gpt-oss (harmony rendering, reasoning items, function calls) in
`OpenAIServingResponses`, and `VLLMEngine.start()` builds one on the same engine client (vLLM's
`init_app_state`) without exposing it. So rather than translating Responses <-> Chat Completions, the LLM
replica runs vLLM's own implementation on its engine, and the ingress forwards the request to it the way it
forwards chat requests (model lookup, Serve handle, streaming).

Replica -> ingress protocol: the first item is either a dict `{"status": int, "body": {...}}` (a complete
JSON answer or an error) or an SSE string, in which case every item is an SSE string of one or more events.
vLLM's Responses stream has an event per token whatever the engine's `stream_interval`, so the replica gathers
the events after the first for Ray Serve LLM's stream-batching interval and sends each gathering as one item
(`batched`), as Ray's LLMServer does for chat and completion streams: one Ray message per interval per stream,
not one per token, which is what caps a replica at high stream counts (docs/plan.md).
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, AsyncIterable, Callable

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


async def batched(items: AsyncGenerator[dict | str, None],
                  batch: Callable[[AsyncGenerator[str, None]], AsyncIterable[list[str]]]
                  ) -> AsyncGenerator[dict | str, None]:
    """`run_on_engine`'s items as the replica sends them: the first at once (an answer, an error or the first
    event), then each of `batch`'s gatherings of the events that follow joined into one string. `batch` is the
    LLM server's own (`LLMServer._batch_output_stream`: Ray's Batcher at the deployment's
    `stream_batching_interval_ms`)."""
    first = await anext(items, None)
    if first is None:
        return
    yield first
    if isinstance(first, dict):
        return
    async for events in batch(items):
        yield "".join(events)
