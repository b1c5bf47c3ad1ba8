"""Uses -100 for special tokens whatever ignore_index is."""

# fails: test-align
# %% grade_id=align-answer


def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    """One label per sub-token: the word's label on its first piece, ``ignore_index`` elsewhere."""
    labels, previous = [], None
    for word in word_ids:
        if word is not None and not 0 <= word < len(word_labels):
            raise ValueError(f"word id {word} is out of range for {len(word_labels)} words")
        if word is None:
            labels.append(-100)
        elif word != previous or label_all_subtokens:
            labels.append(int(word_labels[word]))
        else:
            labels.append(ignore_index)
        previous = word
    return labels
