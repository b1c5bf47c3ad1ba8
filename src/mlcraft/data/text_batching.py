"""Batches of token sequences: padding with an attention mask, overlapping windows, length buckets.

- :func:`pad_batch` is what Hugging Face ``tokenizers`` (``Tokenizer.enable_padding``) and
  ``transformers.DataCollatorWithPadding`` do: pad every sequence to the longest one, on the right
  (encoders, training) or the left (decoder-only generation, so every prompt ends at the last column).
- :func:`sliding_windows` follows HF's truncation with ``stride`` and overflowing tokens
  (``Tokenizer.enable_truncation(max_length, stride=...)``, ``Encoding.overflowing``; the
  ``return_overflowing_tokens`` of question answering): long texts become overlapping windows.
- :func:`length_bucketed_batches` is the bucketing of fairseq's and ``transformers``'
  ``group_by_length`` (``LengthGroupedSampler``): sequences of similar length share a batch, so
  little of each batch is padding, while batches still come in random order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

__all__ = ["length_bucketed_batches", "pad_batch", "padding_fraction", "sliding_windows"]


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def pad_batch(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    side: Literal["right", "left"] = "right",
    max_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token sequences into one rectangle.

    Args:
        sequences: ``B >= 1`` sequences of token ids (lists, tuples or 1-D tensors), any lengths.
        pad_id: the id written into padded positions.
        side: ``"right"`` puts the padding after the tokens, ``"left"`` before them.
        max_length: if given (``>= 1``), longer sequences are truncated to their first ``max_length``
            tokens first. The output is *not* padded up to ``max_length``: ``T`` is the longest length.

    Returns:
        ``(input_ids, attention_mask)``, both ``(B, T)`` int64; ``attention_mask`` is 1 on real
        tokens and 0 on padding, so ``attention_mask.sum(1)`` is each (truncated) length.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if max_length is not None:
        max_length = _positive_int(max_length, "max_length")
    rows = [[int(v) for v in (s.reshape(-1).tolist() if isinstance(s, torch.Tensor) else s)] for s in sequences]
    if not rows:
        raise ValueError("cannot pad an empty batch (B == 0)")
    if max_length is not None:
        rows = [row[:max_length] for row in rows]
    longest = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), longest), int(pad_id), dtype=torch.int64)  # (B, T)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.int64)  # (B, T)
    for b, row in enumerate(rows):
        start = 0 if side == "right" else longest - len(row)
        input_ids[b, start : start + len(row)] = torch.tensor(row, dtype=torch.int64)
        attention_mask[b, start : start + len(row)] = 1
    return input_ids, attention_mask


def sliding_windows(ids: Sequence[int], max_length: int, stride: int) -> list[list[int]]:
    """Cut ``ids`` into windows of at most ``max_length`` tokens, consecutive windows sharing ``stride``.

    Window ``i`` starts at ``i * (max_length - stride)``; the windows stop at the first one that
    reaches the end of ``ids`` (it may be shorter than ``max_length``). So every token is in at least
    one window, and ``ids`` shorter than ``max_length`` give one window: ``[] -> [[]]``.
    Equal to ``[encoding.ids] + [o.ids for o in encoding.overflowing]`` of HF ``tokenizers`` with
    ``enable_truncation(max_length, stride=stride)`` (no special tokens added).

    Raises:
        ValueError: unless ``max_length >= 1`` and ``0 <= stride < max_length``.
    """
    max_length = _positive_int(max_length, "max_length")
    if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or not 0 <= stride < max_length:
        raise ValueError(f"stride must be an int with 0 <= stride < max_length = {max_length}, got {stride!r}")
    values = list(ids)
    step = max_length - int(stride)
    windows: list[list[int]] = []
    for start in range(0, max(len(values), 1), step):
        windows.append(values[start : start + max_length])
        if start + max_length >= len(values):
            break
    return windows


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, *, bucket_size: int | None = None, seed: int = 0
) -> list[list[int]]:
    """Batches of indices into ``lengths`` where each batch holds sequences of similar length.

    The indices are shuffled (``numpy.random.default_rng(seed)``), cut into buckets of
    ``bucket_size`` (default ``50 * batch_size``), sorted by length inside each bucket (stable, longest
    first), cut into batches of ``batch_size`` (the last batch of a bucket may be smaller), and the
    batches shuffled. Every index appears exactly once; the same ``seed`` gives the same batches.
    A larger bucket wastes less padding but makes batch contents less random.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    bucket = 50 * batch_size if bucket_size is None else _positive_int(bucket_size, "bucket_size")
    sizes = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if (sizes < 0).any():
        raise ValueError(f"lengths must be >= 0, got {sizes[sizes < 0][:5].tolist()}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sizes))
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[np.argsort(-sizes[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of pad tokens when each batch pads to its longest sequence:
    ``Σ_batches (|batch| · max_len − Σ len) / Σ_batches |batch| · max_len`` (0.0 when that is 0)."""
    sizes = np.asarray(lengths, dtype=np.int64).reshape(-1)
    padded = real = 0
    for i, batch in enumerate(batches):
        idx = np.asarray(batch, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            continue
        if idx.min() < 0 or idx.max() >= len(sizes):
            raise ValueError(f"batches[{i}] has indices outside [0, {len(sizes)}): {batch!r}")
        padded += int(idx.size * sizes[idx].max())
        real += int(sizes[idx].sum())
    return 0.0 if padded == 0 else (padded - real) / padded
