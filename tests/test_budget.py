"""A budget is a budget, whatever the machine does meanwhile (issue 9, item 3).

The runs here train a real (tiny) model, but on a simulated machine: its clock moves only by the
simulated time of each step (`SimMachine`), so a test can make the machine 2x slower or faster mid-run
and the assertions on time hold exactly, whatever the real machine is doing. Nothing here reads the real
clock.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from generator.training import schedule
from generator.training.autosize import Watch
from generator.training.trainer import TrainConfig, Trainer


class SimMachine:
    """A machine whose clock advances by `step_s` per training step, times `factor` from `change_at`
    simulated seconds on; `probe` (autosize's CPU probe) measures `flops`, times `probe_factor` after the
    first call. Records the learning rate of every step."""

    def __init__(self, step_s: float, change_at: float | None = None, factor: float = 1.0,
                 flops: float = 1e9, probe_factor: float = 1.0):
        self.t0 = self.t = 1000.0
        self.step_s, self.change_at, self.factor = step_s, change_at, factor
        self.flops, self.probe_factor, self.probes = flops, probe_factor, 0
        self.lrs: list[float] = []

    def __call__(self) -> float:
        return self.t

    def after_step(self, trainer) -> None:
        self.lrs.append(trainer.opt.param_groups[0]["lr"])
        slow = self.change_at is not None and self.t - self.t0 >= self.change_at
        self.t += self.step_s * (self.factor if slow else 1.0)

    def probe(self, vocab: int, keep=None):
        self.probes += 1
        return 1, False, None, self.flops * (self.probe_factor if self.probes > 1 else 1.0)


def sim_train(corpus, machine: SimMachine, budget: float, **kw) -> dict:
    cfg = TrainConfig(corpus=str(corpus), name="sim", max_time=budget, batch_size=8, seq_len=16, device="cpu",
                      **{"preset": "tiny", **kw})
    return Trainer(cfg, clock=machine, on_step=machine.after_step, probe=machine.probe).fit()


def assert_budget_used(card: dict, budget: float) -> None:
    """Training (the loop, in simulated seconds: the budget starts once the corpus is prepared) ended
    within 5% of the budget less the time kept for the final evaluation."""
    t = card["timing"]
    assert abs(t["loop_s"] - (budget - t["steps"]["eval_reserve_s"])) <= 0.05 * budget, t


def assert_lr_smooth_to_floor(lrs: list[float], base: float) -> None:
    top = lrs.index(max(lrs))  # warm-up up to here, then never up again, down to a tenth of the base
    after = lrs[top:]
    assert all(b <= a * (1 + 1e-12) for a, b in pairwise(after))
    assert max(lrs) == pytest.approx(base)
    assert after[-1] <= 0.1 * base * 1.02, (after[-1], base)
    # smooth: no step drops the rate by more than a small share of its range
    assert max(a - b for a, b in pairwise(after)) <= 0.9 * base * 0.05


@pytest.mark.parametrize("factor", [2.0, 0.5, 1.0], ids=["2x-slower", "2x-faster", "steady"])
def test_training_uses_its_budget_when_the_machine_changes_speed(tiny_corpus, fresh_home, factor):
    budget = 8.0
    sim = SimMachine(0.04, change_at=0.4 * budget, factor=factor)
    card = sim_train(tiny_corpus, sim, budget)
    assert_budget_used(card, budget)
    assert_lr_smooth_to_floor(sim.lrs, card["train"]["lr"])
    assert card["steps"] == len(sim.lrs)
    steps = card["timing"]["steps"]  # the card says how the step time moved
    assert steps["start_ms"] == pytest.approx(40.0)
    assert steps["end_ms"] == pytest.approx(40.0 * factor)
    assert len(steps["trace"]) >= 5 and steps["trace"][-1][1] == pytest.approx(40.0 * factor)
    if factor == 1.0:
        assert steps["schedule_moves"] <= 2
    else:
        assert steps["schedule_moves"] >= 3
        moved = card["steps"] / steps["first_total_steps"]  # fewer steps than first planned, or more
        assert (moved < 0.85) if factor > 1 else (moved > 1.2)


def test_a_slow_start_does_not_shrink_the_model_for_good(tiny_corpus, fresh_home):
    """The first probe sees a machine 200x slower than it is (a busy moment): autosize picks the smallest
    model. The second look at the end of the calibration sees the real speed, early enough to start over
    larger; the run still ends on its budget."""
    budget = 8.0
    sim = SimMachine(0.04, flops=1e9, probe_factor=200.0)
    card = sim_train(tiny_corpus, sim, budget, preset="auto")
    first = card["timing"]["reprobes"][0]
    assert first["why"] == "second look" and first["size"] == "rebuilt 1x128 -> 1x192", first
    assert card["model"]["hidden_size"] == 192
    assert first["at_s"] <= 0.15 * budget
    assert card["timing"]["probe"]["probe_gflops"] == pytest.approx(1.0)
    assert_budget_used(card, budget)
    assert card["steps"] < len(sim.lrs)  # the steps before the rebuild are not the card's


def test_the_model_stays_when_the_machine_only_gets_slower(tiny_corpus, fresh_home):
    """A machine that slows down 2x at 40% of the run: the step time moved by more than 30%, so the probe is
    timed again, but the model (and the time spent on it) stays; the slower probe never shrinks it."""
    budget = 8.0
    sim = SimMachine(0.04, change_at=0.4 * budget, factor=2.0, flops=1e11, probe_factor=1.0)
    card = sim_train(tiny_corpus, sim, budget, preset="auto")
    log = card["timing"]["reprobes"]
    assert [r["why"].split(" ")[0] for r in log[:2]] == ["second", "step"], log
    assert "moved 40.0 -> " in log[1]["why"]
    assert all(r["size"].startswith("kept 1x128") for r in log)
    assert card["model"]["hidden_size"] == 128 and card["steps"] == len(sim.lrs)
    assert_budget_used(card, budget)
    assert_lr_smooth_to_floor(sim.lrs, card["train"]["lr"])


def test_moving_the_end_keeps_the_rate_and_its_fall():
    sched = {"warmup_steps": 10}
    schedule.fix(sched, 1000, 50, None)
    rates = [schedule.lr_at(1.0, s, sched) for s in range(400)]
    for new_total in (600, 3000, 401):  # sooner, later, at once
        before = schedule.lr_at(1.0, 400, sched)
        schedule.retarget(sched, 400, new_total)
        assert schedule.lr_at(1.0, 400, sched) == pytest.approx(before)
    rates += [schedule.lr_at(1.0, s, sched) for s in range(400, 420)]
    assert all(b <= a for a, b in pairwise(rates[10:]))
    assert rates[-1] == pytest.approx(0.1)
    # a --max-steps run (no move) is the plain cosine from the end of warm-up
    plain = {"warmup_steps": 10}
    schedule.fix(plain, 1000, 0, None)
    mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert schedule.lr_at(1.0, 505, plain) == pytest.approx(mid)


def test_a_ddp_rank_anchors_where_rank_0_moved_the_end():
    rank0 = {"warmup_steps": 10}
    schedule.fix(rank0, 800, 60, None)
    other = {"warmup_steps": 10, "total_steps": rank0["total_steps"]}  # rank 0's first total, broadcast
    schedule.follow(other, 60, None)
    for step, total in ((200, 1200), (500, 700)):
        old = rank0["total_steps"]
        schedule.retarget(rank0, step, total)
        other["total_steps"] = rank0["total_steps"]  # what agree() broadcasts
        schedule.follow(other, step, old)
        for s in (step, step + 50, total):
            assert schedule.lr_at(1.0, s, other) == schedule.lr_at(1.0, s, rank0)


def test_watch_looks_again_when_the_step_time_moves():
    w = Watch(100.0, threads_free=False)
    assert w.why(8.0, 0.02, 1) == "second look"
    from generator.training.autosize import Plan

    w.done("second look", 8.0, Plan(64, 64, 1, 8, 16, 1e-2, 0.0, threads=1, probe_flops=1e9), "kept 1x64")
    assert w.why(10.0, 0.030, 1, window_from=7.9) is None  # the window still holds steps before the probe
    assert w.why(10.5, 0.020, 1, window_from=8.1) is None  # the reference: the pace after the probe
    assert w.why(30.0, 0.025, 1, window_from=25.0) is None  # 25% slower: within the margin
    assert "moved 20.0 -> 40.0 ms" in w.why(31.0, 0.040, 1, window_from=26.0)
    assert w.why(95.0, 0.080, 1, window_from=90.0) is None  # too late in the run to pay for a probe


def test_watch_spends_at_most_a_twentieth_of_the_budget_on_probes():
    from generator.training.autosize import Plan

    assert Watch(20.0, threads_free=True, first_probe_s=7.0).why(1.6, 0.04, 1) is None  # a busy machine: ~2.3 s
    w = Watch(120.0, threads_free=False, first_probe_s=3.0)
    assert w.why(9.6, 0.04, 1) == "second look"
    w.done("second look", 9.6, Plan(64, 64, 1, 8, 16, 1e-2, 0.0, threads=1, probe_s=5.5), "kept 1x64")
    assert w.why(12.0, 0.04, 1, window_from=10.0) is None  # the reference
    assert w.why(40.0, 0.08, 1, window_from=35.0) is None  # moved, but another 5.5 s would pass 6 s
