"""I-X after O (or at the start) is ignored instead of starting a chunk."""

# fails: test-entity
# %% grade_id=entity-answer


def entity_scores(y_true, y_pred) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 with conlleval's chunk rules."""

    def chunks(sentences):
        found = set()
        for s, tags in enumerate(sentences):
            start, kind = None, None
            for i, tag in enumerate([*tags, "O"]):
                if tag != "O" and not (len(tag) > 2 and tag[:2] in ("B-", "I-")):
                    raise ValueError(f"sentence {s}, position {i}: tag {tag!r} is not O, B-TYPE or I-TYPE")
                continues = tag.startswith("I-") and tag[2:] == kind
                if start is not None and not continues:
                    found.add((s, kind, start, i - 1))
                    start, kind = None, None
                if tag.startswith("B-"):
                    start, kind = i, tag[2:]
        return found

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true sentences but {len(y_pred)} predicted")
    for s, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {s} has {len(t)} true tags but {len(p)} predicted")
    true, pred = chunks(y_true), chunks(y_pred)
    correct = len(true & pred)
    precision = correct / len(pred) if pred else 0.0
    recall = correct / len(true) if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
