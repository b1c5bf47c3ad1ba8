"""Checks that the numbers of sentences match but pairs tags with zip(), so a sentence longer in one list than the other is silently truncated instead of raising ValueError."""


# fails: test-entity
# %% grade_id=entity-answer
def entity_scores(y_true, y_pred) -> dict[str, float]:
    if len(y_true) != len(y_pred):
        raise ValueError("different numbers of sentences")

    def parse(tag):
        if tag == "O":
            return None
        if isinstance(tag, str) and tag[:2] in ("B-", "I-") and len(tag) > 2:
            return tag[0], tag[2:]
        raise ValueError(f"bad tag {tag!r}")

    t, p = set(), set()
    for s, (ts, ps) in enumerate(zip(y_true, y_pred)):
        for tags, sink in ((ts, t), (ps, p)):
            cur, start = None, 0
            pairs = list(zip(ts, ps))
            seq = [a for a, _ in pairs] if sink is t else [b for _, b in pairs]
            for i, tag in enumerate(seq + ["O"]):
                parsed = parse(tag)
                if cur is not None and not (parsed and parsed[0] == "I" and parsed[1] == cur):
                    sink.add((s, cur, start, i - 1))
                    cur = None
                if cur is None and parsed:
                    cur, start = parsed[1], i
    hit = len(t & p)
    pr = hit / len(p) if p else 0.0
    rc = hit / len(t) if t else 0.0
    return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0}
