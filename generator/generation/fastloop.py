"""Many tokens per call: the sampling loop of `FastLSTM` compiled with TorchScript.

A step of a small LSTM costs far less than the Python around it (a few dozen tensor calls, each a trip
through the interpreter). `run_chunk` samples `k` tokens for every row of a batch in one call: the loop,
the cell, the int8 or fp32 products and the sampling all run in TorchScript's interpreter, and Python
sees the tokens afterwards (request.py feeds them to the stop rules one by one, so a request
still stops at the exact character; at most k - 1 steps past its end are wasted).

It serves the rows whose settings are *plain* (temperature only) or *greedy*; a row with top-k, top-p
or a repetition penalty is chosen in Python, one token at a time. The arithmetic is the one-step path's,
operation for operation (cell, products, softmax, cumulative sum, inverse-CDF search with the request's
own uniform numbers), so a seed gives the same text on either path.

GHOSTWRITE_TORCHSCRIPT=0 turns the compiled loop off (the one-step path serves everything).
"""

from __future__ import annotations

import functools
import warnings
from typing import List, Tuple

import torch
from torch import Tensor

from .. import env


def _cell(gates: Tensor, c: Tensor, h_out: Tensor) -> None:
    """The LSTM cell as `fastlstm._cell_` computes it (g rows doubled: tanh(x) = 2·sigmoid(2x) − 1), in
    place: c, and h into `h_out` (a slice of the state buffer)."""
    s = torch.sigmoid(gates)
    i, f, g, o = s.chunk(4, 1)
    c.mul_(f).addcmul_(i, g, value=2.0).sub_(i)
    torch.mul(o, torch.tanh(c), out=h_out)


def _adjust(logits: Tensor, ex: List[Tensor], on: List[bool]) -> Tensor:
    """The samplers that run before the temperature, row by row, on the raw logits: logit bias, DRY
    (a penalty on the tokens that would extend a repeat, `_dry_penalty`) and the UTF-8 mask (byte pieces
    only form valid UTF-8). `ex` holds every row's state side by side (see `Extras`), `on` says which of
    bias / DRY / UTF-8 any row uses (the others cost nothing)."""
    if on[0]:
        logits = logits + ex[0]
    if on[1]:
        logits = logits - _dry_penalty(ex[1], ex[2], ex[3], logits.size(1))
    if on[2]:  # ex[6][0]: what may come outside a sequence, ex[6][1]: inside one (0 or -inf per token)
        logits = logits + ex[6].index_select(0, ex[5].clamp(max=1))
    return logits


def _dry_penalty(hist: Tensor, match: Tensor, table: Tensor, V: int) -> Tensor:
    """DRY: `match[r, q]` is how long the text ending at position q of row r's history (newest last)
    repeats the text ending now; the token that followed (`hist[r, q + 1]`) would extend the repeat, so
    its logit loses `table[r, length]` (multiplier × base^(length − allowed) from the allowed length on,
    0 below: see extras.RowExtras), the largest over its occurrences. Breakers are kept in the history
    as V (the penalty's spare column), so a repeat never runs across one and a breaker is never penalised."""
    W = hist.size(1)
    pen = table.gather(1, match.narrow(1, 0, W - 1))
    out = torch.zeros(hist.size(0), V + 1, dtype=torch.float32)
    out.scatter_reduce_(1, hist.narrow(1, 1, W - 1), pen, "amax")
    return out.narrow(1, 0, V)


def _track(tok: Tensor, ex: List[Tensor], on: List[bool]) -> None:
    """After each row chose `tok`: DRY's history (a breaker stored as V) and repeat lengths, as new
    tensors in ex[1] and ex[2] (the loop copies them back once per call), and the UTF-8 bytes still
    expected (in place)."""
    if on[1]:
        hist, match = ex[1], ex[2]
        W = hist.size(1)
        col = tok.view(-1, 1)
        grown = match.narrow(1, 0, W - 1) + 1
        grown.masked_fill_(hist.narrow(1, 1, W - 1) != col, 0)
        grown.clamp_(max=ex[3].size(1) - 1)  # a repeat longer than the table takes its last (largest) penalty
        ex[2] = torch.cat([grown, torch.zeros_like(col)], 1)
        ex[1] = torch.cat([hist.narrow(1, 1, W - 1), ex[4].gather(1, col)], 1)
    if on[2]:  # ex[8][n, t]: the continuation bytes still expected after token t when n were
        need = ex[5]
        need.copy_(ex[8].view(-1).index_select(0, need * ex[8].size(1) + tok))


def _choose(logits: Tensor, temps: Tensor, greedy: Tensor, u: Tensor, minlog: Tensor, min_on: bool) -> Tensor:
    """Inverse-CDF sampling row by row (`sampling._plain`), argmax where `greedy`. Always a token of the
    vocabulary: a row whose total is NaN (overflowed) takes its most likely token (`sampling._last_live`).
    min-p (`minlog` = ln(min_p) per row, -inf where off) filters the tempered distribution: a token
    stays when its tempered logit is at least the largest one + ln(min_p)."""
    V = logits.size(1)
    scaled = logits / temps
    if min_on:
        scaled = scaled.masked_fill(scaled < scaled.max(dim=1, keepdim=True)[0] + minlog, float("-inf"))
    cdf = torch.softmax(scaled, dim=-1).cumsum_(-1)
    j = torch.searchsorted(cdf, u.view(-1, 1), right=True).view(-1)
    over = j >= V
    if bool(over.any()):  # u at or above the rounded total: scale it to the total (`_last_live`)
        total = cdf[:, -1:].contiguous()  # (a column slice is strided: searchsorted would copy and warn)
        j2 = torch.searchsorted(cdf, total * u.view(-1, 1), right=True).view(-1)
        j3 = torch.searchsorted(cdf, total, right=False).view(-1)
        j3 = torch.where(j3 < V, j3, torch.argmax(logits, dim=1))
        j = torch.where(over, torch.where(j2 < V, j2, j3), j)
    if bool(greedy.any()):
        j = torch.where(greedy, torch.argmax(logits, dim=1), j)
    return j


def _chunk_int8(logits: Tensor, z: Tensor, cs: List[Tensor], table: Tensor,
                packed: List[torch.classes.quantized.LinearPackedParamsBase], scales: List[float],
                zeros: List[int], temps: Tensor, greedy: Tensor, us: Tensor, k: int,
                ex: List[Tensor], on: List[bool]) -> Tuple[Tensor, Tensor]:
    """k tokens for every row: `packed` holds layer 0's W_hh, then each deeper layer's [W_ih | W_hh],
    then the output layer; `us` (k, rows) the uniform numbers. Updates z (every layer's h side by side)
    and cs in place; returns the tokens (rows, k) and the logits after the last one."""
    L = len(cs)
    H = cs[0].size(1)
    rows = z.size(0)
    out = torch.empty(rows, k, dtype=torch.long)
    op = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32
    ex = list(ex)  # (_track replaces DRY's tensors in this list)
    hist0, match0 = ex[1], ex[2]
    for t in range(k):
        tok = _choose(_adjust(logits, ex, on), temps, greedy, us[t], ex[7], on[3])
        out[:, t] = tok
        _track(tok, ex, on)
        h0 = z[:, 0:H]
        gates = op(h0, scales[0], zeros[0], packed[0])
        gates += table.index_select(0, tok)
        _cell(gates, cs[0], h0)
        for l in range(1, L):
            gates = op(z[:, (l - 1) * H:(l + 1) * H], scales[l], zeros[l], packed[l])
            _cell(gates, cs[l], z[:, l * H:(l + 1) * H])
        logits = op(z[:, (L - 1) * H:L * H], scales[L], zeros[L], packed[L])
    if on[1]:  # DRY's state back into the caller's tensors
        hist0.copy_(ex[1])
        match0.copy_(ex[2])
    return out, logits


def _chunk_fp32(logits: Tensor, z: Tensor, cs: List[Tensor], table: Tensor, weights: List[Tensor],
                biases: List[Tensor], temps: Tensor, greedy: Tensor, us: Tensor, k: int,
                ex: List[Tensor], on: List[bool]) -> Tuple[Tensor, Tensor]:
    """`_chunk_int8` with fp32 products: `weights` / `biases` in the same order (a missing bias is empty)."""
    L = len(cs)
    H = cs[0].size(1)
    rows = z.size(0)
    out = torch.empty(rows, k, dtype=torch.long)
    ex = list(ex)  # (_track replaces DRY's tensors in this list)
    hist0, match0 = ex[1], ex[2]
    for t in range(k):
        tok = _choose(_adjust(logits, ex, on), temps, greedy, us[t], ex[7], on[3])
        out[:, t] = tok
        _track(tok, ex, on)
        h0 = z[:, 0:H]
        gates = torch.mm(h0, weights[0].t())
        gates += table.index_select(0, tok)
        _cell(gates, cs[0], h0)
        for l in range(1, L):
            gates = torch.addmm(biases[l], z[:, (l - 1) * H:(l + 1) * H], weights[l].t())
            _cell(gates, cs[l], z[:, l * H:(l + 1) * H])
        logits = torch.addmm(biases[L], z[:, (L - 1) * H:L * H], weights[L].t())
    if on[1]:  # DRY's state back into the caller's tensors
        hist0.copy_(ex[1])
        match0.copy_(ex[2])
    return out, logits




def enabled() -> bool:
    return env.torchscript()


@functools.lru_cache(maxsize=None)
def compiled(kind: str):
    """The scripted loop (compiled once per process), or None where TorchScript is unavailable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.script is "deprecated" in favour of torch.compile,
            return torch.jit.script(_chunk_int8 if kind == "int8" else _chunk_fp32)  # which needs a compiler
    except Exception:  # an interpreter without TorchScript: the one-step path serves
        return None
