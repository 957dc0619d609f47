"""One REPL session: the story, the settings, the model, and running a generation.

A generation runs on a worker thread (the service's blocking `svc.stream`, read through the service's
bridge, `Relay`); the main thread only waits for its text and prints, so Ctrl+C (KeyboardInterrupt, always
raised in the main thread) is caught there at any moment, sets the stream's cancel event, and the service
stores the partial text as interrupted.
Nothing here imports torch or SQL: everything goes through the continuation service.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.style import Style

from bot.repl.story import Story, Turn, escape_line
from bot.service import (
    Ghostwrite,
    GhostwriteError,
    Relay,
    Request,
    Result,
    SamplingSettings,
    check_prompt,
    clean_text,
)

log = logging.getLogger("ghostwrite.repl")

MODEL_STYLE = "green"  # the model's words; the writer's own stay in the terminal's default colour
USER_STYLE = "bold"
HINT_STYLE = "yellow"
ERROR_STYLE = "bold red"
NOTE_STYLE = "dim"
MODES = ("story", "single")


class StreamWriter:
    """Writes the model's text as it arrives, in MODEL_STYLE, wrapping at word boundaries on a
    terminal: when a word outgrows the line, the line is redrawn without it and the word moves down."""

    def __init__(self, console: Console):
        self.console = console
        self.file = console.file
        self.style = Style.parse(MODEL_STYLE) if not console.no_color else Style.null()  # NO_COLOR
        self.wrap = console.is_terminal and not console.is_dumb_terminal
        self.width = max(20, console.width) if self.wrap else 0
        self.line = ""  # what is on the current screen line (model text only)
        self.col = 0
        self.word = ""  # the trailing partial word on the current line
        self.any = False

    def _styled(self, text: str) -> str:
        return self.style.render(text, color_system=self.console.color_system) if text else ""

    def feed(self, piece: str) -> None:
        if not piece:
            return
        self.any = True
        if not self.wrap:
            self.file.write(self._styled(piece))
            self.line = (self.line + piece).rsplit("\n", 1)[-1]
            self.file.flush()
            return
        out: list[str] = []
        run = ""  # plain text to print before the next control sequence
        for ch in piece:
            if ch == "\n":
                out.append(self._styled(run) + "\n")
                run, self.line, self.col, self.word = "", "", 0, ""
                continue
            w = cell_len(ch)
            if self.col + w > self.width:
                out.append(self._styled(run))
                run = ""
                if ch.isspace():  # a space at the end of the line becomes the line break
                    out.append("\n")
                    self.line, self.col, self.word = "", 0, ""
                    continue
                word = self.word
                if word and cell_len(word) < self.width // 2 and len(word) < len(self.line):
                    keep = self.line[: len(self.line) - len(word)]
                    out.append("\r\x1b[K" + self._styled(keep) + "\n" + self._styled(word))
                    self.line, self.col = word, cell_len(word)
                else:
                    out.append("\n")
                    self.line, self.col, self.word = "", 0, ""
            run += ch
            self.line += ch
            self.col += w
            self.word = "" if ch.isspace() else self.word + ch
        out.append(self._styled(run))
        self.file.write("".join(out))
        self.file.flush()

    def end(self) -> None:
        if self.line:
            self.file.write("\n")
            self.file.flush()
        self.line, self.col, self.word = "", 0, ""


class ReplSession:
    """Everything a REPL frontend needs, without the terminal: `handle(line)` runs one line of input
    (a command or text for the story). `console` gets messages; in piped mode `out` gets exactly one
    line per continuation and `console` is standard error."""

    def __init__(self, svc: Ghostwrite, console: Console, *, model: str | None = None, mode: str = "story",
                 interactive: bool = True, out: IO[str] | None = None, user_name: str | None = None,
                 settings: dict | None = None):
        self.svc = svc
        self.console = console
        self.out = out
        self.interactive = interactive
        self.model_spec = model
        self.mode = mode if mode in MODES else "story"
        # only what the writer set (/set): the service lays it over the model card's defaults (a style
        # sweep's, the tokenizer's), which would never apply if every setting were sent
        self.settings: dict = {}
        self.set_settings(settings or {})
        self.story = Story()
        self.story_key = f"repl:{uuid.uuid4().hex}"  # the service keeps the story's state under it
        self.user_name = user_name
        self.done = False
        self.exit_code = 0
        self.lines_out = 0  # piped mode: continuation lines written
        self.served: tuple[str, int] | None = None  # the model@version the last generation used
        self.job_id: int | None = None  # the training run this session's /retrain started
        self.quit_warned = False
        self.stopped = False  # the last generation was stopped with Ctrl+C
        self.quiet_input = contextlib.nullcontext  # the terminal layer turns echo off while generating

    # ---- talking to the writer -------------------------------------------------------------------------
    def say(self, message: Any = "", style: str | None = None) -> None:
        if isinstance(message, str):
            self.console.print(message, style=style, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            self.console.print(message)

    def note(self, message: str) -> None:
        self.say(message, NOTE_STYLE)

    def hint(self, message: str) -> None:
        """A one-line hint (bad value, unknown command, nothing to do)."""
        self.say(message.splitlines()[0] if message else message, HINT_STYLE)

    def error(self, message: str) -> None:
        self.say(f"error: {message.splitlines()[0] if message else 'unknown error'}", ERROR_STYLE)

    # ---- the model -------------------------------------------------------------------------------------
    def resolve(self) -> tuple[str, int]:
        return self.svc.resolve(self.model_spec)

    def set_settings(self, given: dict) -> None:
        """Check `given` against the settings contract (raises GhostwriteError, changing nothing) and keep
        it, each value as the contract writes it, as the settings this session sends."""
        checked = SamplingSettings.from_dict(given).to_dict()
        self.settings = {k: checked[k] for k in given}

    def card_defaults(self) -> dict:
        """The model's own defaults (its card's, its tokenizer's) that apply where nothing was /set."""
        try:
            return dict(self.svc.model_defaults(*self.resolve()))
        except GhostwriteError:  # no model (yet): nothing to show beyond the contract's defaults
            return {}

    def effective_settings(self) -> dict:
        """What a generation uses: the contract's defaults, under the card's, under what was /set."""
        return {**self.card_defaults(), **self.settings}

    @property
    def label(self) -> str:
        """The model for the prompt: `name`, or `name@vN` when pinned to a version."""
        spec = self.model_spec
        if spec is None:
            try:
                spec = self.resolve()[0]
            except GhostwriteError:
                spec = "?"
        return spec

    # ---- input (commands.handle routes each line: a /command, or text for `write`) --------------------
    def write(self, text: str) -> Result | None:
        """The writer's text: add it to the story and have the model continue."""
        text, note = clean_text(text)  # the service's door: bytes that were not UTF-8 become U+FFFD
        if note:
            self.note(f"({note})")
        try:
            check_prompt(text)
        except GhostwriteError as e:
            self.hint(f"{e}; nothing was sent")
            return None
        if self.mode == "single":
            self.story.clear()
        parent = self.story.last_generation_id()
        turn = self.story.add(text)
        result = self.generate(turn, parent)
        if result is None or result.status == "error":
            self.story.turns.remove(turn)
            if self.interactive:
                self.note("(your text was not added to the story; the up arrow brings it back)")
        return result

    def continue_story(self) -> Result | None:
        if not self.story:
            self.hint("nothing to continue yet: type the beginning of a story")
            return None
        parent = self.story.last_generation_id()
        turn = self.story.add("")
        result = self.generate(turn, parent)
        if result is None or result.status == "error":
            self.story.turns.remove(turn)
        return result

    def retry(self) -> Result | None:
        last = self.story.last
        if last is None or last.status is None:
            self.hint("nothing to retry yet: type a prompt first")
            return None
        if self.settings.get("seed") is not None:
            self.note(f"(the seed is fixed at {self.settings['seed']}, so this gives the same text; "
                      "/set seed random to vary it)")
        old = (last.model, last.generation_id, last.status)
        parent = last.generation_id if last.generation_id is not None else self.story.last_generation_id()
        last.model, last.generation_id, last.status = "", None, None
        result = self.generate(last, parent)
        if result is None or result.status == "error":
            last.model, last.generation_id, last.status = old
        return result

    # ---- generating ------------------------------------------------------------------------------------
    def generate(self, turn: Turn, parent_id: int | None) -> Result | None:
        """Continue the story (whose last turn is `turn`); fills in the turn. None when it could not
        start (the reason is shown)."""
        # the whole story, with this session's key: the service primes from the state its last turn left, so
        # only what was added since runs through the model, and all of the story conditions what comes next
        prompt = self.story.tail(self.svc.max_story_chars)
        req = Request(prompt=prompt, model=self.model_spec, settings=dict(self.settings),
                      source="repl", user_name=self.user_name, parent_id=parent_id, story=self.story_key)
        result = self._run(req)
        if result is None:
            return None
        if result.status != "error":
            turn.model, turn.generation_id, turn.status = result.text, result.generation_id, result.status
        self._report(result)
        return result

    def _run(self, req: Request) -> Result | None:
        cancel = threading.Event()
        writer = StreamWriter(self.console) if self.interactive else None
        spinner = None
        self.stopped = False
        quiet = contextlib.ExitStack()
        try:
            quiet.enter_context(self.quiet_input())
            if self.interactive and self.console.is_terminal:
                spinner = self.console.status("writing…  (Ctrl+C stops)", spinner="dots",
                                              spinner_style=NOTE_STYLE)
                spinner.start()
        except KeyboardInterrupt:  # before anything started: nothing to stop or store
            if spinner is not None:
                spinner.stop()
            quiet.close()
            self.stopped = True
            self.note("(stopped)")
            return None
        relay = Relay(lambda: self.svc.stream(req, cancel), cancel)  # reads the stream on a thread of its own
        try:
            self._wait(relay, writer, spinner)
        finally:
            quiet.close()
        try:
            return relay.outcome()
        except GhostwriteError as e:  # refused before any text: bad settings, unknown model, nothing writable
            self.error(str(e))
        except Exception as e:  # noqa: BLE001 - a bug; the service stored the row
            log.error("generation failed", exc_info=e)
            self.error(f"internal error: {type(e).__name__}: {e} (details in repl.log)")
        return None

    def _wait(self, relay: Relay, writer, spinner) -> None:
        # Ctrl+C can land anywhere in this loop: it only sets the cancel event, and the loop goes on
        # until the stream has ended (the service then stores the partial text as interrupted).
        while not relay.done:
            try:
                piece = relay.get(timeout=0.1)
                if piece is None:
                    continue
                if spinner is not None:
                    spinner.stop()
                    spinner = None
                if writer is not None:
                    writer.feed(piece)
            except KeyboardInterrupt:
                self.stopped = True
                relay.cancel.set()
        while True:
            try:
                if spinner is not None:
                    spinner.stop()
                if writer is not None:
                    writer.end()
                return
            except KeyboardInterrupt:
                spinner = None

    def _report(self, result: Result) -> None:
        if self.served and self.served[0] == result.model and self.served[1] != result.version:
            self.note(f"({result.model}@v{result.version} serves now: a newer version was registered)")
        self.served = (result.model, result.version)
        if not self.interactive:
            if result.status != "error":
                assert self.out is not None
                self.out.write(escape_line(result.text) + "\n")
                self.out.flush()
                self.lines_out += 1
        if result.status == "error":
            self.error(result.error or "generation failed")
        elif self.interactive:
            parts = ["stopped"] if result.status == "interrupted" else []
            if result.finish_reason == "stop":
                parts.append("ended at a stop string" if not result.note else "ended early")
            parts.append(f"#{result.generation_id}" if result.generation_id is not None else "not stored yet")
            parts += [f"{result.model}@v{result.version}", f"{len(result.text):,} chars",
                      f"{result.latency_ms / 1000:.1f} s"]
            self.note("  " + " · ".join(parts))
        if result.note and result.status != "error":
            self.hint(result.note)
        if result.store_error:
            self.hint(f"not stored yet: {result.store_error}")

    # ---- leaving ---------------------------------------------------------------------------------------
    def quit(self) -> None:
        """/quit or Ctrl+D. With a training job running, the first asks, the second cancels it."""
        if self.job_id is not None and self.svc.current_job() == self.job_id:
            if not self.quit_warned:
                self.quit_warned = True
                self.hint(f"training run {self.job_id} is still running: quit again to cancel it and leave")
                return
            self.note(f"cancelling training run {self.job_id}…")
            try:
                self.svc.cancel_job(self.job_id)
            except GhostwriteError as e:
                self.error(str(e))
        self.done = True

    def poll_jobs(self) -> None:
        """Between prompts: say once when the /retrain job has finished."""
        if self.job_id is None:
            return
        try:
            st = self.svc.job_status(self.job_id)
        except GhostwriteError:
            return
        if not st or st.get("status") in ("queued", "running"):
            return
        run, self.job_id = self.job_id, None
        if st["status"] == "complete":
            bpc = f" (validation {st['val_bpc']:.3f} bits/char)" if st.get("val_bpc") is not None else ""
            self.say(f"training run {run} is done: {st['model']}@v{st.get('new_version')} serves from now on{bpc}",
                     MODEL_STYLE)
        else:
            self.hint(f"training run {run} {st['status']}: {st.get('error') or 'no details'}; "
                      "the current version keeps serving")
