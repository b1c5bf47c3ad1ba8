"""Handles only the 'no chunks anywhere' case; with true chunks but no predicted ones (or the reverse) it divides by zero instead of returning 0.0."""


# fails: test-entity
# %% grade_id=entity-answer
def entity_scores(y_true, y_pred) -> dict[str, float]:
    if len(y_true) != len(y_pred):
        raise ValueError("different numbers of sentences")

    def chunks(sents):
        found = set()
        for s, sent in enumerate(sents):
            cur, start = None, 0
            for i, tag in enumerate(list(sent) + ["O"]):
                if tag != "O" and not (isinstance(tag, str) and tag[:2] in ("B-", "I-") and len(tag) > 2):
                    raise ValueError(f"bad tag {tag!r}")
                typ = None if tag == "O" else tag[2:]
                if cur is not None and not (tag.startswith("I-") and typ == cur):
                    found.add((s, cur, start, i - 1))
                    cur = None
                if cur is None and typ is not None:
                    cur, start = typ, i
        return found

    for a, b in zip(y_true, y_pred):
        if len(a) != len(b):
            raise ValueError("sentence lengths differ")
    t, p = chunks(y_true), chunks(y_pred)
    if not t and not p:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    hit = len(t & p)
    pr = hit / len(p)
    rc = hit / len(t)
    return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0}
