"""onnxruntime vs eager PyTorch on the served model: latency (p50/p99), throughput and memory.

The model is 07_mlops's tabular MLP, trained here in a second. Three runtimes, same weights,
same process, one thread each, timed call by call in alternation (so machine noise falls on
all alike): the eager ``nn.Module``; the ``torch.export`` graph that the MLflow registry stores
and the service runs; and the ONNX export run by onnxruntime. Parity is checked first
(max |eager - onnxruntime| over every row at several batch sizes).

    python benchmarks/bench_onnx.py [--repeats 2000] [--batch-sizes 1 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from mlcraft.data.tabular import make_tabular_data
from mlcraft.mlops.export import check_onnx_parity, compare_runtimes, export_onnx, memory_footprint, onnx_session
from mlcraft.recipes.tabular import train_tabular_mlp
from mlcraft.utils import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    configure_logging("WARNING")
    torch.set_num_threads(args.threads)
    train, val = make_tabular_data(2000, seed=0).split(0.8)
    model = train_tabular_mlp(train, val)
    rows = make_tabular_data(max(512, *args.batch_sizes), seed=1).features
    example = torch.from_numpy(rows[:16])
    exported = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, example, Path(tmp) / "model.onnx")
        footprint = memory_footprint(model, path, rows[:64])  # first session of the process: RSS growth included
        parity = check_onnx_parity(model, path, rows)
        session = onnx_session(path, threads=args.threads)
        vs_eager = compare_runtimes(model, session, rows, batch_sizes=args.batch_sizes, repeats=args.repeats)
        vs_export = compare_runtimes(exported, session, rows, batch_sizes=args.batch_sizes, repeats=args.repeats)

    print(f"tabular MLP, {sum(p.numel() for p in model.parameters())} parameters, {args.threads} thread(s)")
    print(parity)
    rss = footprint.onnx_session_rss_bytes
    print(
        f"memory: torch parameters+buffers {footprint.torch_parameter_bytes / 1024:.1f} KiB, "
        f"ONNX file {footprint.onnx_file_bytes / 1024:.1f} KiB, "
        f"onnxruntime session RSS growth {'n/a' if rss is None else f'{rss / 2**20:.1f} MiB'}"
    )
    print(f"{args.repeats} timed calls each")
    header = (
        f"{'batch':>5}  {'runtime':<22}{'p50 ms':>9}{'p99 ms':>9}{'rows/s':>12}{'p50 vs ORT':>12}{'p99 vs ORT':>12}"
    )
    print(header)
    print("-" * len(header))
    for eager, export in zip(vs_eager, vs_export, strict=True):
        ort = eager.onnx
        lines = [
            ("eager nn.Module", eager.eager, eager.speedup_p50, eager.speedup_p99),
            ("torch.export module", export.eager, export.speedup_p50, export.speedup_p99),
            ("onnxruntime", ort, 1.0, 1.0),
        ]
        for name, summary, p50_ratio, p99_ratio in lines:
            throughput = eager.batch_size / (summary.p50_ms / 1000)
            print(
                f"{eager.batch_size:>5}  {name:<22}{summary.p50_ms:>9.4f}{summary.p99_ms:>9.4f}"
                f"{throughput:>12,.0f}{p50_ratio:>11.2f}x{p99_ratio:>11.2f}x"
            )
    print(
        "ratios: latency / onnxruntime latency, each timed in its own alternating pair (above 1: onnxruntime is faster)"
    )


if __name__ == "__main__":
    main()
