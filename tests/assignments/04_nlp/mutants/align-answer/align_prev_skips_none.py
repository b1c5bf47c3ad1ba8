"""Remembers only the previous REAL word id (None tokens do not update it), so in [None, 0, None, 0] the second 0 is treated as a continuation; the statement compares with the previous sub-token, None included."""


# fails: test-align
# %% grade_id=align-answer
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    out = []
    prev = None
    for w in word_ids:
        if w is None:
            out.append(ignore_index)
            continue
        if w < 0 or w >= len(word_labels):
            raise ValueError(f"word id {w} out of range")
        if w != prev or label_all_subtokens:
            out.append(word_labels[w])
        else:
            out.append(ignore_index)
        prev = w
    return out
