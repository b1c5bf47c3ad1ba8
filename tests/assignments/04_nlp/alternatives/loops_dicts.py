"""Correct solution written with plain loops and dicts: chunk-frequency table for BPE, explicit scans, per-row Python loops."""


# %% grade_id=train-bpe-answer
def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Merges ``(left_id, right_id)`` learned from ``text``; merge ``k`` creates id ``256 + k``."""
    if num_merges < 0:
        raise ValueError("num_merges must be >= 0")
    freq = {}
    for chunk in pretokenize(text):
        key = tuple(chunk.encode("utf-8"))
        freq[key] = freq.get(key, 0) + 1
    words = [[list(k), f] for k, f in freq.items()]
    merges = []
    while len(merges) < num_merges:
        counts = {}
        for toks, f in words:
            for i in range(len(toks) - 1):
                p = (toks[i], toks[i + 1])
                counts[p] = counts.get(p, 0) + f
        if not counts:
            break
        best = None
        for p, c in counts.items():
            if best is None or c > counts[best] or (c == counts[best] and p < best):
                best = p
        new_id = 256 + len(merges)
        merges.append((int(best[0]), int(best[1])))
        for w in words:
            toks = w[0]
            out = []
            i = 0
            while i < len(toks):
                if i + 1 < len(toks) and toks[i] == best[0] and toks[i + 1] == best[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(toks[i])
                    i += 1
            w[0] = out
    return merges


# %% grade_id=bpe-encode-answer
def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Token ids of ``text``: each pre-tokenized chunk's bytes, merged lowest rank first."""
    rank = {}
    for k, (a, b) in enumerate(merges):
        pair = (int(a), int(b))
        if pair not in rank:
            rank[pair] = k
    ids = []
    for chunk in pretokenize(text):
        toks = list(chunk.encode("utf-8"))
        while len(toks) >= 2:
            best = None
            for i in range(len(toks) - 1):
                r = rank.get((toks[i], toks[i + 1]))
                if r is not None and (best is None or r < best):
                    best = r
            if best is None:
                break
            a, b = merges[best]
            a, b = int(a), int(b)
            new_id = 256 + best
            out = []
            i = 0
            while i < len(toks):
                if i + 1 < len(toks) and toks[i] == a and toks[i + 1] == b:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(toks[i])
                    i += 1
            toks = out
        ids.extend(toks)
    return ids


def bpe_decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """The text that ``ids`` stand for (invalid UTF-8 becomes U+FFFD)."""
    table = {i: bytes([i]) for i in range(256)}
    for k, (a, b) in enumerate(merges):
        table[256 + k] = table[int(a)] + table[int(b)]
    parts = []
    for i in ids:
        i = int(i)
        if i < 0 or i >= 256 + len(merges):
            raise ValueError(f"token id {i} out of range")
        parts.append(table[i])
    return b"".join(parts).decode("utf-8", errors="replace")


# %% grade_id=tfidf-answer
def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    """TF-IDF rows (float64, ``(n_docs, V)``) and the sorted vocabulary, as ``TfidfVectorizer()``."""
    token_re = re.compile(r"(?u)\b\w\w+\b")
    counts = []
    for doc in docs:
        c = {}
        for tok in token_re.findall(doc.lower()):
            c[tok] = c.get(tok, 0) + 1
        counts.append(c)
    vocab_set = set()
    for c in counts:
        vocab_set.update(c)
    if not vocab_set:
        raise ValueError("no tokens at all")
    vocabulary = sorted(vocab_set)
    index = {t: j for j, t in enumerate(vocabulary)}
    n = len(counts)
    df = [0] * len(vocabulary)
    for c in counts:
        for t in c:
            df[index[t]] += 1
    idf = [math.log((1 + n) / (1 + d)) + 1.0 for d in df]
    matrix = np.zeros((n, len(vocabulary)), dtype=np.float64)
    for r, c in enumerate(counts):
        for t, f in c.items():
            j = index[t]
            matrix[r, j] = f * idf[j]
        norm = math.sqrt(sum(float(v) ** 2 for v in matrix[r]))
        if norm > 0:
            matrix[r] /= norm
    return matrix, vocabulary


# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over the real tokens of ``attention_mask`` (B, T): (B, D)."""
    if hidden.dim() != 3:
        raise ValueError("hidden must be (B, T, D)")
    if tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError("attention_mask must be (B, T)")
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    keep = (attention_mask != 0).to(hidden.device)
    h = hidden.to(acc)
    h = torch.where(keep.unsqueeze(-1), h, torch.zeros((), dtype=acc, device=hidden.device))
    total = h.sum(dim=1)
    count = keep.sum(dim=1).to(acc).clamp(min=1).unsqueeze(-1)
    return (total / count).to(hidden.dtype)


# %% grade_id=align-answer
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    """One label per sub-token: the word's label on its first piece, ``ignore_index`` elsewhere."""
    n = len(word_labels)
    out = []
    prev = None
    first = True
    for w in word_ids:
        if w is None:
            out.append(ignore_index)
        else:
            if w < 0 or w >= n:
                raise ValueError(f"word id {w} out of range")
            if first or w != prev or label_all_subtokens:
                out.append(word_labels[w])
            else:
                out.append(ignore_index)
        prev = w
        first = False
    return out


# %% grade_id=entity-answer
def entity_scores(y_true, y_pred) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 with conlleval's chunk rules."""

    def check(tag):
        if not isinstance(tag, str):
            raise ValueError(f"bad tag {tag!r}")
        if tag == "O":
            return None
        if (tag.startswith("B-") or tag.startswith("I-")) and len(tag) > 2:
            return tag[0], tag[2:]
        raise ValueError(f"bad tag {tag!r}")

    def chunks(sentences):
        found = set()
        for s, sent in enumerate(sentences):
            cur_type = None
            start = None
            for i, tag in enumerate(sent):
                parsed = check(tag)
                if parsed is None:
                    if cur_type is not None:
                        found.add((s, cur_type, start, i - 1))
                    cur_type = None
                    continue
                prefix, typ = parsed
                if prefix == "I" and cur_type == typ:
                    continue
                if cur_type is not None:
                    found.add((s, cur_type, start, i - 1))
                cur_type, start = typ, i
            if cur_type is not None:
                found.add((s, cur_type, start, len(sent) - 1))
        return found

    y_true = list(y_true)
    y_pred = list(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError("different numbers of sentences")
    for a, b in zip(y_true, y_pred):
        if len(a) != len(b):
            raise ValueError("sentence lengths differ")
    t = chunks(y_true)
    p = chunks(y_pred)
    correct = len(t & p)
    precision = correct / len(p) if p else 0.0
    recall = correct / len(t) if t else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


# %% grade_id=bm25-answer
def bm25_scores(query, docs, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 score of every document for ``query`` (Lucene idf), float64 ``(len(docs),)``."""
    import numbers

    if isinstance(k1, bool) or not isinstance(k1, numbers.Real) or not (k1 >= 0):
        raise ValueError("k1 must be a number >= 0")
    if isinstance(b, bool) or not isinstance(b, numbers.Real) or not (0 <= b <= 1):
        raise ValueError("b must be a number in [0, 1]")
    docs = [list(d) for d in docs]
    n = len(docs)
    scores = np.zeros(n, dtype=np.float64)
    if n == 0:
        return scores
    lengths = [len(d) for d in docs]
    avgdl = sum(lengths) / n
    if avgdl == 0:
        return scores
    tfs = []
    for d in docs:
        c = {}
        for t in d:
            c[t] = c.get(t, 0) + 1
        tfs.append(c)
    df = {}
    for c in tfs:
        for t in c:
            df[t] = df.get(t, 0) + 1
    for t in query:
        if t not in df:
            continue
        idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
        for i, c in enumerate(tfs):
            tf = c.get(t, 0)
            if tf == 0:
                continue
            scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[i] / avgdl))
    return scores
