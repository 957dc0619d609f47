"""The samplers of issue 12, measured: their cost on the fast paths, and what they do to the writing.

    .venv/bin/python bench/samplers.py speed    # new defaults vs none, single stream and 16 concurrent
    .venv/bin/python bench/samplers.py sweep    # temperature × min-p × DRY × repetition penalty, per model
    .venv/bin/python bench/samplers.py utf8     # U+FFFD in SentencePiece output, with and without the mask

**speed** (bench/results/samplers-speed.json): one warm char model (bench/.cache/home's `default`, what
bench/generation.py measures) and an sp model; 200-token continuations with no sampler setting, with the
tokenizer's defaults, with min-p alone and with DRY alone (sp: also the UTF-8 mask against no mask),
alternated run by run in one process, so the ratios hold on a busy machine. Single stream: `LoadedModel.generate`, median of N runs. 16 concurrent:
16 threads on `LoadedModel.serve` (the batching engine), aggregate tokens/s, median of N rounds.

**sweep** (bench/results/samplers-sweep.json): models trained for ~60-120 s from ../shared corpora
(tinyshakespeare and Austen char, xiyouji sp; bench/.cache/samplers). For each combination, continuations
of 400 characters from held-out prompts (generator/style/report.py's), scored by the style report's
judges (attribution accuracy among the corpora of the model's language, margin in bits/char, median
longest span copied from the training split) and by the repeat-loop rate: the share of outputs where a
substring of at least 20 characters occurs 3 or more times.

**style** (bench/results/samplers-style.json): style strength (a + s(a − base)) on a model fine-tuned from
another (`ghostwrite train austen --from shakespeare-char`), at several strengths, scored like the sweep.

**utf8** (bench/results/samplers-utf8.json): U+FFFD per 3,000 characters of the sp model's output with the
mask and without it (the same seeds).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import threading
import time

from _common import BENCH, load, machine, median, table, use_home, write_results

PROMPTS = ["ROMEO:\n", "First Citizen:\nBefore we proceed", "KING HENRY:\nO", "The ", "JULIET:\nWhat",
           "MENENIUS:\nI tell you, friends,", "\n", "LADY MACBETH:\n"]


def repeat_loop(text: str, span: int = 20, times: int = 3) -> bool:
    """Whether some substring of `span` characters occurs `times` times or more (overlaps counted)."""
    seen: dict[str, int] = {}
    for i in range(len(text) - span + 1):
        w = text[i : i + span]
        seen[w] = seen.get(w, 0) + 1
        if seen[w] >= times:
            return True
    return False


# ---- speed ----------------------------------------------------------------------------------------------
def _single(lm, settings: dict, n: int, seed: int) -> float:
    t0 = time.perf_counter()
    lm.complete(PROMPTS[seed % len(PROMPTS)], {**settings, "length": n, "unit": "tokens", "seed": seed})
    return n / (time.perf_counter() - t0)


def _concurrent(lm, settings: dict, n: int, rows: int, seed: int) -> float:
    out = [0] * rows

    def work(i):
        g = lm.serve(PROMPTS[i % len(PROMPTS)], {**settings, "length": n, "unit": "tokens", "seed": seed + i})
        for _ in g:
            pass
        out[i] = g.tokens_out

    threads = [threading.Thread(target=work, args=(i,)) for i in range(rows)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(out) / (time.perf_counter() - t0)


def speed(args) -> None:
    import generator
    from generator import registry
    from generator.generation.settings import TOKENIZER_DEFAULTS

    use_home(args.home)
    if registry.latest_version("default") is None:
        sys.exit("no `default` model in bench/.cache/home: run bench/generation.py once (it trains it)")
    models = [("default (char)", generator.load("default"))]
    use_home(None, "samplers")
    for name in ("xiyouji-sp2",):
        if registry.latest_version(name) is not None:
            models.append((f"{name} (sp)", generator.load(name)))
    rows = []
    base = {"temperature": 0.8}
    for label, lm in models:
        kind = lm.tokenizer.kind
        variants = {"defaults": TOKENIZER_DEFAULTS.get(kind, {}), "min_p 0.05": {"min_p": 0.05},
                    "DRY 0.8": {"dry_multiplier": 0.8}}
        if kind == "sp":  # the UTF-8 mask (a fix, always on) against none at all
            variants["UTF-8 mask"] = {}
        for streams in ("single", "16 concurrent"):
            got: dict[str, list[float]] = {v: [] for v in ["none", *variants] + (["no mask"] if kind == "sp" else [])}
            for r in range(args.runs + 2):
                for which in got:
                    s = {**base, **variants.get(which, {})}
                    if which == "no mask":  # the UTF-8 mask off: the byte kinds hidden
                        lm.tokenizer._gw_byte_kinds = None
                    else:
                        lm.tokenizer.__dict__.pop("_gw_byte_kinds", None)
                    v = _single(lm, s, 200, r) if streams == "single" else _concurrent(lm, s, 200, 16, 100 * r)
                    if r >= 2:  # two warm-up rounds
                        got[which].append(v)
            lm.tokenizer.__dict__.pop("_gw_byte_kinds", None)
            n = median(got["none"])
            for which, settings in variants.items():
                w = median(got[which])
                if which == "UTF-8 mask":
                    n = median(got["no mask"])
                rows.append({"model": label, "streams": streams, "with": which, "settings": str(settings or "-"),
                             "none tok/s": n, "with tok/s": w, "ratio": w / n, "runs": len(got[which])})
    md = table("tokens/s, 200-token continuations at temperature 0.8, medians; none = no sampler setting (sp: with "
               "the UTF-8 mask, always on; its own row compares it with no mask); defaults = the tokenizer's defaults "
               "(settings.TOKENIZER_DEFAULTS)", rows,
               ["model", "streams", "with", "settings", "none tok/s", "with tok/s", "ratio", "runs"])
    write_results("samplers-speed", {"machine": machine(), "rows": rows, "table": md, "load_at_end": load()})


# ---- sweep ---------------------------------------------------------------------------------------------
def sweep(args) -> None:
    import generator
    from generator.style import cache, report

    use_home(args.home, "samplers")
    temps = [float(x) for x in args.temperatures.split(",")]
    rows = []
    for name in args.models.split(","):
        lm = generator.load(name)
        # DRY off, DRY with its token-model defaults (allowed length 2), and for a char model a longer
        # allowed repeat (8 characters: two-letter repeats are the language itself, like the penalty's)
        drys = [(0.0, 2), (0.8, 2)] + ([(0.8, 8)] if lm.tokenizer.kind == "char" else [])
        grid = list(itertools.product(temps, [0.0, 0.05], drys, [1.0, 1.15]))
        panel = report.model_panel(lm.card)
        own = panel[0]
        index = cache.index_for(own.corpus, own.val_fraction)
        pairs = report.prompts_for(lm.card, args.prompts, 400)
        for t, mp, (dry, allowed), pen in grid:
            s = {"temperature": t, "min_p": mp, "dry_multiplier": dry, "dry_allowed_length": allowed,
                 "repetition_penalty": pen}
            t0 = time.perf_counter()
            texts = [lm.complete(p, {**s, "length": 400, "unit": "chars", "seed": k}) for k, (p, _) in enumerate(pairs)]
            summary = report._summary(texts, panel, index, own.name)
            rows.append({"model": name, "tokenizer": lm.tokenizer.kind, "temperature": t, "min_p": mp, "dry": dry,
                         "allowed": allowed, "penalty": pen, "loop_rate": statistics.fmean(repeat_loop(x) for x in texts),
                         "accuracy": summary["accuracy"], "margin_bits": summary["margin_bits"],
                         "own_bpc": summary["own_judge_bpc"], "copied_median": summary["longest_copied_median"],
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(rows[-1], flush=True)
    md = table(f"sweep: {args.prompts} held-out prompts × 400 chars per cell", rows,
               ["model", "temperature", "min_p", "dry", "allowed", "penalty", "loop_rate", "accuracy", "margin_bits", "own_bpc",
                "copied_median"])
    write_results("samplers-sweep", {"machine": machine(), "prompts": args.prompts, "rows": rows, "table": md,
                                     "load_at_end": load()})


# ---- style strength ---------------------------------------------------------------------------------
def style(args) -> None:
    """Style strength on a model fine-tuned from another (`train --from`): its continuations contrasted with
    the base model's logits at several strengths, scored like the sweep."""
    import generator
    from generator.style import cache, report

    use_home(args.home, "samplers")
    lm = generator.load(args.models.split(",")[0])
    base = generator.load(f"{lm.card['base_model']}@v{lm.card['base_version']}")
    panel = report.model_panel(lm.card)
    index = cache.index_for(panel[0].corpus, panel[0].val_fraction)
    pairs = report.prompts_for(lm.card, args.prompts, 400)
    rows = []
    for strength in [float(x) for x in args.strengths.split(",")]:
        texts = []
        for k, (p, _) in enumerate(pairs):
            g = lm.generate(p, {"temperature": args.temperature, "length": 400, "unit": "chars", "seed": k})
            if strength:
                g.contrast(base.runner, strength)
            texts.append("".join(g))
        summary = report._summary(texts, panel, index, panel[0].name)
        rows.append({"model": lm.spec, "background": base.spec, "style_strength": strength,
                     "loop_rate": statistics.fmean(repeat_loop(x) for x in texts), "accuracy": summary["accuracy"],
                     "margin_bits": summary["margin_bits"], "own_bpc": summary["own_judge_bpc"],
                     "copied_median": summary["longest_copied_median"]})
        print(rows[-1], flush=True)
    md = table(f"style strength at temperature {args.temperature}: {args.prompts} held-out prompts × 400 chars", rows,
               ["model", "background", "style_strength", "loop_rate", "accuracy", "margin_bits", "own_bpc",
                "copied_median"])
    write_results("samplers-style", {"machine": machine(), "rows": rows, "table": md})


# ---- utf8 ----------------------------------------------------------------------------------------------
def utf8(args) -> None:
    import generator

    use_home(args.home, "samplers")
    lm = generator.load(args.models.split(",")[0])
    out = {}
    for which in ("without mask", "with mask"):
        if which == "without mask":
            lm.tokenizer._gw_byte_kinds = None
        else:
            lm.tokenizer.__dict__.pop("_gw_byte_kinds", None)
        bad = chars = 0
        for k in range(args.prompts):
            text = lm.complete("\n", {"temperature": 1.0, "length": 3000, "seed": k})
            bad += text.count("\ufffd")
            chars += len(text)
        out[which] = {"replacement_chars": bad, "chars": chars, "per_3000": 3000 * bad / max(chars, 1)}
        print(which, out[which], flush=True)
    write_results("samplers-utf8", {"machine": machine(), "model": lm.spec, "results": out})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "sweep", "utf8", "style"])
    ap.add_argument("--home", default=None)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--temperatures", default="0,0.3,0.5,0.8,1.0")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--strengths", default="0,0.5,1,2")
    ap.add_argument("--models", default="shakespeare-char,austen-char,xiyouji-sp2")
    args = ap.parse_args()
    {"speed": speed, "sweep": sweep, "utf8": utf8, "style": style}[args.what](args)


if __name__ == "__main__":
    assert BENCH
    main()
