"""Tests for mlcraft.data.bpe: training against a slow from-scratch loop, encoding, offsets and
decoding against Hugging Face ``tokenizers`` built by ``to_hf()`` (ids and offsets exactly equal)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex  # type: ignore[import-untyped]  # no stubs
import torch
from tokenizers import Tokenizer

from mlcraft.data.bpe import GPT2_PATTERN, BPETokenizer, encode_chunk, pretokenize, train_bpe
from mlcraft.data.text import stdlib_corpus

SPECIALS = ["<|endoftext|>", "<|pad|>", "<|end|>"]  # "<|end|>" is a prefix-free neighbour of "<|endoftext|>"
UNICODE_SAMPLE = (
    "Naïve café déjà vu — 東京は日本の首都です。 Привет, мир! مرحبا بالعالم ١٢٣ "
    "e\u0301t\u0301e\u0301 😀😃 👩\u200d💻 ok's we'll 10\u00a0000 \u3000全角\u2003space\t\ttabs\n\n\n"
)


def slow_train(texts: list[str], num_merges: int) -> list[tuple[int, int]]:
    """Obviously correct BPE training: recount every pair of every chunk from scratch each step."""
    chunk_counts: Counter[str] = Counter()
    for text in texts:
        chunk_counts.update(regex.findall(GPT2_PATTERN, text))
    words = {chunk: list(chunk.encode("utf-8")) for chunk in chunk_counts}
    merges: list[tuple[int, int]] = []
    for k in range(num_merges):
        pairs: Counter[tuple[int, int]] = Counter()
        for chunk, ids in words.items():
            for i in range(len(ids) - 1):
                pairs[(ids[i], ids[i + 1])] += chunk_counts[chunk]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))  # highest count, then smallest pair
        merges.append(best)
        for chunk, ids in words.items():
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    out.append(256 + k)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[chunk] = out
    return merges


def random_unicode(rng: random.Random, length: int) -> str:
    """Runs drawn from many scripts: ASCII words, accents, combining marks, CJK, emoji (with ZWJ),
    Cyrillic, Arabic and its digits, Unicode whitespace runs, punctuation and contractions."""
    pools = [
        [chr(c) for c in range(0x61, 0x7B)],
        [chr(c) for c in range(0xC0, 0x180)],
        [chr(c) for c in range(0x300, 0x370)],  # combining marks
        [chr(c) for c in range(0x4E00, 0x4F00)],  # CJK
        [chr(c) for c in range(0x1F600, 0x1F650)] + ["\u200d", "\ufe0f"],  # emoji, ZWJ, VS16
        [chr(c) for c in range(0x410, 0x450)],
        [chr(c) for c in range(0x627, 0x64B)] + [chr(c) for c in range(0x660, 0x66A)],
        [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\u2028", "\x0b", "\x0c"],
        list("0123456789.,;:!?()[]{}<>-_=+*/\\|'\"#$%&@^~`"),
        ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S"],
    ]
    parts: list[str] = []
    while sum(map(len, parts)) < length:
        pool = rng.choice(pools)
        parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
    return "".join(parts)[:length]


def random_code_points(rng: random.Random, length: int) -> str:
    """Any code point except surrogates, from the BMP and the emoji/CJK planes."""
    out: list[str] = []
    while len(out) < length:
        c = rng.randint(0x20, 0x2FFFF)
        if not 0xD800 <= c <= 0xDFFF:
            out.append(chr(c))
    return "".join(out)


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    """500 merges on English (stdlib docstrings) plus multi-script text, so merges join multi-byte pieces."""
    texts = [stdlib_corpus(150_000), UNICODE_SAMPLE * 20, random_unicode(random.Random(1), 5000)]
    return BPETokenizer.train(texts, vocab_size=256 + 500 + len(SPECIALS), special_tokens=SPECIALS)


@pytest.fixture(scope="module")
def hf(trained: BPETokenizer) -> Tokenizer:
    return trained.to_hf()


# --------------------------------------------------------------------------- pretokenize and training

TRAIN_CASES = {
    "english": ["the cat sat on the mat; the cat's hat, the mat's cat!", "then the theme thereof"],
    "ties": ["ab cd ef", "ba dc fe"],  # every pair seen once: the smallest pair wins each time
    "repeated_letters": ["aaaa aaa aa a aaaaaaa", "bbbbbb"],
    "unicode_emoji": [UNICODE_SAMPLE, "😀😀😀 😀😀 😀 éé é"],
    "empty": [""],
    "no_texts": [],
    "single_bytes": ["a b c d . , ! ?"],  # every chunk is short: stops early
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
@pytest.mark.parametrize("num_merges", [0, 1, 5, 40, 400])
def test_train_matches_slow_loop(case: str, num_merges: int) -> None:
    texts = TRAIN_CASES[case]
    expected = slow_train(texts, num_merges)
    assert train_bpe(texts, num_merges) == expected, f"{case}, {num_merges} merges"
    assert train_bpe(iter(texts), num_merges) == expected, f"{case} as a generator"
    assert len(expected) <= num_merges


def test_train_matches_slow_loop_on_real_text() -> None:
    texts = [stdlib_corpus(20_000), random_unicode(random.Random(7), 2000)]
    assert train_bpe(texts, 300) == slow_train(texts, 300)
    assert train_bpe("".join(texts), 50) == slow_train(["".join(texts)], 50), "a single str is one text"


def test_train_hand_examples() -> None:
    assert train_bpe("aaaa", 3) == [(97, 97), (256, 256)], "aaaa -> [aa, aa] -> [aaaa], then nothing left"
    assert train_bpe("aaa", 5) == [(97, 97), (256, 97)], "aaa -> [aa, a]: no overlap"
    assert train_bpe("ab ab", 1) == [(97, 98)], "(a, b) is seen twice, (space, a) once"
    assert train_bpe(["b a", "a b"], 1) == [(32, 97)], "all pairs tie at 1: the smallest pair (32, 97) wins"
    assert train_bpe("", 10) == [] and train_bpe("abc", 0) == []


def test_merges_never_cross_chunks() -> None:
    text = "a. a. a. a.\n\n the the the? it's it's x,y x,y 12ab 12ab"
    chunks = [chunk.encode("utf-8") for chunk in pretokenize(text)]
    tok = BPETokenizer(train_bpe(text, 200))
    assert tok.merges, "training learned nothing"
    for token_id in range(256, tok.vocab_size):
        piece = tok.token_bytes(token_id)
        assert any(piece in chunk for chunk in chunks), f"token {piece!r} spans a chunk boundary"


@pytest.mark.parametrize("seed", range(5))
def test_pretokenize_joins_back(seed: int) -> None:
    rng = random.Random(seed)
    for text in [random_unicode(rng, 300), random_code_points(rng, 300), "", "   ", "x  \n\n y"]:
        chunks = pretokenize(text)
        assert "".join(chunks) == text and all(chunks)
    assert pretokenize("hello  world\n\n  it's") == ["hello", " ", " world", "\n\n ", " it", "'s"]


# --------------------------------------------------------------------------- encoding against tokenizers


def test_encode_chunk_gpt2_rule() -> None:
    ranks = {(97, 97): 0, (256, 97): 1, (98, 98): 2}
    assert encode_chunk(b"aaa", ranks) == [257], "aa first (rank 0), then aa+a (rank 1)"
    assert encode_chunk(b"aaaa", ranks) == [256, 256], "all non-overlapping occurrences of rank 0 at once"
    assert encode_chunk(b"abba", ranks) == [97, 258, 97]
    assert encode_chunk(b"", ranks) == [] and encode_chunk(b"x", ranks) == [120]
    assert encode_chunk(b"aaaaa", {}) == [97] * 5


def test_encode_matches_hf_on_stdlib_text(trained: BPETokenizer, hf: Tokenizer) -> None:
    text = stdlib_corpus(200_000)
    ids = trained.encode(text)
    assert ids == hf.encode(text).ids
    assert trained.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8")) / 2.5, "500 merges should compress English well below 1 byte/token"


@pytest.mark.parametrize("seed", range(8))
def test_encode_matches_hf_on_random_unicode(trained: BPETokenizer, hf: Tokenizer, seed: int) -> None:
    rng = random.Random(seed)
    for text in [random_unicode(rng, 400), random_code_points(rng, 200), UNICODE_SAMPLE]:
        ids = trained.encode(text)
        assert ids == hf.encode(text).ids, f"seed {seed}: {text[:40]!r}"
        assert trained.decode(ids) == text
        assert hf.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_matched_first_and_never_split(trained: BPETokenizer, hf: Tokenizer) -> None:
    eot, pad, end = (trained.special_ids[s] for s in SPECIALS)
    assert (eot, pad, end) == (756, 757, 758) and trained.vocab_size == 759
    text = "a<|endoftext|><|end|>b <|pad|>\n<|endoftext|x <|end|>oftext|> <|endoftext|>"
    ids = trained.encode(text)
    assert ids.count(eot) == 2 and ids.count(pad) == 1 and ids.count(end) == 2
    assert ids == hf.encode(text).ids
    assert trained.decode(ids) == text
    assert trained.encode("<|endoftext|>") == [eot] and trained.encode("") == []
    assert trained.token_bytes(eot) == b"<|endoftext|>"
    rng = random.Random(3)
    for _ in range(20):
        pieces = [random_unicode(rng, rng.randint(0, 30)) for _ in range(4)]
        mixed = "".join(p + rng.choice(SPECIALS) for p in pieces)
        assert trained.encode(mixed) == hf.encode(mixed).ids
        assert trained.decode(trained.encode(mixed)) == mixed


def test_overlapping_special_tokens_longest_first() -> None:
    tok = BPETokenizer(train_bpe("<s>! <s> hello <s>", 20), special_tokens=["<s>", "<s>!", "!<s>"])
    short, long, other = (tok.special_ids[s] for s in ["<s>", "<s>!", "!<s>"])
    text = "a<s>!<s> <s>!!<s>x"
    ids = tok.encode(text)
    assert ids == [97, long, short, 32, long, other, 120], "'<s>!' beats its prefix '<s>'; leftmost match first"
    assert ids == tok.to_hf().encode(text).ids
    assert tok.decode(ids) == text


def test_special_tokens_are_not_learned() -> None:
    tok = BPETokenizer.train(["<|endoftext|>" * 50 + "ab"], vocab_size=256 + 3 + 1, special_tokens=["<|endoftext|>"])
    assert tok.merges == [(97, 98)], "only 'ab' is left once the special tokens are cut out; training stops early"
    assert tok.vocab_size == 258 and tok.special_ids == {"<|endoftext|>": 257}


def test_offsets_match_hf_ascii(trained: BPETokenizer, hf: Tokenizer) -> None:
    text = stdlib_corpus(20_000) + " <|endoftext|> tail"
    ids, offsets = trained.encode_with_offsets(text)
    encoding = hf.encode(text)
    assert ids == encoding.ids and offsets == encoding.offsets
    assert all(text[s:e].encode("utf-8") == trained.token_bytes(i) for i, (s, e) in zip(ids, offsets, strict=True))


@pytest.mark.parametrize("seed", range(4))
def test_offsets_non_ascii_cover_whole_characters_as_hf(trained: BPETokenizer, hf: Tokenizer, seed: int) -> None:
    """A token holding part of a multi-byte character gets that character's whole span, in HF too."""
    text = random_unicode(random.Random(100 + seed), 300) + "<|pad|>€"
    ids, offsets = trained.encode_with_offsets(text)
    assert ids == trained.encode(text)
    assert offsets == hf.encode(text).offsets
    for token, (start, end) in zip(ids, offsets, strict=True):
        assert trained.token_bytes(token) in text[start:end].encode("utf-8"), (token, start, end)
    assert offsets[-1] == (len(text) - 1, len(text))


def test_offsets_hand_example() -> None:
    tok = BPETokenizer([(0xE2, 0x82)])  # the first two of the three bytes of "€"
    ids, offsets = tok.encode_with_offsets("a€b")
    assert ids == [97, 256, 0xAC, 98]
    assert offsets == [(0, 1), (1, 2), (1, 2), (2, 3)], "both parts of € span the character"


def test_decode_tensor_and_invalid_utf8(trained: BPETokenizer) -> None:
    ids = trained.encode("héllo 😀")
    assert trained.decode(torch.tensor(ids).reshape(1, -1)) == "héllo 😀"
    cut = BPETokenizer([]).encode("😀")[:2]  # half an emoji
    assert BPETokenizer([]).decode(cut) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        BPETokenizer([]).decode(cut, errors="strict")


def test_save_load_round_trip(trained: BPETokenizer, tmp_path: Path) -> None:
    path = tmp_path / "bpe.json"
    trained.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == trained.merges and loaded.special_ids == trained.special_ids
    text = UNICODE_SAMPLE + "<|endoftext|>" + stdlib_corpus(2000)
    assert loaded.encode(text) == trained.encode(text)
    assert not (tmp_path / "bpe.json.tmp").exists()
    (tmp_path / "other.json").write_text(json.dumps({"type": "char", "alphabet": "ab"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a byte-level BPE"):
        BPETokenizer.load(tmp_path / "other.json")


# --------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize("num_merges", [-1, 1.5, True])
def test_train_rejects_bad_num_merges(num_merges: object) -> None:
    with pytest.raises(ValueError, match="num_merges"):
        train_bpe("abc", num_merges)  # type: ignore[arg-type]


def test_train_rejects_non_str_items() -> None:
    with pytest.raises(TypeError, match="item 1"):
        train_bpe(["ok", b"bytes"], 3)  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("merges", "match"),
    [
        ([(97, 256)], r"merges\[0\].*does not exist yet"),
        ([(97, 98), (257, 97)], r"merges\[1\].*does not exist yet"),
        ([(-1, 97)], r"merges\[0\]"),
        ([(97, 98), (97, 98)], r"merges\[1\].*repeats merges\[0\]"),
    ],
)
def test_init_rejects_bad_merges(merges: list[tuple[int, int]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BPETokenizer(merges)


def test_init_rejects_bad_types_and_specials() -> None:
    with pytest.raises(TypeError, match="pair of int"):
        BPETokenizer([(97, 98, 99)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pair of int"):
        BPETokenizer([(97.0, 98)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="distinct non-empty"):
        BPETokenizer([], ["<s>", "<s>"])
    with pytest.raises(ValueError, match="distinct non-empty"):
        BPETokenizer([], [""])
    with pytest.raises(TypeError, match="sequence of str"):
        BPETokenizer([], "<s>")


def test_train_rejects_small_vocab() -> None:
    with pytest.raises(ValueError, match="vocab_size must be an int >= 256 \\+ 1"):
        BPETokenizer.train("abc", 256, special_tokens=["<s>"])


def test_token_ids_out_of_range() -> None:
    tok = BPETokenizer([(97, 98)], ["<s>"])
    assert tok.vocab_size == 258 and tok.token_bytes(256) == b"ab" and tok.token_bytes(257) == b"<s>"
    for bad in (258, -1):
        with pytest.raises(ValueError, match=r"\[0, 258\)"):
            tok.token_bytes(bad)
        with pytest.raises(ValueError, match=r"\[0, 258\)"):
            tok.decode([97, bad])
    assert tok.decode(np.array([97, 256, 257])) == "aab<s>", "numpy integers"  # type: ignore[arg-type]
    assert tok.decode(iter([98])) == "b", "any iterable"  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="token ids must be integers"):
        tok.decode([97, 1.0])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of str"):
        BPETokenizer.train("abc", 300, special_tokens="<s>")
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(b"ab")  # type: ignore[arg-type]


def test_to_hf_rejects_duplicate_byte_strings_and_clashing_specials() -> None:
    # "abc" made twice: (ab)+c and a+(bc)
    tok = BPETokenizer([(97, 98), (256, 99), (98, 99), (97, 258)])
    assert tok.token_bytes(257) == tok.token_bytes(259) == b"abc"
    assert tok.encode("abc") == [257], "our tokenizer holds both; GPT-2's rule picks the lower rank"
    with pytest.raises(ValueError, match=r"merges\[1\] = \(256, 99\) and merges\[3\] = \(97, 258\)"):
        tok.to_hf()
    with pytest.raises(ValueError, match="special tokens \\['a'\\]"):
        BPETokenizer([], ["a"]).to_hf()
