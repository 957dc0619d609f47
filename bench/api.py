"""The HTTP API's throughput and its overhead (issue 13).

    .venv/bin/python bench/api.py             # 1, 16, 64 concurrent streaming clients, 5 rounds each
    .venv/bin/python bench/api.py --quick     # 2 rounds, for a smoke test
    .venv/bin/python bench/api.py --workers 2 # the server as 2 processes (bench/results/api-workers2.json)

The real server (`ghostwrite serve` in its own process, on 127.0.0.1, its own SQLite file) and 1, 16 and 64
concurrent streaming clients asking for 200-token continuations (unit tokens, temperature 0.8, each its own
prompt and seed): aggregate tokens/s, time to first token p50/p95 (from sending the request to the first
text), errors (must be 0) and rows stored (must equal requests). Two client programs, each on one event
loop in this process: httpx (`api-httpx`, what a Python script would use) and a bare asyncio HTTP/1.0 reader
(`api-raw`: the server's own cost, since on a small machine the client shares the cores with the server
and httpx's own CPU shows in the figures). The baseline is the same load through the Python service in
this process (its async streams, rows stored in another SQLite file), rounds interleaved (the order
rotates each round) so load on the shared machine hits every path alike; the overhead is the ratio of
the medians.

The model is bench/.cache/home's `default` (what `make run` trains; bench/generation.py trains it there
the first time, ~2 min).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

from _common import REPO, load, machine, median, pct, table, use_home, write_results

PROMPTS = ["ROMEO:\n", "First Citizen:\nBefore we proceed", "KING HENRY:\nO", "The ", "JULIET:\nWhat",
           "MENENIUS:\nI tell you, friends,", "\n", "LADY MACBETH:\n"]
TOKENS = 200


def settings(seed: int) -> dict:
    return {"length": TOKENS, "unit": "tokens", "temperature": 0.8, "seed": seed}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def api_round(client, url: str, n: int, seed0: int) -> dict:
    async def one(i: int):
        body = {"model": MODEL, "prompt": PROMPTS[i % len(PROMPTS)], "stream": True,
                "stream_options": {"include_usage": True}, **settings(seed0 + i)}
        t0 = time.perf_counter()
        first, tokens = None, 0
        async with client.stream("POST", url + "/v1/completions", json=body) as r:
            if r.status_code != 200:
                return None, 0, f"HTTP {r.status_code}"
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                ev = json.loads(line[6:])
                if "error" in ev:
                    return first, tokens, ev["error"]["message"]
                if first is None and any(c["text"] for c in ev["choices"]):
                    first = time.perf_counter() - t0
                if ev.get("usage"):
                    tokens = ev["usage"]["completion_tokens"]
        return first, tokens, None if tokens == TOKENS else f"{tokens} tokens"

    start = time.perf_counter()
    got = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    wall = time.perf_counter() - start
    return summarise(got, wall)


async def raw_round(port: int, n: int, seed0: int) -> dict:
    """`api_round` with a bare asyncio client: one HTTP/1.0 request per connection, SSE lines parsed."""

    async def one(i: int):
        body = json.dumps({"model": MODEL, "prompt": PROMPTS[i % len(PROMPTS)], "stream": True,
                           "stream_options": {"include_usage": True}, **settings(seed0 + i)}).encode()
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        first, tokens, error = None, 0, None
        status = (await reader.readline()).split()[1]
        try:
            if status != b"200":
                return None, 0, f"HTTP {status.decode()}"
            async for line in reader:
                if not line.startswith(b"data: {"):
                    continue
                ev = json.loads(line[6:])
                if "error" in ev:
                    error = ev["error"]["message"]
                    break
                if first is None and any(c["text"] for c in ev["choices"]):
                    first = time.perf_counter() - t0
                if ev.get("usage"):
                    tokens = ev["usage"]["completion_tokens"]
        finally:
            writer.close()
        return first, tokens, error or (None if tokens == TOKENS else f"{tokens} tokens")

    start = time.perf_counter()
    got = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    return summarise(got, time.perf_counter() - start)


async def direct_round(svc, n: int, seed0: int) -> dict:
    from bot.service import Request

    async def one(i: int):
        t0 = time.perf_counter()
        first = None
        s = svc.astream(Request(prompt=PROMPTS[i % len(PROMPTS)], model=MODEL, settings=settings(seed0 + i),
                                source="api"))
        async for piece in s:
            if first is None and piece:
                first = time.perf_counter() - t0
        r = s.result
        return first, r.tokens_out, None if r.status == "complete" and r.tokens_out == TOKENS else r.status

    start = time.perf_counter()
    got = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    return summarise(got, time.perf_counter() - start)


def summarise(got, wall: float) -> dict:
    errors = [repr(g) if isinstance(g, BaseException) else g[2] for g in got
              if isinstance(g, BaseException) or g[2] is not None]
    ok = [g for g in got if not isinstance(g, BaseException)]
    return {"tokens": sum(g[1] for g in ok), "wall_s": wall, "agg_tok_s": sum(g[1] for g in ok) / wall,
            "first_token_s": [g[0] for g in ok if g[0] is not None], "errors": errors}


def row(kind: str, n: int, res: list[dict], rows_stored: int) -> dict:
    firsts = [f for r in res for f in r["first_token_s"]]
    return {"path": kind, "clients": n, "rounds": len(res), "requests": n * len(res), "rows_stored": rows_stored,
            "errors": sum(len(r["errors"]) for r in res),
            "agg_tok_s_median": round(median([r["agg_tok_s"] for r in res])),
            "ttft_ms_p50": round(pct(firsts, 50) * 1000, 1), "ttft_ms_p95": round(pct(firsts, 95) * 1000, 1)}


async def main_async(a, home) -> dict:
    import httpx

    from bot.service import ContinuationService
    from bot.store import Store

    api_db, direct_db = home / "bench-api.db", home / "bench-api-direct.db"
    for p in (api_db, direct_db):
        for suffix in ("", "-wal", "-shm"):
            p.with_name(p.name + suffix).unlink(missing_ok=True)
    port = free_port()
    env = {**os.environ, "GHOSTWRITE_DATABASE_URL": f"sqlite:///{api_db}"}
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--model", MODEL,
                               "--rate-limit", "0", "--max-concurrent", "128", "--log-level", "warning",
                               "--workers", str(a.workers)],
                              cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    svc = ContinuationService(store=Store(f"sqlite:///{direct_db}"), workers=132)
    out: dict = {"levels": [], "rows": []}
    try:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            for _ in range(600):
                try:
                    if (await client.get(url + "/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    if server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                await asyncio.sleep(0.2)
            await api_round(client, url, 2, 0)  # warm: model, engine thread, store, connections
            await raw_round(port, 2, 0)
            await direct_round(svc, 2, 0)
            warm_api, warm_direct = 4, 2
            for n in a.clients:
                httpx_res, raw_res, direct = [], [], []
                paths = [(httpx_res, lambda s, n=n: api_round(client, url, n, s)),
                         (raw_res, lambda s, n=n: raw_round(port, n, s)),
                         (direct, lambda s, n=n: direct_round(svc, n, s))]
                for r in range(a.rounds):
                    for k in range(3):  # the order rotates: each path goes first, second and last alike
                        res, fn = paths[(r + k) % 3]
                        res.append(await fn(10_000 * r + 1_000 * k + 100 * n))
                await asyncio.sleep(0.5)  # the last rows reach the stores
                stored_api = svc_count(api_db) - warm_api
                stored_direct = svc_count(direct_db) - warm_direct
                warm_api += stored_api
                warm_direct += stored_direct
                rh, rr = row("api-httpx", n, httpx_res, None), row("api-raw", n, raw_res, None)
                rd = row("direct", n, direct, stored_direct)
                rh["rows_stored"] = rr["rows_stored"] = f"{stored_api} (both)"
                out["rows"] += [rh, rr, rd]
                out["levels"].append({
                    "clients": n,
                    "httpx_over_direct_tok_s": round(rh["agg_tok_s_median"] / rd["agg_tok_s_median"], 3),
                    "raw_over_direct_tok_s": round(rr["agg_tok_s_median"] / rd["agg_tok_s_median"], 3),
                    "ttft_p50_ms_raw_minus_direct": round(rr["ttft_ms_p50"] - rd["ttft_ms_p50"], 1),
                    "errors": rh["errors"] + rr["errors"] + rd["errors"],
                    "rows_equal_requests": stored_api == rh["requests"] + rr["requests"] and
                    stored_direct == rd["requests"]})
                print(rh, rr, rd, out["levels"][-1], sep="\n", flush=True)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        await asyncio.to_thread(svc.close)
    return out


def svc_count(db) -> int:
    import sqlite3

    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from generations").fetchone()[0]


MODEL = "default"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", help="data directory (default bench/.cache/home)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="server processes (results: api-workersN.json when > 1)")
    a = ap.parse_args()
    if a.quick:
        a.rounds = 2
    home = use_home(a.home)
    from generation import ensure_model

    card = ensure_model(MODEL, ["--max-time", "120"])
    data = {"machine": machine(), "model": {"name": MODEL, "parameters": card.get("parameters"),
                                            "val_bpc": card.get("val_bpc")},
            "tokens_per_request": TOKENS, "rounds": a.rounds, "server_workers": a.workers}
    data.update(asyncio.run(main_async(a, home)))
    data["load_at_end"] = load()
    table("API (real server, streaming clients) against the service directly, same run",
          data["rows"], ["path", "clients", "requests", "rows_stored", "errors", "agg_tok_s_median",
                         "ttft_ms_p50", "ttft_ms_p95"])
    table("overhead", data["levels"], ["clients", "httpx_over_direct_tok_s", "raw_over_direct_tok_s",
                                       "ttft_p50_ms_raw_minus_direct", "errors", "rows_equal_requests"])
    write_results("api" if a.workers == 1 else f"api-workers{a.workers}", data)


if __name__ == "__main__":
    main()
