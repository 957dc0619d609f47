"""Generation speed on the CPU (issue section 2, and the latency/concurrency rows of section 4).

    .venv/bin/python bench/generation.py            # full run, writes bench/results/generation.json
    .venv/bin/python bench/generation.py --quick    # fewer runs, for a smoke test

Through the Python API, model loaded and warm, 200-token continuations (unit "tokens"), temperature 0.8:
- single stream, median and p95 of >= 20 runs, for the default char model (what `make run` trains: a
  120 s budget on tinyshakespeare) and for a 2×512 char model, on the int8 path (the CPU default) and
  the fp32 fallback, with 1 and 2 intra-op threads;
- the same for a plain per-step loop (nn.LSTM, `quantize_dynamic`, softmax + multinomial), measured in
  the same process as a baseline: ratios hold even when the machine is busy;
- latency for 50, 200 and 1,000 tokens;
- 1, 2, 4, 8, 16, 32 concurrent requests through `bot.service.ContinuationService` (each request has its
  own prompt and seed and is stored in SQLite as usual): aggregate tokens/s and time to first token.

The models are trained once into bench/.cache/home (or --home) and reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import warnings

from _common import REPO, corpus, load, machine, median, pct, table, use_home, write_results

PROMPTS = ["ROMEO:\n", "First Citizen:\nBefore we proceed", "KING HENRY:\nO", "The ", "JULIET:\nWhat",
           "MENENIUS:\nI tell you, friends,", "\n", "LADY MACBETH:\n"]


def ensure_model(name: str, args: list[str]) -> dict:
    from generator import registry

    if registry.latest_version(name) is None:
        print(f"training {name}: ghostwrite train {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, "-m", "bot.cli", "train", str(corpus("tinyshakespeare.txt")), "--name", name,
                        "--quiet", *args], check=True, cwd=REPO)
    return registry.read_card(name, registry.latest_version(name))


EXTRA: dict = {}  # --set KEY=VALUE: added to every request's settings


def settings(n: int, seed: int) -> dict:
    return {"length": n, "unit": "tokens", "temperature": 0.8, **EXTRA, "seed": seed}


def time_generate(lm, n_tokens: int, runs: int, warm: int = 3) -> list[float]:
    times = []
    for i in range(warm + runs):
        t0 = time.perf_counter()
        g = lm.generate(PROMPTS[i % len(PROMPTS)], settings(n_tokens, i))
        for _ in g:
            pass
        dt = time.perf_counter() - t0
        assert g.tokens_out == n_tokens, g.tokens_out
        if i >= warm:
            times.append(dt)
    return times


def plain_loop(model, n_tokens: int, batch: int = 1):
    """The baseline the issue describes: one nn.LSTM call per token, softmax + multinomial."""
    import torch

    x = torch.zeros((batch, 1), dtype=torch.long)
    hidden = None
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for _ in range(n_tokens):
            logits, hidden, _ = model(x, hidden)
            probs = torch.softmax(logits[:, -1].float() / 0.8, dim=-1)
            x = torch.multinomial(probs, 1, generator=gen)


def time_plain(model, n_tokens: int, runs: int, batch: int = 1, warm: int = 2) -> list[float]:
    times = []
    for i in range(warm + runs):
        t0 = time.perf_counter()
        plain_loop(model, n_tokens, batch)
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float], tokens: int) -> dict:
    return {"runs": len(times), "median_ms": round(median(times) * 1000, 1), "p95_ms": round(pct(times, 95) * 1000, 1),
            "median_tok_s": round(tokens / median(times)), "p95_tok_s": round(tokens / pct(times, 95))}


def load_lm(name: str, threads: int, quantize):
    import torch

    import generator

    lm = generator.load(name, quantize=quantize)
    torch.set_num_threads(threads)  # after load(), which sets its own default; new threads inherit this
    return lm


def _threaded_round(n: int, open_stream, tokens_of) -> dict:
    """n threads start together; thread i reads `open_stream(i)` to its end and `tokens_of(stream)` counts
    what it wrote. Aggregate tokens/s over the wall time from the common start, and each first-token time."""
    barrier = threading.Barrier(n + 1)
    firsts, ends, toks = [None] * n, [None] * n, [0] * n

    def work(i):
        barrier.wait()
        t0 = time.perf_counter()
        stream = open_stream(i)
        for _piece in stream:
            if firsts[i] is None:
                firsts[i] = time.perf_counter() - t0
        ends[i] = time.perf_counter()
        toks[i] = tokens_of(stream)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = max(ends) - start
    return {"tokens": sum(toks), "wall_s": wall, "agg_tok_s": sum(toks) / wall, "first_token_s": firsts}


def concurrency_round(svc, n: int, n_tokens: int, seed0: int) -> dict:
    from bot.service import Request

    def open_stream(i):
        return svc.stream(Request(prompt=PROMPTS[i % len(PROMPTS)], settings=settings(n_tokens, seed0 + i),
                                  source="cli"))

    def tokens_of(stream):
        assert stream.result.status == "complete", stream.result
        return stream.result.tokens_out

    return _threaded_round(n, open_stream, tokens_of)


def engine_round(lm, n: int, n_tokens: int, seed0: int, prepared=None) -> dict:
    """`concurrency_round` without the service: n threads read lm.serve() directly (no door, no store).
    `prepared(prompt, settings)`: the settings the service would run the request with (its door adds the
    model's and the tokenizer's defaults), made before the round starts, so both do the same work."""
    sets = [settings(n_tokens, seed0 + i) for i in range(n)]
    if prepared is not None:
        sets = [prepared(PROMPTS[i % len(PROMPTS)], s) for i, s in enumerate(sets)]
    return _threaded_round(n, lambda i: lm.serve(PROMPTS[i % len(PROMPTS)], sets[i]), lambda g: g.tokens_out)


def service_vs_engine(lm, n: int, rounds: int, n_tokens: int, home) -> dict:
    """Issue 14 item 2: n concurrent requests through the service (rows stored) against the batching
    engine alone, rounds interleaved (engine, service, service, engine, ...) so load hits both alike."""
    from bot.service import ContinuationService, Request
    from bot.store import Store

    class Service(ContinuationService):
        def load_model(self, name, version):
            return lm

    svc = Service(store=Store(f"sqlite:///{home}/bench-generation.db"))

    def prepared(prompt, s):
        return svc.prepare(Request(prompt=prompt, settings=s)).settings

    concurrency_round(svc, 2, 20, 0)  # warm: engine thread, store, SQLite
    engine_round(lm, 2, 20, 0, prepared)
    eng, ser = [], []
    for r in range(rounds):
        order = [(eng, lambda s: engine_round(lm, n, n_tokens, s, prepared)),
                 (ser, lambda s: concurrency_round(svc, n, n_tokens, s))]
        for out, fn in (order if r % 2 == 0 else order[::-1]):
            cpu = time.process_time()  # this process's CPU time, all threads: less moved by other tenants than the wall
            out.append(fn(1000 * r))
            out[-1]["cpu_s"] = time.process_time() - cpu
    batches = getattr(getattr(svc, "_rows", None), "batches", None)  # (a service without group commit: None)
    svc.close()

    def row(res):
        firsts = [f for x in res for f in x["first_token_s"]]
        return {"agg_tok_s_median": round(median([x["agg_tok_s"] for x in res])),
                "agg_tok_s_min": round(min(x["agg_tok_s"] for x in res)),
                "first_token_ms_median": round(median(firsts) * 1000, 1),
                "first_token_ms_p95": round(pct(firsts, 95) * 1000, 1)}

    out = {"concurrent": n, "rounds": rounds, "tokens": n_tokens, "engine_alone": row(eng), "service": row(ser),
           "ratio_of_medians": round(median([x["agg_tok_s"] for x in ser]) / median([x["agg_tok_s"] for x in eng]), 3),
           "median_round_ratio": round(median([s["agg_tok_s"] / e["agg_tok_s"] for s, e in zip(ser, eng)]), 3),
           "cpu_ms_per_round": {"engine_alone": round(median([x["cpu_s"] for x in eng]) * 1000, 1),
                                "service": round(median([x["cpu_s"] for x in ser]) * 1000, 1)},
           "tokens_per_cpu_s_ratio": round(median([x["cpu_s"] for x in eng]) / median([x["cpu_s"] for x in ser]), 3),
           "store_transactions_per_round": None if batches is None else round(batches / (rounds + 1), 1)}
    print(out, flush=True)
    return out


def concurrency(lm, levels: list[int], rounds: int, n_tokens: int, home) -> list[dict]:
    from bot.service import ContinuationService
    from bot.store import Store

    class Service(ContinuationService):
        def load_model(self, name, version):  # the model loaded (and configured) here, through the usual stream path
            return lm

    svc = Service(store=Store(f"sqlite:///{home}/bench-generation.db"))
    concurrency_round(svc, 2, 20, 0)  # warm: engine thread, store, SQLite
    rows = []
    for n in levels:
        res = [concurrency_round(svc, n, n_tokens, 1000 * r) for r in range(rounds)]
        firsts = [f for r in res for f in r["first_token_s"]]
        rows.append({"concurrent": n, "rounds": rounds, "agg_tok_s_median": round(median([r["agg_tok_s"] for r in res])),
                     "agg_tok_s_min": round(min(r["agg_tok_s"] for r in res)),
                     "first_token_ms_median": round(median(firsts) * 1000, 1),
                     "first_token_ms_p95": round(pct(firsts, 95) * 1000, 1),
                     "first_token_ms_max": round(max(firsts) * 1000, 1),
                     "request_s_median": round(median([r["wall_s"] for r in res]), 3),
                     "engine_max_batch": lm.engine().max_rows_seen})
        print(rows[-1], flush=True)
    svc.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", help="data directory for the benchmark models (default bench/.cache/home)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per concurrency level")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts to measure")
    ap.add_argument("--quick", action="store_true", help="5 runs, 2 rounds, levels 1/4/16")
    ap.add_argument("--service-vs-engine", type=int, metavar="ROUNDS", default=0,
                    help="only the 16-concurrent service-against-engine comparison, this many rounds each "
                         "(writes generation-service.json)")
    ap.add_argument("--label", default="current", help="name of the figures in generation-service.json")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a sampling setting for every request (a number or text), e.g. dry_multiplier=0")
    a = ap.parse_args()
    for item in a.set:
        key, _, value = item.partition("=")
        try:
            EXTRA[key] = float(value)
        except ValueError:
            EXTRA[key] = value
    if a.quick:
        a.runs, a.rounds = 5, 2
    home = use_home(a.home)
    info = machine()
    print(json.dumps(info), flush=True)
    warnings.simplefilter("ignore")
    import torch

    if a.service_vs_engine:
        from generator.env import engine_threads

        card = ensure_model("default", ["--max-time", "120"])
        lm = load_lm("default", engine_threads(), quantize="auto")
        res = {"machine": info, "model": card["model"], "path": "int8" if lm.int8 else "fp32", "settings_added": EXTRA,
               **service_vs_engine(lm, 16, a.service_vs_engine, 200, home)}
        res["machine"]["load_at_end"] = load()
        path = REPO / "bench" / "results" / "generation-service.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data[a.label] = res
        data["target"] = "16 concurrent through the service >= 93% of the engine alone, first token p95 <= 150 ms"
        write_results("generation-service", data)
        return

    cards = {
        "default": ensure_model("default", ["--max-time", "120"]),
        "char-2x512": ensure_model("char-2x512", ["--preset", "medium", "--max-steps", "40", "--batch-size", "16",
                                                  "--seq-len", "64", "--threads", "1"]),
    }
    models = {k: {"model": c["model"], "parameters": c["parameters"], "val_bpc": c["val_bpc"],
                  "int8_ok": c.get("int8_ok"), "int8_delta_bpc": c.get("eval", {}).get("int8_delta_bpc")}
              for k, c in cards.items()}
    thread_counts = [int(t) for t in a.threads.split(",")]
    out = {"machine": info, "models": models, "tokens": 200, "single_stream": [], "plain_loop_baseline": [],
           "latency_by_length": [], "concurrency": []}

    # ---- single stream ---------------------------------------------------------------------------
    for threads in thread_counts:
        for name in cards:
            for path in ("int8", "fp32"):
                lm = load_lm(name, threads, quantize=path == "int8")
                row = {"model": name, "path": path, "threads": threads, "load": load()[0],
                       **summary(time_generate(lm, 200, a.runs), 200)}
                out["single_stream"].append(row)
                print(row, flush=True)
                if name == "char-2x512":  # the plain loop on the same weights, same process
                    base = lm.fp32 if path == "fp32" else quantize_int8_dynamic(lm.fp32)
                    torch.backends.mkldnn.enabled = False
                    b = {"model": name, "path": path + (" (quantize_dynamic)" if path == "int8" else " (mkldnn off)"),
                         "threads": threads, **summary(time_plain(base, 200, max(5, a.runs // 2)), 200)}
                    out["plain_loop_baseline"].append(b)
                    print(b, flush=True)
    table("Single stream, 200 tokens (median of runs)", out["single_stream"] + out["plain_loop_baseline"],
          ["model", "path", "threads", "runs", "median_tok_s", "p95_tok_s", "median_ms", "p95_ms"])

    best_threads = max(thread_counts, key=lambda t: median(
        [r["median_tok_s"] for r in out["single_stream"] if r["threads"] == t and r["path"] == "int8"]))

    # ---- latency by length ------------------------------------------------------------------------
    lm = load_lm("default", best_threads, quantize="auto")
    for n in (50, 200, 1000):
        row = {"model": "default", "path": "int8" if lm.int8 else "fp32", "threads": best_threads, "tokens": n,
               **summary(time_generate(lm, n, a.runs if n < 1000 else max(5, a.runs // 2)), n)}
        out["latency_by_length"].append(row)
    table("Latency by length (default model)", out["latency_by_length"],
          ["tokens", "path", "threads", "runs", "median_ms", "p95_ms", "median_tok_s"])

    # ---- concurrency through the service ----------------------------------------------------------
    # the batching engine's thread sets its own intra-op threads (GHOSTWRITE_ENGINE_THREADS, default 1)
    from generator.env import engine_threads

    ENGINE_THREADS = engine_threads()

    levels = [1, 4, 16] if a.quick else [1, 2, 4, 8, 16, 32]
    for name in cards:
        lm = load_lm(name, ENGINE_THREADS, quantize="auto")
        rows = concurrency(lm, levels, a.rounds, 200, home)
        for r in rows:
            r.update(model=name, path="int8" if lm.int8 else "fp32", threads=ENGINE_THREADS)
        out["concurrency"].extend(rows)
        if name == "default":  # the engine alone against the service, same run (issue 14 item 2)
            out["service_vs_engine_16"] = service_vs_engine(lm, 16, max(a.rounds, 5), 200, home)
    table("Concurrent requests through the service, 200 tokens each", out["concurrency"],
          ["model", "path", "threads", "concurrent", "agg_tok_s_median", "agg_tok_s_min", "first_token_ms_median",
           "first_token_ms_p95", "first_token_ms_max", "engine_max_batch"])
    # the plain loop at batch 16, for reference (one nn.LSTM call per token for 16 rows)
    lm = load_lm("char-2x512", best_threads, quantize=True)
    base16 = summary(time_plain(quantize_int8_dynamic(lm.fp32), 200, 5, batch=16), 200 * 16)
    out["plain_loop_batch16_int8"] = {"threads": best_threads, **base16}
    print("plain loop, batch 16, quantize_dynamic:", base16)
    out["machine"]["load_at_end"] = load()
    write_results("generation", out)


def quantize_int8_dynamic(model):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)


if __name__ == "__main__":
    main()
