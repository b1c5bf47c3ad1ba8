"""No pre-tokenization: the whole text is one chunk, so merges cross words."""

# fails: test-train-bpe
# %% grade_id=train-bpe-answer


def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Merges ``(left_id, right_id)`` learned from ``text``; merge ``k`` creates id ``256 + k``."""
    if num_merges < 0:
        raise ValueError(f"num_merges must be >= 0, got {num_merges}")
    counts: dict[tuple[int, ...], int] = {}
    for chunk in [text] if text else []:
        key = tuple(chunk.encode("utf-8"))
        counts[key] = counts.get(key, 0) + 1
    words = [list(key) for key in counts]
    freqs = list(counts.values())
    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges:
        pairs: dict[tuple[int, int], int] = {}
        for word, freq in zip(words, freqs):
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + freq
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        new_id = 256 + len(merges)
        merges.append(best)
        for w, word in enumerate(words):
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            words[w] = merged
    return merges
