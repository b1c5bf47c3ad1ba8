"""Parses tags as tag[0] / tag[2:] without validating them: 'B-', 'E-PER', 'S-PER', 'b-per' or 'PER' are silently accepted (as chunk starts or O) instead of raising ValueError."""


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
                typ = None if tag == "O" else tag[2:]
                if cur is not None and not (tag[0] == "I" and typ == cur):
                    found.add((s, cur, start, i - 1))
                    cur = None
                if cur is None and typ is not None:
                    cur, start = typ, i
        return found

    for a, b in zip(y_true, y_pred):
        if len(a) != len(b):
            raise ValueError("sentence lengths differ")
    t, p = chunks(y_true), chunks(y_pred)
    hit = len(t & p)
    pr = hit / len(p) if p else 0.0
    rc = hit / len(t) if t else 0.0
    return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0}
