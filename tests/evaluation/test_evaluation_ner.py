"""Tests for mlcraft.evaluation.ner against seqeval.metrics in its default (conlleval) mode."""

from __future__ import annotations

import random
import warnings

import pytest
from seqeval.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
)

from mlcraft.evaluation.ner import entity_scores, per_type_scores, token_accuracy

TOL = 1e-12
Sentences = list[list[str]]


def _seqeval_scores(y_true: Sentences, y_pred: Sentences) -> dict[str, float]:
    return {
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
    }


def _seqeval_per_type(y_true: Sentences, y_pred: Sentences) -> dict[str, dict[str, float]]:
    with warnings.catch_warnings():  # seqeval averages an empty array when there is no entity at all
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    return {
        kind: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": float(v["support"]),
        }
        for kind, v in report.items()
        if not kind.endswith(" avg")
    }


def _assert_matches_seqeval(y_true: Sentences, y_pred: Sentences, case: str) -> None:
    ours, theirs = entity_scores(y_true, y_pred), _seqeval_scores(y_true, y_pred)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert abs(ours[name] - theirs[name]) <= TOL, f"{case}: {name} {ours[name]} vs seqeval {theirs[name]}"
    per_type, expected = per_type_scores(y_true, y_pred), _seqeval_per_type(y_true, y_pred)
    assert list(per_type) == sorted(expected), f"{case}: types {list(per_type)} vs {sorted(expected)}"
    for kind, scores in per_type.items():
        for name, value in scores.items():
            assert abs(value - expected[kind][name]) <= TOL, f"{case}: {kind} {name} {value} vs {expected[kind][name]}"
    if sum(map(len, y_true)):
        accuracy = float(accuracy_score(y_true, y_pred))
        assert abs(token_accuracy(y_true, y_pred) - accuracy) <= TOL, f"{case}: token accuracy"


HAND_CASES: dict[str, tuple[Sentences, Sentences]] = {
    "perfect": ([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]]),
    "boundary error": ([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]]),
    "type error": ([["B-PER", "I-PER"]], [["B-LOC", "I-LOC"]]),
    "I after O is an entity": ([["O", "B-LOC", "I-LOC"]], [["O", "I-LOC", "I-LOC"]]),
    "type switch inside a chunk": ([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-LOC", "I-PER"]]),
    "all O": ([["O", "O"], ["O"]], [["O", "O"], ["O"]]),
    "no predictions": ([["B-PER", "O"]], [["O", "O"]]),
    "only false positives": ([["O", "O"]], [["B-MISC", "O"]]),
    "empty sentences": ([[], ["B-PER"], []], [[], ["B-PER"], []]),
    "one-token sentences": ([["B-A"], ["I-A"], ["O"], ["B-B"]], [["I-A"], ["B-A"], ["B-A"], ["B-A"]]),
    "chunks stop at sentence ends": ([["O", "B-A"], ["I-A", "O"]], [["O", "B-A"], ["B-A", "O"]]),
    "conll readme": (
        [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]],
        [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]],
    ),
}


@pytest.mark.parametrize("case", HAND_CASES)
def test_hand_cases_match_seqeval(case: str) -> None:
    y_true, y_pred = HAND_CASES[case]
    _assert_matches_seqeval(y_true, y_pred, case)


def test_hand_values() -> None:
    y_true, y_pred = HAND_CASES["conll readme"]
    assert entity_scores(y_true, y_pred) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert per_type_scores(y_true, y_pred) == {
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1.0},
    }
    # Chunks never cross sentences: flattened, "B-A" + "I-A" would be one entity.
    assert per_type_scores([["B-A"], ["I-A"]], [["B-A"], ["I-A"]])["A"]["support"] == 2.0
    assert entity_scores([["B-A"], ["I-A"]], [["B-A"], ["O"]]) == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3}
    assert token_accuracy([["O", "B-A"], ["I-A"]], [["O", "B-A"], ["B-A"]]) == 2 / 3


def test_zero_denominators_give_zero() -> None:
    assert entity_scores([], []) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert entity_scores([[]], [[]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert entity_scores([["O"]], [["B-A"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert per_type_scores([["O"]], [["O"]]) == {}
    assert token_accuracy([], []) == 0.0 and token_accuracy([[], []], [[], []]) == 0.0


def _perturb(tags: list[str], rng: random.Random, alphabet: list[str]) -> list[str]:
    return [rng.choice(alphabet) if rng.random() < 0.3 else tag for tag in tags]


def test_random_sequences_match_seqeval() -> None:
    rng = random.Random(0)
    alphabet = ["O", "O", "O", "B-A", "I-A", "B-B", "I-B", "B-C", "I-C"]
    for trial in range(5):
        y_true = [[rng.choice(alphabet) for _ in range(rng.randint(0, 12))] for _ in range(100)]  # 500 sentences in all
        y_pred = [_perturb(tags, rng, alphabet) for tags in y_true]
        _assert_matches_seqeval(y_true, y_pred, f"trial {trial}")
        per_type = per_type_scores(y_true, y_pred)
        # Micro averages are the support-weighted pooling of the per-type counts.
        support = sum(v["support"] for v in per_type.values())
        recall = sum(v["recall"] * v["support"] for v in per_type.values()) / support
        assert abs(entity_scores(y_true, y_pred)["recall"] - recall) <= TOL


def test_tuples_and_generators_of_tags_are_accepted() -> None:
    y_true = (("B-A", "I-A"), ("O",))
    y_pred = [("B-A", "I-A"), ("B-A",)]
    assert entity_scores(y_true, y_pred) == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3}


@pytest.mark.parametrize("fn", [entity_scores, per_type_scores, token_accuracy])
def test_length_mismatches_are_named(fn: object) -> None:
    with pytest.raises(ValueError, match="sentence 1 has 2 true tags but 1 predicted tags"):
        fn([["O"], ["O", "O"]], [["O"], ["O"]])  # type: ignore[operator]
    with pytest.raises(ValueError, match="got 2 and 1"):
        fn([["O"], ["O"]], [["O"]])  # type: ignore[operator]
    with pytest.raises(TypeError, match="not a str"):
        fn("B-A O", "B-A O")  # type: ignore[operator]


def test_invalid_tags_are_named() -> None:
    with pytest.raises(ValueError, match="'S-A' at position 1"):
        entity_scores([["O", "S-A"]], [["O", "O"]])
    with pytest.raises(ValueError, match="'E-A' at position 0"):
        per_type_scores([["O"]], [["E-A"]])
