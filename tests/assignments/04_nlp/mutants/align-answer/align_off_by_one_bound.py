"""Range check written as `w > len(word_labels)`: the id equal to len(word_labels) passes the check and then raises IndexError, not ValueError."""


# fails: test-align
# %% grade_id=align-answer
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    out = []
    prev = object()
    for w in word_ids:
        if w is None:
            out.append(ignore_index)
        else:
            if w < 0 or w > len(word_labels):
                raise ValueError(f"word id {w} out of range")
            out.append(word_labels[w] if (w != prev or label_all_subtokens) else ignore_index)
        prev = w
    return out
