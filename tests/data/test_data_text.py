"""Tests for mlcraft.data.text: stdlib_corpus, fetch_text (through file:// URLs) and
TokenBlockDataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from mlcraft.data.text import TokenBlockDataset, fetch_text, stdlib_corpus

# --------------------------------------------------------------------------- stdlib_corpus


def test_stdlib_corpus_is_deterministic_ascii_and_bounded() -> None:
    a = stdlib_corpus(max_chars=20_000)
    b = stdlib_corpus(max_chars=20_000)
    assert a == b
    assert len(a) == 20_000
    assert a.isascii()
    assert "def " in a


def test_stdlib_corpus_max_chars_is_a_prefix() -> None:
    short = stdlib_corpus(max_chars=500)
    assert len(short) == 500
    assert stdlib_corpus(max_chars=5_000).startswith(short)


def test_stdlib_corpus_without_limit() -> None:
    full = stdlib_corpus(max_chars=None, modules=("textwrap.py",))
    assert full.isascii()
    assert len(full) > 1000
    assert stdlib_corpus(max_chars=10**9, modules=("textwrap.py",)) == full


def test_stdlib_corpus_skips_missing_modules() -> None:
    assert stdlib_corpus(None, modules=("no_such_module.py", "textwrap.py")) == stdlib_corpus(
        None, modules=("textwrap.py",)
    )


def test_stdlib_corpus_missing_modules_raise() -> None:
    with pytest.raises(FileNotFoundError):
        stdlib_corpus(modules=("no_such_module.py", "nor/this.py"))


# --------------------------------------------------------------------------- fetch_text


def _source(tmp_path: Path, text: str = "To be, or not to be: naïve ✓\n") -> tuple[Path, str, str]:
    path = tmp_path / "src" / "corpus.txt"
    path.parent.mkdir()
    path.write_bytes(text.encode("utf-8"))
    return path, text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_fetch_text_downloads_and_caches(tmp_path: Path) -> None:
    path, text, digest = _source(tmp_path)
    cache = tmp_path / "cache"
    assert fetch_text(path.as_uri(), digest, cache) == text
    cached = list(cache.iterdir())
    assert len(cached) == 1
    assert cached[0].read_bytes() == text.encode("utf-8")
    path.unlink()  # the second call is served from the cache
    assert fetch_text(path.as_uri(), digest, cache) == text
    assert fetch_text(path.as_uri(), digest.upper(), cache) == text  # hex case does not matter


def test_fetch_text_wrong_hash_raises_and_keeps_nothing(tmp_path: Path) -> None:
    path, _, digest = _source(tmp_path)
    cache = tmp_path / "cache"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ValueError, match="SHA-256"):
        fetch_text(path.as_uri(), wrong, cache)
    assert list(cache.iterdir()) == []
    # The right hash still works afterwards.
    assert fetch_text(path.as_uri(), digest, cache)


def test_fetch_text_corrupted_cache_is_rejected_and_removed(tmp_path: Path) -> None:
    path, _, digest = _source(tmp_path)
    cache = tmp_path / "cache"
    fetch_text(path.as_uri(), digest, cache)
    (cached,) = cache.iterdir()
    cached.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="SHA-256"):
        fetch_text(path.as_uri(), digest, cache)
    assert not cached.exists()


def test_fetch_text_unreachable_raises_oserror_with_offline_hint(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist.txt"
    with pytest.raises(OSError, match="stdlib_corpus"):
        fetch_text(missing.as_uri(), "0" * 64, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


# --------------------------------------------------------------------------- TokenBlockDataset


def test_blocks_are_shifted_by_one() -> None:
    tokens = torch.arange(100, 131)
    ds = TokenBlockDataset(tokens, block_size=5)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (5,)
        assert torch.equal(y[:-1], x[1:])
        assert torch.equal(x, tokens[5 * i : 5 * i + 5])
        assert torch.equal(y, tokens[5 * i + 1 : 5 * i + 6])


@pytest.mark.parametrize(
    ("n", "block", "stride"),
    [(31, 5, None), (30, 5, None), (6, 5, None), (20, 4, 1), (20, 4, 3), (21, 4, 8), (10, 3, 100)],
)
def test_block_count_formula(n: int, block: int, stride: int | None) -> None:
    ds = TokenBlockDataset(torch.arange(n), block_size=block, stride=stride)
    step = block if stride is None else stride
    # Every start s = i * step with s + block + 1 <= n, counted directly.
    expected = len(range(0, n - block, step))
    assert len(ds) == expected == (n - block - 1) // step + 1
    last_x, last_y = ds[len(ds) - 1]
    assert int(last_y[-1]) <= n - 1
    assert last_x.shape == (block,)


def test_overlapping_windows_with_stride() -> None:
    ds = TokenBlockDataset(torch.arange(10), block_size=4, stride=2)
    assert [ds[i][0].tolist() for i in range(len(ds))] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]


@pytest.mark.parametrize(("n", "block"), [(5, 5), (0, 1), (3, 10)])
def test_too_short_input_raises(n: int, block: int) -> None:
    with pytest.raises(ValueError, match="block_size"):
        TokenBlockDataset(torch.arange(n), block_size=block)


def test_non_1d_tokens_or_bad_block_size_raise() -> None:
    with pytest.raises(ValueError, match="1-D"):
        TokenBlockDataset(torch.zeros(2, 10, dtype=torch.long), block_size=3)
    with pytest.raises(ValueError):
        TokenBlockDataset(torch.arange(10), block_size=0)


def test_negative_index_and_out_of_range() -> None:
    ds = TokenBlockDataset(torch.arange(31), block_size=5)
    assert len(ds) == 6
    for i in range(1, 7):
        assert torch.equal(ds[-i][0], ds[6 - i][0])
        assert torch.equal(ds[-i][1], ds[6 - i][1])
    for bad in (6, 7, -7, 100):
        with pytest.raises(IndexError):
            ds[bad]


def test_dataloader_batches() -> None:
    ds = TokenBlockDataset(torch.arange(41), block_size=4)
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert x.shape == y.shape == (3, 4)
    assert torch.equal(y, x + 1)


def test_negative_stride_raises_at_construction() -> None:
    with pytest.raises(ValueError, match="stride"):
        TokenBlockDataset(torch.arange(10), block_size=3, stride=-1)
