"""The rows that step together through one runner, and how they advance: both generation paths use it
(`single.Generation` is a batch of one row on the caller's thread; the engine's thread keeps one batch
that requests join and leave).

Each move is two calls. `choose(k)` gives every row its next tokens: k per row in one compiled call
(fastloop.py) where every row's settings allow it, the state stepping past them as it goes; otherwise one
per row chosen in Python (`sampling.sample_rows`: top-k, top-p, repetition penalty). `advance(keep)`
then drops the rows that ended (finished or closed) and, after a choice made in Python, runs one
forward step for the rows that stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .fastlstm import FastLSTM, StepState
from .sampling import sample_rows


class Batch:
    """`rows` (objects with `.proc`, the row's `LogitsProcessor`), the logits for each row's next token
    and the rows' recurrent state, row i for rows[i]."""

    def __init__(self, runner: FastLSTM):
        self.runner = runner
        self.rows: list = []
        self.logits: torch.Tensor | None = None
        self.state: StepState | None = None
        self._chosen: list[int] | None = None  # the tokens chosen in Python, not yet stepped past
        self._steps = 0

    def add(self, joiners: Sequence[tuple[Any, torch.Tensor, StepState]]) -> None:
        """New rows, each with the logits and state its primed prompt left (`FastLSTM.prime`), go at the end."""
        logits = [j[1] for j in joiners]
        states = [j[2] for j in joiners]
        if self.rows:
            logits.insert(0, self.logits)
            states.insert(0, self.state)
        self.logits = torch.cat(logits) if len(logits) > 1 else logits[0]
        self.state = StepState.cat(states) if len(states) > 1 else states[0]
        self.rows.extend(j[0] for j in joiners)

    def choose(self, k: int) -> list[list[int]]:
        """The next tokens of every row, row i's for rows[i]: k of them (compiled) or 1 (Python)."""
        procs = [r.proc for r in self.rows]
        got = self.runner.run_chunk(self.logits, self.state, procs, k)
        if got is not None:  # k tokens for every row in one compiled call; the state is past them
            chunk, self.logits = got
            self._chosen, self._steps = None, k
            return chunk.tolist()
        logits, gone = self._steer()
        tokens = sample_rows(logits, procs)  # one token per row, chosen in Python
        self._chosen, self._steps = tokens, 0
        return [[] if i in gone else [t] for i, t in enumerate(tokens)]

    def _steer(self) -> tuple[torch.Tensor, set[int]]:
        """Rows with banned or bias strings (guard.py): a snapshot of each before its choice, then its
        logits with forbidden tokens out and bias strings in. Returns the logits to choose from and the
        rows where nothing may be written (they end: `give_up`)."""
        logits, gone = self.logits, set()
        steered = [i for i, r in enumerate(self.rows) if (getattr(r, "guard", None) is not None and r.guard.steers)
                   or getattr(r, "bg_runner", None) is not None]
        if not steered:
            return logits, gone
        logits = logits.clone()
        st = self.state
        for i in steered:
            row = self.rows[i]
            if getattr(row, "bg_runner", None) is not None:  # style strength: a + s·(a − background)
                if row.bg is None:
                    row.bg = row.bg_runner.prime(row.bg_ids(row.ids))
                own, bg = self.logits[i], row.bg[0][0]
                if bg.numel() < own.numel():  # characters the fine-tuned model added: no contrast for them
                    bg = torch.cat([bg, own[bg.numel():]])
                both = torch.isfinite(own) & torch.isfinite(bg)
                logits[i] = torch.where(both, own + row.strength * (own - bg), own)
            if row.guard is None:
                continue
            if row.guard.bans:
                row.remember(self.logits[i], st.z[i], [c[i] for c in st.c])
            steered_row = row.guard.steer(logits[i], row.tokens_out)
            if steered_row is None:
                row.give_up()
                gone.add(i)
            else:
                logits[i] = steered_row
        return logits, gone

    def advance(self, keep: list[int]) -> int:
        """Keep the rows at the indices `keep` (in order) and step them past what `choose` gave them;
        returns the forward steps taken since `choose` (k, 1, or 0 when every row left)."""
        rows, tokens, steps = self.rows, self._chosen, self._steps
        self._chosen, self._steps = None, 0
        if tokens is not None:  # style strength: the background model steps past the same token
            for i in keep:
                row = rows[i]
                if getattr(row, "bg_runner", None) is not None and row.bg is not None:
                    row.bg = (row.bg_runner.step(torch.tensor(row.bg_ids([tokens[i]])), row.bg[1]), row.bg[1])
        if len(keep) < len(rows):
            if not keep:
                self.rows = []
                self.logits = self.state = None
                return steps
            sel = torch.tensor(keep)
            self.rows = [rows[i] for i in keep]
            self.state = self.state.select(sel)
            if tokens is None:
                self.logits = self.logits.index_select(0, sel)
            else:
                tokens = [tokens[i] for i in keep]
        if tokens is None:
            return steps
        self.logits = self.runner.step(torch.tensor(tokens), self.state)
        for i, row in enumerate(self.rows):  # a banned string: back to the snapshot before it began
            snap = row.guard.rewind if getattr(row, "guard", None) is not None else None
            if snap is not None:
                row.guard.rewind = None
                self.logits[i] = snap.logits
                self.state.z[i] = snap.z
                for c, saved in zip(self.state.c, snap.c):
                    c[i] = saved
        return 1
