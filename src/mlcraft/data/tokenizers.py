"""Character-level and byte-level tokenizers.

- :class:`CharTokenizer`: one id per distinct character of a training text (Karpathy's
  char-rnn/nanoGPT "shakespeare_char"); tiny vocabularies, long sequences.
- :class:`ByteTokenizer`: the 256 byte values of UTF-8 (the base alphabet of GPT-2's
  byte-level BPE); never meets an unknown character.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["ByteTokenizer", "CharTokenizer"]


def _as_list(ids: torch.Tensor | list[int]) -> list[int]:
    """Token ids as a list; a 0-d tensor is one id."""
    if isinstance(ids, torch.Tensor):
        return [int(v) for v in ids.reshape(-1).tolist()]
    return list(ids)


class CharTokenizer:
    """Maps each character seen at fit time to an id (sorted by code point, so it is deterministic)."""

    def __init__(self, alphabet: str) -> None:
        chars = sorted(set(alphabet))
        if not chars:
            raise ValueError("cannot build a tokenizer from empty text")
        self.itos = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> torch.Tensor:
        """``(len(text),)`` int64 ids. Raises ``ValueError`` naming the first unknown character."""
        try:
            return torch.tensor([self.stoi[ch] for ch in text], dtype=torch.long)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} was not in the text this tokenizer was fit on") from None

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        values = _as_list(ids)
        if any(not 0 <= i < len(self.itos) for i in values):
            raise ValueError(f"token ids must be in [0, {len(self.itos)})")
        return "".join(self.itos[i] for i in values)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "alphabet": "".join(self.itos)}), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if payload.get("type") != "char":
            raise ValueError(f"{path}: not a character tokenizer file")
        return cls(payload["alphabet"])


class ByteTokenizer:
    """UTF-8 bytes as tokens: vocabulary of 256, any text round-trips."""

    vocab_size = 256

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int], errors: str = "replace") -> str:
        """Invalid UTF-8 (a sampled sequence may cut a character) becomes U+FFFD by default."""
        values = _as_list(ids)
        if any(not 0 <= i < 256 for i in values):
            raise ValueError("byte token ids must be in [0, 256)")
        return bytes(values).decode("utf-8", errors=errors)
