"""The labelled text of 04_nlp, all offline: intents with BIO slots, product reviews, Python docs for search.

- :func:`make_intents`: a seeded template generator of assistant commands in the style of ATIS and
  SNIPS (Coucke et al., 2018, https://arxiv.org/abs/1805.10190): each example has an intent and a
  BIO tag per word (Ramshaw & Marcus, 1995) for its slots (cities, dates, times, artists, dishes, most
  of several words). Templates come in two disjoint sets, ``"train"`` and ``"test"``, phrased
  differently: a model scored on fresh examples of its own training templates looks better than on
  unseen phrasings (template leakage, the reason SNIPS-style splits are made by template).
- :func:`load_reviews`: ``resources/reviews.csv``, short product and app reviews labelled
  ``"negative"``/``"positive"``: written for mlcraft, released with it under the MIT license. They
  include negation ("not bad"), sarcasm, typos, emoji and accented letters; no duplicates.
- :func:`load_pydoc_topics`: the Python reference manual's help topics (``pydoc_data.topics``, what
  ``help("try")`` prints), real English that ships with every Python, as a search corpus.
- :func:`load_pydoc_queries`: ``resources/pydoc_queries.csv``, questions a Python learner asks with
  the topic keys that answer them (checked against the topic texts): written for mlcraft, released with
  it under the MIT license.
  Some share words with their answer, some are paraphrases that share almost none.
"""

from __future__ import annotations

import csv
import io
import random
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from mlcraft.utils.logging import get_logger

__all__ = [
    "ENTITY_TYPES",
    "INTENTS",
    "IntentExample",
    "load_pydoc_queries",
    "load_pydoc_topics",
    "load_reviews",
    "make_intents",
]

log = get_logger(__name__)

INTENTS: tuple[str, ...] = ("book_flight", "get_weather", "set_alarm", "play_music", "order_food", "cancel")
ENTITY_TYPES: tuple[str, ...] = ("city", "date", "time", "artist", "dish")
REVIEW_LABELS: tuple[str, ...] = ("negative", "positive")

#: Slot values, lower case; many span several words.
SLOT_VALUES: dict[str, tuple[str, ...]] = {
    "city": (
        "paris", "london", "new york", "san francisco", "tokyo", "rio de janeiro", "berlin", "buenos aires",
        "cape town", "mexico city", "oslo", "los angeles", "hong kong", "lisbon", "kuala lumpur", "madrid",
    ),
    "date": (
        "tomorrow", "today", "next friday", "this weekend", "monday", "the 3rd of may", "march 14",
        "christmas eve", "next week", "the day after tomorrow", "saturday morning", "new year's day",
    ),
    "time": (
        "7 am", "6:30 pm", "noon", "midnight", "half past six", "quarter to eight", "5 in the morning",
        "10 pm", "9:15", "eleven o'clock",
    ),
    "artist": (
        "the beatles", "miles davis", "daft punk", "taylor swift", "ella fitzgerald", "radiohead", "bob marley",
        "the rolling stones", "nina simone", "kendrick lamar", "björk", "buena vista social club",
    ),
    "dish": (
        "pad thai", "margherita pizza", "chicken tikka masala", "sushi", "veggie burger", "ramen",
        "fish and chips", "caesar salad", "beef tacos", "falafel wrap", "pho", "mushroom risotto",
    ),
}  # fmt: skip

#: Templates per intent: ``{slot}`` is filled with a value of that entity type. "train" and
#: "test" templates share no phrasing beyond the slot values and function words.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "book_flight": {
        "train": (
            "book a flight to {city} {date}",
            "i want to fly from {city} to {city} {date}",
            "find me a flight to {city}",
            "book me a ticket from {city} to {city} on {date}",
            "are there any flights to {city} {date}",
        ),
        "test": (
            "get me on a plane to {city} {date}",
            "i need to travel to {city} by air {date}",
            "reserve a seat on the {time} departure to {city}",
        ),
    },
    "get_weather": {
        "train": (
            "what is the weather in {city} {date}",
            "will it rain in {city} {date}",
            "weather forecast for {city}",
            "how hot will it be in {city} {date}",
            "is it going to snow {date}",
        ),
        "test": (
            "should i bring an umbrella to {city} {date}",
            "do i need a jacket in {city} {date}",
            "how cold is it outside in {city} right now",
        ),
    },
    "set_alarm": {
        "train": (
            "set an alarm for {time}",
            "wake me up at {time} {date}",
            "set an alarm for {time} {date}",
            "alarm at {time} please",
            "create an alarm for {date} at {time}",
        ),
        "test": (
            "i need to be up by {time}",
            "make sure i get out of bed at {time} {date}",
            "ring at {time} so i do not oversleep",
        ),
    },
    "play_music": {
        "train": (
            "play some {artist}",
            "play songs by {artist}",
            "put on {artist}",
            "i want to listen to {artist}",
            "play the latest album by {artist}",
        ),
        "test": (
            "shuffle my {artist} playlist",
            "could you queue up a few tracks from {artist}",
            "i am in the mood for {artist}",
        ),
    },
    "order_food": {
        "train": (
            "order {dish}",
            "i would like to order {dish} for {time}",
            "order {dish} for delivery {date}",
            "can i get {dish} delivered at {time}",
            "order two portions of {dish}",
        ),
        "test": (
            "i am starving send over some {dish}",
            "have {dish} brought to my door by {time}",
            "i feel like eating {dish} {date}",
        ),
    },
    "cancel": {
        "train": (
            "cancel my flight to {city}",
            "cancel the alarm for {time}",
            "cancel my order of {dish}",
            "cancel my trip {date}",
            "cancel that",
        ),
        "test": (
            "never mind the {time} alarm",
            "i no longer want the {dish}",
            "call off my trip to {city} {date}",
        ),
    },
}

_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class IntentExample:
    """One command: its text, intent and a BIO tag per whitespace-separated word."""

    text: str  # the words joined by single spaces, lower case
    intent: str  # one of INTENTS
    words: tuple[str, ...]  # text.split(" ")
    tags: tuple[str, ...]  # same length as words: "O", "B-<type>" or "I-<type>", type in ENTITY_TYPES

    def __post_init__(self) -> None:
        if len(self.words) != len(self.tags):
            raise ValueError(f"{len(self.words)} words but {len(self.tags)} tags in {self.text!r}")


def _fill(template: str, intent: str, rng: random.Random) -> IntentExample:
    words: list[str] = []
    tags: list[str] = []
    for piece in template.split(" "):
        slot = _SLOT.fullmatch(piece)
        if slot is None:
            words.append(piece)
            tags.append("O")
            continue
        kind = slot.group(1)
        value = rng.choice(SLOT_VALUES[kind]).split(" ")
        words.extend(value)
        tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(value) - 1))
    return IntentExample(" ".join(words), intent, tuple(words), tuple(tags))


def make_intents(n: int, seed: int = 0, templates: Literal["train", "test", "all"] = "all") -> list[IntentExample]:
    """``n`` commands: intent uniform over :data:`INTENTS`, then a template of the chosen set, then slot values.

    Args:
        n: number of examples, ``>= 0``.
        seed: the same seed gives the same list on every machine and Python version (``random.Random``).
        templates: ``"train"`` or ``"test"`` (disjoint template sets) or ``"all"`` (both).

    Returns:
        list of :class:`IntentExample`. Different seeds draw from the same templates and values, so
        two lists with the same ``templates`` share phrasings: only ``"train"`` vs ``"test"`` do not.

    Raises:
        ValueError: ``n < 0`` or an unknown ``templates``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if templates not in ("train", "test", "all"):
        raise ValueError(f"templates must be 'train', 'test' or 'all', got {templates!r}")
    rng = random.Random(seed)
    pools = {
        intent: sets["train"] + sets["test"] if templates == "all" else sets[templates]
        for intent, sets in TEMPLATES.items()
    }
    examples = []
    for _ in range(n):
        intent = rng.choice(INTENTS)
        examples.append(_fill(rng.choice(pools[intent]), intent, rng))
    return examples


def _read_csv(name: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    text = (resources.files("mlcraft.data") / "resources" / name).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != columns:
        raise ValueError(f"{name}: expected columns {columns}, got {reader.fieldnames}")
    return list(reader)


def load_reviews() -> list[tuple[str, str]]:
    """The ``(text, label)`` rows of ``reviews.csv`` in file order; labels ``"negative"`` or ``"positive"``.

    Texts are UTF-8 (emoji, accented letters), 5 to 40 words, about half of each label.
    """
    rows = [(row["text"], row["label"]) for row in _read_csv("reviews.csv", ("text", "label"))]
    bad = [(i, label) for i, (_, label) in enumerate(rows) if label not in REVIEW_LABELS]
    if bad:
        raise ValueError(f"reviews.csv: labels outside {REVIEW_LABELS} at rows {bad[:5]}")
    return rows


def load_pydoc_topics() -> dict[str, str]:
    """``{topic key: text}`` of this Python's ``pydoc_data.topics`` (79 topics on Python 3.11), a copy."""
    from pydoc_data.topics import topics  # the standard library's help() texts

    return dict(topics)


def load_pydoc_queries() -> list[tuple[str, tuple[str, ...]]]:
    """``(question, relevant topic keys)`` from ``pydoc_queries.csv``, in file order.

    Keys are checked against :func:`load_pydoc_topics`: a key this Python's manual lacks (topics
    change between Python versions) is dropped with a warning, and a question left with no key is
    dropped too, so every returned key exists.
    """
    topics = load_pydoc_topics()
    queries: list[tuple[str, tuple[str, ...]]] = []
    for row in _read_csv("pydoc_queries.csv", ("query", "relevant")):
        keys = tuple(row["relevant"].split("|"))
        present = tuple(key for key in keys if key in topics)
        if present != keys:
            log.warning("pydoc topic missing", query=row["query"], missing=sorted(set(keys) - set(present)))
        if present:
            queries.append((row["query"], present))
    return queries
