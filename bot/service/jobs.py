"""Retraining jobs, shared by Discord, the REPL and the CLI (through the service: `Jobs`, mixed into
ContinuationService, builds the one JobRunner; nothing else does).

One job at a time across every process on the database (a lease in the store's `locks` table, renewed
while the job runs, so bot processes on several hosts sharing one PostgreSQL run one job; plus a lock file
in the data directory, which the kernel releases at once if the process dies), each in its own
subprocess running `ghostwrite train`, niced and given the cores serving can spare, so the bot stays
responsive. The job is a row in the store's training runs: queued → running (progress copied in as it
goes) → complete / failed / cancelled. By default it fine-tunes the model's current version on the new
corpus (`--from`); `base="fresh"` trains from scratch. The trainer publishes the new version atomically
into the registry, and the service takes the newest version per request: that is the hot swap. A job
that fails or is cancelled publishes nothing, so the old version keeps serving.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from generator import registry
from generator.corpora.corpus import load_corpus
from generator.errors import GhostwriteError
from generator.paths import home, runs_dir

log = logging.getLogger("ghostwrite.jobs")
MAX_JOB_SECONDS = 6 * 3600
LOCK_NAME, LOCK_TTL = "training", 120.0  # the database lease: renewed every LOCK_TTL / 4 while a job runs


class JobRunner:
    def __init__(self, store, threads: int | None = None, poll_s: float = 0.5):
        self.store = store
        spare = max(1, len(os.sched_getaffinity(0)) - 1)
        self.threads = threads or spare
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._jobs: dict[int, dict] = {}  # run id → {proc, thread, cancel}

    # ---- submitting ---------------------------------------------------------------------------------
    def submit(self, model: str, corpus: str, base: str | None = None, max_time: float | None = None,
               requested_by: str | None = None, tokenizer: str | None = None) -> int:
        """Queue a job and start it. Returns the training run's id. Refused (GhostwriteError) when
        another job is running, or the corpus or model is unusable."""
        registry.check_name(model)
        if max_time is not None and not 1 <= max_time <= MAX_JOB_SECONDS:  # (NaN fails both)
            raise GhostwriteError(f"--max-time must be between 1 and {MAX_JOB_SECONDS} seconds")
        corpus_obj = load_corpus(corpus)  # fails early, with the reader's one-line message
        if len(corpus_obj.text.strip()) == 0:
            raise GhostwriteError("the corpus is empty")
        have = registry.latest_version(model)
        fresh = base == "fresh" or have is None
        base_spec = None if fresh else (base or model)
        if base_spec:
            registry.resolve(base_spec)
        lockf = self._take_lock()
        holder = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        try:
            self._take_db_lock(holder)
        except BaseException:
            lockf.close()
            raise
        try:
            bname, bver = registry.resolve(base_spec) if base_spec else (None, None)
            run_id = self.store.create_training_run(model=model, corpus=corpus_obj.name, base_model=bname,
                                                    base_version=bver, requested_by=requested_by)
            cmd = [sys.executable, "-m", "bot.cli", "train", corpus, "--name", model, "--json", "--quiet",
                   "--threads", str(self.threads)]
            if base_spec:
                cmd += ["--from", base_spec]
            else:
                kind = tokenizer or (registry.read_card(model, have)["tokenizer"]["kind"] if have else "char")
                cmd += ["--tokenizer", kind]
            if max_time:
                cmd += ["--max-time", str(max_time)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=lambda: os.nice(10), env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except BaseException:
            lockf.close()
            self._release_db_lock(holder)
            raise
        job = {"proc": proc, "cancel": threading.Event(), "lockf": lockf, "model": model, "holder": holder}
        self.store.update_training_run(run_id, status="running", progress={"step": 0})
        job["thread"] = threading.Thread(target=self._watch, args=(run_id, job), daemon=True,
                                         name=f"ghostwrite-job-{run_id}")
        with self._lock:
            self._jobs[run_id] = job
        job["thread"].start()
        return run_id

    def _take_lock(self):
        path = home() / "training.lock"
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            busy = [r for r in self.store.list_training_runs(limit=5) if r.status in ("queued", "running")]
            which = f" (run {busy[0].id}, {busy[0].model})" if busy else ""
            raise GhostwriteError(f"a training job is already running{which}; wait for it or cancel it") from None
        return f

    def _take_db_lock(self, holder: str) -> None:
        taken_by = self.store.acquire_lock(LOCK_NAME, holder, LOCK_TTL)
        if taken_by is not None:
            busy = [r for r in self.store.list_training_runs(limit=5) if r.status in ("queued", "running")]
            which = f" (run {busy[0].id}, {busy[0].model})" if busy else ""
            raise GhostwriteError(f"a training job is already running{which} in another process; wait for it")

    def _release_db_lock(self, holder: str) -> None:
        try:
            self.store.release_lock(LOCK_NAME, holder)
        except GhostwriteError as e:  # it expires by itself
            log.warning("could not release the training lock: %s", e)

    # ---- watching -----------------------------------------------------------------------------------
    def _watch(self, run_id: int, job: dict) -> None:
        proc, model = job["proc"], job["model"]
        progress_path = runs_dir() / model / "progress.json"
        err_lines: list[str] = []
        drain = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
        drain.start()
        last, renewed = None, time.monotonic()
        try:
            while proc.poll() is None:
                time.sleep(self.poll_s)
                if time.monotonic() - renewed > LOCK_TTL / 4:
                    try:
                        self.store.acquire_lock(LOCK_NAME, job["holder"], LOCK_TTL)
                        renewed = time.monotonic()
                    except GhostwriteError as e:  # tried again at the next poll
                        log.warning("could not renew the training lock: %s", e)
                p = _read_json(progress_path)
                if p and p != last:
                    last = p
                    self.store.update_training_run(run_id, progress=p)
            out = proc.stdout.read()
            drain.join(timeout=5)
            if job["cancel"].is_set():
                self.store.update_training_run(run_id, status="cancelled", error="cancelled")
            elif proc.returncode == 0:
                card = json.loads(out.strip().splitlines()[-1])
                self.store.update_training_run(run_id, status="complete", new_version=card["version"],
                                               val_bpc=card.get("val_bpc"), progress=last,
                                               metrics={k: card.get(k) for k in ("eval", "steps", "parameters",
                                                                                 "training_seconds", "device")})
            else:
                msg = next((ln.strip() for ln in reversed(err_lines) if ln.strip()), f"exit code {proc.returncode}")
                self.store.update_training_run(run_id, status="failed", error=msg.removeprefix("error: ")[:500])
        except Exception as e:  # the job's record must end in a final state whatever happens
            log.exception("training job %s watcher failed", run_id)
            try:
                self.store.update_training_run(run_id, status="failed", error=f"{type(e).__name__}: {e}"[:500])
            except Exception:
                pass
        finally:
            self._release_db_lock(job["holder"])
            job["lockf"].close()
            with self._lock:
                self._jobs.pop(run_id, None)

    # ---- asking and cancelling ----------------------------------------------------------------------
    def status(self, run_id: int | None = None) -> dict | None:
        """The run (default: the newest) as a dict, with live progress."""
        if run_id is None:
            runs = self.store.list_training_runs(limit=1)
            if not runs:
                return None
            run = runs[0]
        else:
            run = self.store.get_training_run(run_id)
            if run is None:
                raise GhostwriteError(f"no training run with id {run_id}")
        return run.to_dict()

    def current(self) -> int | None:
        with self._lock:
            return next(iter(self._jobs), None)

    def cancel(self, run_id: int | None = None) -> bool:
        """Stop a running job (default: the current one). Returns False when there was none."""
        with self._lock:
            run_id = run_id if run_id is not None else next(iter(self._jobs), None)
            job = self._jobs.get(run_id) if run_id is not None else None
        if job is None:
            return False
        job["cancel"].set()
        proc = job["proc"]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        job["thread"].join(timeout=15)
        return True

    def wait(self, run_id: int, timeout: float | None = None) -> dict:
        with self._lock:
            job = self._jobs.get(run_id)
        if job is not None:
            job["thread"].join(timeout)
        return self.status(run_id)

    def shutdown(self) -> None:
        for run_id in list(self._jobs):
            self.cancel(run_id)


def _read_json(path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class Jobs:
    """Mixed into ContinuationService: the retraining jobs, run by one `JobRunner` built on first use
    (`job_runner` may be set to another object with its interface)."""

    store: object
    job_runner: JobRunner | None

    def _runner(self) -> JobRunner:
        if self.job_runner is None:
            self.job_runner = JobRunner(self.store)
        return self.job_runner

    def retrain(self, model: str, corpus: str, base: str | None = None, max_time: float | None = None,
                requested_by: str | None = None) -> int:
        """Start a training job (fine-tuning the current version; base="fresh": from scratch); returns
        the training run's id. Refused with one line when a job runs or the corpus or model is unusable."""
        return self._runner().submit(model, corpus, base=base, max_time=max_time, requested_by=requested_by)

    def job_status(self, run_id: int | None = None) -> dict | None:
        """The run (default: the newest) as a dict with its live progress; None when none ever ran."""
        return self._runner().status(run_id)

    def current_job(self) -> int | None:
        """The id of the job this service runs now, or None."""
        return None if self.job_runner is None else self.job_runner.current()

    def cancel_job(self, run_id: int | None = None) -> bool:
        """Stop a running job (default: the current one); the current version keeps serving."""
        return False if self.job_runner is None else self.job_runner.cancel(run_id)

    def stop_jobs(self) -> None:
        """Cancel every job this service runs (a job dies with the process that watches it)."""
        if self.job_runner is not None:
            self.job_runner.shutdown()
