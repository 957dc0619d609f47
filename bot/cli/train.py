"""`ghostwrite train CORPUS` and `ghostwrite eval MODEL`: training and scoring through the service (torch
loads behind it, inside the commands, so help and the other subcommands start fast). The numeric options
are bounded at parse time, and a model too big for this machine's memory is refused before any work."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from bot.cli.common import MAX_SEED, console, err, fail, finite, positive
from bot.service import ContinuationService

# Bounds of the numeric options, checked when the command line is parsed (a value outside is one line,
# exit 2): NaN and ±inf never reach the trainer (`--max-time inf` used to fail after 30 s of training).
MIN_SECONDS, MAX_SECONDS = 1.0, 30 * 86_400.0  # --max-time: 1 s to 30 days (1e-300 published 0 steps)
MAX_STEPS = 10**9
MAX_VOCAB = 1_000_000
MAX_WIDTH = 16_384
MAX_LAYERS = 16
MAX_BATCH = 65_536
MAX_SEQ_LEN = 65_536
MAX_THREADS = 1024
MAX_NPROC = 256
MAX_STREAMS = 4096
PROCESS_BYTES = 2**29  # what one more training process costs before its model: torch and its libraries


def training_bytes(vocab: int, hidden: int, emb: int, layers: int, batch: int, seq: int) -> int:
    """Roughly what training such a model takes in memory: fp32 weights with their gradients and two
    Adam moments, and a window's activations (gates and states per layer, logits and their gradient)."""
    params = vocab * emb + 4 * hidden * (emb + hidden) + 4 * hidden * 2 * hidden * (layers - 1) \
        + 8 * hidden * layers + (hidden + 1) * vocab
    tokens = batch * seq
    return 16 * params + 4 * tokens * (10 * hidden * layers + emb + 3 * vocab)


def _check_size(preset: str, vocab: Optional[int], hidden: Optional[int], emb: Optional[int],
                layers: Optional[int], batch: Optional[int], seq: Optional[int], nproc: int) -> None:
    """Refuse, before anything is prepared, sizes whose training could not fit in this machine's memory
    (`--hidden-size 16384` grew past 19 GB and ran for minutes without one step). Sizes not given count
    as the preset's (auto: a medium model, windows of 32 × 32)."""
    presets = ContinuationService.model_presets()
    base = presets.get(preset, presets["medium"])
    h = hidden or base["hidden_size"]
    e = emb or hidden or base["emb_size"]
    n_layers = layers or base["num_layers"]
    need = training_bytes(vocab or 256, h, e, n_layers, batch or 32, seq or 32)
    if nproc > 1:  # each process of --nproc holds the model and a whole torch (~0.5 GiB)
        need = (need + PROCESS_BYTES) * nproc
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that says: no check
        return
    if need > 0.75 * have:
        fail(f"a model of this size needs about {need / 2**30:,.1f} GiB to train ({n_layers} layer(s) of "
             f"{h}, embedding {e}, windows of {batch or 32} x {seq or 32}{f', {nproc} processes' if nproc > 1 else ''}) "
             f"and this machine has {have / 2**30:,.1f} GiB: make --hidden-size, --emb-size, --layers, "
             f"--batch-size, --seq-len{' or --nproc' if nproc > 1 else ''} smaller")


def train_command(
    corpus: str = typer.Argument(..., help="A registered corpus name, or a path to a text file."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (default: the corpus name)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="char | word | sp (default char; "
                                            "with --from, the base model's)"),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", min=2, max=MAX_VOCAB, help="Vocabulary cap for word/sp."),
    sp_type: str = typer.Option("unigram", "--sp-type", help="unigram | bpe (SentencePiece)."),
    preset: str = typer.Option("auto", "--preset", help="auto (sized to the budget) | tiny | small | medium | large"),
    hidden_size: Optional[int] = typer.Option(None, "--hidden-size", min=1, max=MAX_WIDTH),
    emb_size: Optional[int] = typer.Option(None, "--emb-size", min=1, max=MAX_WIDTH),
    num_layers: Optional[int] = typer.Option(None, "--layers", min=1, max=MAX_LAYERS),
    dropout: Optional[float] = typer.Option(None, "--dropout", min=0.0, max=0.9, callback=finite),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, max=MAX_BATCH),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", min=1, max=MAX_SEQ_LEN),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, max=10.0, callback=positive),
    max_time: Optional[float] = typer.Option(None, "--max-time", min=MIN_SECONDS, max=MAX_SECONDS, callback=finite,
                                             help="Wall-clock budget in seconds."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, max=MAX_STEPS),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", min=1, max=MAX_STEPS, help="Validate every N steps."),
    patience: int = typer.Option(5, "--patience", min=0, max=MAX_STEPS,
                                 help="Stop after N validations without improvement (0: at the first one)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=0.5, callback=positive,
                                       help="Last fraction of characters held out."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=MAX_THREADS, help="CPU threads (default: all cores)."),
    seed: int = typer.Option(1337, "--seed", min=0, max=MAX_SEED),
    base: Optional[str] = typer.Option(None, "--from", help="Fine-tune this model on the corpus (new version)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run of this model."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1, max=MAX_STEPS,
                                                   help="Steps between checkpoints."),
    nproc: int = typer.Option(1, "--nproc", min=1, max=MAX_NPROC, help="Train on N processes with DistributedDataParallel "
                              "(one per GPU; on the CPU they share the cores). Or launch under torchrun."),
    json_out: bool = typer.Option(False, "--json", help="Print the model card as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Train an LSTM model on a corpus and register it as a new version."""
    if tokenizer is not None and tokenizer not in ("char", "word", "sp"):
        fail(f"--tokenizer must be char, word or sp, got {tokenizer!r}")
    _check_size(preset, vocab_size, hidden_size, emb_size, num_layers, batch_size, seq_len, nproc)
    cfg = dict(corpus=corpus, name=name, tokenizer=tokenizer, vocab_size=vocab_size, sp_type=sp_type,
                      preset=preset, hidden_size=hidden_size, emb_size=emb_size, num_layers=num_layers,
                      dropout=dropout, batch_size=batch_size, seq_len=seq_len, lr=lr, max_time=max_time,
                      max_steps=max_steps, eval_every=eval_every, patience=patience, val_fraction=val_fraction,
                      device=device, threads=threads, seed=seed, base=base, resume=resume,
                      checkpoint_every=checkpoint_every)
    svc = ContinuationService()
    rank = svc.training_rank()
    show = not quiet and not json_out and sys.stderr.isatty() and rank == 0
    if show:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                      TimeRemainingColumn(), console=err, transient=False) as bar:
            task = bar.add_task(f"training {name or corpus}", total=None, info="")

            def on_progress(p):
                vb = f" val {p['val_bpc']:.3f} bpc" if p.get("val_bpc") else ""
                loss = f"loss {p['loss']:.3f}" if p.get("loss") else ""
                bar.update(task, completed=p["step"], total=p.get("total_steps"),
                           info=f"step {p['step']} {loss}{vb} {p['tokens_per_s']:,.0f} tok/s")

            card = svc.train(cfg, on_progress, nproc=nproc)
    else:
        card = svc.train(cfg, nproc=nproc)
    if not card:  # a rank other than 0 under torchrun: rank 0 reports
        return
    if json_out:
        print(json.dumps(card, ensure_ascii=False))
    else:
        console.print(
            f"[green]registered[/] {card['name']}@v{card['version']}: {card['parameters']:,} parameters, "
            f"{card['steps']} steps in {card['training_seconds']:.0f}s on {card['device']}, "
            f"validation {card['val_bpc']:.3f} bits/char ({card['val_nats_per_char']:.3f} nats/char)"
        )
        if card["tokenizer"].get("added"):  # --from a model whose vocabulary lacked characters of the corpus
            console.print(f"{card['tokenizer']['added']} new symbols added to the vocabulary of "
                          f"{card['base_model']}@v{card['base_version']} ({card['tokenizer']['base_vocab_size']} → "
                          f"{card['tokenizer']['vocab_size']})")


def eval_command(
    model: str = typer.Argument(..., help="NAME or NAME@vN"),
    text: Optional[Path] = typer.Option(None, "--text", help="Score this text file."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Score this registered corpus."),
    streams: int = typer.Option(1, "--streams", min=1, max=MAX_STREAMS, help="Score in N parallel contiguous streams (faster; 1 = exact)."),
    device: str = typer.Option("cpu", "--device"),
    json_out: bool = typer.Option(False, "--json"),
    style: bool = typer.Option(False, "--style", help="The style report: attribution of continuations of held-out "
                               "prompts among the corpora of the model's language, against real text, and originality."),
    prompts: Optional[int] = typer.Option(None, "--prompts", min=1, max=1000, help="--style: prompts from the held-out "
                                          "split (default 50)."),
    length: Optional[int] = typer.Option(None, "--length", min=50, max=4000, help="--style: characters written per "
                                         "prompt (default 400)."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="--style: SETTING=V1,V2,... one report per value; the "
                                        "best is recorded in the card and becomes the model's default."),
    among: Optional[str] = typer.Option(None, "--among", help="--style: the other corpora to attribute among, "
                                        "comma-separated (default: every registered one in the model's language)."),
    force: bool = typer.Option(False, "--force", help="--style: allow corpora of different languages."),
    setting: Optional[list[str]] = typer.Option(None, "--set", help="--style: SETTING=VALUE for the continuations "
                                                "(repeatable; default: the model's defaults)."),
):
    """Score a text (default: the model's own validation split) in bits per character; with --style, how
    well the model writes in its author's voice and how much it copies."""
    if style:
        return _style(model, prompts, length, sweep, among, force, setting or [], json_out)
    given = [f for f, v in (("--prompts", prompts), ("--length", length), ("--sweep", sweep), ("--among", among),
                            ("--force", force or None), ("--set", setting or None)) if v is not None]
    if given:
        fail(f"{given[0]} goes with --style")
    figures = ContinuationService().evaluate(model, text=text, corpus=corpus, streams=streams, device=device)
    if json_out:
        print(json.dumps(figures))
        return
    console.print(f"{figures['model']} on {figures['text']}: [bold]{figures['bits_per_char']:.4f} bits/char[/] "
                  f"({figures['nats_per_char']:.4f} nats/char), per-token perplexity {figures['perplexity']:.2f}, "
                  f"{figures['chars']:,} chars, {figures['tokens']:,} tokens")


def _style(model, prompts, length, sweep, among, force, setting, json_out) -> None:
    from rich.table import Table

    names = None if among is None else among.split(",")
    svc = ContinuationService()
    out = svc.style_report(model, prompts=prompts, length=length, settings=setting, among=names, force=force,
                           sweep=sweep)
    if json_out:
        print(json.dumps(out, ensure_ascii=False))
        return
    first = out["reports"][0]
    varied = sorted({k for r in out["reports"] for k, v in r["settings"].items() if v != first["settings"][k]})
    t = Table(*(varied or ["settings"]), "accuracy", "ceiling", "ratio", "margin bits/char", "own judge bits/char",
              "copied median", "copied max", "8-gram share", title=f"{out['model']}: {first['prompts']} × "
              f"{first['length']} chars, judged among {', '.join(first['panel'])}")

    def pct(x):
        return "–" if x is None else f"{x:.0%}"

    for r in out["reports"]:
        g, real = r["generated"], r["real"]
        keys = [str(r["settings"][k]) for k in varied] or [", ".join(f"{k} {v}" for k, v in r["settings"].items()
                                                                   if k in ("temperature", "top_p", "top_k", "min_p"))]
        t.add_row(*keys, pct(g["accuracy"]), pct(real["accuracy"]), "–" if r["ratio"] is None else f"{r['ratio']:.2f}",
                  "–" if g["margin_bits"] is None else f"{g['margin_bits']:+.3f}",
                  f"{g['own_judge_bpc']:.3f} (real {real['own_judge_bpc']:.3f})",
                  f"{g['longest_copied_median']:g}", f"{g['longest_copied_max']}", f"{g['copied_share_median']:.1%}")
    console.print(t)
    console.print(f"real held-out passages: longest copied span median {first['real']['longest_copied_median']:g}, "
                  f"max {first['real']['longest_copied_max']} chars (chance overlap)")
    if first.get("note"):
        err.print(f"[yellow]note:[/] {first['note']}", highlight=False, soft_wrap=True)
    if sweep:
        best = out["style"].get("defaults")
        console.print(f"best: {', '.join(f'{k}={v}' for k, v in best.items())} (kept in the card: the model's default)"
                      if best else "no value kept the median copied span under 30 characters: no default recorded")
