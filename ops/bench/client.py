"""The load generator: N concurrent streaming requests against an OpenAI-compatible endpoint, M in total.

It is bounded on every side: a fixed number of requests, a per-request timeout and a global deadline after
which outstanding requests are cancelled and counted as "deadline" errors. Timing follows vLLM's benchmark
client (vllm/benchmarks/lib/endpoint_request_func.py) so results can be compared with `vllm bench serve`, and
it uses the same HTTP library, aiohttp: its C parser adds about 1 ms less to every time-to-first-token than
httpx's pure-Python one (bench/README.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import aiohttp

from ops.bench.stats import RequestResult, aggregate


@dataclass(frozen=True)
class BenchConfig:
    endpoint: str  # base URL, e.g. http://127.0.0.1:8000 (with or without /v1)
    model: str
    concurrency: int = 1
    requests: int = 8
    input_len: int = 128
    output_len: int = 64
    api: str = "completions"  # or "chat"
    stream: bool = True
    api_key: str | None = None
    ignore_eos: bool = True  # vLLM extension: generate exactly output_len tokens
    request_timeout_s: float = 300.0
    deadline_s: float = 900.0  # the whole run stops by itself after this
    seed: int = 0  # prompts are random words drawn from this seed + request index
    warmup: int = 1  # untimed requests first, on the same connections (vLLM's client sends one too)


def base_url(endpoint: str) -> str:
    e = endpoint.rstrip("/")
    return e if e.endswith("/v1") else e + "/v1"


# Common English words that are one token each, with or without a leading space, in o200k and cl100k.
WORDS = ("time person year way day thing man world life hand part child eye woman place work week case point "
         "number group problem fact good new first last long great little own other old right big high small "
         "large next early young important few public bad same able water house story night light").split()


def make_prompt(input_len: int, seed: int | str = 0) -> str:
    """A prompt of about `input_len` tokens of random common words, different for every request so that
    prefix caching does not turn prefill into a cache hit (vLLM's random dataset does the same with random
    token ids). The server's usage report gives the exact count."""
    import random

    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(max(1, input_len)))


def payload(cfg: BenchConfig, prompt: str) -> dict:
    body: dict = {"model": cfg.model, "max_tokens": cfg.output_len, "stream": cfg.stream, "temperature": 0.0}
    if cfg.stream:
        body["stream_options"] = {"include_usage": True}
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    if cfg.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


async def one_request(session: aiohttp.ClientSession, cfg: BenchConfig, prompt: str, t0: float) -> RequestResult:
    url = base_url(cfg.endpoint) + ("/chat/completions" if cfg.api == "chat" else "/completions")
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    body = payload(cfg, prompt)
    st = time.perf_counter()
    res = RequestResult(ok=False, start=st - t0)
    try:
        async with session.post(url, json=body, headers=headers) as resp:
            res.status = str(resp.status)
            if resp.status != 200:
                res.error = _error_message((await resp.read()).decode(errors="replace")) or (resp.reason or "")
                return res
            if not cfg.stream:
                data = json.loads(await resp.read())
                res.latency = res.ttft = time.perf_counter() - st
                _usage(res, data.get("usage"))
                res.ok = True
                return res
            await _read_stream(resp, res, st, chat=cfg.api == "chat")
    except asyncio.TimeoutError as e:  # aiohttp's ServerTimeoutError is one too
        res.status, res.error = "timeout", str(e) or f"no complete answer within {cfg.request_timeout_s:g} s"
    except aiohttp.ClientConnectorError as e:
        res.status, res.error = "connect", str(e)
    except (aiohttp.ClientError, ValueError) as e:  # ValueError: a chunk that is not JSON
        res.status, res.error = type(e).__name__, str(e)
    return res


async def _read_stream(resp: aiohttp.ClientResponse, res: RequestResult, st: float, *, chat: bool) -> None:
    last = st
    async for raw in resp.content:  # one server-sent-events line at a time, as it arrives
        line = raw.strip()
        if not line or line.startswith(b":"):
            continue
        chunk = line.removeprefix(b"data:").strip()
        if chunk == b"[DONE]":  # read on to the end of the body: a connection left mid-body is not reused
            continue
        now = time.perf_counter()
        data = json.loads(chunk)
        if data.get("error"):
            res.status, res.error = "stream-error", str(data["error"])
            return
        if data.get("choices"):
            if res.ttft is None:
                res.ttft = now - st
            else:
                res.itl.append(now - last)
            res.chunks += 1
            last = now
        elif data.get("usage"):
            _usage(res, data["usage"])
            if chat:  # vLLM's chat client also stamps the usage chunk
                last = now
    if res.ttft is None:
        res.status, res.error = "no-tokens", "the stream ended without a token"
        return
    if not res.output_tokens:
        res.output_tokens = res.chunks
    res.latency = last - st
    res.ok = True


def _usage(res: RequestResult, usage: dict | None) -> None:
    if usage:
        res.output_tokens = int(usage.get("completion_tokens") or 0)
        res.prompt_tokens = int(usage.get("prompt_tokens") or 0)


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300]
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    return str(err)[:300]


async def run(cfg: BenchConfig) -> dict:
    """One run at one concurrency level; returns the aggregated report (ops.bench.stats.aggregate).

    The `warmup` requests go first, one at a time and untimed, through the same session: a fresh process's
    first requests pay for cold code paths and a new connection, which vLLM's client avoids with its initial
    test request. They also check the endpoint, model and key: when one fails, the timed requests are not
    sent and the report holds that one failure (with "warmup_failed")."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(cfg.requests):
        queue.put_nowait(i)
    results: list[RequestResult] = []
    connector = aiohttp.TCPConnector(limit=cfg.concurrency)
    timeout = aiohttp.ClientTimeout(total=cfg.request_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=True,
                                     read_bufsize=1 << 20) as session:
        for j in range(cfg.warmup):  # prompts from their own seeds: no prefix-cache hit for a timed request
            st = time.perf_counter()
            check = await one_request(session, cfg, make_prompt(cfg.input_len, f"warmup-{cfg.seed}-{j}"), st)
            if not check.ok:
                return _report(cfg, [check], time.perf_counter() - st, 0.0) | {"warmup_failed": True}
        t0 = time.perf_counter()
        cpu0 = time.process_time()

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results.append(await one_request(session, cfg, make_prompt(cfg.input_len, cfg.seed + i), t0))

        tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(cfg.concurrency, cfg.requests)))]
        done, pending = await asyncio.wait(tasks, timeout=cfg.deadline_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        duration = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    missing = cfg.requests - len(results)
    results += [RequestResult(ok=False, status="deadline", error=f"not finished within {cfg.deadline_s:g} s")
                for _ in range(missing)]
    return _report(cfg, results, duration, cpu)


def _report(cfg: BenchConfig, results: list[RequestResult], duration: float, cpu: float) -> dict:
    report = aggregate(results, duration)
    report.update({"concurrency": cfg.concurrency, "input_len": cfg.input_len, "output_len": cfg.output_len,
                   "api": cfg.api, "stream": cfg.stream, "model": cfg.model, "endpoint": cfg.endpoint, "seed": cfg.seed,
                   "client_cpu_s": round(cpu, 3), "client_cpu_share": round(cpu / duration, 4) if duration else None})
    sample = next((r.error for r in results if not r.ok and r.error), None)
    if sample:
        report["first_error"] = sample
    return report


def run_sync(cfg: BenchConfig) -> dict:
    return asyncio.run(run(cfg))
