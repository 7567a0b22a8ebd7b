"""The replica's /v1/responses stream, gathered as Ray Serve LLM gathers chat streams (app.responses.batched with
Ray's own Batcher): the first item goes at once, the events after it go a gathering at a time, nothing is lost or
reordered, and an answer or error that is not a stream goes alone."""

from __future__ import annotations

import asyncio

from ray.llm._internal.serve.utils.batcher import Batcher

from app.responses import batched


def _batch(items):
    # An interval far longer than the test waits: whatever comes before the stream ends must not wait for it, and
    # what comes after the first event is one gathering (the Batcher sends at once when its stream ends).
    return Batcher(items, interval_ms=60_000).stream()


def _event(i: int) -> str:
    return f"event: response.output_text.delta\ndata: {{\"delta\": \"t{i}\"}}\n\n"


async def _collect(items) -> list:
    return [item async for item in batched(items, _batch)]


def test_the_first_event_goes_before_the_rest_are_made_and_the_rest_go_gathered():
    async def scenario():
        first_sent = asyncio.Event()

        async def stream():
            yield _event(0)
            await first_sent.wait()  # the rest exist only once the first has left the replica
            for i in range(1, 40):
                yield _event(i)
                await asyncio.sleep(0)

        out = batched(stream(), _batch)
        first = await asyncio.wait_for(anext(out), timeout=5)
        first_sent.set()
        rest = [item async for item in out]
        return first, rest

    first, rest = asyncio.run(scenario())
    assert first == _event(0)
    assert "".join(rest) == "".join(_event(i) for i in range(1, 40))
    assert len(rest) == 1


def test_an_answer_or_error_goes_alone_and_an_empty_stream_sends_nothing():
    async def answer():
        yield {"status": 400, "body": {"error": {"message": "bad"}}}

    async def empty():
        return
        yield

    assert asyncio.run(_collect(answer())) == [{"status": 400, "body": {"error": {"message": "bad"}}}]
    assert asyncio.run(_collect(empty())) == []
