"""A story's state carried over (issue 14, item 3): time to first token of a turn of a 20,000-character
story through the service, primed from the state the story's last turn left (only the last
continuation and the writer's new line run through the model) against a full re-prime of the whole
story, and against today's 4,000-character context (for reference), in the same run, rounds
interleaved. Each turn's text is checked to be the full re-prime's (same seed).

    .venv/bin/python bench/story.py              # 9 rounds, writes bench/results/story.json
    .venv/bin/python bench/story.py --rounds 3   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time

from _common import corpus, load, machine, median, pct, use_home, write_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", help="data directory (default bench/.cache/home)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--chars", type=int, default=20_000, help="the story's length")
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    home = use_home(a.home)
    info = machine()
    from bot.service import CONTEXT_CHARS, ContinuationService, Request
    from bot.store import Store

    svc = ContinuationService(store=Store(f"sqlite:///{home}/bench-story.db"), default_model=a.model)
    lm = svc.model(a.model)
    text = corpus("tinyshakespeare.txt").read_text(encoding="utf-8")
    settings = {"length": 200, "unit": "chars", "temperature": 0.8}

    def first_token(req: Request) -> tuple[float, str, int]:
        t0 = time.perf_counter()
        st = svc.stream(req)
        first = None
        pieces = []
        for piece in st:
            if first is None:
                first = time.perf_counter() - t0
            pieces.append(piece)
        return first, "".join(pieces), st.result.tokens_in

    first_token(Request("ROMEO:\n", settings={**settings, "seed": 0}))  # warm: engine, store, compiled loop
    rows: dict[str, list[float]] = {"cached": [], "reprimed": [], "context_4000": []}
    same = []
    for r in range(a.rounds):
        story = text[r * 997: r * 997 + a.chars]
        key = f"bench:{r}"
        _, cont, _ = first_token(Request(story, settings={**settings, "seed": r}, story=key))  # the last turn
        story = story + cont + "\nJULIET:\nA word more, good night.\n"
        turn = {**settings, "seed": 1000 + r}
        hits = lm.stories.hits
        runs = [("cached", Request(story, settings=turn, story=key)),
                ("reprimed", Request(story, settings=turn, story=f"bench:fresh:{r}")),
                ("context_4000", Request(story[-CONTEXT_CHARS:], settings=turn))]
        texts = {}
        for name, req in (runs if r % 2 == 0 else runs[::-1]):
            t, out, tokens_in = first_token(req)
            rows[name].append(t)
            texts[name] = out
        assert lm.stories.hits == hits + 1, "the cached turn did not use the kept state"
        same.append(texts["cached"] == texts["reprimed"])
        print(f"round {r + 1}: first token cached {rows['cached'][-1] * 1000:.1f} ms, re-primed "
              f"{rows['reprimed'][-1] * 1000:.1f} ms, 4,000-char context {rows['context_4000'][-1] * 1000:.1f} ms, "
              f"same text: {same[-1]}", flush=True)
    svc.close()
    fig = {name: {"median_ms": round(median(v) * 1000, 1), "p95_ms": round(pct(v, 95) * 1000, 1)}
           for name, v in rows.items()}
    out = {"machine": info, "model": lm.card.get("model"), "int8": lm.int8, "story_chars": a.chars,
           "rounds": a.rounds, "turn": "the last 200-char continuation + a 40-char line, then 200 chars",
           "first_token": fig,
           "reprimed_over_cached": round(median(rows["reprimed"]) / median(rows["cached"]), 1),
           "context4000_over_cached": round(median(rows["context_4000"]) / median(rows["cached"]), 1),
           "same_text_as_full_reprime": all(same), "load_at_end": load(),
           "note": "shared 2-core machine; medians of interleaved rounds, ratios in the same run"}
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1))
    write_results("story", out)


if __name__ == "__main__":
    main()
