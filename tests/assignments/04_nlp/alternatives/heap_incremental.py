"""Correct solution with incremental pair counts and a lazy max-heap for BPE training, a rank-ordered heap over a linked list for encoding (as HF does), np.unique/np.add.at TF-IDF, state-machine chunking."""

# %% grade_id=train-bpe-answer
import heapq
from collections import defaultdict


def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Merges ``(left_id, right_id)`` learned from ``text``; merge ``k`` creates id ``256 + k``."""
    if num_merges < 0:
        raise ValueError("negative num_merges")
    freq = defaultdict(int)
    for ch in pretokenize(text):
        freq[ch.encode("utf-8")] += 1
    words = [list(w) for w in freq]
    wfreq = [freq[w] for w in freq]
    counts = defaultdict(int)
    where = defaultdict(set)
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            counts[(a, b)] += wfreq[wi]
            where[(a, b)].add(wi)
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < num_merges:
        best = None
        while heap:
            negc, p = heapq.heappop(heap)
            if counts.get(p, 0) == -negc and -negc > 0:
                best = p
                break
        if best is None:
            break
        new_id = 256 + len(merges)
        merges.append((int(best[0]), int(best[1])))
        touched = set()
        for wi in list(where.get(best, ())):
            w = words[wi]
            f = wfreq[wi]
            for a, b in zip(w, w[1:]):
                counts[(a, b)] -= f
                touched.add((a, b))
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == best[0] and w[i + 1] == best[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for a, b in zip(out, out[1:]):
                counts[(a, b)] += f
                where[(a, b)].add(wi)
                touched.add((a, b))
        for p in touched:
            c = counts.get(p, 0)
            if c <= 0:
                counts.pop(p, None)
            else:
                heapq.heappush(heap, (-c, p))
    return merges


# %% grade_id=bpe-encode-answer
import heapq


def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Token ids of ``text``: each pre-tokenized chunk's bytes, merged lowest rank first."""
    rank = {}
    for k in range(len(merges)):
        p = (int(merges[k][0]), int(merges[k][1]))
        if p not in rank:
            rank[p] = k
    result = []
    for chunk in pretokenize(text):
        sym = list(chunk.encode("utf-8"))
        n = len(sym)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []
        for i in range(n - 1):
            r = rank.get((sym[i], sym[i + 1]))
            if r is not None:
                heap.append((r, i))
        heapq.heapify(heap)
        while heap:
            r, i = heapq.heappop(heap)
            j = nxt[i] if i < n and alive[i] else n
            if not alive[i] or j >= n or rank.get((sym[i], sym[j])) != r:
                continue
            sym[i] = 256 + r
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[i] < n:
                prv[nxt[i]] = i
                r2 = rank.get((sym[i], sym[nxt[i]]))
                if r2 is not None:
                    heapq.heappush(heap, (r2, i))
            if prv[i] >= 0:
                r2 = rank.get((sym[prv[i]], sym[i]))
                if r2 is not None:
                    heapq.heappush(heap, (r2, prv[i]))
        result.extend(sym[i] for i in range(n) if alive[i])
    return result


def bpe_decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """The text that ``ids`` stand for (invalid UTF-8 becomes U+FFFD)."""
    limit = 256 + len(merges)
    memo = {}

    def expand(t):
        if t < 256:
            return bytes((t,))
        if t not in memo:
            a, b = merges[t - 256]
            memo[t] = expand(int(a)) + expand(int(b))
        return memo[t]

    chunks = []
    for t in ids:
        t = int(t)
        if t < 0 or t >= limit:
            raise ValueError(f"id {t} outside [0, {limit})")
        chunks.append(expand(t))
    return b"".join(chunks).decode("utf-8", "replace")


# %% grade_id=tfidf-answer
def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    """TF-IDF rows (float64, ``(n_docs, V)``) and the sorted vocabulary, as ``TfidfVectorizer()``."""
    rows, toks = [], []
    n = 0
    for i, d in enumerate(docs):
        found = re.findall(r"(?u)\b\w\w+\b", d.lower())
        rows.extend([i] * len(found))
        toks.extend(found)
        n = i + 1
    if not toks:
        raise ValueError("no tokens")
    vocabulary = sorted(set(toks))
    pos = {t: j for j, t in enumerate(vocabulary)}
    cols = np.array([pos[t] for t in toks], dtype=np.intp)
    rows = np.array(rows, dtype=np.intp)
    tf = np.zeros((n, len(vocabulary)), dtype=np.float64)
    np.add.at(tf, (rows, cols), 1.0)
    df = np.count_nonzero(tf, axis=0).astype(np.float64)
    w = tf * (np.log((n + 1.0) / (df + 1.0)) + 1.0)
    norm = np.linalg.norm(w, axis=1)
    nz = norm > 0
    w[nz] /= norm[nz, None]
    return w, vocabulary


# %% grade_id=pool-answer
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over the real tokens of ``attention_mask`` (B, T): (B, D)."""
    if len(hidden.shape) != 3:
        raise ValueError("hidden: expected (B, T, D)")
    B, T, D = hidden.shape
    if list(attention_mask.shape) != [B, T]:
        raise ValueError("attention_mask: expected (B, T)")
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    real = attention_mask.to(hidden.device) != 0
    safe = torch.where(real[:, :, None], hidden, torch.zeros_like(hidden))
    weights = real.to(acc)
    total = torch.einsum("bt,btd->bd", weights, safe.to(acc))
    count = weights.sum(-1, keepdim=True)
    mean = total / torch.where(count > 0, count, torch.ones_like(count))
    return mean.to(dtype=hidden.dtype)


# %% grade_id=align-answer
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    """One label per sub-token: the word's label on its first piece, ``ignore_index`` elsewhere."""
    ids = list(word_ids)
    n_words = len(word_labels)
    bad = [w for w in ids if w is not None and (w < 0 or w >= n_words)]
    if bad:
        raise ValueError(f"word ids out of range: {bad}")
    previous = [object()] + ids[:-1]
    out = []
    for prev, w in zip(previous, ids):
        if w is None:
            out.append(ignore_index)
        elif prev is None or prev != w:
            out.append(word_labels[w])
        else:
            out.append(word_labels[w] if label_all_subtokens else ignore_index)
    return out


# %% grade_id=entity-answer
def entity_scores(y_true, y_pred) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 with conlleval's chunk rules."""
    if len(y_true) != len(y_pred):
        raise ValueError("number of sentences differs")

    def split(tag):
        if isinstance(tag, str):
            if tag == "O":
                return "O", ""
            head, sep, typ = tag.partition("-")
            if sep and head in ("B", "I") and typ:
                return head, typ
        raise ValueError(f"not a tag: {tag!r}")

    def collect(sid, sent, sink):
        state = None  # (type, start)
        for i, tag in enumerate(sent):
            head, typ = split(tag)
            if state is not None and (head != "I" or typ != state[0]):
                sink.add((sid, state[0], state[1], i - 1))
                state = None
            if state is None and head != "O":
                state = (typ, i)
        if state is not None:
            sink.add((sid, state[0], state[1], len(sent) - 1))

    gold, pred = set(), set()
    for sid, (ts, ps) in enumerate(zip(y_true, y_pred)):
        if len(ts) != len(ps):
            raise ValueError(f"sentence {sid}: lengths differ")
        collect(sid, ts, gold)
        collect(sid, ps, pred)
    tp = len(gold.intersection(pred))
    precision = tp / len(pred) if len(pred) > 0 else 0.0
    recall = tp / len(gold) if len(gold) > 0 else 0.0
    denom = precision + recall
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(2 * precision * recall / denom) if denom > 0 else 0.0,
    }


# %% grade_id=bm25-answer
def bm25_scores(query, docs, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 score of every document for ``query`` (Lucene idf), float64 ``(len(docs),)``."""
    if not isinstance(k1, (int, float, np.integer, np.floating)) or not k1 >= 0:
        raise ValueError("k1 must be >= 0")
    if not isinstance(b, (int, float, np.integer, np.floating)) or not 0 <= b <= 1:
        raise ValueError("b must be in [0, 1]")
    N = len(docs)
    out = np.zeros(N, dtype=np.float64)
    if N == 0:
        return out
    lens = np.array([len(d) for d in docs], dtype=np.float64)
    total = lens.sum()
    if total == 0:
        return out
    avgdl = total / N
    norm = k1 * (1.0 - b + b * lens / avgdl)
    doc_sets = [set(d) for d in docs]
    for term in query:
        df = sum(1 for s in doc_sets if term in s)
        if df == 0:
            continue
        idf = math.log(1.0 + (N - df + 0.5) / (df + 0.5))
        tf = np.array([d.count(term) if term in s else 0 for d, s in zip(docs, doc_sets)], dtype=np.float64)
        has = tf > 0
        out[has] += idf * tf[has] * (k1 + 1.0) / (tf[has] + norm[has])
    return out
