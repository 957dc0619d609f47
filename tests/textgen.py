"""Small texts made here, so the core tests need no downloaded corpus."""

from __future__ import annotations

import random

WORDS = ("the king queen lord lady night day love death sword crown heart blood fair sweet gentle "
         "noble brother sister father mother speak hear see know come go stay fly rest sleep dream").split()


def synthetic_text(n_lines: int = 1500, seed: int = 0) -> str:
    """A small English-like corpus made here, so the core tests need no downloaded text."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        if i % 12 == 0:
            lines.append("")
            lines.append(rng.choice(["KING", "QUEEN", "ROMEO", "JULIET"]) + ":")
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", ",", "!", "?", ";"]))
    return "\n".join(lines) + "\n"


# --- larger synthetic corpora, for tests that need a real vocabulary ----------------------------------
COMMON = ("the and to of a i you my that in is not it me with be his your for this he have as but so what "
          "thy thou all no by shall will we do our are on her him if now they o good more then from").split()
SYLLABLES = ("ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo ga ge go ha he hi ho la le li lo lu "
             "ma me mi mo mu na ne ni no pa pe pi po ra re ri ro ru sa se si so ta te ti to va ve vi wa we "
             "ya yo za zo").split()
CODAS = ("", "", "", "n", "r", "s", "th", "ng", "ld", "st", "nd", "ck")


def _zipf_choices(rng: random.Random, items: list[str], k: int) -> list[str]:
    return rng.choices(items, weights=[1.0 / (r + 1) for r in range(len(items))], k=k)


def english_lexicon(n_words: int = 1200, seed: int = 0) -> list[str]:
    """`n_words` distinct English-like words, most frequent first: real function words, the play words,
    then made-up words of one to three syllables."""
    rng = random.Random(seed)
    words = list(dict.fromkeys(COMMON + WORDS))
    seen = set(words)
    while len(words) < n_words:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3)))) + rng.choice(CODAS)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words[:n_words]


def english_text(n_chars: int = 60_000, n_words: int = 1200, seed: int = 0) -> str:
    """An English-like play of at least `n_chars` characters over `n_words` distinct words with Zipf
    frequencies (so a word vocabulary of hundreds fills up, and SentencePiece finds hundreds of pieces)."""
    rng = random.Random(seed)
    lexicon = english_lexicon(n_words, seed)
    speakers = [w.upper() for w in lexicon[100:112]]
    out: list[str] = []
    size = 0
    while size < n_chars:
        block = [rng.choice(speakers) + ":"]
        for _ in range(rng.randint(1, 6)):
            words = _zipf_choices(rng, lexicon, rng.randint(4, 11))
            words[0] = words[0].capitalize()
            block.append(" ".join(words) + rng.choice(".,!?;:"))
        text = "\n".join(block) + "\n\n"
        out.append(text)
        size += len(text)
    return "".join(out)


def chinese_text(n_chars: int = 20_000, n_alphabet: int = 1200, n_words: int = 2500, seed: int = 0) -> str:
    """A Chinese-like text of at least `n_chars` characters: words of one to three characters drawn from
    `n_alphabet` CJK characters (U+4E00 on: none of the rare ones tests use as unseen, such as 龘 or 靐),
    with Zipf frequencies, in sentences with Chinese punctuation."""
    rng = random.Random(seed)
    alphabet = [chr(0x4E00 + i) for i in range(n_alphabet)]
    lexicon = list(alphabet)  # every character is also a word, so the whole alphabet appears
    rng.shuffle(lexicon)
    seen = set(lexicon)
    while len(lexicon) < n_alphabet + n_words:
        w = "".join(_zipf_choices(rng, alphabet, rng.choice((2, 2, 3))))
        if w not in seen:
            seen.add(w)
            lexicon.append(w)
    lexicon = lexicon[n_alphabet:] + lexicon[:n_alphabet]  # multi-character words are the frequent ones
    out: list[str] = []
    size = 0
    while size < n_chars:
        sentence = "".join(_zipf_choices(rng, lexicon, rng.randint(3, 12)))
        clauses = "，".join([sentence] + ["".join(_zipf_choices(rng, lexicon, rng.randint(2, 8)))
                                        for _ in range(rng.randint(0, 2))])
        text = clauses + rng.choice("。。。！？") + ("\n\n" if rng.random() < 0.2 else "")
        out.append(text)
        size += len(text)
    return "".join(out) + "\n"
