"""Tests for mlcraft.data.text_batching: padding and windows equal to Hugging Face ``tokenizers``
(the tokenizer from ``BPETokenizer.to_hf()``), and length buckets against random batches."""

from __future__ import annotations

import random
from itertools import pairwise

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from mlcraft.data.bpe import BPETokenizer
from mlcraft.data.text import stdlib_corpus
from mlcraft.data.text_batching import length_bucketed_batches, pad_batch, padding_fraction, sliding_windows

PAD = "<|pad|>"


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train(stdlib_corpus(30_000), vocab_size=256 + 100 + 1, special_tokens=[PAD])


def _texts(seed: int, n: int) -> list[str]:
    """Lines of stdlib text of very different lengths, including an empty one."""
    lines = [line for line in stdlib_corpus(30_000).splitlines() if line.strip()]
    rng = random.Random(seed)
    return ["", *(" ".join(rng.sample(lines, rng.randint(1, 4))) for _ in range(n - 1))]


# --------------------------------------------------------------------------- pad_batch


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("max_length", [None, 1, 7, 40, 10_000])
def test_pad_batch_matches_hf(tokenizer: BPETokenizer, side: str, max_length: int | None) -> None:
    texts = _texts(0, 9)
    pad_id = tokenizer.special_ids[PAD]
    hf: Tokenizer = tokenizer.to_hf()
    hf.enable_padding(direction=side, pad_id=pad_id, pad_token=PAD)  # pads to the longest, as ours
    if max_length is not None:
        hf.enable_truncation(max_length)  # keeps the first tokens (direction "right")
    encodings = hf.encode_batch(texts)
    ids, mask = pad_batch([tokenizer.encode(t) for t in texts], pad_id, side, max_length)  # type: ignore[arg-type]
    assert ids.dtype == torch.int64 and mask.dtype == torch.int64
    expected_ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
    expected_mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
    torch.testing.assert_close(
        ids, expected_ids, rtol=0, atol=0, msg=f"input_ids, side={side}, max_length={max_length}"
    )
    torch.testing.assert_close(mask, expected_mask, rtol=0, atol=0, msg=f"mask, side={side}, max_length={max_length}")


def test_pad_batch_hand_example_and_inputs() -> None:
    seqs = [[5, 6, 7], [8], torch.tensor([9, 10])]
    ids, mask = pad_batch(seqs, pad_id=0)  # type: ignore[arg-type]
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    ids, mask = pad_batch(seqs, pad_id=-1, side="left", max_length=2)  # type: ignore[arg-type]
    assert ids.tolist() == [[5, 6], [-1, 8], [9, 10]] and mask.tolist() == [[1, 1], [0, 1], [1, 1]]
    ids, mask = pad_batch([[], []], pad_id=3)
    assert ids.shape == (2, 0) and mask.shape == (2, 0)
    ids, mask = pad_batch(iter([(1, 2)]), pad_id=0)  # type: ignore[arg-type]
    assert ids.tolist() == [[1, 2]] and mask.tolist() == [[1, 1]]
    big = 2**40  # int64, not int32
    assert pad_batch([[big]], pad_id=0)[0].item() == big


def test_pad_batch_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="B == 0"):
        pad_batch([], pad_id=0)
    with pytest.raises(ValueError, match="side must be"):
        pad_batch([[1]], pad_id=0, side="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length must be an int >= 1, got 0"):
        pad_batch([[1]], pad_id=0, max_length=0)


# --------------------------------------------------------------------------- sliding_windows


def _hf_windows(n: int, max_length: int, stride: int) -> list[list[int]]:
    """HF truncation with stride on a byte-level tokenizer without merges: ``n`` ASCII bytes are
    exactly ``n`` tokens."""
    hf = BPETokenizer([]).to_hf()
    hf.enable_truncation(max_length, stride=stride)
    text = "".join(chr(97 + i % 26) for i in range(n))
    encoding = hf.encode(text)
    return [encoding.ids] + [o.ids for o in encoding.overflowing]


@pytest.mark.parametrize(
    ("n", "max_length", "stride"),
    [
        (0, 4, 0),
        (1, 1, 0),
        (3, 4, 2),
        (4, 4, 0),
        (4, 4, 3),
        (5, 4, 0),
        (5, 4, 3),
        (9, 4, 1),
        (10, 4, 2),
        (11, 4, 2),
        (50, 7, 3),
        (50, 1, 0),
        (64, 16, 15),
        (100, 10, 0),
    ],
)
def test_sliding_windows_match_hf_overflow(n: int, max_length: int, stride: int) -> None:
    ids = [97 + i % 26 for i in range(n)]
    ours = sliding_windows(ids, max_length, stride)
    assert ours == _hf_windows(n, max_length, stride), f"n={n}, max_length={max_length}, stride={stride}"
    assert all(len(w) <= max_length for w in ours)
    assert ours[-1][-1:] == ids[-1:], "the last window ends at the end"
    for a, b in pairwise(ours):
        assert len(a) == max_length and a[max_length - stride :] == b[:stride], "consecutive windows share `stride`"


def test_sliding_windows_on_real_tokens(tokenizer: BPETokenizer) -> None:
    text = stdlib_corpus(3000)
    ids = tokenizer.encode(text)
    hf = tokenizer.to_hf()
    hf.enable_truncation(64, stride=16)
    encoding = hf.encode(text)
    assert sliding_windows(ids, 64, 16) == [encoding.ids] + [o.ids for o in encoding.overflowing]
    assert sliding_windows((1, 2, 3), 2, 1) == [[1, 2], [2, 3]] and sliding_windows([], 3, 0) == [[]]


@pytest.mark.parametrize(("max_length", "stride"), [(0, 0), (4, 4), (4, -1), (4, 5), (-2, 0)])
def test_sliding_windows_rejects_bad_arguments(max_length: int, stride: int) -> None:
    with pytest.raises(ValueError, match=r"max_length|stride"):
        sliding_windows([1, 2, 3], max_length, stride)


# --------------------------------------------------------------------------- length buckets


def _skewed_lengths(n: int, seed: int) -> list[int]:
    """Log-normal lengths (many short texts, a long tail), as real documents."""
    lengths: list[int] = np.clip(np.random.default_rng(seed).lognormal(3.0, 1.0, n), 1, 2000).astype(int).tolist()
    return lengths


@pytest.mark.parametrize(
    ("n", "batch_size", "bucket_size"), [(1000, 16, None), (1000, 16, 100), (37, 8, 5), (1, 4, None)]
)
def test_buckets_cover_every_index_once(n: int, batch_size: int, bucket_size: int | None) -> None:
    lengths = _skewed_lengths(n, 0)
    batches = length_bucketed_batches(lengths, batch_size, bucket_size=bucket_size, seed=3)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert all(isinstance(i, int) for i in flat)


def test_buckets_deterministic_by_seed() -> None:
    lengths = _skewed_lengths(500, 1)
    a = length_bucketed_batches(lengths, 8, seed=5)
    assert a == length_bucketed_batches(lengths, 8, seed=5)
    assert a != length_bucketed_batches(lengths, 8, seed=6)


def test_buckets_waste_far_less_padding_than_random_batches() -> None:
    lengths = _skewed_lengths(4000, 2)
    bucketed = padding_fraction(lengths, length_bucketed_batches(lengths, 32, seed=0))
    perm = np.random.default_rng(0).permutation(len(lengths)).tolist()
    random_batches = [perm[i : i + 32] for i in range(0, len(perm), 32)]
    shuffled = padding_fraction(lengths, random_batches)
    assert shuffled > 0.6, f"random batches of log-normal lengths should be mostly padding, got {shuffled:.3f}"
    assert bucketed < shuffled / 3, f"bucketed {bucketed:.3f} vs random {shuffled:.3f}"
    # Buckets as large as the data set: batches sorted by length overall, the least padding.
    assert padding_fraction(lengths, length_bucketed_batches(lengths, 32, bucket_size=4000)) <= bucketed


def test_buckets_edge_cases_and_errors() -> None:
    assert length_bucketed_batches([], 4) == []
    assert length_bucketed_batches([0, 0, 0], 2, seed=1) != []
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        length_bucketed_batches([1, 2], 0)
    with pytest.raises(ValueError, match="bucket_size"):
        length_bucketed_batches([1, 2], 2, bucket_size=0)
    with pytest.raises(ValueError, match=r"lengths must be >= 0, got \[-3\]"):
        length_bucketed_batches([1, -3], 2)


def test_padding_fraction_against_loop() -> None:
    lengths = [3, 1, 4, 1, 5, 9, 2, 6, 0]
    batches = [[0, 1], [2, 3, 4], [5], [6, 7, 8], []]
    pads = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches if b)
    total = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    assert padding_fraction(lengths, batches) == pytest.approx(pads / total, rel=0, abs=1e-15)
    assert padding_fraction(lengths, [[5]]) == 0.0 and padding_fraction([0, 0], [[0, 1]]) == 0.0
    assert padding_fraction([], []) == 0.0
    with pytest.raises(ValueError, match="outside"):
        padding_fraction([1, 2], [[0, 2]])
