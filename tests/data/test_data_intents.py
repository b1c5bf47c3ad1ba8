"""Tests for mlcraft.data.intents: the template generator's labels and splits, and the shipped data files."""

from __future__ import annotations

import csv
import re
import unicodedata
from importlib import resources

import pytest

from mlcraft.data import intents
from mlcraft.data.intents import (
    ENTITY_TYPES,
    INTENTS,
    SLOT_VALUES,
    TEMPLATES,
    IntentExample,
    load_pydoc_queries,
    load_pydoc_topics,
    load_reviews,
    make_intents,
)
from mlcraft.data.ner import bio_spans


def _template_of(example: IntentExample) -> str:
    """The template an example came from: each entity span replaced by ``{type}``."""
    words = list(example.words)
    for kind, start, end in reversed(bio_spans(example.tags)):
        words[start:end] = [f"{{{kind}}}"]
    return " ".join(words)


def test_intent_constants() -> None:
    assert INTENTS == ("book_flight", "get_weather", "set_alarm", "play_music", "order_food", "cancel")
    assert set(TEMPLATES) == set(INTENTS) and set(SLOT_VALUES) == set(ENTITY_TYPES)
    assert sum(" " in value for values in SLOT_VALUES.values() for value in values) >= 20, "multi-word values"


def test_make_intents_is_seeded_and_well_formed() -> None:
    examples = make_intents(400, seed=7)
    assert make_intents(400, seed=7) == examples
    assert make_intents(400, seed=8) != examples
    assert make_intents(50, seed=7) == examples[:50], "a prefix of a longer draw with the same seed"
    assert {e.intent for e in examples} == set(INTENTS)
    found_types = set()
    for e in examples:
        assert e.text == " ".join(e.words) and tuple(e.text.split(" ")) == e.words
        assert len(e.tags) == len(e.words) and all(w for w in e.words)
        for kind, start, end in bio_spans(e.tags):
            found_types.add(kind)
            assert " ".join(e.words[start:end]) in SLOT_VALUES[kind], (e.text, kind)
        assert all(tag == "O" or tag[2:] in ENTITY_TYPES for tag in e.tags)
        assert _template_of(e) in TEMPLATES[e.intent]["train"] + TEMPLATES[e.intent]["test"], e.text
    assert found_types == set(ENTITY_TYPES)
    assert any(end - start >= 3 for e in examples for _, start, end in bio_spans(e.tags)), "3-word entities"


def test_train_and_test_templates_are_disjoint() -> None:
    train = make_intents(600, seed=0, templates="train")
    test = make_intents(600, seed=0, templates="test")
    train_templates = {(e.intent, _template_of(e)) for e in train}
    test_templates = {(e.intent, _template_of(e)) for e in test}
    assert train_templates == {(i, t) for i in INTENTS for t in TEMPLATES[i]["train"]}, "every train template used"
    assert test_templates == {(i, t) for i in INTENTS for t in TEMPLATES[i]["test"]}
    assert not {t for _, t in train_templates} & {t for _, t in test_templates}
    both = {(e.intent, _template_of(e)) for e in make_intents(1200, seed=0, templates="all")}
    assert both == train_templates | test_templates


def test_template_leakage_is_visible_with_a_bag_of_words_model() -> None:
    """The lesson's claim: same-template test data flatters a model; unseen templates do not."""
    from sklearn.feature_extraction.text import CountVectorizer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    train = make_intents(300, seed=0, templates="train")
    vectorizer = CountVectorizer()
    model = LogisticRegression(max_iter=1000).fit(
        vectorizer.fit_transform([e.text for e in train]), [e.intent for e in train]
    )

    def accuracy(examples: list[IntentExample]) -> float:
        return float(model.score(vectorizer.transform([e.text for e in examples]), [e.intent for e in examples]))

    same = accuracy(make_intents(300, seed=1, templates="train"))
    unseen = accuracy(make_intents(300, seed=1, templates="test"))
    assert same > 0.95 and unseen < same - 0.2, f"same templates {same:.3f}, unseen templates {unseen:.3f}"


def test_make_intents_edges_and_errors() -> None:
    assert make_intents(0) == []
    assert len(make_intents(1, templates="test")) == 1
    with pytest.raises(ValueError, match="n must be an int >= 0, got -1"):
        make_intents(-1)
    with pytest.raises(ValueError, match=r"n must be an int >= 0, got 2\.0"):
        make_intents(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'valid'"):
        make_intents(3, templates="valid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        IntentExample("a b", "cancel", ("a", "b"), ("O",))


# --- reviews.csv ------------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_reviews_file_and_loader() -> None:
    path = resources.files("mlcraft.data") / "resources" / "reviews.csv"
    raw = path.read_text(encoding="utf-8")
    assert raw.splitlines()[0] == "text,label"
    rows = load_reviews()
    assert rows == [(r["text"], r["label"]) for r in csv.DictReader(raw.splitlines())]
    assert 300 <= len(rows) <= 400
    labels = [label for _, label in rows]
    assert set(labels) == {"negative", "positive"}
    assert 0.4 <= labels.count("negative") / len(rows) <= 0.6
    lengths = [len(text.split()) for text, _ in rows]
    assert min(lengths) >= 5 and max(lengths) <= 40 and max(lengths) >= 25, (min(lengths), max(lengths))
    texts = [text for text, _ in rows]
    assert all(text == text.strip() and text for text in texts)
    assert any(any(ord(ch) > 0x2000 and unicodedata.category(ch) == "So" for ch in t) for t in texts), "emoji"
    assert sum(any(unicodedata.decomposition(ch) for ch in t if ch.isalpha()) for t in texts) >= 5, "accents"
    assert sum(bool(re.search(r"\bnot\b|n't\b", t.lower())) for t in texts) >= 20, "negations"


def test_reviews_have_no_duplicates_or_near_duplicates() -> None:
    texts = [text for text, _ in load_reviews()]
    normalized = [" ".join(sorted(_words(t))) for t in texts]
    assert len(set(normalized)) == len(texts), "exact duplicates (up to case, punctuation, order)"
    sets = [_words(t) for t in texts]
    worst = max(len(a & b) / len(a | b) for i, a in enumerate(sets) for b in sets[i + 1 :])
    assert worst <= 0.5, f"two reviews share {worst:.2f} of their words"


# --- pydoc topics and queries ------------------------------------------------------------------


def test_pydoc_topics_is_a_copy_of_the_standard_library() -> None:
    from pydoc_data.topics import topics

    loaded = load_pydoc_topics()
    assert loaded == topics and loaded is not topics
    loaded.clear()
    assert load_pydoc_topics() == topics
    assert all(isinstance(v, str) and len(v) > 50 for v in topics.values())


def test_pydoc_queries_every_key_exists_and_nothing_is_dropped() -> None:
    raw = (resources.files("mlcraft.data") / "resources" / "pydoc_queries.csv").read_text(encoding="utf-8")
    assert raw.splitlines()[0] == "query,relevant"
    rows = list(csv.DictReader(raw.splitlines()))
    queries = load_pydoc_queries()
    assert len(queries) == len(rows), "a query was dropped on this Python: its keys are missing"
    assert 40 <= len(queries) <= 60
    topics = load_pydoc_topics()
    assert all(key in topics for _, keys in queries for key in keys)
    assert all(len(set(keys)) == len(keys) >= 1 for _, keys in queries)
    assert len({q for q, _ in queries}) == len(queries)
    assert queries[0] == ("how do I catch an exception", ("try", "exceptions"))
    assert len({key for _, keys in queries for key in keys}) >= 35, "the questions cover many topics"


def test_pydoc_queries_drop_keys_this_python_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    topics = load_pydoc_topics()
    del topics["try"], topics["exceptions"]
    monkeypatch.setattr(intents, "load_pydoc_topics", lambda: topics)
    queries = dict(load_pydoc_queries())
    assert "how do I catch an exception" not in queries  # both of its keys are gone
    assert queries["how can I make sure a file gets closed even if something goes wrong"] == (
        "with",
        "context-managers",
    )
    assert all(key in topics for keys in queries.values() for key in keys)
