"""BIO tags: entity spans from tags, and word labels spread over sub-word tokens (04_nlp).

- :func:`bio_spans` reads entities out of a BIO (IOB2) tag sequence (Ramshaw & Marcus, 1995,
  "Text chunking using transformation-based learning", https://aclanthology.org/W95-0107/) the way
  the CoNLL evaluation script ``conlleval`` does (Tjong Kim Sang & De Meulder, 2003,
  https://aclanthology.org/W03-0419/), which is also ``seqeval``'s default mode: an ``I-X`` that
  does not continue an ``X`` chunk starts one, so ill-formed predictions still count as entities.
- :func:`align_labels` gives one label per sub-word token, following the Hugging Face
  token-classification recipe (https://huggingface.co/docs/transformers/tasks/token_classification
  and the course's chapter 7, https://huggingface.co/learn/llm-course/chapter7/2): special tokens and,
  by default, every sub-token after a word's first get ``ignore_index`` so the loss skips them.

Tags are strings ``"O"``, ``"B-<type>"`` or ``"I-<type>"`` with a non-empty type (``"B-city"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral

__all__ = ["align_labels", "bio_spans", "split_tag"]


def split_tag(tag: str, position: int = 0) -> tuple[str, str]:
    """``(prefix, type)`` of one BIO tag: ``"B-city"`` -> ``("B", "city")``, ``"O"`` -> ``("O", "")``.

    Raises:
        TypeError: if ``tag`` is not a string.
        ValueError: for anything but ``"O"``, ``"B-<type>"``, ``"I-<type>"`` with a non-empty type;
            the message names the tag and its ``position``.
    """
    if not isinstance(tag, str):
        raise TypeError(f"tag at position {position} must be a str, got {type(tag).__name__} {tag!r}")
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag[0], tag[2:]
    raise ValueError(f"invalid BIO tag {tag!r} at position {position}: expected 'O', 'B-<type>' or 'I-<type>'")


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities of one sentence as ``(type, start, end)``, ``end`` exclusive, in order of ``start``.

    Chunking follows ``conlleval``: ``B-X`` always starts an ``X`` chunk; ``I-X`` continues the
    chunk before it when that chunk is an ``X``, and otherwise (after ``O``, after a chunk of another
    type, or at position 0) starts a new ``X`` chunk; ``O`` ends a chunk. So
    ``["I-city", "I-city", "B-city", "I-date"]`` holds ``[("city", 0, 2), ("city", 2, 3), ("date", 3, 4)]``.

    Args:
        tags (Sequence[str], length T): BIO tags of one sentence; T = 0 gives ``[]``.

    Returns:
        list of ``(type, start, end)`` with ``0 <= start < end <= T``; spans never overlap.

    Raises:
        ValueError: for a tag that is not ``"O"``, ``"B-<type>"`` or ``"I-<type>"`` (named, with its position).
    """
    spans: list[tuple[str, int, int]] = []
    current: str | None = None  # type of the open chunk
    start = 0
    for position, tag in enumerate(tags):
        prefix, kind = split_tag(tag, position)
        continues = prefix == "I" and current == kind
        if current is not None and not continues:  # the open chunk ends before this tag
            spans.append((current, start, position))
            current = None
        if prefix != "O" and not continues:  # B-X, or an I-X that cannot continue: a new chunk
            current, start = kind, position
    if current is not None:
        spans.append((current, start, len(tags)))
    return spans


def align_labels(
    word_labels: Sequence[int],
    word_ids: Sequence[int | None],
    *,
    label_all_subtokens: bool = False,
    b_to_i: Mapping[int, int] | None = None,
    ignore_index: int = -100,
) -> list[int]:
    """One label per sub-word token from one label per word, as in the Hugging Face recipe.

    Args:
        word_labels (Sequence[int], length W): label id of each word (e.g. ids of BIO tags).
        word_ids (Sequence[int | None], length S): for each token, the index of the word it comes
            from, ``None`` for special tokens (``[CLS]``, ``[SEP]``, padding): tokenizers'
            ``Encoding.word_ids`` or transformers' ``BatchEncoding.word_ids(i)``.
        label_all_subtokens: ``False`` (the transformers docs' recipe): only the first sub-token of
            a word carries its label, the rest get ``ignore_index``. ``True`` (the course's recipe):
            every sub-token carries the word's label, the later ones mapped through ``b_to_i``.
        b_to_i: ``{id of B-X: id of I-X}``, used only with ``label_all_subtokens=True`` so that a word
            split in three reads ``B-X I-X I-X``; ids missing from it are kept as they are.
        ignore_index: the label the loss skips (``torch.nn.CrossEntropyLoss``'s default -100).

    Returns:
        list[int] of length S. A token starts a word when its word id differs from the previous
        token's (the recipe's rule); the first token with word id ``w`` gets ``word_labels[w]``.

    Raises:
        TypeError: for a word id that is neither an integer (Python or numpy) nor ``None``; bools are refused.
        ValueError: for a word id outside ``[0, W)``, named with its token position.
    """
    labels: list[int] = []
    previous: int | None = None
    n_words = len(word_labels)
    for position, word in enumerate(word_ids):
        if word is None:
            labels.append(ignore_index)
            previous = None
            continue
        if isinstance(word, bool) or not isinstance(word, Integral):
            raise TypeError(f"word id at token {position} must be an int or None, got {type(word).__name__} {word!r}")
        word = int(word)
        if not 0 <= word < n_words:
            raise ValueError(f"word id {word} at token {position} is outside [0, {n_words}) ({n_words} word labels)")
        label = int(word_labels[word])
        if word == previous:  # a later sub-token of the same word
            if not label_all_subtokens:
                label = ignore_index
            elif b_to_i is not None:
                label = int(b_to_i.get(label, label))
        labels.append(label)
        previous = word
    return labels
