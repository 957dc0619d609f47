"""`FastLSTM`: the inference-only copy of an `LSTMLanguageModel` that generation steps through.

- the first layer's input projection is a table (embedding × W_ih + biases, one row per token), so a
  step starts with a row lookup instead of a matrix product;
- on the CPU the recurrent and output matrices are int8 (per-row scales), multiplied by fbgemm with the
  activations quantized at a *fixed* scale: LSTM hidden states lie in (-1, 1), so no per-call min/max is
  needed, and each row of a batch is computed exactly as it would be alone (integer sums; the fp32
  dequantisation is elementwise). A request's text therefore never depends on what else is batched
  with it (engine.py);
- `run_chunk` samples many tokens per call in a TorchScript loop (fastloop.py).
"""

from __future__ import annotations

import functools
import os
import warnings

import torch
from torch.nn import functional as F

from ..device import cpu_flags
from ..model import LSTMLanguageModel
from . import extras, fastloop

PRIME_CHUNK = 512
TABLE_LIMIT = 1 << 24  # floats (64 MiB): above this the first layer multiplies embeddings instead

# ---- int8 / fp32 matrix products ------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _full_range_activations() -> bool:
    """8-bit activations where the CPU has VNNI (int32 accumulation, no saturation); 7-bit elsewhere,
    as PyTorch's x86 default does, because AVX2's u8×s8 pair sums saturate at 16 bits."""
    env = os.environ.get("GHOSTWRITE_INT8_REDUCE_RANGE")
    if env is not None:
        return env.strip() in ("0", "false", "no")
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def int8_available() -> bool:
    try:
        return hasattr(torch.ops.quantized, "linear_with_input_q_dq_qweight_dq_output_fp32") and \
            "fbgemm" in torch.backends.quantized.supported_engines
    except (RuntimeError, AttributeError):
        return False


def row_scales(w: torch.Tensor) -> torch.Tensor:
    return (w.abs().amax(dim=1) / 127.0).clamp_min(1e-10).double()


class Int8Linear:
    """y = x·Wᵀ + b with W int8 (one scale per output row) and x quantized at a fixed scale to cover
    [-x_max, x_max]. Integer accumulation: row i of the result depends on row i of x only."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, x_max: float = 1.0,
                 scales: torch.Tensor | None = None):
        w = weight.detach().float().contiguous()
        levels = 127 if _full_range_activations() else 63
        self.x_scale = float(max(x_max, 1e-6)) / levels
        self.x_zero = levels + 1  # uint8 zero point: [-levels, levels] + zero fits 0..255 (0..127)
        if scales is None:
            scales = row_scales(w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qw = torch.quantize_per_channel(w, scales, torch.zeros(w.size(0), dtype=torch.long), 0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(
                qw, None if bias is None else bias.detach().float().contiguous())
        self.op = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32.default

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, self.x_scale, self.x_zero, self.packed)


class Fp32Linear:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, x_max: float = 1.0, scales=None):
        self.w = weight.detach().float().contiguous()
        self.b = None if bias is None else bias.detach().float().contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w, self.b)


class StepState:
    """The recurrent state of `rows` sequences: every layer's h side by side in one buffer `z`
    (rows, layers × hidden), so that layer l's input [h_{l-1}, h_l] is the slice z[:, (l-1)H:(l+1)H]
    and needs no copy; every layer's c; and the scratch buffers a step writes into (a step allocates
    almost nothing). `FastLSTM.step` updates it in place; `select` and `cat` make new states when rows
    leave or join a batch."""

    __slots__ = ("z", "c", "h", "s", "t", "rows", "H")

    def __init__(self, h: list[torch.Tensor], c: list[torch.Tensor]):
        self.rows, self.H = h[0].shape
        H = self.H
        self.z = torch.cat([x.reshape(self.rows, H) for x in h], dim=1)
        self.c = [x.reshape(self.rows, H).clone() for x in c]
        self.h = [self.z[:, l * H : (l + 1) * H] for l in range(len(h))]
        self.s, self.t = [], []
        for _ in h:
            S = torch.empty(self.rows, 4 * H, device=self.z.device)
            self.s.append((S, *S.chunk(4, 1)))
            self.t.append(torch.empty(self.rows, H, device=self.z.device))

    def layer_input(self, l: int) -> torch.Tensor:
        return self.z[:, (l - 1) * self.H : (l + 1) * self.H]

    def select(self, rows: torch.Tensor) -> "StepState":
        return StepState([h.index_select(0, rows) for h in self.h], [c.index_select(0, rows) for c in self.c])

    @staticmethod
    def cat(states: list["StepState"]) -> "StepState":
        L = len(states[0].h)
        return StepState([torch.cat([s.h[l] for s in states]) for l in range(L)],
                         [torch.cat([s.c[l] for s in states]) for l in range(L)])


def _cell_(gates: torch.Tensor, c: torch.Tensor, sbuf, t: torch.Tensor, h_out: torch.Tensor) -> None:
    """The LSTM cell, in place. The g rows of every weight and bias were doubled at load time, so one
    sigmoid serves all four gates: tanh(x) = 2·sigmoid(2x) − 1, i.e. c = f·c + i·(2·s_g − 1)."""
    S, i, f, g, o = sbuf
    torch.sigmoid(gates, out=S)
    c.mul_(f).addcmul_(i, g, value=2.0).sub_(i)
    torch.tanh(c, out=t)
    torch.mul(o, t, out=h_out)


class FastLSTM(torch.nn.Module):
    """Inference copy of an `LSTMLanguageModel`: `step(tokens, state)` for one token per row, and
    `forward(idx, hidden)` (same signature as the model's) for priming and scoring.

    A step costs one matrix product per layer: layer 0 adds a table row to W_hh·h; a deeper layer
    multiplies [W_ih | W_hh] by [h_{l-1}, h_l] at once. `forward` multiplies a whole layer's inputs in
    one product and then runs the recurrence; both use the same int8 values and scales."""

    def __init__(self, model: LSTMLanguageModel, int8: bool, banned: int | None = None):
        super().__init__()
        c = model.config
        self.int8 = bool(int8)
        self.L, self.H, self.V = c.num_layers, c.hidden_size, c.vocab_size
        self.config = c
        H = self.H
        lin = Int8Linear if self.int8 else Fp32Linear
        p = {n: t.detach().float().clone() for n, t in model.lstm.named_parameters()}
        for t in p.values():  # see _cell_: the g gate computes 2x so that sigmoid gives its tanh
            t[2 * H : 3 * H] *= 2.0
        emb = model.embed.weight.detach().float()
        b0 = p["bias_ih_l0"] + p["bias_hh_l0"]
        if self.V * 4 * H <= TABLE_LIMIT:
            self.table = torch.addmm(b0, emb, p["weight_ih_l0"].t()).contiguous()
            self.emb, self.in0 = None, None
        else:
            self.table = None
            self.emb = emb.contiguous()
            self.in0 = lin(p["weight_ih_l0"], b0, x_max=float(emb.abs().max()))
        self.hh = [lin(p["weight_hh_l0"], None)]
        self.ih: list = [None]
        self.fused: list = [None]
        for l in range(1, self.L):
            w_ih, w_hh = p[f"weight_ih_l{l}"], p[f"weight_hh_l{l}"]
            bias = p[f"bias_ih_l{l}"] + p[f"bias_hh_l{l}"]
            w = torch.cat([w_ih, w_hh], dim=1)
            scales = row_scales(w)  # shared, so the split and fused products hold the same int8 values
            self.fused.append(lin(w, bias, scales=scales))
            self.ih.append(lin(w_ih, bias, scales=scales))
            self.hh.append(lin(w_hh, None, scales=scales))
        head_bias = model.head.bias.detach().float().clone()
        if banned is not None:  # generation never writes this token (the unknown token)
            head_bias[banned] = float("-inf")
        self.head = lin(model.head.weight, head_bias)
        self.device = emb.device
        products = [self.hh[0], *self.fused[1:], self.head]  # what the compiled loop multiplies, in order
        if self.int8:
            self._loop_args = ([m.packed for m in products], [m.x_scale for m in products],
                               [m.x_zero for m in products])
        else:
            none = torch.empty(0)
            self._loop_args = ([m.w for m in products], [none if m.b is None else m.b for m in products])

    def init_state(self, rows: int) -> StepState:
        z = torch.zeros(rows, self.H, device=self.device)
        return StepState([z] * self.L, [z] * self.L)

    def _input0(self, idx: torch.Tensor) -> torch.Tensor:
        if self.table is not None:
            return self.table.index_select(0, idx)
        return self.in0(self.emb.index_select(0, idx))

    def step(self, tokens: torch.Tensor, state: StepState) -> torch.Tensor:
        """tokens: (rows,) int64. Advances `state` in place by one token per row and returns the
        logits for the next one (rows, vocab)."""
        h = state.h[0]
        gates = self.hh[0](h)
        gates += self._input0(tokens)
        _cell_(gates, state.c[0], state.s[0], state.t[0], h)
        for l in range(1, self.L):
            h = state.h[l]
            _cell_(self.fused[l](state.layer_input(l)), state.c[l], state.s[l], state.t[l], h)
        return self.head(h)

    def run_chunk(self, logits: torch.Tensor, state: StepState, procs: list, k: int):
        """Sample k tokens for every row (`procs[i]` chooses row i) and step past each, in one compiled
        call (fastloop.py). Returns (tokens (rows, k), logits after the last one), or None where
        the compiled loop cannot serve: a row with top-k, top-p or a repetition penalty, a first layer
        without a table, TorchScript off or missing. `state` is advanced in place."""
        if self.table is None or not fastloop.enabled() or not all(p.plain or p.greedy for p in procs):
            return None
        fn = fastloop.compiled("int8" if self.int8 else "fp32")
        if fn is None:
            return None
        temps = torch.cat([p.temp for p in procs]) if len(procs) > 1 else procs[0].temp
        greedy = torch.tensor([p.greedy for p in procs])
        us = torch.tensor([p.uniforms(k) if p.plain else [0.0] * k for p in procs], dtype=torch.float32).t().contiguous()
        rows = [p.extras for p in procs]
        ex, on = extras.stack(rows)  # min-p, logit bias, DRY, UTF-8: in the loop too
        got = fn(logits, state.z, state.c, self.table, *self._loop_args, temps, greedy, us, k, ex, on)
        extras.split(rows, ex, k)
        return got

    def forward(self, idx: torch.Tensor, hidden=None, targets: torch.Tensor | None = None):
        """idx (batch, time) → (logits (batch, time, vocab), (h, c) each (layers, batch, hidden), loss)."""
        B, T = idx.shape
        H, dev = self.H, idx.device
        if hidden is None:
            hidden = (torch.zeros(self.L, B, H, device=dev), torch.zeros(self.L, B, H, device=dev))
        xs = self._input0(idx.t().reshape(-1)).view(T, B, 4 * H)  # time-major: xs[t] is contiguous
        hs, cs = [], []
        out = None
        for l in range(self.L):
            if l:
                xs = self.ih[l](out.view(T * B, H)).view(T, B, 4 * H)
            work = StepState([hidden[0][l]], [hidden[1][l]])
            h, c, sbuf, tbuf = work.h[0], work.c[0], work.s[0], work.t[0]
            out = torch.empty(T, B, H, device=dev)
            hh = self.hh[l]
            for x_t, h_t in zip(xs.unbind(0), out.unbind(0)):
                gates = hh(h)
                gates += x_t
                _cell_(gates, c, sbuf, tbuf, h_t)
                h = h_t
            hs.append(h)
            cs.append(c)
        logits = self.head(out.view(T * B, H)).view(T, B, self.V).transpose(0, 1)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.V), targets.reshape(-1))
        return logits, (torch.stack(hs), torch.stack(cs)), loss

    def prime(self, ids: list[int], hidden=None) -> tuple[torch.Tensor, StepState]:
        """Run a prompt through the network: (logits after its last token (1, vocab), its state). From
        `hidden` ((h, c), each (layers, 1, hidden)) when given: a story's state carried over (stories.py);
        the result is the one of priming everything before it too, bit for bit."""
        for start in range(0, len(ids), PRIME_CHUNK):
            x = torch.tensor([ids[start : start + PRIME_CHUNK]], dtype=torch.long, device=self.device)
            logits, hidden, _ = self(x, hidden)
        return logits[:, -1].contiguous(), StepState(list(hidden[0]), list(hidden[1]))


def quantize_int8(model: LSTMLanguageModel) -> FastLSTM:
    """The int8 inference copy of `model` (what the CPU serves when the card allows it)."""
    return FastLSTM(model, int8=True)
