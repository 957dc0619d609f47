"""Non-blocking: while 8 generations run on a real (tiny) model, the event loop stays responsive.

The generations go through the whole Discord path (slash command → defer → streamed edits → store) with the
service's worker threads doing the model work. Two checks:

* nothing blocking runs on the loop: whenever the 10 ms ticker is late, a watchdog thread samples the loop
  thread's stack, and no sample may be inside model, torch, store or SQL code;
* the ticker is never more than 100 ms late. That number also depends on the machine: on a shared 2-core box
  whose load is already above 1.5 per core before the burst starts, the OS alone delays the loop's thread by
  more than that, so there the threshold is reported as a skip with the measurements, not asserted. A burst
  over the limit on a quiet machine is measured again, at most three times in all; every attempt is printed.
"""

import asyncio
import os
import sys
import threading
import time

import pytest
from discord_helpers import fast_config, make_host_bot
from interactions import Harness

from bot.service import ContinuationService
from bot.store import Store

LIMIT = 0.100
BLOCKING = ("/generator/", "/torch/", "/bot/store/", "/sqlalchemy/", "sqlite3")


class Watchdog(threading.Thread):
    """Samples the loop thread's stack while the loop is late (> 40 ms since the last tick)."""

    def __init__(self, loop_thread: int):
        super().__init__(daemon=True, name="lag-watchdog")
        self.loop_thread = loop_thread
        self.last_tick = time.perf_counter()
        self.samples: list[list[str]] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.005):
            if time.perf_counter() - self.last_tick > 0.040:
                frame = sys._current_frames().get(self.loop_thread)
                stack = []
                while frame is not None:
                    stack.append(f"{frame.f_code.co_filename}:{frame.f_lineno}:{frame.f_code.co_name}")
                    frame = frame.f_back
                self.samples.append(stack)


async def burst(h: Harness, first_user: int, length: int, dog: Watchdog | None = None):
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            lags.append(now - t0 - 0.01)
            if dog is not None:
                dog.last_tick = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(h.slash("continue", prompt="ROMEO:", length=length, user_id=first_user + i)
                           for i in range(8)))
    elapsed = time.perf_counter() - started
    stop.set()
    await tick
    return elapsed, lags


async def test_loop_stays_responsive_during_8_generations(tiny_home, tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tiny_home))
    store = Store(f"sqlite:///{tmp_path}/lag.db")
    svc = ContinuationService(store=store, workers=8)
    await asyncio.to_thread(svc.model, "tiny")  # import torch and load the model once, before measuring
    bot = await make_host_bot(svc, fast_config(max_concurrent=8, max_queue=0, edit_interval=1.0))
    cores = len(os.sched_getaffinity(0))
    dog = Watchdog(threading.get_ident())
    dog.start()
    attempts = []
    async with Harness(bot) as h:
        await burst(h, 1000, 20)  # warm-up: the service's 8 worker threads exist from now on, as in a running bot
        for attempt in range(3):
            load = os.getloadavg()[0]
            elapsed, lags = await burst(h, 100 * (attempt + 1), 400, dog)
            attempts.append({"seconds": round(elapsed, 2), "worst_ms": round(max(lags) * 1000, 1),
                             "ticks": len(lags), "load_before": round(load, 1)})
            print(f"attempt {attempt + 1}: {attempts[-1]}")
            if max(lags) < LIMIT:
                break
    dog.stop.set()
    gens = store.list_generations(source="discord", limit=None)
    first = [g for g in gens if g.user_id in {str(100 + i) for i in range(8)}]
    assert len(first) == 8 and all(g.status == "complete" and len(g.output) >= 380 for g in first)
    assert all(a["ticks"] > 20 for a in attempts)  # the generations really overlapped the ticker
    ours = [s for s in dog.samples if any(any(b in f for b in BLOCKING) for f in s)]
    assert ours == [], "blocking work on the event loop:\n" + "\n".join(ours[0][:12])
    await bot.unload_extension("bot.discord")
    await bot.close()
    store.close()
    if min(a["worst_ms"] for a in attempts) >= LIMIT * 1000:
        if all(a["load_before"] > 1.5 * cores for a in attempts):
            pytest.skip(f"loop lag not measurable here: load above {1.5 * cores} on {cores} cores before every "
                        f"burst; attempts: {attempts} (no blocking work was seen on the loop)")
        pytest.fail(f"event loop lag over {LIMIT * 1000:.0f} ms: {attempts}")


async def test_the_watchdog_catches_model_work_on_the_loop(tiny_home, monkeypatch):
    """Negative control: the same watchdog does see generation run directly on the event loop."""
    import generator

    monkeypatch.setenv("GHOSTWRITE_HOME", str(tiny_home))
    lm = await asyncio.to_thread(generator.load, "tiny")
    dog = Watchdog(threading.get_ident())
    dog.start()
    await asyncio.sleep(0.02)
    dog.last_tick = time.perf_counter()
    # blocking, on purpose, for long enough that the watchdog sees the loop late however fast the machine
    # is (2,000 chars of the tiny model take under 40 ms on a quiet fast one)
    started, texts = time.perf_counter(), []
    while time.perf_counter() - started < 0.4:
        texts.append("".join(lm.generate("ROMEO:", {"length": 2000, "unit": "chars"})))
    await asyncio.sleep(0.02)
    dog.stop.set()
    assert all(len(t) == 2000 for t in texts)
    assert any(any("/generator/" in f for f in s) for s in dog.samples)
