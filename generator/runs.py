"""A training run on disk: `<home>/runs/NAME/` from corpus to published model.

`prepare` turns a corpus into the run's inputs: the train/validation split, the tokenizer (trained on
the training split only, or the base model's when fine-tuning) and the two token files. `publish`
registers the best weights as a new version with its card, curve (JSON) and loss plot (PNG).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import checkpoint, registry
from .corpus import load_corpus, split_text
from .data import text_chunks, write_tokens
from .errors import GhostwriteError
from .paths import atomic_write_bytes, atomic_write_text, runs_dir
from .tokenizers import tokenizer_from_dict, train_tokenizer


@dataclass
class Run:
    dir: Path
    meta: dict
    train_tokens: int
    val_text_len: int
    base_state: dict | None = None


def prepare(cfg) -> Run:
    corpus = load_corpus(cfg.corpus)
    name = registry.check_name(cfg.name or (cfg.base and registry.parse_spec(cfg.base)[0]) or corpus.name)
    folder = runs_dir() / name
    meta_path = folder / "run.json"
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
    base_state, base_meta = None, {}
    if cfg.base:
        bname, bver = registry.resolve(cfg.base)
        bdir = registry.model_dir(bname, bver)
        tok = tokenizer_from_dict(json.loads((bdir / "tokenizer.json").read_text(encoding="utf-8")))
        state, bm = checkpoint.load(bdir / "model.pt")
        base_state = state["model"]
        base_meta = {"base_model": bname, "base_version": bver, "base_model_config": bm["model"]}
    else:
        tok = train_tokenizer(cfg.tokenizer, train_text, vocab_size=cfg.vocab_size, sp_type=cfg.sp_type,
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
        "tokenizer": {"kind": tok.kind, "vocab_size": tok.vocab_size},
        "train_tokens": n_train, "val_tokens": n_val, "train_chars": len(train_text), "val_chars": len(val_text),
        "val_fraction": cfg.val_fraction, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **base_meta,
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=2, ensure_ascii=False))
    return Run(folder, meta, n_train, len(val_text), base_state)


def corpus_ref(spec: str) -> str:
    """How to find the corpus again: a path stays a path (absolute), a name stays a name."""
    p = Path(spec).expanduser()
    return str(p.resolve()) if p.exists() else spec


def eval_text_for(lm, text_path: Path | None, corpus_name: str | None) -> tuple[str, str]:
    """The text `ghostwrite eval` scores: a file, a corpus, or by default the model's validation split."""
    from .corpus import read_text_file

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


def read_progress(name: str) -> dict | None:
    try:
        return json.loads((runs_dir() / name / "progress.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
        "int8_ok": meta.get("int8_ok", False),
    }
    curve = json.dumps(trainer.curve)
    atomic_write_text(folder / "curve.json", curve)
    plot_curve(trainer.curve, folder / "loss.png", f"{meta['name']} ({meta['tokenizer']['kind']})")
    version = registry.register(meta["name"], {
        "model.pt": buf.getvalue(), "tokenizer.json": folder / "tokenizer.json",
        "curve.json": curve, "loss.png": folder / "loss.png",
    }, card)
    meta["published_version"] = version
    atomic_write_text(folder / "run.json", json.dumps(meta, indent=2, ensure_ascii=False))
    return registry.read_card(meta["name"], version)
