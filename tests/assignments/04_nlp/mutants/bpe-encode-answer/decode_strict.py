"""Decodes strictly: a cut character raises UnicodeDecodeError."""

# fails: test-bpe-encode
# %% grade_id=bpe-encode-answer


def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Token ids of ``text``: each pre-tokenized chunk's bytes, merged lowest rank first."""
    ranks = {tuple(pair): rank for rank, pair in enumerate(merges)}
    ids: list[int] = []
    for chunk in pretokenize(text):
        word = list(chunk.encode("utf-8"))
        while len(word) > 1:
            ranked = [ranks[pair] for pair in zip(word, word[1:]) if pair in ranks]
            if not ranked:
                break
            rank = min(ranked)
            pair, new_id = tuple(merges[rank]), 256 + rank
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids.extend(word)
    return ids


def bpe_decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """The text that ``ids`` stand for (invalid UTF-8 becomes U+FFFD)."""
    vocab = [bytes([b]) for b in range(256)]
    for left, right in merges:
        vocab.append(vocab[left] + vocab[right])
    pieces = []
    for token_id in ids:
        if not 0 <= token_id < len(vocab):
            raise ValueError(f"token id {token_id} is not in [0, {len(vocab)})")
        pieces.append(vocab[token_id])
    return b"".join(pieces).decode("utf-8")
