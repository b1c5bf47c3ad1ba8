"""Tests for mlcraft.data.tokenizers: CharTokenizer and ByteTokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mlcraft.data.tokenizers import ByteTokenizer, CharTokenizer

TEXT = "hello, world!\nThe quick brown fox."

# --------------------------------------------------------------------------- CharTokenizer


def test_char_round_trip() -> None:
    tok = CharTokenizer.fit(TEXT)
    ids = tok.encode(TEXT)
    assert ids.dtype == torch.long
    assert ids.shape == (len(TEXT),)
    assert tok.decode(ids) == TEXT
    assert tok.decode(ids.tolist()) == TEXT
    assert int(ids.min()) >= 0
    assert int(ids.max()) < tok.vocab_size


def test_char_vocab_is_sorted_distinct_characters() -> None:
    tok = CharTokenizer.fit(TEXT)
    assert tok.itos == sorted(set(TEXT))
    assert tok.vocab_size == len(set(TEXT))
    assert all(tok.stoi[ch] == i for i, ch in enumerate(tok.itos))
    # Deterministic: independent of the order the characters were seen in.
    assert CharTokenizer.fit(TEXT[::-1]).itos == tok.itos
    assert CharTokenizer.fit("cab").encode("abc").tolist() == [0, 1, 2]


def test_char_non_ascii_round_trip() -> None:
    text = "naïve café 😀 – ok"
    tok = CharTokenizer.fit(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == len(set(text))


def test_char_unknown_character_raises_naming_it() -> None:
    tok = CharTokenizer.fit("abc")
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("abz")


def test_char_empty_text() -> None:
    with pytest.raises(ValueError):
        CharTokenizer.fit("")
    tok = CharTokenizer.fit("ab")
    assert tok.encode("").shape == (0,)
    assert tok.decode([]) == ""


@pytest.mark.parametrize("ids", [[0, 3], [-1], [100]])
def test_char_decode_out_of_range_raises(ids: list[int]) -> None:
    tok = CharTokenizer.fit("abc")
    with pytest.raises(ValueError):
        tok.decode(ids)
    with pytest.raises(ValueError):
        tok.decode(torch.tensor(ids))


def test_char_save_load(tmp_path: Path) -> None:
    tok = CharTokenizer.fit(TEXT + "é😀")
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded.itos == tok.itos
    assert loaded.stoi == tok.stoi
    assert torch.equal(loaded.encode(TEXT), tok.encode(TEXT))
    loaded_from_str = CharTokenizer.load(str(path))
    assert loaded_from_str.itos == tok.itos


def test_char_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"type": "bpe", "alphabet": "ab"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a character tokenizer"):
        CharTokenizer.load(path)


# --------------------------------------------------------------------------- ByteTokenizer


@pytest.mark.parametrize("text", ["naïve 😀", "", "plain ascii", "日本語\n\t\x00"])
def test_byte_round_trip(text: str) -> None:
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids.dtype == torch.long
    assert ids.tolist() == list(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_byte_non_ascii_uses_several_tokens() -> None:
    ids = ByteTokenizer().encode("naïve 😀")
    assert len(ids) == len("naïve 😀".encode()) == 11  # ï is 2 bytes, 😀 is 4
    assert ByteTokenizer.vocab_size == 256


def test_byte_invalid_utf8_is_replaced() -> None:
    tok = ByteTokenizer()
    cut = list("😀".encode())[:2]  # a character cut half-way, as sampling may produce
    assert tok.decode([*list(b"ok "), *cut]) == "ok \ufffd"
    assert tok.decode([0xFF, 0x61]) == "\ufffda"
    with pytest.raises(UnicodeDecodeError):
        tok.decode([0xFF], errors="strict")


@pytest.mark.parametrize("ids", [[256], [-1], [65, 300]])
def test_byte_decode_out_of_range_raises(ids: list[int]) -> None:
    with pytest.raises(ValueError, match="256"):
        ByteTokenizer().decode(ids)
    with pytest.raises(ValueError, match="256"):
        ByteTokenizer().decode(torch.tensor(ids))
