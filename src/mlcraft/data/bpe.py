"""Byte-level byte-pair encoding (BPE): training, encoding, decoding, export to Hugging Face ``tokenizers``.

BPE (Sennrich, Haddow & Birch, 2016, "Neural Machine Translation of Rare Words with Subword Units",
https://arxiv.org/abs/1508.07909) starts from single symbols and repeatedly merges the most frequent
adjacent pair into a new symbol. GPT-2 (Radford et al., 2019, "Language Models are Unsupervised
Multitask Learners") runs it on UTF-8 *bytes*, so no text is ever out of vocabulary, and first cuts
the text into chunks with a regex (:data:`GPT2_PATTERN`) so merges never join a word to the
punctuation or space after it.

Conventions here:

- Token ids 0-255 are the bytes; merge ``k`` (from 0) creates id ``256 + k``; special tokens
  (``"<|endoftext|>"``) take the ids after the merges and are never split.
- Training ties (two pairs equally frequent) go to the smallest ``(left_id, right_id)``, so
  training is deterministic; Hugging Face's ``BpeTrainer`` breaks ties differently.
- Encoding follows GPT-2's ``encoder.py``: merge the lowest-ranked pair present until none is left.
  :meth:`BPETokenizer.to_hf` builds the same tokenizer in ``tokenizers`` and gives identical ids.
"""

from __future__ import annotations

import heapq
import json
import operator
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import regex  # type: ignore[import-untyped]  # \p{L}/\p{N} classes; the package ships no stubs
import torch

from mlcraft.utils.logging import get_logger

if TYPE_CHECKING:
    import tokenizers

__all__ = ["GPT2_PATTERN", "BPETokenizer", "bytes_to_unicode", "encode_chunk", "pretokenize", "train_bpe"]

log = get_logger(__name__)

#: GPT-2's pre-tokenizer (also ``tokenizers.pre_tokenizers.ByteLevel(use_regex=True)``): English
#: contractions, letter runs, digit runs and other-symbol runs each with at most one leading space,
#: then whitespace (a run before a word leaves its last space to that word).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_GPT2_RE = regex.compile(GPT2_PATTERN)
_CACHE_LIMIT = 200_000  # chunks remembered by BPETokenizer.encode before the cache is emptied

Pair = tuple[int, int]


def pretokenize(text: str) -> list[str]:
    """Chunks of ``text`` matched by :data:`GPT2_PATTERN`; ``"".join(chunks) == text`` always."""
    return list(_GPT2_RE.findall(text))


def _count_chunks(texts: str | Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for i, text in enumerate([texts] if isinstance(texts, str) else texts):
        if not isinstance(text, str):
            raise TypeError(f"texts must be a str or an iterable of str, item {i} is {type(text).__name__}")
        counts.update(pretokenize(text))
    return counts


def _merge(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace the occurrences of ``pair`` in ``ids`` by ``new_id``, left to right, without overlap."""
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(texts: str | Iterable[str], num_merges: int) -> list[Pair]:
    """Learn up to ``num_merges`` byte-level merges from ``texts`` (one str, or an iterable of them).

    Each distinct chunk (:func:`pretokenize`) is kept once with its frequency. A step counts the
    adjacent pairs inside every chunk (overlapping positions too: ``"aaa"`` has ``(a, a)`` twice),
    weighted by the chunk's frequency, takes the pair with the highest count (ties: the smallest
    ``(left_id, right_id)``) and replaces its occurrences left to right without overlap
    (``"aaa"`` -> ``[aa, a]``). Training stops early once no chunk has two tokens left.

    Incremental: only the chunks containing the merged pair are recounted; a heap with lazy deletion
    finds the best pair, so a step costs about the size of the chunks it touches.

    Returns:
        ``merges[k] = (left_id, right_id)``, which creates id ``256 + k``.
    """
    if isinstance(num_merges, bool) or not isinstance(num_merges, int) or num_merges < 0:
        raise ValueError(f"num_merges must be an int >= 0, got {num_merges!r}")
    counts = _count_chunks(texts)
    words = [list(chunk.encode("utf-8")) for chunk in counts]
    freqs = list(counts.values())
    pair_counts: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}  # pair -> chunks that contain (or once contained) it
    for w, (ids, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(ids):
            pair_counts[pair] = pair_counts.get(pair, 0) + freq
            where.setdefault(pair, set()).add(w)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < num_merges:
        while heap and pair_counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)  # stale entry: the pair's count changed since it was pushed
        if not heap:
            log.debug("bpe_training_stopped_early", merges=len(merges), requested=num_merges)
            break
        _, best = heapq.heappop(heap)
        new_id = 256 + len(merges)
        merges.append(best)
        changed: dict[Pair, int] = {}
        for w in where.pop(best):
            ids = words[w]
            new_ids = _merge(ids, best, new_id)
            if len(new_ids) == len(ids):
                continue  # stale membership: an earlier merge removed the pair from this chunk
            freq = freqs[w]
            for pair in pairwise(ids):
                changed[pair] = changed.get(pair, 0) - freq
            for pair in pairwise(new_ids):
                changed[pair] = changed.get(pair, 0) + freq
                if new_id in pair:
                    where.setdefault(pair, set()).add(w)
            words[w] = new_ids
        for pair, delta in changed.items():
            if delta == 0:
                continue
            count = pair_counts.get(pair, 0) + delta
            if count > 0:
                pair_counts[pair] = count
                heapq.heappush(heap, (-count, pair))
            else:
                pair_counts.pop(pair, None)
    return merges


def encode_chunk(chunk: bytes, ranks: Mapping[Pair, int]) -> list[int]:
    """Token ids of one chunk by GPT-2's rule: while a ranked pair is adjacent, merge every
    non-overlapping occurrence (left to right) of the lowest-ranked one into id ``256 + rank``."""
    ids = list(chunk)
    while len(ids) >= 2:
        best = min(pairwise(ids), key=lambda pair: ranks.get(pair, float("inf")))
        rank = ranks.get(best)
        if rank is None:
            break
        ids = _merge(ids, best, 256 + rank)
    return ids


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters (as ``tokenizers``
    uses for its vocabulary keys): printable Latin-1 bytes map to themselves, the rest to U+0100..."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _special_pattern(specials: Sequence[str]) -> Any:
    """A regex matching any special token, the longest first where one starts another (``<s>!`` before ``<s>``)."""
    return regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))


class BPETokenizer:
    """Byte-level BPE tokenizer: ``merges`` (ids 256...) plus optional special tokens (the last ids).

    Attributes:
        merges: ``merges[k] = (left_id, right_id)`` creating id ``256 + k``.
        special_ids: special token -> id, ids ``256 + len(merges) + i`` in the order given.
    """

    def __init__(self, merges: Sequence[tuple[int, int]], special_tokens: Sequence[str] = ()) -> None:
        self.merges: list[Pair] = []
        self.ranks: dict[Pair, int] = {}  # pair -> rank k (its merge creates id 256 + k)
        for k, pair in enumerate(merges):
            if not isinstance(pair, tuple | list) or len(pair) != 2 or not all(type(i) is int for i in pair):
                raise TypeError(f"merges[{k}] must be a pair of int token ids, got {pair!r}")
            left, right = pair
            if not (0 <= left < 256 + k and 0 <= right < 256 + k):
                raise ValueError(
                    f"merges[{k}] = {pair!r} uses an id that does not exist yet (ids so far: 0..{255 + k})"
                )
            if (left, right) in self.ranks:
                raise ValueError(f"merges[{k}] = {(left, right)} repeats merges[{self.ranks[left, right]}]")
            self.ranks[left, right] = k
            self.merges.append((left, right))
        if isinstance(special_tokens, str):
            raise TypeError(f"special_tokens must be a sequence of str, got the str {special_tokens!r}")
        specials = list(special_tokens)
        if any(not isinstance(s, str) or not s for s in specials) or len(set(specials)) != len(specials):
            raise ValueError(f"special tokens must be distinct non-empty strings, got {specials!r}")
        self.special_ids: dict[str, int] = {s: 256 + len(self.merges) + i for i, s in enumerate(specials)}
        self._bytes: list[bytes] = [bytes([b]) for b in range(256)]
        for left, right in self.merges:
            self._bytes.append(self._bytes[left] + self._bytes[right])
        self._bytes.extend(s.encode("utf-8") for s in specials)
        self._special_re = _special_pattern(specials) if specials else None
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, special_tokens: Sequence[str] = ()) -> BPETokenizer:
        """Train on ``texts`` so that ``vocab_size = 256 + merges + len(special_tokens)`` (fewer merges
        if training stops early). Special tokens are cut out of the training text first."""
        if isinstance(special_tokens, str):
            raise TypeError(f"special_tokens must be a sequence of str, got the str {special_tokens!r}")
        specials = list(special_tokens)
        minimum = 256 + len(specials)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
            raise ValueError(
                f"vocab_size must be an int >= 256 + {len(specials)} special tokens = {minimum}, got {vocab_size!r}"
            )
        pieces: Iterable[str] = [texts] if isinstance(texts, str) else texts
        if specials:
            splitter = _special_pattern(specials)
            pieces = (part for text in pieces for part in splitter.split(text))
        return cls(train_bpe(pieces, vocab_size - minimum), specials)

    @property
    def vocab_size(self) -> int:
        """``256 + len(merges) + len(special_ids)``."""
        return len(self._bytes)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token ``token_id`` stands for (a special token: its UTF-8)."""
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < len(self._bytes):
            raise ValueError(f"token id must be an int in [0, {len(self._bytes)}), got {token_id!r}")
        return self._bytes[token_id]

    def _segments(self, text: str) -> Iterable[tuple[int, str, bool]]:
        """``(start, piece, is_special)`` covering ``text``: special tokens, then the text between them."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        position = 0
        if self._special_re is not None:
            for match in self._special_re.finditer(text):
                if match.start() > position:
                    yield position, text[position : match.start()], False
                yield match.start(), match.group(), True
                position = match.end()
        if position < len(text):
            yield position, text[position:], False

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = self._cache.get(chunk)
        if ids is None:
            ids = encode_chunk(chunk.encode("utf-8"), self.ranks)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: special tokens matched verbatim first (leftmost, longest first),
        the rest pretokenized and BPE-encoded chunk by chunk. ``decode(encode(text)) == text``."""
        out: list[int] = []
        for _, piece, special in self._segments(text):
            if special:
                out.append(self.special_ids[piece])
            else:
                for chunk in pretokenize(piece):
                    out.extend(self._encode_chunk(chunk))
        return out

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """``(ids, offsets)`` with ``offsets[i] = (start, end)``, character (code point) offsets into
        ``text``: ``text[start:end]`` holds the characters that token ``i``'s bytes come from.

        A token that holds only part of a multi-byte character (``"€"`` is 3 bytes and may be split
        over 2 tokens) gets the span of the whole character, so consecutive tokens can share a span.
        Hugging Face's ``Encoding.offsets`` follow the same rule (``ByteLevel`` maps every byte to its
        character's span; without ``trim_offsets`` a leading space stays inside the span), and the
        tests check they are equal on ASCII and non-ASCII text alike.
        """
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        for start, piece, special in self._segments(text):
            if special:
                ids.append(self.special_ids[piece])
                offsets.append((start, start + len(piece)))
                continue
            for chunk in pretokenize(piece):
                char_of_byte = [start + c for c, ch in enumerate(chunk) for _ in range(len(ch.encode("utf-8")))]
                position = 0
                for token in self._encode_chunk(chunk):
                    end = position + len(self._bytes[token])
                    ids.append(token)
                    offsets.append((char_of_byte[position], char_of_byte[end - 1] + 1))
                    position = end
                start += len(chunk)
        return ids, offsets

    def decode(self, ids: Sequence[int] | torch.Tensor, errors: str = "replace") -> str:
        """Text of ``ids`` (a list or an integer tensor of any shape, read flat). Bytes that are not
        valid UTF-8 (a sample cut mid-character) follow ``errors`` (``"replace"`` gives U+FFFD)."""
        raw = ids.reshape(-1).tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [v for v in raw if isinstance(v, bool) or not hasattr(v, "__index__")]
        if bad:
            raise TypeError(f"token ids must be integers, got {bad[:5]}")
        values = [operator.index(v) for v in raw]  # int, numpy and 0-d tensor integers
        outside = [v for v in values if not 0 <= v < len(self._bytes)]
        if outside:
            raise ValueError(f"token ids must be in [0, {len(self._bytes)}), got {outside[:5]}")
        return b"".join(self._bytes[v] for v in values).decode("utf-8", errors=errors)

    def to_hf(self) -> tokenizers.Tokenizer:
        """The same tokenizer in Hugging Face ``tokenizers`` (identical ids, ``decode`` and offsets).

        ``models.BPE`` with GPT-2's :func:`bytes_to_unicode` vocabulary keys and this tokenizer's
        merges, ``pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)``,
        ``decoders.ByteLevel()``, and the special tokens added (special, not normalized).

        Raises:
            ValueError: if two merges produce the same byte string (``tokenizers`` keys its vocabulary
                by string, so it cannot hold both), or a special token's text equals a vocabulary key.
        """
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        table = bytes_to_unicode()
        n_regular = 256 + len(self.merges)
        names = ["".join(table[b] for b in self._bytes[i]) for i in range(n_regular)]
        vocab: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in vocab:
                first, second = vocab[name], i
                raise ValueError(
                    f"merges[{first - 256}] = {self.merges[first - 256]} and merges[{second - 256}] = "
                    f"{self.merges[second - 256]} both produce {self._bytes[i]!r}; tokenizers cannot hold both"
                )
            vocab[name] = i
        clash = [s for s in self.special_ids if s in vocab]
        if clash:
            raise ValueError(
                f"special tokens {clash} equal vocabulary keys of regular tokens; tokenizers would merge them"
            )
        merges = [(names[left], names[right]) for left, right in self.merges]
        model = models.BPE(vocab=vocab, merges=merges, byte_fallback=False, ignore_merges=False)
        hf = Tokenizer(model)
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        hf.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in self.special_ids])
        for s, i in self.special_ids.items():
            assert hf.token_to_id(s) == i, f"special token {s!r} got id {hf.token_to_id(s)} in tokenizers, not {i}"
        return hf

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the merges and special tokens as JSON (atomically: a temp file, then ``os.replace``)."""
        target = Path(path)
        payload: dict[str, Any] = {
            "type": "byte_level_bpe",
            "merges": [list(pair) for pair in self.merges],
            "special_tokens": list(self.special_ids),
        }
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BPETokenizer:
        """Read a file written by :meth:`save` (validated as in ``__init__``)."""
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(payload, dict) or payload.get("type") != "byte_level_bpe":
            raise ValueError(f"{path}: not a byte-level BPE tokenizer file")
        return cls([tuple(pair) for pair in payload["merges"]], payload["special_tokens"])
