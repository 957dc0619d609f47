"""Style fidelity and originality (issue 11): does a text sound like its author, and is it its own?

    judges.py       character n-gram models (interpolated Kneser–Ney), one per corpus's training split
    originality.py  a suffix array over a training split: the longest copied span, the copied n-gram share
    cache.py        both built once per corpus and kept with it (rebuilt when its text changes)
    attribution.py  whose is this text, among a panel of corpora
    report.py       a model's style report: attribution of its continuations of held-out prompts, the
                    ceiling on real text, originality; a sweep's best settings
"""
