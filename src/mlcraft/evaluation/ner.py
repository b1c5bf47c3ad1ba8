"""Entity-level precision, recall and F1 for BIO-tagged sentences, as ``conlleval`` (04_nlp).

The CoNLL-2003 shared task (Tjong Kim Sang & De Meulder, 2003, "Introduction to the CoNLL-2003
shared task: language-independent named entity recognition", https://aclanthology.org/W03-0419/)
scores a tagger on whole entities: a predicted entity counts only when its type and both
boundaries equal a true entity's. Precision = correct / predicted entities, recall = correct / true
entities, F1 their harmonic mean, micro-averaged over every entity of every sentence. Entities are
read by :func:`mlcraft.data.ner.bio_spans` (``conlleval``'s chunking), one sentence at a time, so a
chunk never crosses a sentence boundary. The results equal ``seqeval.metrics`` in its default mode
(https://github.com/chakki-works/seqeval).

A ratio whose denominator is zero (no predicted entity, no true entity) is 0.0, as seqeval's
``zero_division=0``. Token accuracy, by contrast, counts ``O`` tokens too and is high even for a
tagger that finds no entity: report it beside entity F1, never instead of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mlcraft.data.ner import bio_spans

__all__ = ["entity_scores", "per_type_scores", "token_accuracy"]

Tags = Sequence[Sequence[str]]
Entity = tuple[int, str, int, int]  # (sentence, type, start, end)


def _check_pairs(y_true: Tags, y_pred: Tags) -> None:
    if isinstance(y_true, str) or isinstance(y_pred, str):
        raise TypeError("y_true and y_pred must be sequences of sentences (sequences of tags), not a str")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred must hold as many sentences, got {len(y_true)} and {len(y_pred)}")
    for i, (true, pred) in enumerate(zip(y_true, y_pred, strict=True)):
        if isinstance(true, str) or isinstance(pred, str):
            raise TypeError(f"sentence {i} must be a sequence of tags, got a str")
        if len(true) != len(pred):
            raise ValueError(f"sentence {i} has {len(true)} true tags but {len(pred)} predicted tags")


def _entities(sentences: Tags) -> set[Entity]:
    return {(i, kind, start, end) for i, tags in enumerate(sentences) for kind, start, end in bio_spans(tags)}


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _prf(correct: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision, recall = _ratio(correct, predicted), _ratio(correct, actual)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_scores(y_true: Tags, y_pred: Tags) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 over all sentences.

    Args:
        y_true, y_pred: sentences of BIO tags (``"O"``, ``"B-X"``, ``"I-X"``); sentence ``i`` of
            both must have the same length. Empty sentences and an empty list are allowed.

    Returns:
        ``{"precision", "recall", "f1"}``, floats in [0, 1]; 0.0 where a denominator is zero.

    Raises:
        ValueError: if the numbers of sentences differ, a sentence's lengths differ (named), or a tag is invalid.
    """
    _check_pairs(y_true, y_pred)
    true, pred = _entities(y_true), _entities(y_pred)
    precision, recall, f1 = _prf(len(true & pred), len(pred), len(true))
    return {"precision": precision, "recall": recall, "f1": f1}


def per_type_scores(y_true: Tags, y_pred: Tags) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each entity type, as seqeval's ``classification_report``.

    Returns:
        ``{type: {"precision", "recall", "f1", "support"}}`` for every type that occurs in ``y_true``
        or ``y_pred``, in sorted order of type; ``support`` is the number of true entities of that type
        (a float, like the others, so the dict is uniform).

    Raises:
        ValueError: as :func:`entity_scores`.
    """
    _check_pairs(y_true, y_pred)
    true, pred = _entities(y_true), _entities(y_pred)
    correct = Counter(entity[1] for entity in true & pred)
    predicted = Counter(entity[1] for entity in pred)
    actual = Counter(entity[1] for entity in true)
    scores: dict[str, dict[str, float]] = {}
    for kind in sorted(predicted.keys() | actual.keys()):
        precision, recall, f1 = _prf(correct[kind], predicted[kind], actual[kind])
        scores[kind] = {"precision": precision, "recall": recall, "f1": f1, "support": float(actual[kind])}
    return scores


def token_accuracy(y_true: Tags, y_pred: Tags) -> float:
    """Fraction of tokens whose predicted tag equals the true tag (``O`` included); 0.0 with no tokens.

    Raises:
        ValueError: if the numbers of sentences or a sentence's lengths differ (named).
    """
    _check_pairs(y_true, y_pred)
    total = sum(len(tags) for tags in y_true)
    same = sum(t == p for true, pred in zip(y_true, y_pred, strict=True) for t, p in zip(true, pred, strict=True))
    return _ratio(same, total)
