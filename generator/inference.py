"""A loaded model that writes: `generator.load(name)` → `LoadedModel.generate(prompt, settings)`.

`generate` returns a `Generation`, an iterator of text pieces as they are produced: the prompt primes
the LSTM's state in one pass, then each step samples one token, decodes what is printable and stops at
the exact unit boundary asked for. Closing the iterator (or breaking out of the loop) stops the work.

Generation runs on `FastLSTM`, an inference-only copy of the network built for one token at a time:
- the first layer's input projection is a table (embedding × W_ih + biases, one row per token), so a
  step starts with a row lookup instead of a matrix product;
- on the CPU the recurrent and output matrices are int8 (per-row scales), multiplied by fbgemm with the
  activations quantized at a *fixed* scale: LSTM hidden states lie in (-1, 1), so no per-call min/max is
  needed, and each row of a batch is computed exactly as it would be alone (integer sums; the fp32
  dequantisation is elementwise). A request's text therefore never depends on what else is batched
  with it (generator/batching.py).
int8 is the CPU default when the model card says it stays within 0.02 bits/char of fp32 on the
validation split (checked by the trainer with this same code); `quantize=False` keeps fp32.

Sampling draws one uniform number per token from the request's own `torch.Generator` and inverts the
cumulative distribution (no sort unless top-p asks for one), so a seed reproduces a text exactly.
"""

from __future__ import annotations

import functools
import math
import os
import secrets
import warnings

import torch
from torch.nn import functional as F

from . import checkpoint, registry
from .device import configure_cpu
from .errors import GhostwriteError
from .model import LSTMLanguageModel, ModelConfig
from .sampling import SamplingSettings, StopRule, check_prompt, token_cap
from .tokenizers import tokenizer_from_dict

CONTEXT_CHARS = 4_000  # how much of a long prompt (a growing story) primes the state
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
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            flags = f.read(1 << 16)
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags or "amx_int8" in flags


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

    def prime(self, ids: list[int]) -> tuple[torch.Tensor, StepState]:
        """Run a prompt through the network: (logits after its last token (1, vocab), its state)."""
        hidden = None
        for start in range(0, len(ids), PRIME_CHUNK):
            x = torch.tensor([ids[start : start + PRIME_CHUNK]], dtype=torch.long, device=self.device)
            logits, hidden, _ = self(x, hidden)
        return logits[:, -1].contiguous(), StepState(list(hidden[0]), list(hidden[1]))


def quantize_int8(model: LSTMLanguageModel) -> FastLSTM:
    """The int8 inference copy of `model` (what the CPU serves when the card allows it)."""
    return FastLSTM(model, int8=True)


def build_model(state: dict, meta: dict) -> LSTMLanguageModel:
    model = LSTMLanguageModel(ModelConfig.from_dict(meta["model"]))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise GhostwriteError(f"checkpoint does not match its model card: {str(e).splitlines()[0]}") from None
    return model.eval()


# ---- sampling -------------------------------------------------------------------------------------
class LogitsProcessor:
    """One request's token choice: repetition penalty, temperature, top-k, top-p, and its own random
    stream (`settings.seed`). `sample_rows` chooses for many requests at once; a row's choice depends
    only on its own logits and its own stream."""

    def __init__(self, settings: SamplingSettings, vocab_size: int, window: int = 64, banned: int | None = None):
        self.s = settings
        self.banned = banned  # the unknown token: a placeholder for input, never something to write
        self.window = window
        self.vocab_size = vocab_size
        self.recent: list[int] = []
        self.counts = torch.zeros(vocab_size, dtype=torch.int32) if settings.repetition_penalty != 1.0 else None
        self.generator = torch.Generator().manual_seed(int(settings.seed or 0))
        self._u: list[float] = []
        self.greedy = settings.temperature == 0 and self.counts is None
        self.plain = settings.temperature > 0 and self.counts is None and not (
            settings.top_k and settings.top_k < vocab_size) and settings.top_p >= 1.0
        self.temp = torch.tensor([[settings.temperature or 1.0]])
        self.temp1 = self.temp.view(1)

    def uniform(self) -> float:
        if not self._u:
            # float32 values (exact as Python floats), so every sampling path compares the same number
            self._u = torch.rand(256, dtype=torch.float32, generator=self.generator).tolist()[::-1]
        return self._u.pop()

    def observe(self, token: int) -> None:
        if self.counts is None:
            return
        self.recent.append(token)
        self.counts[token] += 1
        if len(self.recent) > self.window:
            self.counts[self.recent.pop(0)] -= 1

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits.float().reshape(1, -1).clone()
        if self.banned is not None:
            logits[:, self.banned] = float("-inf")
        return sample_rows(logits, [self])[0]

    def choose(self, row: torch.Tensor) -> int:
        """The general path for one row (already masked): penalty, temperature, top-k, top-p."""
        s = self.s
        logits = row
        if self.counts is not None:
            seen = self.counts > 0
            pen = torch.where(logits > 0, logits / s.repetition_penalty, logits * s.repetition_penalty)
            logits = torch.where(seen, pen, logits)
        if s.temperature == 0:
            return int(torch.argmax(logits))
        logits = logits / s.temperature
        idx = None
        if s.top_k and s.top_k < logits.numel():
            logits, idx = torch.topk(logits, s.top_k)  # sorted, largest first
        if s.top_p < 1.0:
            if idx is None:
                logits, idx = torch.sort(logits, descending=True)
            probs = torch.softmax(logits, dim=-1)
            keep = torch.cumsum(probs, dim=-1) - probs < s.top_p  # always keeps the most likely token
            logits = logits.masked_fill(~keep, float("-inf"))
        cdf = torch.softmax(logits, dim=-1).cumsum_(-1)
        u = self.uniform()
        j = int(torch.searchsorted(cdf, u, right=True))
        if j >= cdf.numel():
            j = _last_live(cdf, u)
        return int(idx[j]) if idx is not None else j


def sample_rows(logits: torch.Tensor, procs: list[LogitsProcessor]) -> list[int]:
    """Next token for each row of `logits` (rows, vocab), row i by `procs[i]`. The banned (unknown)
    token is expected at -inf already: the generation runner's output bias puts it there.

    Rows with plain settings (temperature only) share one softmax / cumsum / searchsorted; greedy rows
    one argmax; the others take `LogitsProcessor.choose`. Every one of these is computed row by row,
    so the result for a row is the same whatever the other rows are."""
    n = len(procs)
    if n == 1:
        p = procs[0]
        if p.plain:  # the same arithmetic as _plain, on one row: six small ops
            V = logits.size(-1)
            cdf = torch.softmax(logits.view(V) / p.temp1, dim=-1).cumsum_(-1)
            u = p.uniform()
            j = int(torch.searchsorted(cdf, u, right=True))
            return [j if j < V else _last_live(cdf, u)]
        if p.greedy:
            return [int(torch.argmax(logits[0]))]
        return [p.choose(logits[0])]
    out: list[int | None] = [None] * n
    plain = [i for i, p in enumerate(procs) if p.plain]
    if plain:
        rows = logits if len(plain) == n else logits.index_select(0, torch.tensor(plain))
        temps = torch.cat([procs[i].temp for i in plain])
        for i, t in zip(plain, _plain(rows, temps, [procs[i].uniform() for i in plain])):
            out[i] = t
    if len(plain) < n:
        greedy = [i for i, p in enumerate(procs) if p.greedy]
        if greedy:
            best = torch.argmax(logits.index_select(0, torch.tensor(greedy)), dim=1).tolist()
            for i, t in zip(greedy, best):
                out[i] = t
        for i, p in enumerate(procs):
            if out[i] is None:
                out[i] = p.choose(logits[i])
    return out  # type: ignore[return-value]


def _plain(rows: torch.Tensor, temps: torch.Tensor, us: list[float]) -> list[int]:
    """Inverse-CDF sampling, row by row: the first token whose cumulative probability exceeds u."""
    cdf = torch.softmax(rows / temps, dim=-1).cumsum_(-1)
    picked = torch.searchsorted(cdf, torch.tensor(us, dtype=torch.float32).view(-1, 1), right=True).view(-1).tolist()
    V = rows.size(1)
    for r, j in enumerate(picked):  # cdf[j] > u >= cdf[j-1]: token j has probability > 0
        if j >= V:
            picked[r] = _last_live(cdf[r], us[r])
    return picked


def _last_live(cdf: torch.Tensor, u: float) -> int:
    """u at or above the (rounded) total: scale it to the total instead."""
    j = int(torch.searchsorted(cdf, cdf[-1:] * u, right=True))
    return j if j < cdf.numel() else int(torch.searchsorted(cdf, cdf[-1:], right=False))


# ---- one request's output ---------------------------------------------------------------------------
class Output:
    """Text bookkeeping shared by `Generation` and batched generations: decodes tokens as they come and
    finds the exact stop. After it ends: `.text`, `.tokens_in`, `.tokens_out`, `.seed`."""

    def _start(self, lm, prompt: str, settings: SamplingSettings) -> list[int]:
        if settings.seed is None:
            settings = SamplingSettings(**{**settings.to_dict(), "seed": secrets.randbits(31)})
        self.lm, self.prompt, self.settings = lm, prompt, settings
        self.seed = settings.seed
        self.text = ""
        self.tokens_out = 0
        tok = lm.tokenizer
        context = prompt[-CONTEXT_CHARS:] or "\n"
        ids = tok.encode(context) or [tok.unk_id]
        self.tokens_in = len(ids)
        self.proc = LogitsProcessor(settings, tok.vocab_size, banned=tok.unk_id)
        for t in ids[-self.proc.window:]:
            self.proc.observe(t)
        self._stop = StopRule(settings.unit, settings.length)
        self._decoder = tok.stream_decoder()
        self._cap = token_cap(settings)
        self._by_tokens = settings.unit == "tokens"
        return ids

    def _emit(self, token: int) -> tuple[str, bool]:
        """Take one sampled token: (text that became printable, whether the output is complete)."""
        self.proc.observe(token)
        self.tokens_out += 1
        n = self.tokens_out
        last = n >= self._cap or (self._by_tokens and n >= self.settings.length)
        piece = self._decoder.feed(token)
        if last:
            piece += self._decoder.flush()
        if piece:
            before = len(self.text)
            self.text += piece
            cut = self._stop.feed(self.text)
            if cut is not None:
                self.text = self.text[:cut]
                return self.text[before:], True
        return piece, last


class Generation(Output):
    """Iterator of text pieces, one request on the calling thread."""

    def __init__(self, lm: "LoadedModel", prompt: str, settings: SamplingSettings):
        self._ids = self._start(lm, prompt, settings)
        self._it = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    @torch.inference_mode()
    def _run(self):
        runner, proc = self.lm.runner, self.proc
        logits, state = runner.prime(self._ids)
        procs = [proc]
        x = torch.empty(1, dtype=torch.long)
        while True:
            nxt = sample_rows(logits, procs)[0]
            piece, done = self._emit(nxt)
            if piece:
                yield piece
            if done:
                return
            x[0] = nxt
            logits = runner.step(x, state)


class LoadedModel:
    def __init__(self, name: str, version: int, card: dict, model: LSTMLanguageModel, tokenizer, quantize="auto"):
        self.name, self.version, self.card = name, version, card
        self.tokenizer = tokenizer
        self.fp32 = model
        on_cpu = model.embed.weight.device.type == "cpu"
        use_int8 = card.get("int8_ok", False) if quantize == "auto" else bool(quantize)
        use_int8 = use_int8 and on_cpu and int8_available()
        self.int8 = use_int8
        self.runner = FastLSTM(model, int8=use_int8, banned=tokenizer.unk_id)  # what generation steps through
        self._scorer = None
        self._engine = None
        import threading

        self._engine_lock = threading.Lock()

    @property
    def model(self) -> torch.nn.Module:
        """What scoring runs (`ghostwrite eval`): the fp32 model, or its int8 copy when serving int8."""
        if not self.int8:
            return self.fp32
        if self._scorer is None:
            self._scorer = FastLSTM(self.fp32, int8=True)
        return self._scorer

    @property
    def spec(self) -> str:
        return f"{self.name}@v{self.version}"

    def generate(self, prompt: str, settings: SamplingSettings | dict | None = None) -> Generation:
        if not isinstance(settings, SamplingSettings):
            settings = SamplingSettings.from_dict(settings)
        return Generation(self, check_prompt(prompt), settings.validate())

    def complete(self, prompt: str, settings=None) -> str:
        return "".join(self.generate(prompt, settings))

    def engine(self):
        """This model's batching engine (generator/batching.py), started on first use."""
        with self._engine_lock:
            if self._engine is None:
                from .batching import BatchEngine

                self._engine = BatchEngine(self)
            return self._engine

    def serve(self, prompt: str, settings: SamplingSettings | dict | None = None):
        """Like `generate`, but stepped together with every other request on this model: one forward
        per token for all of them. Same iterator interface and, for the same seed, the same text."""
        if not isinstance(settings, SamplingSettings):
            settings = SamplingSettings.from_dict(settings)
        return self.engine().submit(check_prompt(prompt), settings.validate())


def load(spec: str, version: int | None = None, device: str = "cpu", quantize="auto") -> LoadedModel:
    """Load `NAME` (newest version), `NAME@vN`, or NAME with `version`. Models trained on a GPU load
    on the CPU: every tensor is mapped to `device` on the way in."""
    name, version = registry.resolve(spec, version)
    folder = registry.model_dir(name, version)
    card = registry.read_card(name, version)
    state, meta = checkpoint.load(folder / "model.pt", map_location=device)
    try:
        import json

        tokenizer = tokenizer_from_dict(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as e:
        raise GhostwriteError(f"unreadable tokenizer for {name}@v{version}: {e}") from None
    if torch.device(device).type == "cpu":
        configure_cpu()
    else:
        quantize = False
    model = build_model(state, meta).to(device)
    with torch.inference_mode(False):
        return LoadedModel(name, version, card, model, tokenizer, quantize=quantize)
