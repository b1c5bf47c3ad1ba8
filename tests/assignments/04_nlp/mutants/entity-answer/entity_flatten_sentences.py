"""Concatenates all sentences into one tag sequence before chunking, so a chunk at the end of one sentence continues with I-X at the start of the next; chunks must never span sentences."""


# fails: test-entity
# %% grade_id=entity-answer
def entity_scores(y_true, y_pred) -> dict[str, float]:
    if len(y_true) != len(y_pred):
        raise ValueError("different numbers of sentences")
    for a, b in zip(y_true, y_pred):
        if len(a) != len(b):
            raise ValueError("sentence lengths differ")

    def chunks(sents):
        tags = [t for s in sents for t in s]
        found, cur, start = set(), None, 0
        for i, tag in enumerate(tags + ["O"]):
            if tag != "O" and not (isinstance(tag, str) and tag[:2] in ("B-", "I-") and len(tag) > 2):
                raise ValueError(f"bad tag {tag!r}")
            typ = tag[2:] if tag != "O" else None
            if cur is not None and not (tag.startswith("I-") and typ == cur):
                found.add((cur, start, i - 1))
                cur = None
            if cur is None and typ is not None:
                cur, start = typ, i
        return found

    t, p = chunks(y_true), chunks(y_pred)
    hit = len(t & p)
    pr = hit / len(p) if p else 0.0
    rc = hit / len(t) if t else 0.0
    return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0}
