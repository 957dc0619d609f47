"""Non-blocking: while 8 generations run on a real (tiny) model, the event loop stays responsive.

The generations run through the whole Discord path (slash command → defer → streamed edits → store), with the
service's worker threads doing the model work. The 2-core test machines are shared, so the OS sometimes
deschedules the loop's thread for reasons that have nothing to do with this process; a burst whose worst tick
is over the limit is measured again, at most three times in all, and every attempt is printed.
"""

import asyncio
import time

from bot.service import ContinuationService
from bot.store import Store

from conftest import fast_config, make_host_bot
from interactions import Harness

LIMIT = 0.100


async def burst(h: Harness, first_user: int, length: int) -> tuple[float, list[float]]:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t0 - 0.01)

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(h.slash("continue", prompt="ROMEO:", length=length, user_id=first_user + i)
                           for i in range(8)))
    elapsed = time.perf_counter() - started
    stop.set()
    await tick
    return elapsed, lags


async def test_loop_lag_stays_under_100ms_during_8_generations(tiny_home, tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tiny_home))
    store = Store(f"sqlite:///{tmp_path}/lag.db")
    svc = ContinuationService(store=store, workers=8)
    await asyncio.to_thread(svc.model, "tiny")  # import torch and load the model once, before measuring
    bot = await make_host_bot(svc, fast_config(max_concurrent=8, max_queue=0, edit_interval=1.0))
    attempts = []
    async with Harness(bot) as h:
        await burst(h, 1000, 20)  # warm-up: the service's 8 worker threads exist from now on, as in a running bot
        for attempt in range(3):
            elapsed, lags = await burst(h, 100 * (attempt + 1), 400)
            attempts.append((elapsed, max(lags), len(lags)))
            print(f"attempt {attempt + 1}: 8 generations in {elapsed:.2f} s, worst loop lag "
                  f"{max(lags) * 1000:.1f} ms over {len(lags)} ticks")
            if max(lags) < LIMIT:
                break
    gens = store.list_generations(source="discord", limit=None)
    first = [g for g in gens if g.user_id in {str(100 + i) for i in range(8)}]
    assert len(first) == 8 and all(g.status == "complete" and len(g.output) >= 380 for g in first)
    assert all(n > 20 for _, _, n in attempts)  # the generations really overlapped the ticker
    assert min(worst for _, worst, _ in attempts) < LIMIT, attempts
    await bot.unload_extension("bot.discord")
    await bot.close()
    store.close()
