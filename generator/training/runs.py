"""A training run on disk: `<home>/runs/NAME/` from corpus to published model.

`prepare` turns a corpus into the run's inputs: the train/validation split, the tokenizer (trained on
the training split only, or the base model's when fine-tuning) and the two token files. `publish`
registers the best weights as a new version with its card, curve (JSON) and loss plot (PNG).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import checkpoint, registry
from ..corpora.corpus import load_corpus, split_text
from ..errors import GhostwriteError
from ..paths import atomic_write_bytes, atomic_write_text, runs_dir
from ..tokenizers import tokenizer_from_dict, train_tokenizer
from ..tokenizers.char import char_counts
from .data import iter_text_file, read_tokens, text_chunks, write_tokens
from .runlock import RunLock


@dataclass
class Run:
    dir: Path
    meta: dict
    train_tokens: int
    val_text_len: int
    base_state: dict | None = None
    lock: RunLock | None = None  # see prepare


STREAM_BYTES = 64 << 20  # a corpus file larger than this is prepared streaming from disk, never read whole


def check_base_options(cfg) -> None:
    """`--from MODEL` keeps the base's tokenizer and shape: an option that would change them is refused,
    never ignored."""
    bname, bver = registry.resolve(cfg.base)
    kind = registry.read_card(bname, bver)["tokenizer"]["kind"]
    if cfg.tokenizer is not None and cfg.tokenizer != kind:
        raise GhostwriteError(f"--from {bname}@v{bver} keeps its {kind} tokenizer, so --tokenizer {cfg.tokenizer} "
                              "cannot apply: leave it out, or train a new model without --from")
    shape = {"--vocab-size": cfg.vocab_size, "--hidden-size": cfg.hidden_size, "--emb-size": cfg.emb_size,
             "--layers": cfg.num_layers, "--preset": None if cfg.preset == "auto" else cfg.preset}
    given = [k for k, v in shape.items() if v is not None]
    if given:
        raise GhostwriteError(f"--from {bname}@v{bver} keeps its vocabulary and shape, so {', '.join(given)} "
                              "cannot apply: leave them out, or train a new model without --from")


def load_base(cfg, train_counts: Callable[[], dict[str, int]]):
    """`--from MODEL`: its tokenizer, its weights and what the run records of it. A char or word tokenizer
    gains the characters of the training split it lacks (appended, so every base id stays) and the weights
    rows for them (model.grow_vocab): fine-tuning never trains on the unknown symbol. SentencePiece keeps
    its vocabulary: byte fallback spells an unseen character as its UTF-8 byte pieces, never unknown."""
    from ..model import ModelConfig, grow_vocab

    bname, bver = registry.resolve(cfg.base)
    bdir = registry.model_dir(bname, bver)
    tok = tokenizer_from_dict(json.loads((bdir / "tokenizer.json").read_text(encoding="utf-8")))
    state, bm = checkpoint.load(bdir / "model.pt")
    checkpoint.check_model_set(state.get("model"), bm, tok, registry.read_card(bname, bver),
                               f"--from {bname}@v{bver}")
    weights, base_vocab = state["model"], tok.vocab_size
    if hasattr(tok, "with_chars"):
        counts = train_counts()
        tok = tok.with_chars(sorted(counts, key=lambda c: (-counts[c], ord(c))))  # the commonest get the first ids
        weights = grow_vocab(weights, ModelConfig.from_dict(bm["model"]), tok.vocab_size, seed=cfg.seed)
    return tok, weights, {"base_model": bname, "base_version": bver, "base_model_config": bm["model"],
                          "base_vocab_size": base_vocab}


def _claim(cfg, name: str, meta_path: Path, claimed: list | None) -> None:
    """Before anything of the run is written: its lock (`claimed` is None on DDP ranks other than 0, which
    read what rank 0 prepared under rank 0's lock); with --resume, a run to resume (else nothing is
    written at all), and the registry's leftovers of a publish killed part-way are cleared."""
    if claimed is not None:
        claimed.append(RunLock(name))
    if cfg.resume and not meta_path.exists():
        raise GhostwriteError(f"nothing to resume for {name!r}: no run in {meta_path.parent}")
    if cfg.resume and claimed is not None:
        registry.clean_stale(name)


def release(run) -> None:
    """Let go of the run's lock (the trainer does when the run ends, published or not)."""
    held = getattr(run, "lock", None)
    if held is not None:
        held.release()


def prepare(cfg, lock: bool = True) -> Run:
    """The run's inputs (or the resumed run's), under the run's lock (`lock=False`: DDP ranks other than
    0). The lock stays with the returned Run until `release(run)` or the end of the process."""
    claimed: list | None = [] if lock else None
    try:
        run = _prepare(cfg, claimed)
    except BaseException:
        for held in claimed or ():
            held.release()
        raise
    run.lock = claimed[0] if claimed else None
    return run


def _prepare(cfg, claimed: list | None) -> Run:
    if cfg.base:
        check_base_options(cfg)
    big = large_corpus_file(cfg.corpus)
    if big is not None:
        return prepare_streaming(cfg, *big, claimed=claimed)
    corpus = load_corpus(cfg.corpus)
    name = registry.check_name(cfg.name or (cfg.base and registry.parse_spec(cfg.base)[0]) or corpus.name)
    folder = runs_dir() / name
    meta_path = folder / "run.json"
    _claim(cfg, name, meta_path, claimed)
    if cfg.resume and meta_path.exists():
        for tmp in folder.glob(".*.tmp"):  # a write cut short by a kill: the file it replaced is intact
            tmp.unlink(missing_ok=True)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("corpus_sha256") != corpus.info.get("sha256"):
            raise GhostwriteError(f"cannot resume {name!r}: the corpus changed since the run started")
        return Run(folder, meta, meta["train_tokens"], meta["val_chars"])
    if not 0 < cfg.val_fraction < 0.5:
        raise GhostwriteError(f"--val-fraction must be between 0 and 0.5, got {cfg.val_fraction}")
    train_text, val_text = split_text(corpus.text, cfg.val_fraction)
    tok, base_state, base_meta = load_base(cfg, lambda: char_counts(train_text)) if cfg.base else (None, None, {})
    if tok is None:
        tok = train_tokenizer(cfg.tokenizer or "char", train_text, vocab_size=cfg.vocab_size, sp_type=cfg.sp_type,
                              lang=corpus.info.get("lang"))
    if folder.exists():
        shutil.rmtree(folder)  # a new run replaces an unfinished one of the same name
    folder.mkdir(parents=True)
    n_train = write_tokens(folder / "train.bin", tok, text_chunks(train_text))
    n_val = write_tokens(folder / "val.bin", tok, text_chunks(val_text))
    if n_val < 2:
        raise GhostwriteError("validation split too small to score; use a larger corpus or --val-fraction")
    tok_dict = tok.to_dict()
    atomic_write_text(folder / "tokenizer.json", json.dumps(tok_dict, ensure_ascii=False))
    meta = {
        "name": name, "corpus": corpus.name, "corpus_ref": corpus_ref(cfg.corpus), "corpus_sha256": corpus.info.get("sha256"),
        "lang": corpus.info.get("lang"), "author": corpus.info.get("author"),
        "tokenizer": tokenizer_meta(tok, folder, len(val_text)),
        "train_tokens": n_train, "val_tokens": n_val, "train_chars": len(train_text), "val_chars": len(val_text),
        "val_fraction": cfg.val_fraction, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **base_meta,
    }
    record_growth(meta)
    atomic_write_text(meta_path, json.dumps(meta, indent=2, ensure_ascii=False))
    return Run(folder, meta, n_train, len(val_text), base_state)


def record_growth(meta: dict) -> None:
    """A fine-tune's card says how many symbols it added to the base's vocabulary (0: none)."""
    if "base_vocab_size" in meta:
        base = meta["base_vocab_size"]
        meta["tokenizer"].update(base_vocab_size=base, added=meta["tokenizer"]["vocab_size"] - base)


def tokenizer_meta(tok, folder: Path, val_chars: int) -> dict:
    """The card's tokenizer entry; for sp, how much of the validation split byte pieces spell."""
    shares = tok.byte_piece_shares(read_tokens(folder / "val.bin", tok.vocab_size), val_chars)
    return {"kind": tok.kind, "vocab_size": tok.vocab_size, **{f"val_{k}": v for k, v in shares.items()}}


def large_corpus_file(spec: str) -> tuple[Path, str, dict] | None:
    """(text file, corpus name, known info) when the corpus is one file above STREAM_BYTES: a path, or
    a registered corpus (whose text.txt is already normalised). Same precedence as `load_corpus`."""
    from ..corpora.corpus import _looks_like_path, corpus_exists, corpus_info

    s = os.fspath(spec)
    p = Path(os.path.expanduser(s))
    if _looks_like_path(s) and p.is_file():
        path, name, info = p, p.stem, {}
    elif corpus_exists(s):
        ci = corpus_info(s)
        path, name, info = ci.text_path, s, {"sha256": ci.sha256, "lang": ci.lang, "author": ci.author}
    elif p.is_file():
        path, name, info = p, p.stem, {}
    else:
        return None
    try:
        size = path.stat().st_size
    except OSError:
        return None
    limit = int(os.environ.get("GHOSTWRITE_STREAM_BYTES", STREAM_BYTES))
    return (path, name, info) if size > limit else None


def prepare_streaming(cfg, path: Path, corpus_name: str, known: dict, claimed: list | None = None) -> Run:
    """`prepare` for a corpus larger than memory should hold: the text is read from disk in chunks, three
    times (count and checksum; the training split for the tokenizer; encoding), and never held whole.
    The split, the char vocabulary and the token files are exactly those of the in-memory path; word and
    SentencePiece vocabularies are learnt from a sample spread over the training split."""
    import hashlib

    from ..corpora.corpus import MIN_TRAIN_CHARS, MIN_VAL_CHARS, detect_lang, split_text

    t_prepare = time.monotonic()
    name = registry.check_name(cfg.name or (cfg.base and registry.parse_spec(cfg.base)[0]) or corpus_name)
    folder = runs_dir() / name
    meta_path = folder / "run.json"
    _claim(cfg, name, meta_path, claimed)
    sha, n_chars, head, marks = hashlib.sha256(), 0, [], []
    for chunk in iter_text_file(path, marks=marks):
        sha.update(chunk.encode("utf-8", "surrogatepass"))
        if n_chars < 200_000:
            head.append(chunk[: 200_000 - n_chars])
        n_chars += len(chunk)
    digest = sha.hexdigest()
    if known.get("sha256") and known["sha256"] != digest:
        raise GhostwriteError(f"corpus {corpus_name!r} is damaged (checksum mismatch of {path.name}); add it again with --force")
    if cfg.resume and meta_path.exists():
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("corpus_sha256") != digest:
            raise GhostwriteError(f"cannot resume {name!r}: the corpus changed since the run started")
        return Run(folder, meta, meta["train_tokens"], meta["val_chars"])
    if not 0 < cfg.val_fraction < 0.5:
        raise GhostwriteError(f"--val-fraction must be between 0 and 0.5, got {cfg.val_fraction}")
    n_train = int(n_chars * (1.0 - cfg.val_fraction))  # the split of corpus.split_text
    if n_train < MIN_TRAIN_CHARS or n_chars - n_train < MIN_VAL_CHARS:
        split_text("".join(head), cfg.val_fraction)  # raises its error
    lang = known.get("lang") or detect_lang("".join(head))
    tok, base_state, base_meta = load_base(cfg, lambda: _streamed_counts(path, n_train)) if cfg.base else (None, None, {})
    if tok is None:
        # the sample for word / sp vocabularies stays within bytes that hold training text only
        train_bytes = max([b for b, c in marks if c <= n_train], default=0)
        tok = _streamed_tokenizer(cfg, path, n_train, train_bytes, lang)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    t0 = time.monotonic()
    n_tr = write_tokens(folder / "train.bin", tok, iter_text_file(path, 0, n_train))
    n_val = write_tokens(folder / "val.bin", tok, iter_text_file(path, n_train, None))
    if n_val < 2:
        raise GhostwriteError("validation split too small to score; use a larger corpus or --val-fraction")
    atomic_write_text(folder / "tokenizer.json", json.dumps(tok.to_dict(), ensure_ascii=False))
    meta = {
        "name": name, "corpus": corpus_name, "corpus_ref": corpus_ref(cfg.corpus), "corpus_sha256": digest,
        "lang": lang, "author": known.get("author"), "tokenizer": tokenizer_meta(tok, folder, n_chars - n_train),
        "train_tokens": n_tr, "val_tokens": n_val, "train_chars": n_train, "val_chars": n_chars - n_train,
        "val_fraction": cfg.val_fraction, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "streamed": True, "encode_seconds": round(time.monotonic() - t0, 2),
        "prepare_seconds": round(time.monotonic() - t_prepare, 2), **base_meta,
    }
    record_growth(meta)
    atomic_write_text(meta_path, json.dumps(meta, indent=2, ensure_ascii=False))
    return Run(folder, meta, n_tr, n_chars - n_train, base_state)


SAMPLE_CHARS = 32_000_000  # what word / SentencePiece vocabularies of a streamed corpus learn from


def _streamed_tokenizer(cfg, path: Path, n_train: int, train_bytes: int, lang: str | None):
    from ..tokenizers import CharTokenizer

    kind = cfg.tokenizer or "char"
    if kind == "char":  # exact: the character counts of the whole training split
        counts = _streamed_counts(path, n_train)
        ranked = sorted(counts, key=lambda c: (-counts[c], ord(c)))
        if cfg.vocab_size is not None:
            if cfg.vocab_size < 2:
                raise GhostwriteError(f"vocabulary size must be at least 2, not {cfg.vocab_size}")
            ranked = ranked[: cfg.vocab_size - 1]
        return CharTokenizer(sorted(ranked))
    sample = sample_text(path, n_train, train_bytes, SAMPLE_CHARS)
    vocab = cfg.vocab_size
    if kind == "sp" and vocab is None:  # sized for the whole split, not for the sample
        from ..tokenizers.base import is_cjk_heavy
        from ..tokenizers.sp import CJK_COVERAGE, default_vocab_size, required_chars

        counts = char_counts(sample)
        cjk = (lang or "").lower().split("-")[0] in ("zh", "ja", "ko") or is_cjk_heavy(sample)
        needed = required_chars(counts, CJK_COVERAGE if cjk or len(counts) > 1000 else 1.0)
        vocab = default_vocab_size(n_train, needed, cjk)
    return train_tokenizer(kind, sample, vocab_size=vocab, sp_type=cfg.sp_type, lang=lang)


def _streamed_counts(path: Path, n_train: int) -> dict[str, int]:
    """The character counts of the training split of a file, read in chunks."""
    counts: dict[str, int] = {}
    for chunk in iter_text_file(path, 0, n_train):
        for c, n in char_counts(chunk).items():
            counts[c] = counts.get(c, 0) + n
    return counts


def sample_text(path: Path, n_chars: int, n_bytes: int, budget: int, pieces: int = 256) -> str:
    """About `budget` characters of whole lines from the first `n_chars` characters of a file, which lie
    in its first `n_bytes` bytes or more: `pieces` runs at evenly spaced byte offsets (seeks, no full
    read), so a vocabulary sees the whole text, not just its beginning."""
    if n_chars <= budget or n_bytes <= 4 * budget:
        return "".join(iter_text_file(path, 0, min(n_chars, budget)))
    out, step, take = [], n_bytes // pieces, min(budget * 4, n_bytes) // pieces
    with open(path, "rb") as f:
        for k in range(pieces):
            f.seek(k * step)
            raw = f.read(min(take, n_bytes - k * step))
            piece = raw.decode("utf-8", "ignore").replace("\r\n", "\n").replace("\r", "\n")
            if k:
                piece = piece[piece.find("\n") + 1 :] if "\n" in piece else ""
            piece = piece[: budget // pieces]
            cut = piece.rfind("\n")
            out.append(piece[: cut + 1] if cut >= 0 else "")
    return "".join(out).lstrip("\ufeff")


def corpus_ref(spec: str) -> str:
    """How to find the corpus again: a path stays a path (absolute), a name stays a name."""
    p = Path(os.path.expanduser(spec))
    return str(p.resolve()) if p.exists() else spec


def eval_text_for(lm, text_path: Path | None, corpus_name: str | None) -> tuple[str, str]:
    """The text `ghostwrite eval` scores: a file, a corpus, or by default the model's validation split."""
    from ..corpora.corpus import read_text_file

    if text_path is not None:
        return read_text_file(text_path), str(text_path)
    if corpus_name is not None:
        return load_corpus(corpus_name).text, f"corpus {corpus_name}"
    card = lm.card
    ref = card.get("corpus_ref") or card["corpus"]
    corpus = load_corpus(ref)
    if card.get("corpus_sha256") and corpus.info.get("sha256") != card["corpus_sha256"]:
        raise GhostwriteError(f"corpus {ref!r} changed since {lm.spec} was trained; pass --text or --corpus")
    _, val = split_text(corpus.text, card.get("val_fraction") or 0.1)
    return val, f"the validation split of {card['corpus']} (last {card.get('val_fraction') or 0.1:.0%})"


def write_progress(folder: Path, progress: dict) -> None:
    atomic_write_text(folder / "progress.json", json.dumps({**progress, "time": time.time()}))


def plot_curve(curve: dict, path: Path, title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if curve.get("train"):
        xs, ys = zip(*curve["train"])
        ax.plot(xs, ys, label="training loss (nats/token)", lw=1)
    if curve.get("val"):
        xs, ys = zip(*curve["val"])
        ax.plot(xs, ys, "o-", label="validation (nats/char)", lw=1.5)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def publish(trainer, figures: dict, elapsed: float) -> dict:
    """Register the trainer's current (best) weights as a new version and return its card."""
    meta, model, run = trainer.meta, trainer.model, trainer.run
    folder = run.dir
    model_cpu = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ck_meta = {"model": meta["model"], "tokenizer": meta["tokenizer"]}
    import io

    buf = io.BytesIO()
    torch.save({"model": model_cpu, "meta": json.dumps(ck_meta)}, buf)
    card = {
        "corpus": meta["corpus"], "corpus_ref": meta.get("corpus_ref"), "val_fraction": meta.get("val_fraction"),
        "corpus_sha256": meta["corpus_sha256"], "lang": meta.get("lang"),
        "author": meta.get("author"), "tokenizer": meta["tokenizer"], "model": meta["model"],
        "train": meta["train"], "parameters": model.num_parameters(), "steps": trainer.step,
        "val_bpc": round(figures["bits_per_char"], 4), "val_nats_per_char": round(figures["nats_per_char"], 4),
        "eval": figures, "training_seconds": round(elapsed, 1), "device": str(trainer.device),
        "base_model": meta.get("base_model"), "base_version": meta.get("base_version"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "int8_ok": meta.get("int8_ok", False), "timing": meta.get("timing"),
    }
    tok_bytes = (folder / "tokenizer.json").read_bytes()  # what is checked is what is published
    checkpoint.check_model_set(model_cpu, ck_meta, tokenizer_from_dict(json.loads(tok_bytes)), card,
                               f"refusing to publish {meta['name']}")
    curve = json.dumps(trainer.curve)
    atomic_write_text(folder / "curve.json", curve)
    plot_curve(trainer.curve, folder / "loss.png", f"{meta['name']} ({meta['tokenizer']['kind']})")
    version = registry.register(meta["name"], {
        "model.pt": buf.getvalue(), "tokenizer.json": tok_bytes,
        "curve.json": curve, "loss.png": folder / "loss.png",
    }, card)
    meta["published_version"] = version
    atomic_write_text(folder / "run.json", json.dumps(meta, indent=2, ensure_ascii=False))
    return registry.read_card(meta["name"], version)
