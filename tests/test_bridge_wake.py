"""The engine's wake-up limit and the bridge's coalescing no longer stack (issue 14, item 2): a bridged
stream tells the engine to wake its reader at the bridge's interval, and the bridge then only stops a
second send right after a wake (they were 20 ms and 25 ms: a send every other wake, ~40 ms apart)."""

from __future__ import annotations

import threading

from bot.service import COALESCE_S, ContinuationService, Relay, Request
from bot.service.bridge import pump
from bot.store import Store


class Woken:
    """Pieces as an engine reader gets them, one per wake; records the wake interval it was given."""

    def __init__(self, pieces):
        self.pieces, self.wake_interval, self.result = iter(pieces), None, "done"

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.pieces)


def test_pump_hands_its_interval_to_a_stream_that_wakes_its_reader():
    s = Woken(["a", "b"])
    sent: list = []
    assert pump(lambda: s, sent.append, interval=3600) == "done"
    assert s.wake_interval == 3600
    assert sent == ["a", "b"]  # (joined: the second came right after the first wake)


def test_a_relayed_service_stream_wakes_at_the_bridges_interval(tiny_model, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    with ContinuationService(store=store, default_model="tiny") as svc:
        seen = {}

        def open_stream():
            st = svc.stream(Request("K:\n", settings={"length": 50, "unit": "tokens", "seed": 1}), cancel)
            seen["stream"] = st
            return st

        cancel = threading.Event()
        relay = Relay(open_stream, cancel)
        text = []
        while not relay.done:
            piece = relay.get(1.0)
            if piece:
                text.append(piece)
        result = relay.outcome()
        assert "".join(text) == result.text and result.tokens_out == 50
        assert seen["stream"].wake_interval == COALESCE_S
    store.close()
