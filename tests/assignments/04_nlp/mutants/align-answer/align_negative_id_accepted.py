"""Only checks the upper bound of a word id; a negative id picks a label from the end of the list through Python's negative indexing instead of raising ValueError."""


# fails: test-align
# %% grade_id=align-answer
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    out = []
    prev = object()
    for w in word_ids:
        if w is None:
            out.append(ignore_index)
        else:
            if w >= len(word_labels):
                raise ValueError(f"word id {w} out of range")
            out.append(word_labels[w] if (w != prev or label_all_subtokens) else ignore_index)
        prev = w
    return out
