"""Token streams on disk and the batches the trainer reads from them.

The corpus is tokenized once, in chunks, into a flat array of token ids in a file (uint16 when the
vocabulary fits, else uint32) that is read back as a numpy memmap, so a corpus larger than RAM trains in
bounded memory. Training uses truncated back-propagation through time over contiguous streams: the
training tokens are cut into `batch_size` equal streams laid side by side, each step reads the next
`seq_len` tokens of every stream, and the LSTM's hidden state is carried from one step to the next.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..errors import GhostwriteError
from ..paths import fsync_dir


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def text_chunks(text: str, chunk_chars: int = 1 << 20) -> Iterator[str]:
    """Cut a text into pieces of about `chunk_chars`, each ending at a newline where there is one, so
    tokenizers that look at context (words, SentencePiece) see the same units as on the whole text."""
    start, n = 0, len(text)
    while start < n:
        end = min(start + chunk_chars, n)
        if end < n:
            nl = text.rfind("\n", start, end)
            if nl > start:
                end = nl + 1
        yield text[start:end]
        start = end


def iter_text_file(path: Path, start: int = 0, stop: int | None = None, chunk_bytes: int = 8 << 20,
                   encoding: str | None = None, marks: list | None = None) -> Iterator[str]:
    """Characters [start, stop) of a text file, normalised as `corpus.read_text_file` does (UTF-8 or
    `encoding`, BOM stripped, CRLF and CR → LF), read `chunk_bytes` at a time: memory stays bounded
    whatever the file's size. Bad bytes raise the same one-line error, naming the byte offset.
    `marks` collects (bytes read, characters before them) after each read: every character before that
    count comes from bytes before that offset, which lets a caller seek safely into the text."""
    import codecs

    from ..corpora.textfiles import check_encoding

    enc = check_encoding(encoding) or "utf-8"
    decoder = codecs.getincrementaldecoder(enc)(errors="strict")
    pos, offset, first, held_cr = 0, 0, True, False
    with open(path, "rb") as f:
        while stop is None or pos < stop:
            data = f.read(chunk_bytes)
            final = not data
            if first and enc.startswith("utf-8") and (data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff")):
                raise GhostwriteError(f"{path}: looks like UTF-16 (byte order mark); pass --encoding utf-16")
            if enc.startswith("utf-8") and b"\x00" in data:
                raise GhostwriteError(f"{path}: binary data (NUL byte at byte offset {offset + data.find(bytes(1))}), "
                                      "not a text file")
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as e:
                raise GhostwriteError(f"{path}: not valid {enc.upper() if enc == 'utf-8' else enc} near byte offset "
                                      f"{offset + max(e.start, 0)}; pass --encoding (e.g. gb18030, latin-1)") from None
            offset += len(data)
            if first and text:
                if text.startswith("\ufeff"):
                    text = text[1:]
                first = False
            if held_cr:
                text = "\r" + text
                held_cr = False
            if text.endswith("\r") and not final:  # a CRLF may be split across two reads
                text, held_cr = text[:-1], True
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                end = pos + len(text)
                lo = max(0, start - pos)
                hi = len(text) if stop is None else min(len(text), stop - pos)
                if lo < hi:
                    yield text[lo:hi]
                pos = end
            if marks is not None:
                marks.append((offset, pos))
            if final:
                return


def write_tokens(path: Path, tokenizer, chunks: Iterable[str]) -> int:
    """Encode `chunks` and append the ids to `path` (temp file + fsync + rename). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for(tokenizer.vocab_size)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "wb") as f:
            for ids in tokenizer.encode_iter(chunks):  # the same ids as encoding the whole text
                f.write(np.asarray(ids, dtype=dtype).tobytes())
                count += len(ids)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return count


def read_tokens(path: Path, vocab_size: int) -> np.ndarray:
    return np.memmap(path, dtype=dtype_for(vocab_size), mode="r")


class StreamBatcher:
    """Contiguous-stream batches for truncated BPTT.

    `tokens` (a memmap) is cut into `batch_size` streams of equal length; batch `i` holds, for every
    stream, tokens [i*seq_len, (i+1)*seq_len) as inputs and the same window shifted by one as targets.
    With `rank`/`world_size` (DistributedDataParallel) each process takes its own share of the streams.
    The position is just the batch index, so a checkpoint resumes exactly where the run stopped.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, rank: int = 0, world_size: int = 1):
        total_streams = batch_size * world_size
        stream_len = (len(tokens) - 1) // total_streams
        if stream_len < seq_len + 1:
            raise GhostwriteError(
                f"corpus too small for batch {batch_size} x {seq_len} tokens ({len(tokens):,} tokens); "
                "use a larger corpus or a smaller --batch-size/--seq-len"
            )
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.stream_len = stream_len
        first = rank * batch_size
        self.starts = np.arange(first, first + batch_size, dtype=np.int64) * stream_len
        self.batches_per_epoch = stream_len // seq_len

    def __len__(self) -> int:
        return self.batches_per_epoch

    def get(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (batch, seq_len) for batch `index` of the epoch, as int64 tensors."""
        off = (index % self.batches_per_epoch) * self.seq_len
        rows = self.starts[:, None] + off + np.arange(self.seq_len + 1, dtype=np.int64)[None, :]
        window = torch.from_numpy(np.asarray(self.tokens[rows], dtype=np.int64))
        return window[:, :-1], window[:, 1:]


def eval_streams(tokens: np.ndarray, streams: int, seq_len: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every token of `tokens` (after the first) scored once: `streams` contiguous pieces side by side,
    read in windows of `seq_len` with the state carried. One stream scores the text as one whole."""
    n = len(tokens) - 1
    streams = max(1, min(streams, n // max(seq_len, 1) or 1))
    length = n // streams
    base = np.arange(streams, dtype=np.int64) * length
    for off in range(0, length, seq_len):
        width = min(seq_len, length - off)
        rows = base[:, None] + off + np.arange(width + 1, dtype=np.int64)[None, :]
        window = torch.from_numpy(np.asarray(tokens[rows], dtype=np.int64))
        yield window[:, :-1], window[:, 1:]
    rest = n - streams * length  # the tail that does not divide evenly: scored as one more window
    if rest:
        tail = torch.from_numpy(np.asarray(tokens[n - rest :], dtype=np.int64))[None, :]
        yield tail[:, :-1], tail[:, 1:]
