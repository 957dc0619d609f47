"""Training: truncated BPTT over contiguous streams, AdamW with warm-up and cosine decay, clipping,
periodic validation, early stopping, atomic checkpoints with exact resume, and a budget in seconds.

`train(cfg)` is the whole job. A run lives in `<home>/runs/NAME/` (token files, checkpoints, curve,
progress) until it finishes and its best weights are published to the registry as a new version.
With `max_time`, the step time measured over a sliding window sets the number of steps, re-estimated
as the machine gets slower or faster, so that training uses the budget; the learning rate stays a smooth,
falling function of the step that a resumed run follows (schedule.py).
"""

from __future__ import annotations

import errno
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .. import checkpoint
from ..device import configure_cpu, pick
from ..errors import GhostwriteError
from ..model import PRESETS, LSTMLanguageModel, ModelConfig, detach_hidden
from . import distributed, runs, schedule
from .autosize import Watch
from .autosize import plan as auto_plan
from .evaluate import chars_scored, report, score_tokens
from .schedule import FINAL_EVAL_TOKENS, QUICK_VAL_TOKENS, Budget


@dataclass
class TrainConfig:
    corpus: str
    name: str | None = None
    tokenizer: str | None = None  # char, word or sp; None: char, or with `base` the base model's
    vocab_size: int | None = None
    sp_type: str = "unigram"
    preset: str = "auto"
    emb_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    dropout: float | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    lr: float | None = None
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_time: float | None = None
    max_steps: int | None = None
    eval_every: int | None = None
    patience: int = 5
    val_fraction: float = 0.1
    device: str = "auto"
    threads: int | None = None
    seed: int = 1337
    base: str | None = None  # --from MODEL: fine-tune it, keeping its tokenizer (grown by new characters)
    resume: bool = False
    checkpoint_every: int | None = None
    extra: dict = field(default_factory=dict)


RESET_TOKENS = 4096  # each stream restarts from a zero state about this often (staggered across streams)


class Trainer:
    def __init__(self, cfg: TrainConfig, on_progress: Callable[[dict], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, on_step: Callable[[Trainer], None] | None = None,
                 probe: Callable | None = None):
        self.cfg = cfg
        self.on_progress = on_progress or (lambda p: None)
        # tests simulate a machine with these: its clock, a hook after each step, its speed (autosize.plan)
        self.clock, self.on_step, self.probe = clock, on_step or (lambda t: None), probe
        self.t_start = clock()
        self.timing: dict = {"validation_s": 0.0}  # where the budget went (the card; the bench reports it)
        self.plan = self.watch = None  # what autosize measured, if it did; when to measure again

    # ---- set-up -------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self.dist, self.device = distributed.setup(pick(cfg.device))  # None alone; else this rank's place
        if self.device.type == "cpu":
            configure_cpu(cfg.threads)
        else:
            torch.backends.cudnn.benchmark = True
        self.amp = torch.bfloat16 if self.device.type == "cuda" else None
        self.run = distributed.prepare(cfg, self.dist)  # corpus → split → tokenizer → token files (or the resumed run)
        self.meta = self.run.meta
        ck = self.run.dir / "last.pt"
        if cfg.resume and ck.exists():
            state, saved = checkpoint.load(ck, map_location=self.device)
            self.meta = saved
            self._build(ModelConfig.from_dict(saved["model"]), saved["train"])
            self._restore(state, saved)
        else:
            if cfg.resume:
                raise GhostwriteError(f"nothing to resume for {self.meta['name']!r}: no checkpoint in {self.run.dir}")
            sizes = distributed.from_main(self.dist, self._choose_sizes)  # rank 0 times the device
            torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights and dropout masks
            self._build(*sizes)
            self.step, self.best, self.bad_evals, self.elapsed_before = 0, math.inf, 0, 0.0
            self.hidden = None
            self.curve = {"train": [], "val": []}
            if self.run.base_state is not None:
                self.model.load_state_dict(self.run.base_state)
        self.train_model = distributed.wrap(self)  # the model, or the model in DDP

    def _choose_sizes(self) -> tuple[ModelConfig, dict]:
        cfg, meta = self.cfg, self.meta
        vocab = meta["tokenizer"]["vocab_size"]
        if meta.get("base_model"):  # fine-tuning keeps the base model's shape
            # ... with the rows its vocabulary gained (runs.load_base), and --dropout if given
            mc = ModelConfig.from_dict({**meta["base_model_config"], "vocab_size": vocab})
            mc.dropout = cfg.dropout if cfg.dropout is not None else mc.dropout
            p = auto_plan(None, self.run.train_tokens, vocab, self.device)
            tr = dict(batch_size=p.batch_size, seq_len=p.seq_len, lr=p.lr * 0.5)
        else:
            if cfg.preset not in ("auto", *PRESETS):
                raise GhostwriteError(f"unknown preset {cfg.preset!r} (presets: auto, {', '.join(PRESETS)})")
            fixed = cfg.preset != "auto" or cfg.max_time is None
            p = auto_plan(None if fixed else cfg.max_time, self.run.train_tokens, vocab, self.device, self.probe)
            sizes = {**p.model_dict(), **PRESETS.get(cfg.preset, {})}
            for k in ("emb_size", "hidden_size", "num_layers", "dropout"):
                if getattr(cfg, k) is not None:
                    sizes[k] = getattr(cfg, k)
            if cfg.hidden_size is not None and cfg.emb_size is None:
                sizes["emb_size"] = cfg.hidden_size
            mc = ModelConfig(vocab_size=vocab, **sizes)
            tr = dict(batch_size=p.batch_size, seq_len=p.seq_len, lr=p.lr)
            if p.threads:  # what autosize measured fastest on this machine (recorded in the card)
                tr.update(threads=p.threads, mkldnn=p.mkldnn, amp=p.amp)
                self.plan = p
                self.timing["probe"] = {"threads": p.threads, "mkldnn": p.mkldnn, "amp": p.amp,
                                        "probe_s": p.probe_s, "probe_gflops": round(p.probe_flops / 1e9, 2)}
        for k in ("batch_size", "seq_len", "lr"):
            if getattr(cfg, k) is not None:
                tr[k] = getattr(cfg, k)
        return mc, tr

    def _build(self, mc: ModelConfig, tr: dict) -> None:
        from .data import StreamBatcher, read_tokens

        self.tr = tr
        self.model = LSTMLanguageModel(mc).to(self.device)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=tr["lr"], betas=(0.9, 0.99), fused=self.device.type == "cuda",
        )
        vocab = mc.vocab_size
        self.train_tokens = read_tokens(self.run.dir / "train.bin", vocab)
        self.val_tokens = read_tokens(self.run.dir / "val.bin", vocab)
        self.batches = StreamBatcher(self.train_tokens, tr["batch_size"], tr["seq_len"], **distributed.shard(self.dist))
        self.meta["model"] = mc.to_dict()
        self.meta["train"] = tr
        if self.device.type == "cpu":
            from ..device import threads_forced

            if tr.get("threads") and not threads_forced():  # what autosize measured (also on resume)
                torch.set_num_threads(tr["threads"])
            if tr.get("mkldnn") is not None:
                torch.backends.mkldnn.enabled = bool(tr["mkldnn"])
            self.amp = torch.bfloat16 if tr.get("amp") == "bf16" else None
        self.reset_every = max(2, round(RESET_TOKENS / tr["seq_len"]))

    def _restore(self, state: dict, saved: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu())
        self.hidden = (state["h"], state["c"]) if "h" in state else None
        s = saved["progress"]
        self.step, self.best, self.bad_evals = s["step"], s["best"], s["bad_evals"]
        self.elapsed_before = s["elapsed"]
        self.curve = saved.get("curve", {"train": [], "val": []})

    # ---- schedule -----------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        return schedule.lr_at(self.tr["lr"], step, self.meta["schedule"])

    def _restart(self, mc: ModelConfig, tr: dict) -> None:
        """Start over with a new model (schedule.reprobe: a larger one, early in the run)."""
        torch.manual_seed(self.cfg.seed)
        self._build(mc, tr)
        self.step, self.best, self.bad_evals, self.hidden = 0, math.inf, 0, None
        self.curve = {"train": [], "val": []}
        self.meta["schedule"].clear()
        self.meta["schedule"]["warmup_steps"] = schedule.warmup(self.cfg.max_steps)
        self.t_calib = self.clock()
        self.train_model = distributed.wrap(self)

    # ---- the loop -----------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.cfg
        self.setup()
        budget = cfg.max_time - self.elapsed_before if cfg.max_time is not None else None
        self.budget = Budget(cfg.max_time, budget, self.clock)  # the deadline, and the step time as it moves
        sched = self.meta.setdefault("schedule", {})
        if not sched.get("total_steps"):
            sched["warmup_steps"] = schedule.warmup(cfg.max_steps)
            if cfg.max_time is None:
                schedule.fix(sched, cfg.max_steps, self.step, cfg.eval_every)
        main = self.dist is None or self.dist.is_main  # rank 0 paces the run; agree() tells the others
        if self.plan is not None and self.dist is None and cfg.max_time is not None:
            from ..device import threads_forced

            self.watch = Watch(cfg.max_time, not threads_forced(), self.plan.probe_s)
        self.model.train()
        self.timing["setup_s"] = round(self.clock() - self.t_start, 2)
        t_loop = t_last_ck = t_seg = t_prev = self.t_calib = self.clock()
        loss_avg, warming = None, 5
        while True:
            total, now = sched.get("total_steps"), self.clock()
            if total and self.step >= total and cfg.max_time is not None and main:
                schedule.reestimate(self, now, force=True)  # time left (the machine got faster): go on at the floor rate
                total = sched.get("total_steps")
            stop = bool(total and self.step >= total) or now >= self.budget.deadline
            if self.dist is not None:  # every rank follows rank 0's clock, schedule and early stopping
                stop = self.dist.agree(self, stop)
                schedule.follow(sched, self.step, total)  # re-anchor where rank 0 moved the total
                total = sched.get("total_steps")
            if stop:
                break
            lr = self.lr_at(self.step)
            for g in self.opt.param_groups:
                g["lr"] = lr
            x, y = self.batches.get(self.step)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.step % len(self.batches) == 0:
                self.hidden = None  # a new pass over the streams starts from a fresh state
            else:
                self.hidden = self._restart_some(self.hidden)
            with torch.autocast(device_type=self.device.type, dtype=self.amp, enabled=self.amp is not None):
                _, hidden, loss = self.train_model(x, self.hidden, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.hidden = detach_hidden(hidden)
            self.step += 1
            lv = loss.item()
            loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
            self.on_step(self)
            now = self.clock()
            if warming <= 0:  # the first steps warm up (allocations, kernels): not the machine's pace
                self.budget.add(now - t_prev, now)
            warming -= 1
            rebuilt = cfg.max_time is not None and main and schedule.pace(self, now)
            t_prev = self.clock()  # a probe's time is not a step's
            if rebuilt:
                warming = 5
                continue  # a larger model: the loop starts over at step 0
            if self.step % 10 == 0 or self.step == 1:
                self.curve["train"].append([self.step, round(lv, 5)])
            ev = sched.get("eval_every")
            if ev and self.step % ev == 0:
                self._validate(quick=True)
                if self.bad_evals >= cfg.patience:
                    break
            ck_every = cfg.checkpoint_every
            if (ck_every and self.step % ck_every == 0) or (not ck_every and now - t_last_ck > 30):
                self._save("last.pt")
                t_last_ck = now
            if now - t_seg > 1.0 or self.step == total:
                tps = self.tr["batch_size"] * self.tr["seq_len"] * self.step / \
                    max(1e-9, now - self.t_start + self.elapsed_before)
                self._progress(loss_avg, tps)
                t_seg = now
        self.timing["loop_s"] = round(self.clock() - t_loop, 2)
        self.timing["steps"] = self.budget.summary()  # how the step time moved, and the schedule with it
        if self.watch:
            self.timing["reprobes"] = self.watch.log
        return self._finish()

    def _restart_some(self, hidden):
        """Zero the state of the streams whose turn it is. Carried state alone teaches a model that never
        sees a fresh start, and a prompt's generation, each evaluation stream and a reply to a short message
        all begin from zeros (such a model measured 7.5 nats/char on its first characters against 2.2).
        Each stream restarts every `reset_every` steps, staggered so a few restart at each step; a pure
        function of the step, so a resumed run does the same."""
        if hidden is None:
            return None
        n, b = self.reset_every, hidden[0].shape[1]
        rows = [i for i in range(b) if (self.step + (i * n) // b) % n == 0]
        if not rows:
            return hidden
        idx = torch.tensor(rows, device=hidden[0].device)
        return hidden[0].index_fill(1, idx, 0.0), hidden[1].index_fill(1, idx, 0.0)

    def _validate(self, quick: bool) -> float:
        if self.dist is not None and not self.dist.is_main:
            return self.dist.share_validation(self)  # rank 0 validates and tells the others
        t0 = self.clock()
        toks = self.val_tokens
        limit = QUICK_VAL_TOKENS if quick else None  # a fixed slice: cheap enough to run a dozen times
        if limit and len(toks) > limit:
            toks = toks[:limit]
        nats, n = score_tokens(self.model, toks, streams=min(32, self.tr["batch_size"]),
                               seq_len=self.tr["seq_len"], device=self.device, autocast_dtype=self.amp)
        bpc = report(nats, n, chars_scored(self.run.val_text_len, len(self.val_tokens), n))["bits_per_char"]
        self.last_val_step = self.step
        self.curve["val"].append([self.step, round(bpc * math.log(2), 5)])
        if bpc < self.best - 1e-4:
            self.best, self.bad_evals = bpc, 0
            self._save("best.pt")
        else:
            self.bad_evals += 1
        self.last_val_bpc = bpc
        self.timing["validation_s"] = round(self.timing["validation_s"] + self.clock() - t0, 2)
        if self.dist is not None:
            self.dist.share_validation(self)  # the others stop early exactly when rank 0 does
        return bpc

    def _state(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                 "rng_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state()
        if self.hidden is not None:
            state["h"], state["c"] = self.hidden
        return state

    def _save(self, fname: str) -> None:
        if self.dist is not None and not self.dist.is_main:
            return
        elapsed = self.elapsed_before + self.clock() - self.t_start
        self.meta["progress"] = {"step": self.step, "best": self.best, "bad_evals": self.bad_evals,
                                 "elapsed": elapsed}
        self.meta["curve"] = self.curve
        checkpoint.save(self.run.dir / fname, self._state(), self.meta)

    def _progress(self, loss: float | None, tps: float) -> None:
        if self.dist is not None and not self.dist.is_main:
            return
        total = self.meta.get("schedule", {}).get("total_steps")
        elapsed = self.elapsed_before + self.clock() - self.t_start
        p = {"step": self.step, "total_steps": total, "loss": loss, "val_bpc": getattr(self, "last_val_bpc", None),
             "tokens_per_s": tps, "elapsed": elapsed,
             "eta": (elapsed / max(self.step, 1)) * (total - self.step) if total else None}
        runs.write_progress(self.run.dir, p)
        self.on_progress(p)

    def _finish(self) -> dict:
        if self.dist is not None and not self.dist.finish(self):
            return {}  # rank 0 carries on alone: it validates and publishes
        t_end = self.clock()
        self._save("last.pt")
        if getattr(self, "last_val_step", None) != self.step:
            self._validate(quick=True)
        state, _ = checkpoint.load(self.run.dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(state["model"])
        streams = 1 if len(self.val_tokens) < 20_000 else 32
        # a huge corpus (or a short budget): the validation split's first part
        final = self.val_tokens[: self.meta.get("schedule", {}).get("final_eval_tokens") or FINAL_EVAL_TOKENS]
        nats, n = score_tokens(self.model, final, streams=streams, seq_len=self.tr["seq_len"], device=self.device,
                               autocast_dtype=self.amp if self.device.type == "cuda" else None)
        figures = report(nats, n, chars_scored(self.run.val_text_len, len(self.val_tokens), n))
        figures["eval_streams"] = streams
        if self.device.type == "cpu":
            self.meta["int8_ok"], figures["int8_delta_bpc"] = self._int8_check()
        elapsed = self.elapsed_before + self.clock() - self.t_start
        self.timing["final_eval_s"] = round(self.clock() - t_end, 2)
        self.meta["timing"] = self.timing
        card = runs.publish(self, figures, elapsed)
        self._progress(None, 0.0)
        return card


    def _int8_check(self) -> tuple[bool, float]:
        """int8 dynamic quantization serves on the CPU only if it stays within 0.02 bits/char of fp32
        on (a slice of) the validation split."""
        from ..generation.fastlstm import quantize_int8

        toks = self.val_tokens[:32_768]
        n_chars = lambda n: chars_scored(self.run.val_text_len, len(self.val_tokens), n)
        fp_nats, n = score_tokens(self.model, toks, streams=16, seq_len=self.tr["seq_len"])
        q_nats, _ = score_tokens(quantize_int8(self.model.eval()), toks, streams=16, seq_len=self.tr["seq_len"])
        delta = report(q_nats, n, n_chars(n))["bits_per_char"] - report(fp_nats, n, n_chars(n))["bits_per_char"]
        return bool(abs(delta) <= 0.02), round(delta, 5)


def train(cfg: TrainConfig, on_progress=None) -> dict:
    """Run a training job to the end and return the new version's model card."""
    trainer = Trainer(cfg, on_progress)
    try:
        return trainer.fit()
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        raise GhostwriteError(disk_full_message(trainer, e)) from None
    finally:
        runs.release(getattr(trainer, "run", None))  # the run's lock (runs.prepare) ends with the run


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(trainer: Trainer, e: OSError) -> str:
    """One line for a run stopped by a full disk: what failed, and what is kept to resume from (every
    write is atomic, so the last checkpoint on disk is whole)."""
    run = getattr(trainer, "run", None)
    name = run.meta.get("name") if run is not None else trainer.cfg.name or trainer.cfg.corpus
    where = f" ({e.filename})" if e.filename else ""
    try:
        _, saved = checkpoint.load(run.dir / "last.pt") if run is not None else (None, None)
        step = saved["progress"]["step"] if saved else None
    except (GhostwriteError, KeyError, TypeError):
        step = None
    keep = (f"its last checkpoint (step {step:,}) is intact: free some space, then run the same command with --resume"
            if step is not None else "no checkpoint was written yet: free some space and train again")
    return f"training {name!r} stopped: {e.strerror or 'disk full'}{where}; {keep}"
