"""Byte-level BPE speed: ``mlcraft.data.bpe.BPETokenizer`` (pure Python) vs Hugging Face ``tokenizers``
(Rust) on the same standard-library text, same run, one thread each (interleaved medians).

- Encoding: ours vs the tokenizer from ``to_hf()`` (same merges), ``encode`` of the whole text and
  ``encode_batch`` of its lines; the ids are checked equal first. Ours is timed cold (a fresh
  tokenizer, empty chunk cache) and warm (cache filled by an earlier call); HF's word cache stays warm.
- Training: ``BPETokenizer.train`` vs ``tokenizers.trainers.BpeTrainer`` for the same number of merges.
  HF breaks count ties differently, so the merges may differ: the compression (bytes/token) of each
  on the training text is printed beside the times.

    python benchmarks/bench_bpe.py [--chars 1000000] [--merges 1000] [--repeats 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before tokenizers starts its thread pool: one thread
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json

import torch
from _timing import interleaved_medians
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from mlcraft.data.bpe import BPETokenizer
from mlcraft.data.text import DEFAULT_MODULES, stdlib_corpus

CPU = torch.device("cpu")
#: More prose-heavy standard-library modules, so that the default text is about 1 MB.
MODULES = (*DEFAULT_MODULES, "logging/__init__.py", "email/message.py", "unittest/case.py", "enum.py", "statistics.py")


def hf_train(text: str, num_merges: int) -> Tokenizer:
    """HF's byte-level BPE trainer with the same pre-tokenizer and 256-byte alphabet."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=256 + num_merges,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def bench_training(text: str, num_merges: int, repeats: int) -> BPETokenizer:
    ours = BPETokenizer.train(text, 256 + num_merges)
    theirs = hf_train(text, num_merges)
    times = interleaved_medians(
        {"ours": lambda: BPETokenizer.train(text, 256 + num_merges), "hf": lambda: hf_train(text, num_merges)},
        CPU,
        repeats,
        warmup=0,
    )
    n_bytes = len(text.encode("utf-8"))
    hf_merges = len(json.loads(theirs.to_str())["model"]["merges"])
    ours_ratio = n_bytes / len(ours.encode(text))
    hf_ratio = n_bytes / len(theirs.encode(text).ids)
    print(
        f"train  {num_merges} merges on {n_bytes / 1e6:.2f} MB: mlcraft {times['ours']:.2f} s ({len(ours.merges)} merges, "
        f"{ours_ratio:.3f} bytes/token)   HF BpeTrainer {times['hf']:.2f} s ({hf_merges} merges, {hf_ratio:.3f} "
        f"bytes/token)   HF speed-up {times['ours'] / times['hf']:.1f}x"
    )
    return ours


def bench_encoding(tokenizer: BPETokenizer, text: str, repeats: int) -> None:
    hf = tokenizer.to_hf()
    lines = text.splitlines(keepends=True)
    ids = tokenizer.encode(text)
    assert ids == hf.encode(text).ids, "encode: ids differ from tokenizers"
    batch = [tokenizer.encode(line) for line in lines]
    assert batch == [e.ids for e in hf.encode_batch(lines)], "encode_batch: ids differ from tokenizers"
    n_tokens, n_batch_tokens = len(ids), sum(map(len, batch))

    def cold() -> list[int]:
        return BPETokenizer(tokenizer.merges).encode(text)

    times = interleaved_medians(
        {
            "ours_cold": cold,
            "ours_warm": lambda: tokenizer.encode(text),
            "hf": lambda: hf.encode(text),
            "ours_lines": lambda: [tokenizer.encode(line) for line in lines],
            "hf_batch": lambda: hf.encode_batch(lines),
        },
        CPU,
        repeats,
    )
    rate = {name: (n_batch_tokens if name in ("ours_lines", "hf_batch") else n_tokens) / t for name, t in times.items()}
    print(
        f"encode {n_tokens} tokens: mlcraft cold {rate['ours_cold'] / 1e6:.2f} M tok/s, warm "
        f"{rate['ours_warm'] / 1e6:.2f} M tok/s   HF {rate['hf'] / 1e6:.2f} M tok/s   "
        f"HF speed-up {times['ours_cold'] / times['hf']:.1f}x cold, {times['ours_warm'] / times['hf']:.1f}x warm   ids equal"
    )
    print(
        f"encode_batch {len(lines)} lines: mlcraft (loop, warm) {rate['ours_lines'] / 1e6:.2f} M tok/s   "
        f"HF {rate['hf_batch'] / 1e6:.2f} M tok/s   HF speed-up {times['ours_lines'] / times['hf_batch']:.1f}x   ids equal"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of stdlib text")
    parser.add_argument("--merges", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    text = stdlib_corpus(args.chars, modules=MODULES)
    tokenizer = bench_training(text, args.merges, args.repeats)
    bench_encoding(tokenizer, text, args.repeats)


if __name__ == "__main__":
    main()
