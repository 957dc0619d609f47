"""Attribution: whose is this text? Each candidate corpus's judge (judges.py, built from its training split)
scores the text in bits per character; the cheapest wins, and the margin is the runner-up's bits per
character minus the winner's.

A panel is a list of registered corpora (default: every registered corpus in the text's language). It needs
two at least, all known, and of one language unless `force` (a judge of Chinese text scores English
text, but the comparison says nothing about style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..corpora.corpus import Corpus, corpus_info, detect_lang, list_corpora, load_corpus
from ..errors import GhostwriteError
from . import cache

MIN_CHARS = 50  # shorter texts carry too little style to attribute


@dataclass
class Candidate:
    name: str
    corpus: Corpus
    val_fraction: float = cache.DEFAULT_VAL_FRACTION

    @property
    def lang(self) -> str | None:
        return self.corpus.info.get("lang")

    @property
    def author(self) -> str | None:
        return self.corpus.info.get("author")

    def judge(self):
        return cache.judge_for(self.corpus, self.val_fraction)


def check_text(text: str) -> str:
    if not isinstance(text, str) or len(text.strip()) < MIN_CHARS:
        n = len(text.strip()) if isinstance(text, str) else 0
        raise GhostwriteError(f"text too short to attribute: {n} characters (at least {MIN_CHARS})")
    return text


def check_languages(candidates: Sequence[Candidate], force: bool) -> None:
    langs = {c.lang for c in candidates}
    if len(langs) > 1 and not force:
        shown = ", ".join(f"{c.name}: {c.lang or 'unknown'}" for c in candidates)
        raise GhostwriteError(f"the panel mixes languages ({shown}); pass --force to compare them anyway")


def panel(names: Sequence[str] | None, text: str | None = None, force: bool = False) -> list[Candidate]:
    """The candidates: `names` (registered corpora), or every registered corpus in the text's language."""
    if names is None or not [n for n in names if n.strip()]:
        lang = detect_lang(text or "")
        infos = [i for i in list_corpora() if lang is None or i.lang == lang]
        if len(infos) < 2:
            have = ", ".join(i.name for i in infos) or "none"
            raise GhostwriteError(f"attribution needs at least two corpora in the text's language "
                                  f"({lang or 'unknown'}: {have}); name them with --among A,B")
        names = [i.name for i in infos]
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if len(wanted) < 2:
        raise GhostwriteError(f"a panel needs at least two corpora, got {len(wanted)} ({', '.join(wanted)})")
    out = candidates(wanted)
    check_languages(out, force)
    return out


def candidates(names: Sequence[str]) -> list[Candidate]:
    """Registered corpora by name (an unknown one: its one-line error, before any corpus is read)."""
    for n in names:
        corpus_info(n)
    return [Candidate(n, load_corpus(n)) for n in names]


def score(candidates: Sequence[Candidate], text: str) -> dict:
    """Bits per character of `text` under each candidate's judge, best first, the winner and the margin."""
    rows = []
    n = 0
    for c in candidates:
        bits, n = c.judge().bits(text)
        rows.append({"corpus": c.name, "author": c.author, "bits_per_char": bits / max(n, 1)})
    rows.sort(key=lambda r: r["bits_per_char"])
    return {"chars": n, "winner": rows[0]["corpus"], "author": rows[0]["author"],
            "margin": rows[1]["bits_per_char"] - rows[0]["bits_per_char"], "scores": rows}


def attribute(text: str, among: Sequence[str] | None = None, force: bool = False) -> dict:
    """Whose is `text`, among the panel (see `panel`)."""
    check_text(text)
    return score(panel(among, text, force), text)
