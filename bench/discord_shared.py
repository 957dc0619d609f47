"""What sharing Discord's per-member cooldown through the store costs (issue 15): a check-and-count in one
write transaction (`Store.hit_cooldown`, what every bot process of a sharded bot does before each request)
against the in-process `UserCooldown.hit` it replaces, in the same run; plus the store write every
continuation already makes (`record_generation`) as the yardstick, and the same on PostgreSQL when
GHOSTWRITE_BENCH_PG_URL is set. Medians over rounds, each round N calls for distinct members.

    .venv/bin/python bench/discord_shared.py             # writes bench/results/discord_shared.json
    .venv/bin/python bench/discord_shared.py --rounds 3  # a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import load, machine, median, write_results  # noqa: E402

from bot.discord.limits import UserCooldown  # noqa: E402
from bot.store import Store  # noqa: E402


def per_call_us(fn, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n * 1e6


def measure(url: str, rounds: int, n: int) -> dict:
    store = Store(url)
    local = UserCooldown(1, 5.0)
    rows: dict[str, list[float]] = {"in_process_us": [], "store_cooldown_us": [], "record_generation_us": []}
    try:
        for r in range(rounds):
            base = r * n * 10
            rows["in_process_us"].append(per_call_us(lambda i: local.hit(base + i), n))  # noqa: B023
            rows["store_cooldown_us"].append(
                per_call_us(lambda i: store.hit_cooldown(f"discord:{base + i}", 1, 5.0), n))  # noqa: B023
            rows["record_generation_us"].append(per_call_us(
                lambda i: store.record_generation(model="m", prompt="p", output="o", source="discord",  # noqa: B023
                                                  user_id=base + i), n))  # noqa: B023
    finally:
        store.close()
    out = {k: round(median(v), 1) for k, v in rows.items()}
    out["store_over_record_generation"] = round(out["store_cooldown_us"] / out["record_generation_us"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    results = {"machine": machine(), "load_before": load(), "rounds": args.rounds, "calls_per_round": args.calls}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GHOSTWRITE_HOME", tmp)
        results["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", args.rounds, args.calls)
    pg = os.environ.get("GHOSTWRITE_BENCH_PG_URL")
    if pg:
        results["postgresql"] = measure(pg, args.rounds, args.calls)
    results["load_after"] = load()
    for name in ("sqlite", "postgresql"):
        if name in results:
            print(name, results[name])
    write_results("discord_shared", results)


if __name__ == "__main__":
    main()
