"""Scoring a text: nats and bits per character, and per-token perplexity.

Bits per character is the figure that compares character, word and SentencePiece models: the summed
negative log-likelihood of every token, divided by the number of characters those tokens spell.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from .data import eval_streams


@torch.inference_mode()
def score_tokens(model, tokens: np.ndarray, streams: int = 1, seq_len: int = 256, device="cpu",
                 autocast_dtype=None) -> tuple[float, int]:
    """Summed NLL (nats) over every token after the first, and how many tokens that is. The state is
    carried through each stream; `streams=1` scores the text as one whole stream."""
    was_training = model.training
    model.eval()
    total, count, hidden, rows = 0.0, 0, None, None
    try:
        for x, y in eval_streams(tokens, streams, seq_len):
            if rows != x.size(0):
                hidden, rows = None, x.size(0)
            x, y = x.to(device), y.to(device)
            with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype,
                                enabled=autocast_dtype is not None):
                logits, hidden, _ = model(x, hidden)
            total += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
    finally:
        model.train(was_training)
    return total, count


def report(total_nats: float, tokens: int, chars: int) -> dict:
    """Figures for `tokens` scored tokens that spell `chars` characters."""
    chars = max(chars, 1)
    nats_per_char = total_nats / chars
    return {
        "nats_per_char": nats_per_char,
        "bits_per_char": nats_per_char / math.log(2),
        "nats_per_token": total_nats / max(tokens, 1),
        "perplexity": math.exp(min(total_nats / max(tokens, 1), 50.0)),
        "chars": chars,
        "tokens": tokens,
    }


def chars_scored(text_len: int, tokens_total: int, tokens_scored: int) -> int:
    """Characters spelled by `tokens_scored` of a text's `tokens_total` tokens: for a char tokenizer
    exactly `tokens_scored`; for others the text's length scaled by the share of tokens scored."""
    if tokens_total <= 0:
        return 0
    return max(1, round(text_len * tokens_scored / tokens_total))
