"""Labels only the first sub-token of each word EVER seen (a `seen` set), so a word id that comes back after another word ([0, 1, 0]) is not labelled again, though it differs from the previous sub-token."""


# fails: test-align
# %% grade_id=align-answer
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    out = []
    seen = set()
    for w in word_ids:
        if w is None:
            out.append(ignore_index)
            continue
        if w < 0 or w >= len(word_labels):
            raise ValueError(f"word id {w} out of range")
        if w not in seen or label_all_subtokens:
            out.append(word_labels[w])
        else:
            out.append(ignore_index)
        seen.add(w)
    return out
