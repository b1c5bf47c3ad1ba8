"""Search: lexical (BM25), dense (cosine over sentence embeddings) and hybrid by reciprocal rank fusion (04_nlp).

- Dense search ranks documents by the cosine similarity of their embeddings to the query's, as
  ``sentence_transformers.util.semantic_search`` (Reimers & Gurevych, 2019, "Sentence-BERT",
  https://arxiv.org/abs/1908.10084), exhaustively: one matrix product and a sort, fine up to about
  a million documents on one machine (beyond that, an approximate index such as FAISS).
- Lexical search scores documents with Okapi BM25 (Robertson & Zaragoza, 2009, "The probabilistic
  relevance framework: BM25 and beyond", https://doi.org/10.1561/1500000019) over
  :func:`mlcraft.data.text_features.word_tokens`, via :class:`mlcraft.data.text_features.BM25`.
- Hybrid search merges the two rankings by reciprocal rank fusion (Cormack, Clarke & Büttcher,
  2009, "Reciprocal rank fusion outperforms Condorcet and individual rank learning methods",
  https://doi.org/10.1145/1571941.1572114): ``score(d) = Σ_rankings 1 / (k + rank(d))``, ranks from
  1, ``k = 60``. It needs no score calibration: BM25 scores and cosines live on different scales.

Ties are broken by index (dense) or first appearance (fusion), so every result is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
from numpy.typing import NDArray

from mlcraft.data.text_features import BM25, word_tokens

__all__ = ["DenseIndex", "LexicalIndex", "cosine_top_k", "hybrid_search", "reciprocal_rank_fusion"]

Embeddings = torch.Tensor | NDArray[np.floating]


def _check_k(k: int, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be an int >= 1, got {k!r}")


def _as_matrix(x: Embeddings, name: str) -> torch.Tensor:
    """``x`` as a 2-D float tensor on its own device (CPU for numpy): float64 stays float64, every
    other float dtype (fp16, bf16, fp32) becomes float32."""
    tensor = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must hold floats, got dtype {tensor.dtype}")
    tensor = tensor.to(torch.float64 if tensor.dtype == torch.float64 else torch.float32)
    if not torch.isfinite(tensor).all():
        rows = torch.nonzero(~torch.isfinite(tensor).all(dim=1)).flatten()[:5].tolist()
        raise ValueError(f"{name} holds NaN or inf in rows {rows}")
    return tensor


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows ``x (N, D)`` scaled to unit L2 norm; an all-zero row stays zero (cosine 0 with everything).

    Each row is first divided by its largest absolute value, so that squaring inside the norm can
    neither overflow (float32 rows of 1e20) nor underflow to zero (rows of 1e-30).
    """
    scale = x.abs().amax(dim=1, keepdim=True)  # (N, 1)
    scaled = x / torch.where(scale > 0, scale, torch.ones_like(scale))  # (N, D), max |entry| = 1
    return torch.nn.functional.normalize(scaled, p=2.0, dim=1, eps=1e-12)


def _top_k(scores: torch.Tensor, k: int) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """Best ``min(k, N)`` of each row of ``scores (Q, N)``, highest first, equal scores by lower index."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]  # (Q, k)
    return torch.gather(scores, 1, order).cpu().numpy(), order.cpu().numpy().astype(np.int64)


def cosine_top_k(queries: Embeddings, corpus: Embeddings, k: int) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """The ``k`` corpus rows most cosine-similar to each query row.

    Args:
        queries (Tensor or ndarray[Q, D]): float embeddings (any float dtype; fp16/bf16 are upcast).
        corpus (Tensor or ndarray[N, D]): float embeddings of the documents, same ``D``. The work
            runs on the corpus' device (a CUDA tensor stays on the GPU; queries are moved there).
        k: how many to return, ``>= 1``; more than ``N`` returns all ``N`` (as ``semantic_search``).

    Returns:
        ``(scores, indices)``, both ``(Q, min(k, N))``, each row in decreasing score: cosines in
        [-1, 1] up to rounding (float64 when either input is float64, else float32), and int64 corpus indices.
        Equal scores come in increasing index. An all-zero embedding has cosine 0 with everything.

    Raises:
        ValueError: ``k < 1``, inputs that are not 2-D, different ``D``, NaN or inf.
        TypeError: integer or bool inputs.
    """
    _check_k(k)
    query, docs = _as_matrix(queries, "queries"), _as_matrix(corpus, "corpus")
    if query.shape[1] != docs.shape[1]:
        raise ValueError(f"queries and corpus must have the same dim, got {query.shape[1]} and {docs.shape[1]}")
    dtype = torch.promote_types(query.dtype, docs.dtype)
    query, docs = query.to(docs.device, dtype), docs.to(dtype)
    scores = _normalize(query) @ _normalize(docs).T  # (Q, D) @ (D, N) -> (Q, N)
    return _top_k(scores, k)


class DenseIndex:
    """Exhaustive cosine search over fixed document embeddings (normalized once, at construction)."""

    def __init__(self, embeddings: Embeddings) -> None:
        """``embeddings (Tensor or ndarray[N, D])``: one float row per document, ``N >= 0``."""
        self.embeddings = _normalize(_as_matrix(embeddings, "embeddings"))  # (N, D), unit rows

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def search(self, query_embeddings: Embeddings, k: int) -> list[list[int]]:
        """Indices of the ``min(k, N)`` most similar documents for each of ``Q`` query rows, best first.

        Same ranking as :func:`cosine_top_k` (ties by index); ``query_embeddings (Q, D)``.
        """
        _, indices = cosine_top_k(query_embeddings, self.embeddings, k)
        return [row.tolist() for row in indices]


class LexicalIndex:
    """BM25 search over raw documents, tokenized with :func:`~mlcraft.data.text_features.word_tokens`."""

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        """``docs``: the N document texts; ``k1`` (term-frequency saturation) and ``b`` (length
        normalization) are BM25's parameters, checked by :class:`~mlcraft.data.text_features.BM25`."""
        if isinstance(docs, str):
            raise TypeError("docs must be a sequence of strings, not one string")
        self.bm25 = BM25([word_tokens(doc) for doc in docs], k1=k1, b=b)

    def search(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """Indices of the top ``k`` documents by BM25 score for each query text, best first
        (``BM25.top_k`` on the query's word tokens: its tie order and its length when k > N)."""
        if isinstance(queries, str):
            raise TypeError("queries must be a sequence of strings, not one string; wrap it in a list")
        _check_k(k)
        return [list(self.bm25.top_k(word_tokens(query), k)) for query in queries]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60, top: int | None = None) -> list[int]:
    """Fuse several rankings of the same collection into one: ``score(d) = Σ_r 1 / (k + rank_r(d))``.

    Args:
        rankings: each a ranking of document ids, best first (rank 1), no id twice within one; a
            document absent from a ranking gets nothing from it. Rankings may differ in length.
        k: the constant that damps the top ranks' weight, ``>= 0`` (Cormack et al. use 60).
        top: keep only the best ``top`` (``>= 1``); ``None`` keeps every document seen.

    Returns:
        Document ids by decreasing fused score. Scores are summed exactly (as fractions), so
        documents with mathematically equal scores tie, and ties keep the order of first appearance
        reading ``rankings[0]`` top to bottom, then ``rankings[1]``, and so on.

    Raises:
        ValueError: ``k < 0``, ``top < 1``, or an id repeated within one ranking.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    if top is not None:
        _check_k(top, "top")
    scores: dict[int, Fraction] = {}  # insertion order = first appearance
    for r, ranking in enumerate(rankings):
        if len(set(ranking)) != len(ranking):
            raise ValueError(f"ranking {r} lists an id more than once: {list(ranking)[:20]}")
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, Fraction(0)) + Fraction(1, k + rank)
    fused = sorted(scores, key=scores.__getitem__, reverse=True)  # stable: ties keep first appearance
    return fused if top is None else fused[:top]


def hybrid_search(lexical: list[list[int]], dense: list[list[int]], k: int, rrf_k: int = 60) -> list[list[int]]:
    """Per query, the top ``k`` of the reciprocal rank fusion of its lexical and dense rankings.

    Args:
        lexical, dense: for each of Q queries, a ranking of document ids (e.g. from
            :meth:`LexicalIndex.search` and :meth:`DenseIndex.search` with a depth of 50-100, deeper
            than ``k``, so that a document ranked low by one system can still be lifted by the other).
        k: results per query, ``>= 1``. ``rrf_k``: the fusion constant.

    Raises:
        ValueError: different numbers of queries, ``k < 1``, ``rrf_k < 0``, repeated ids in a ranking.
    """
    _check_k(k)
    if len(lexical) != len(dense):
        raise ValueError(f"lexical and dense must hold as many queries, got {len(lexical)} and {len(dense)}")
    return [reciprocal_rank_fusion([lex, den], k=rrf_k, top=k) for lex, den in zip(lexical, dense, strict=True)]
