"""The style report of a model (`ghostwrite eval MODEL --style`): does it sound like its author, and is it its
own?

From N prompts taken from the held-out (validation) split of the model's corpus — each `prompt_chars` of
real text, evenly spread — the model writes L characters; each continuation is attributed among a panel of
judges (attribution.py: the model's own corpus, trained on the same training split as the model, and the
other corpora of its language or the ones named). The report gives

- accuracy: the share of continuations attributed to the model's own corpus, and the mean margin in bits
  per character (best other judge − own judge: above 0 when its own author wins);
- the ceiling: the same on the real held-out text that follows each prompt (L characters), and the ratio;
- originality (originality.py): per continuation, the longest span copied verbatim from the training split
  and the share of its word 8-grams (Chinese: 12-character spans) found there — median and max — beside
  the same figures for the real passages (what chance overlap looks like).

A sweep repeats the report for each value of one setting and picks the best: the highest accuracy (then
margin) among the values whose median longest copied span stays under ORIGINAL_SPAN characters.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from ..corpora.corpus import list_corpora, load_corpus, split_text
from ..errors import GhostwriteError
from ..generation.settings import SamplingSettings
from . import attribution, cache
from .originality import originality

PROMPTS, LENGTH, PROMPT_CHARS = 50, 400, 300
ORIGINAL_SPAN = 30  # a median longest copied span under this many characters counts as its own text
NO_PANEL = ("no other corpus of its language is registered, so nothing to attribute among: register some "
            "(`ghostwrite corpus get austen-novels`, `ghostwrite corpus add NAME FILE`) or name them with --among")


def model_corpus(card: dict):
    """The model's corpus (checked against the card's sha256) and its validation fraction."""
    ref = card.get("corpus_ref") or card["corpus"]
    corpus = load_corpus(ref)
    if card.get("corpus_sha256") and corpus.sha256 != card["corpus_sha256"]:
        raise GhostwriteError(f"corpus {card['corpus']!r} changed since {card['name']}@v{card['version']} was "
                              "trained: its held-out split is not the one the model never saw")
    return corpus, float(card.get("val_fraction") or cache.DEFAULT_VAL_FRACTION)


def model_panel(card: dict, among: Sequence[str] | None = None, force: bool = False) -> list[attribution.Candidate]:
    """The model's own corpus first (its judge on the model's training split), then the others."""
    corpus, vf = model_corpus(card)
    own = attribution.Candidate(card["corpus"], corpus, vf)
    if among:
        names = [n.strip() for n in among if n.strip() and n.strip() != own.name]
    else:
        names = [i.name for i in list_corpora() if i.name != own.name and i.lang == own.lang]
    out = [own, *attribution.candidates(list(dict.fromkeys(names)))]  # alone: no attribution (see NO_PANEL)
    attribution.check_languages(out, force)
    return out


def prompts_for(card: dict, n: int, length: int, prompt_chars: int = PROMPT_CHARS) -> list[tuple[str, str]]:
    """(prompt, the real text that follows it) pairs, evenly spread over the validation split."""
    corpus, vf = model_corpus(card)
    val = split_text(corpus.text, vf)[1]
    room = len(val) - prompt_chars - length
    if room < 0:
        raise GhostwriteError(f"the validation split of {card['corpus']!r} has {len(val):,} characters: too few "
                              f"for {prompt_chars} of prompt and {length} to compare (use a smaller --length)")
    starts = [room * k // max(n - 1, 1) for k in range(n)] if n > 1 else [room // 2]
    return [(val[s:s + prompt_chars], val[s + prompt_chars:s + prompt_chars + length]) for s in starts]


def _summary(passages: list[str], panel, index, own: str) -> dict:
    hits, margins, longest, shares, own_bpc = 0, [], [], [], []
    for text in passages:
        bpc = {c.name: c.judge().bits_per_char(text) for c in panel}
        own_bpc.append(bpc[own])
        if len(panel) > 1:
            other = min(v for k, v in bpc.items() if k != own)
            margins.append(other - bpc[own])
            hits += bpc[own] < other
        o = originality(index, text, panel[0].lang)
        longest.append(o.longest_copied)
        shares.append(o.copied_share)
    n = max(len(passages), 1)
    alone = len(panel) < 2
    return {"passages": len(passages), "accuracy": None if alone else hits / n,
            "margin_bits": None if alone or not margins else statistics.fmean(margins),
            "own_judge_bpc": statistics.fmean(own_bpc) if own_bpc else None,
            "longest_copied_median": statistics.median(longest) if longest else 0,
            "longest_copied_max": max(longest, default=0),
            "copied_share_median": statistics.median(shares) if shares else 0.0,
            "copied_share_max": max(shares, default=0.0),
            "mean_chars": statistics.fmean(len(t) for t in passages) if passages else 0.0}


def style_report(lm, *, prompts: int = PROMPTS, length: int = LENGTH, settings: dict | None = None,
                 among: Sequence[str] | None = None, force: bool = False, prompt_chars: int = PROMPT_CHARS,
                 panel=None, progress: Callable[[int, int], None] | None = None) -> dict:
    """The style report of the loaded model `lm` (see the module's docstring)."""
    t0 = time.perf_counter()
    card = lm.card
    panel = panel or model_panel(card, among, force)
    own = panel[0]
    pairs = prompts_for(card, prompts, length, prompt_chars)
    base = dict(settings or {})
    written = []
    for k, (prompt, _) in enumerate(pairs):
        s = SamplingSettings.from_dict({**base, "length": length, "unit": "chars",
                                        "seed": base["seed"] + k if base.get("seed") is not None else k})
        written.append(lm.complete(prompt, s))
        if progress:
            progress(k + 1, len(pairs))
    index = cache.index_for(own.corpus, own.val_fraction)
    gen = _summary(written, panel, index, own.name)
    real = _summary([r for _, r in pairs], panel, index, own.name)
    shown = {k: v for k, v in SamplingSettings.from_dict(base).to_dict().items() if k not in ("length", "unit", "seed")}
    return {"model": lm.spec, "corpus": own.name, "panel": [c.name for c in panel], "prompts": len(pairs),
            "length": length, "prompt_chars": prompt_chars, "settings": shown, "generated": gen, "real": real,
            "ratio": gen["accuracy"] / real["accuracy"] if real["accuracy"] else None,
            "note": NO_PANEL if len(panel) < 2 else None,
            "original": gen["longest_copied_median"] < ORIGINAL_SPAN,
            "seconds": round(time.perf_counter() - t0, 2), "samples": written[:3]}


def best(reports: Sequence[dict]) -> dict | None:
    """The report whose settings scored best on attribution with originality kept, or None."""
    kept = [r for r in reports if r["original"] and r["generated"]["accuracy"] is not None]
    if not kept:
        return None
    return max(kept, key=lambda r: (r["generated"]["accuracy"], r["generated"]["margin_bits"]))


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def card_figures(report: dict, swept: Sequence[dict] = ()) -> dict:
    """What the model card keeps (`style`): the figures, the settings they were measured with, and — after a
    sweep — the best settings, which generation then uses as this model's defaults."""
    g, r = report["generated"], report["real"]
    out = {"accuracy": _round(g["accuracy"]), "margin_bits": _round(g["margin_bits"]), "ceiling": _round(r["accuracy"]),
           "ratio": _round(report["ratio"]), "own_judge_bpc": _round(g["own_judge_bpc"]),
           "real_own_judge_bpc": _round(r["own_judge_bpc"]),
           "longest_copied_median": g["longest_copied_median"], "longest_copied_max": g["longest_copied_max"],
           "copied_share_median": round(g["copied_share_median"], 4), "panel": report["panel"],
           "prompts": report["prompts"], "length": report["length"], "settings": report["settings"],
           "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if swept:
        chosen = best(swept)
        varied = sorted({k for s in swept for k, v in s["settings"].items() if v != swept[0]["settings"][k]})
        out["sweep"] = [{"settings": {k: s["settings"][k] for k in varied}, "accuracy": _round(s["generated"]["accuracy"]),
                         "longest_copied_median": s["generated"]["longest_copied_median"]} for s in swept]
        out["defaults"] = {k: chosen["settings"][k] for k in varied} if chosen else {}
    return out
