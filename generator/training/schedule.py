"""The schedule of a training run: the learning rate at each step and, for a `--max-time` run, how many
steps fit the budget, re-estimated while the run goes on.

Learning rate: a linear warm-up, then a cosine from the base rate down to a tenth of it over a progress
fraction that runs from 0 to 1 at the total steps. A budgeted run measures its step time over a sliding
window (`Budget`) and moves the total when the machine gets slower or faster. The fraction is then
re-anchored (`retarget`): from the current step it goes on from where it is to 1 at the new total, so the
rate keeps its value at that step (no jump), keeps falling (the fraction never goes back) and reaches its
floor exactly at the new end. Between two moves the rate is a pure function of the step and of
`meta["schedule"]`, which every checkpoint saves: a resumed run continues it, every DDP rank re-anchors
at the same step from rank 0's total (`follow`), and a `--max-steps` run is what it always was. (A
schedule on elapsed time would have needed no anchor, but it makes the rate a function of the clock:
resume and the DDP ranks would disagree, and the same seed would no longer train the same model.)
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import deque
from collections.abc import Callable

QUICK_VAL_TOKENS = 32_768  # the fixed slice scored by each validation during training
FINAL_EVAL_TOKENS = 1 << 21  # the card's figure scores at most this many validation tokens
WARMUP_BEFORE_FIX = 20  # warm-up steps of a budgeted run before its first estimate


def progress(step: int, sched: dict) -> float:
    """How far the cosine has gone at `step`: 0 at its anchor (the end of warm-up unless moved), 1 at the
    total steps."""
    warm = sched["warmup_steps"]
    a_step, a_frac = sched.get("anchor_step", warm), sched.get("anchor_frac", 0.0)
    if step <= a_step:
        return a_frac
    return min(1.0, a_frac + (1.0 - a_frac) * (step - a_step) / max(1, sched["total_steps"] - a_step))


def lr_at(base: float, step: int, sched: dict) -> float:
    warm = sched["warmup_steps"]
    if step < warm:
        return base * (step + 1) / warm
    if not sched.get("total_steps"):
        return base
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress(step, sched))))


def retarget(sched: dict, step: int, total: int) -> None:
    """Move the end of the cosine to `total` at `step`, keeping the rate at `step` and its monotony."""
    if sched.get("total_steps") and step > sched["warmup_steps"]:
        sched["anchor_frac"], sched["anchor_step"] = progress(step, sched), step
    sched["total_steps"] = max(int(total), step + 1)


def follow(sched: dict, step: int, old_total: int | None) -> None:
    """On a DDP rank that has just been given rank 0's total: anchor as rank 0 did at this step."""
    new = sched.get("total_steps")
    if not new or new == old_total:
        return
    if not old_total:  # rank 0's first estimate: the cosine starts here (`fix`)
        if step > sched["warmup_steps"]:
            sched["anchor_step"], sched["anchor_frac"] = step, 0.0
        return
    sched["total_steps"] = old_total
    retarget(sched, step, new)


def warmup(max_steps: int | None) -> int:
    """Warm-up steps before the total is known (`fix` may shorten it to 2% of the steps)."""
    return WARMUP_BEFORE_FIX if max_steps is None else max(1, min(200, max_steps // 20))


def fix(sched: dict, total: int | None, step: int, eval_every: int | None, step_time: float | None = None,
        tokens_per_step: int = 0) -> None:
    """The first total of a run (from --max-steps, or the first estimate of a budgeted one), the warm-up
    (2% of the steps), and the validation interval (a dozen, at most ~4% of a budgeted run's time)."""
    sched["total_steps"] = max(total, step + 1) if total else None
    n = sched["total_steps"] or 2000
    sched["warmup_steps"] = max(1, min(sched.get("warmup_steps", 10**9), n // 50, 200))
    if step > sched["warmup_steps"]:  # the cosine starts here: the rate was flat until this estimate
        sched["anchor_step"], sched["anchor_frac"] = step, 0.0
    evals = 12
    if step_time:
        t_val = QUICK_VAL_TOKENS / (3.0 * tokens_per_step / step_time)  # a forward pass: ~3x a training step
        evals = max(2, min(12, int(0.04 * n * step_time / max(t_val, 1e-9))))
    sched["eval_every"] = eval_every or max(1, n // evals)


def final_eval_tokens(max_time: float, tokens_per_s: float, n_val: int) -> int:
    """The card's figure scores as much of the validation split as ~8% of the budget allows (a forward
    pass runs at about 3x the training speed); at least the quick-validation slice."""
    return min(n_val, FINAL_EVAL_TOKENS, max(QUICK_VAL_TOKENS, int(0.08 * max_time * 3.0 * tokens_per_s)))


def final_eval_seconds(val_tokens: int, tokens_per_s: float, cpu: bool) -> float:
    """Time to keep at the end for the final evaluation, the int8 check and publishing."""
    if cpu:
        val_tokens += 2 * min(32_768, val_tokens)  # the int8 check scores a slice twice
    return 2.0 + val_tokens / (3.0 * tokens_per_s) * 1.5


class Budget:
    """A run against its clock: when training must stop, and how long a step takes now.

    Each step's time (wall time from the end of one step to the end of the next, validations and
    checkpoints included) goes into a sliding window: the last WINDOW of the budget, at least MIN_STEPS
    steps. `estimate()` says how many steps fit before the deadline at that pace; the deadline is the
    end of the budget less `reserve`, the time kept for the final evaluation. Without a budget (`seconds`
    None) it only records how the step time moved. `summary()` is what the card shows."""

    WINDOW = 0.05  # of the budget: long enough for hundreds of steps, short enough to follow the machine
    MIN_STEPS = 10
    EVERY = 0.01  # re-estimate at most once per 1% of the budget (and whenever the total is reached)

    def __init__(self, seconds: float | None, left: float | None, clock: Callable[[], float]):
        self.clock, self.seconds = clock, seconds
        self.start = clock()
        self.end = self.start + left if left is not None else math.inf
        self.reserve = 0.0
        self.window: deque[tuple[float, float]] = deque()  # (clock at the end of the step, its seconds)
        self.times = array("d")  # every step's time, for the median
        self.first_ms: float | None = None
        self.trace: list[list[float]] = []
        self.moves, self.last_estimate, self.first_total, self._tenth = 0, -math.inf, None, -1
        self.prev: float | None = None  # the step time before the window was last cleared

    @property
    def deadline(self) -> float:
        return self.end - self.reserve

    def add(self, seconds: float, now: float) -> None:
        self.window.append((now, seconds))
        self.times.append(seconds)
        span = self.WINDOW * self.seconds if self.seconds else 0.0
        while len(self.window) > self.MIN_STEPS and (not span or now - self.window[0][0] > span):
            self.window.popleft()
        if self.first_ms is None and self.full(now):
            self.first_ms = self.step_time() * 1e3
        tenth = int((now - self.start) / ((self.seconds or 60.0) * 0.1))  # one point per 10% of the budget
        if self.full(now) and (not self.trace or tenth > self._tenth):
            self.trace.append([round(now - self.start, 1), round(self.step_time() * 1e3, 2)])
            self._tenth = tenth

    def clear(self) -> None:
        """Forget the window (the settings just changed: what it measured no longer holds)."""
        if self.window:
            self.prev = self.step_time()
        self.window.clear()

    def full(self, now: float, span: float = 0.0) -> bool:
        return len(self.window) >= self.MIN_STEPS and now - self.window[0][0] >= span

    def step_time(self) -> float:
        return sum(s for _, s in self.window) / len(self.window) if self.window else self.prev

    def due(self, now: float, force: bool = False) -> bool:
        """Time for a new estimate; `force`: the total is reached, any figure will do."""
        if force:
            return bool(self.window) or self.prev is not None
        return self.full(now) and now - self.last_estimate >= self.EVERY * (self.seconds or 0)

    def estimate(self, step: int, now: float) -> int:
        """The total steps that end training at the deadline at the window's pace."""
        self.last_estimate = now
        return step + int(max(0.0, self.deadline - now) / self.step_time())

    def summary(self) -> dict:
        last = self.step_time() * 1e3 if self.window else None
        ms = lambda x: round(x, 2) if x is not None else None
        return {"start_ms": ms(self.first_ms), "median_ms": ms(statistics.median(self.times) * 1e3)
                if self.times else None, "end_ms": ms(last), "trace": self.trace, "schedule_moves": self.moves,
                "first_total_steps": self.first_total, "eval_reserve_s": round(self.reserve, 2)}


# ---- a budgeted run, after each step (rank 0; `trainer` is the generator.training.trainer.Trainer) -------------
def pace(trainer, now: float) -> bool:
    """Re-estimate the total steps from the window's step time (the first time after ~8% of the budget,
    at most 8 s; then once per 1% of it), or now and then time the probe again. True when the model was
    rebuilt and the loop starts over."""
    b, sched = trainer.budget, trainer.meta["schedule"]
    calibrated = sched.get("total_steps") or now - trainer.t_calib >= min(8.0, 0.08 * trainer.cfg.max_time)
    if not (calibrated and b.due(now)):
        return False
    import torch

    w = trainer.watch
    why = w.why(now - b.start, b.step_time(), torch.get_num_threads(), b.window[0][0] - b.start) if w else None
    if why:
        return reprobe(trainer, why, now)
    reestimate(trainer, now)
    return False


def reestimate(trainer, now: float, force: bool = False) -> None:
    cfg, b, sched, tr = trainer.cfg, trainer.budget, trainer.meta["schedule"], trainer.tr
    if not b.due(now, force):
        return
    tokens_per_step = tr["batch_size"] * tr["seq_len"]
    tps = tokens_per_step / b.step_time()
    if not sched.get("final_eval_tokens"):
        sched["final_eval_tokens"] = final_eval_tokens(cfg.max_time, tps, len(trainer.val_tokens))
    # keep time for the final evaluation (at the pace of now), but never more than a quarter of the
    # budget: a slow machine must not leave no time to train at all
    b.reserve = min(final_eval_seconds(sched["final_eval_tokens"], tps, trainer.device.type == "cpu"),
                    0.25 * (b.end - b.start))
    total, old = b.estimate(trainer.step, now), sched.get("total_steps")
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    if not old:
        fix(sched, total, trainer.step, cfg.eval_every, b.step_time(), tokens_per_step)
        b.first_total = sched["total_steps"]
    elif total != old and (trainer.step >= old or abs(total - old) > max(1.0, 0.02 * (old - trainer.step))):
        retarget(sched, trainer.step, total)  # the rate keeps its value here and keeps falling
        b.moves += 1


def reprobe(trainer, why: str, now: float) -> bool:
    """Time the probe again (autosize.Watch says when) and keep the settings measured fastest now. At the
    second look, within the first 15% of the budget, start over with a larger model if the machine proved
    faster than the first probe said: the time spent is lost, worth it only that early. Later, or for a
    smaller plan (the machine got busier, perhaps only for a while), the model stays: the schedule adapts.
    True when the model was rebuilt."""
    import torch

    from ..model import ModelConfig
    from .autosize import params
    from .autosize import reprobe as probe_again

    cfg, mc, b, w = trainer.cfg, trainer.model.config, trainer.budget, trainer.watch
    settings = tuple(trainer.tr.get(k) for k in ("threads", "mkldnn", "amp"))
    p = probe_again(trainer.plan, b.end - now, trainer.run.train_tokens, mc.vocab_size, settings[1:], trainer.probe)
    trainer.tr.update(threads=p.threads, mkldnn=p.mkldnn, amp=p.amp)
    trainer.amp = torch.bfloat16 if p.amp == "bf16" else None
    grow = not w.log and now - b.start <= 0.15 * cfg.max_time and \
        params(p.hidden_size, p.num_layers, mc.vocab_size) > params(mc.hidden_size, mc.num_layers, mc.vocab_size) \
        and all(getattr(cfg, k) is None for k in ("emb_size", "hidden_size", "num_layers"))
    was, plan = f"{mc.num_layers}x{mc.hidden_size}", f"{p.num_layers}x{p.hidden_size}"
    w.done(why, now - b.start, p, f"rebuilt {was} -> {plan}" if grow else
           f"kept {was}" + ("" if plan == was else f" (plan now {plan})"))
    if grow or (p.threads, p.mkldnn, p.amp) != settings:
        b.clear()  # what the window measured no longer holds
    if grow:
        sizes = {**p.model_dict(), **({"dropout": cfg.dropout} if cfg.dropout is not None else {})}
        trainer._restart(ModelConfig(vocab_size=mc.vocab_size, **sizes), {**trainer.tr, "lr": cfg.lr or p.lr})
    return grow
