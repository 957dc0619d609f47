"""`ghostwrite retrain MODEL --corpus PATH|NAME`: a retraining job from the terminal (the same runner
Discord's /retrain and the REPL's /retrain use)."""

from __future__ import annotations

import time
from typing import Optional

import typer

from bot.cli.common import console, fail, finite
from bot.service import MAX_JOB_SECONDS


def retrain_command(
    model: str = typer.Argument(..., help="The model to retrain (a new version of it is published)."),
    corpus: str = typer.Option(..., "--corpus", help="A corpus name or a path to a text file."),
    max_time: Optional[float] = typer.Option(None, "--max-time", min=1.0, max=float(MAX_JOB_SECONDS), callback=finite,
                                             help="Training budget in seconds."),
    fresh: bool = typer.Option(False, "--fresh", help="Train from scratch instead of fine-tuning."),
    detach: bool = typer.Option(False, "--detach", help="Start the job and return at once."),
):
    """Retrain MODEL on a new corpus in a background process; serving switches when it is done."""
    from bot.service import ContinuationService

    svc = ContinuationService()
    run_id = svc.retrain(model, corpus, base="fresh" if fresh else None, max_time=max_time, requested_by="cli")
    console.print(f"training run {run_id} started for {model}")
    if detach:
        return
    try:
        while True:
            st = svc.job_status(run_id)
            if st["status"] not in ("queued", "running"):
                break
            p = st.get("progress") or {}
            if p.get("step"):
                vb = f", val {p['val_bpc']:.3f} bpc" if p.get("val_bpc") else ""
                console.print(f"  step {p['step']}/{p.get('total_steps') or '?'}{vb}", highlight=False)
            time.sleep(2)
    except KeyboardInterrupt:
        svc.cancel_job(run_id)
        fail(f"training run {run_id} cancelled; {model} keeps serving its current version", code=130)
    if st["status"] != "complete":
        fail(f"training run {run_id} {st['status']}: {st.get('error') or 'no details'}")
    console.print(f"[green]{model}@v{st['new_version']}[/] serves from now on "
                  f"(validation {st['val_bpc']:.3f} bits/char)")
