"""Correct solution using collections.Counter, max() with a key for the tie rule, NumPy/torch vectorization for TF-IDF, pooling and BM25."""

# %% grade_id=train-bpe-answer
from collections import Counter


def _merge_seq(seq, pair, new_id):
    out = []
    i, n = 0, len(seq)
    while i < n:
        if i < n - 1 and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return tuple(out)


def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Merges ``(left_id, right_id)`` learned from ``text``; merge ``k`` creates id ``256 + k``."""
    if num_merges < 0:
        raise ValueError("num_merges must not be negative")
    vocab = Counter(tuple(c.encode("utf-8")) for c in pretokenize(text))
    merges = []
    for k in range(num_merges):
        pairs = Counter()
        for seq, f in vocab.items():
            for p in zip(seq, seq[1:]):
                pairs[p] += f
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], -p[0], -p[1]))
        merges.append((int(best[0]), int(best[1])))
        new_vocab = Counter()
        for seq, f in vocab.items():
            new_vocab[_merge_seq(seq, best, 256 + k)] += f
        vocab = new_vocab
    return merges


# %% grade_id=bpe-encode-answer
def _merge_seq2(seq, pair, new_id):
    out = []
    i, n = 0, len(seq)
    while i < n:
        if i < n - 1 and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Token ids of ``text``: each pre-tokenized chunk's bytes, merged lowest rank first."""
    ranks = {}
    for k, m in enumerate(merges):
        ranks.setdefault((int(m[0]), int(m[1])), k)
    out = []
    cache = {}
    for chunk in pretokenize(text):
        if chunk in cache:
            out += cache[chunk]
            continue
        seq = list(chunk.encode("utf-8"))
        while len(seq) > 1:
            pair = min(zip(seq, seq[1:]), key=lambda p: ranks.get(p, float("inf")))
            if pair not in ranks:
                break
            seq = _merge_seq2(seq, pair, 256 + ranks[pair])
        cache[chunk] = seq
        out += seq
    return out


def bpe_decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """The text that ``ids`` stand for (invalid UTF-8 becomes U+FFFD)."""
    vocab = [bytes([i]) for i in range(256)]
    for a, b in merges:
        vocab.append(vocab[int(a)] + vocab[int(b)])
    buf = bytearray()
    for i in ids:
        i = int(i)
        if not 0 <= i < len(vocab):
            raise ValueError(f"id {i} is not a token of this vocabulary")
        buf += vocab[i]
    return bytes(buf).decode("utf-8", errors="replace")


# %% grade_id=tfidf-answer
from collections import Counter


def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    """TF-IDF rows (float64, ``(n_docs, V)``) and the sorted vocabulary, as ``TfidfVectorizer()``."""
    pat = re.compile(r"(?u)\b\w\w+\b")
    bags = [Counter(pat.findall(d.lower())) for d in docs]
    vocabulary = sorted(set().union(*bags)) if bags else []
    if not vocabulary:
        raise ValueError("empty vocabulary")
    col = {t: j for j, t in enumerate(vocabulary)}
    tf = np.zeros((len(bags), len(vocabulary)), dtype=np.float64)
    for i, bag in enumerate(bags):
        if bag:
            js = [col[t] for t in bag]
            tf[i, js] = list(bag.values())
    n = tf.shape[0]
    df = (tf > 0).sum(axis=0)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    x = tf * idf
    norms = np.sqrt((x * x).sum(axis=1, keepdims=True))
    norms[norms == 0] = 1.0
    return x / norms, vocabulary


# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over the real tokens of ``attention_mask`` (B, T): (B, D)."""
    if hidden.ndim != 3:
        raise ValueError(f"hidden must be 3-D, got shape {tuple(hidden.shape)}")
    if attention_mask.ndim != 2 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"mask must be {tuple(hidden.shape[:2])}, got {tuple(attention_mask.shape)}")
    work = torch.promote_types(hidden.dtype, torch.float32)
    m = attention_mask.to(device=hidden.device).bool()
    x = hidden.to(work).masked_fill(~m[..., None], 0.0)
    n = m.to(work).sum(dim=1, keepdim=True)
    return (x.sum(dim=1) / torch.clamp(n, min=1.0)).to(hidden.dtype)


# %% grade_id=align-answer
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    """One label per sub-token: the word's label on its first piece, ``ignore_index`` elsewhere."""
    word_ids = list(word_ids)
    for w in word_ids:
        if w is not None and not 0 <= w < len(word_labels):
            raise ValueError(f"word id {w} out of range for {len(word_labels)} words")
    labels = []
    for k, w in enumerate(word_ids):
        if w is None:
            labels.append(ignore_index)
        elif k == 0 or word_ids[k - 1] != w or label_all_subtokens:
            labels.append(word_labels[w])
        else:
            labels.append(ignore_index)
    return labels


# %% grade_id=entity-answer
def entity_scores(y_true, y_pred) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 with conlleval's chunk rules."""
    tag_re = re.compile(r"(?s)([BI])-(.+)")

    def parse(tag):
        if tag == "O" and isinstance(tag, str):
            return ("O", None)
        m = tag_re.fullmatch(tag) if isinstance(tag, str) else None
        if m is None:
            raise ValueError(f"invalid tag {tag!r}")
        return m.group(1), m.group(2)

    def spans(sents):
        result = []
        for s, sent in enumerate(sents):
            tags = [parse(t) for t in sent] + [("O", None)]
            begin = None
            for i, (pre, typ) in enumerate(tags):
                prev_typ = tags[i - 1][1] if i > 0 else None
                continues = pre == "I" and begin is not None and prev_typ == typ
                if begin is not None and not continues:
                    result.append((s, prev_typ, begin, i - 1))
                    begin = None
                if pre != "O" and not continues:
                    begin = i
        return set(result)

    if len(y_true) != len(y_pred) or any(len(a) != len(b) for a, b in zip(y_true, y_pred)):
        raise ValueError("y_true and y_pred differ in shape")
    gold, guess = spans(y_true), spans(y_pred)
    hit = len(gold & guess)
    p = hit / len(guess) if guess else 0.0
    r = hit / len(gold) if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


# %% grade_id=bm25-answer
from collections import Counter


def bm25_scores(query, docs, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 score of every document for ``query`` (Lucene idf), float64 ``(len(docs),)``."""
    import numbers

    ok = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (k1, b))
    ok = ok and float(k1) >= 0 and 0 <= float(b) <= 1
    if not ok:
        raise ValueError("need k1 >= 0 and 0 <= b <= 1")
    docs = list(docs)
    n = len(docs)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    bags = [Counter(d) for d in docs]
    dl = np.array([len(d) for d in docs], dtype=np.float64)
    avgdl = dl.mean()
    if avgdl == 0:
        return np.zeros(n, dtype=np.float64)
    q = Counter(query)
    terms = list(q)
    tf = np.array([[bag[t] for t in terms] for bag in bags], dtype=np.float64).reshape(n, len(terms))
    df = (tf > 0).sum(axis=0)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    denom = tf + k1 * (1 - b + b * dl / avgdl)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        part = np.where(tf > 0, tf * (k1 + 1) / np.where(denom == 0, 1.0, denom), 0.0)
    weights = np.array([q[t] for t in terms], dtype=np.float64)
    return (part * idf * weights).sum(axis=1).astype(np.float64)
