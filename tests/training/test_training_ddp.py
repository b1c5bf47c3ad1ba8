"""Data parallel training with 2 CPU processes (gloo), launched with torchrun, against a
single-process float64 reference computed by hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from mlcraft.classroom.testing import assert_close
from mlcraft.config.training import TrainingConfig
from mlcraft.training import Trainer

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)

WORLD = 2
SEED = 7
BATCH = 4  # per process
ACCUMULATION = 2
EPOCHS = 2
N_TRAIN = 40  # 20 samples per rank -> 5 micro-batches -> groups of 2, 2, 1 -> 3 steps per epoch
N_VAL = 21  # odd: shards of 11 and 10
LR = 0.2

# Shared by the worker script and the in-process reference, so both build identical objects.
COMMON = textwrap.dedent(
    f"""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset


    def make_data(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 3, generator=g, dtype=torch.float64)
        y = torch.tanh(x @ torch.tensor([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.3]], dtype=torch.float64))
        return TensorDataset(x, y + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64))


    def make_model():
        torch.manual_seed(3)
        return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()


    CONFIG = dict(
        lr={LR}, batch_size={BATCH}, epochs={EPOCHS}, accumulation_steps={ACCUMULATION}, seed={SEED},
        amp=False, grad_clip_norm=None, schedule="constant", progress=False, log_every=1,
    )
    """
)

WORKER = textwrap.dedent(
    """
    import json
    import os
    import sys
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from common import CONFIG, make_data, make_model
    from mlcraft.config.training import TrainingConfig
    from mlcraft.training import Trainer, cleanup_distributed, init_distributed

    out = Path(sys.argv[1])
    ctx = init_distributed(device_type="cpu")
    model = make_model()
    cfg = TrainingConfig(**CONFIG, checkpoint_dir=out / "ckpt")
    val = make_data(21, seed=2)
    trainer = Trainer(
        model, cfg, make_data(40, seed=1), F.mse_loss,
        optimizer=torch.optim.SGD(model.parameters(), lr=cfg.lr), device="cpu", distributed=ctx,
    )
    history = trainer.fit()
    metrics = trainer.evaluate(val)
    report = {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "ddp": type(trainer.train_model).__name__,
        "steps": trainer.state.step,
        "val_loss": metrics["val_loss"],
        "val_shard": len(trainer._eval_loader(val).dataset),
        "losses": [h["loss"] for h in history],
    }
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(report))
    if ctx.is_main:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / "final.pt")
    cleanup_distributed()
    # Skip interpreter teardown: gloo's threads can abort the process while it exits
    # ("terminate called without an active exception") after all work is done.
    import os, sys
    sys.stdout.flush()
    os._exit(0)
    """
)


def _namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(COMMON, namespace)
    return namespace


def _reference(make_data: Callable[..., TensorDataset], make_model: Callable[[], nn.Module]) -> nn.Module:
    """SGD on the union of both ranks' micro-batches of each accumulation group, in float64."""
    train = make_data(N_TRAIN, seed=1)
    model = make_model()
    for epoch in range(EPOCHS):
        orders = []
        for rank in range(WORLD):
            sampler: DistributedSampler[int] = DistributedSampler(
                train, num_replicas=WORLD, rank=rank, shuffle=True, seed=SEED
            )
            sampler.set_epoch(epoch)
            orders.append(list(sampler))
        assert sorted(orders[0] + orders[1]) == list(range(N_TRAIN))
        n_micro = N_TRAIN // WORLD // BATCH
        for start in range(0, n_micro, ACCUMULATION):
            micro = range(start, min(start + ACCUMULATION, n_micro))
            idx = [i for order in orders for j in micro for i in order[j * BATCH : (j + 1) * BATCH]]
            x, y = train[idx]
            loss = F.mse_loss(model(x), y)  # equal-sized micro-batches: the mean over all of them
            grads = torch.autograd.grad(loss, list(model.parameters()))
            # Typed as plain tensors: ``-=`` on a Parameter is typed as returning a Tensor.
            params: Iterator[torch.Tensor] = model.parameters()
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p -= LR * g
    return model


def _launch(folder: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    (folder / "common.py").write_text(COMMON)
    script = folder / "worker.py"
    script.write_text(WORKER)
    out = folder / "out"
    out.mkdir()
    python_path = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(python_path)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(WORLD),
        str(script),
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=folder)
    assert proc.returncode == 0, f"torchrun failed:\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
    return out, proc


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CONSOLE_EVENT = re.compile(r"\[\s*(?:info|warning|error|debug|critical)\s*\]\s+(\S+)(.*)$")


def _log_events(proc: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    """(event, rest of the line) for each structlog line, JSON or console-rendered."""
    events = []
    for raw in (proc.stdout + proc.stderr).splitlines():
        line = _ANSI.sub("", raw).strip()
        if line.startswith("{") and '"event"' in line:
            record = json.loads(line)
            events.append((record["event"], line))
        elif match := _CONSOLE_EVENT.search(line):
            events.append((match.group(1), match.group(2)))
    return events


def _reports(out: Path) -> list[dict[str, Any]]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def _check_update_equals_single_process_big_batch(out: Path) -> None:
    reports = _reports(out)
    assert [r["world_size"] for r in reports] == [WORLD, WORLD]
    assert [r["ddp"] for r in reports] == ["DistributedDataParallel"] * WORLD
    assert [r["steps"] for r in reports] == [EPOCHS * 3] * WORLD
    ns = _namespace()
    reference = _reference(ns["make_data"], ns["make_model"])
    final = torch.load(out / "final.pt", weights_only=True)
    initial = ns["make_model"]().state_dict()
    for name, expected in reference.state_dict().items():
        assert not torch.allclose(final[name], initial[name])  # training moved the weights
        assert_close(final[name], expected, rtol=1e-10, atol=1e-10, msg=name)


def _check_ranks_see_different_data(out: Path) -> None:
    reports = _reports(out)
    # Per-rank losses differ (different data), so the agreement above is not trivially one rank's data.
    assert reports[0]["losses"] != reports[1]["losses"]


def _check_only_rank_zero_logs_and_writes_checkpoints(out: Path, proc: subprocess.CompletedProcess[str]) -> None:
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["last.pt"]
    events = _log_events(proc)
    names = [name for name, _ in events]
    assert names.count("checkpoint") == 1
    assert names.count("train") == EPOCHS * 3  # log_every=1: one line per step, not one per rank
    train_steps = [re.search(r"\bstep\W+([0-9.]+)", rest) for name, rest in events if name == "train"]
    assert [float(m.group(1)) for m in train_steps if m] == [float(s) for s in range(1, EPOCHS * 3 + 1)]


def _check_evaluate_matches_single_process_on_full_set(out: Path) -> None:
    reports = _reports(out)
    assert [r["val_shard"] for r in reports] == [11, 10]  # exact shards, no padding
    assert reports[0]["val_loss"] == reports[1]["val_loss"]  # all-reduced
    ns = _namespace()
    model = ns["make_model"]()
    model.load_state_dict(torch.load(out / "final.pt", weights_only=True))
    val = ns["make_data"](N_VAL, seed=2)
    cfg = TrainingConfig(**ns["CONFIG"]).model_copy(update={"log_every": 1_000_000})
    single = Trainer(model, cfg, ns["make_data"](N_TRAIN, seed=1), F.mse_loss, device="cpu").evaluate(val)
    assert reports[0]["val_loss"] == pytest.approx(single["val_loss"], rel=1e-12)
    with torch.no_grad():
        by_hand = F.mse_loss(model(val.tensors[0]), val.tensors[1]).item()
    assert reports[0]["val_loss"] == pytest.approx(by_hand, rel=1e-12)


def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    """One torchrun launch (about 20 s), checked four ways; a single test so that pytest-xdist
    never launches it twice."""
    out, proc = _launch(tmp_path)
    _check_update_equals_single_process_big_batch(out)
    _check_ranks_see_different_data(out)
    _check_only_rank_zero_logs_and_writes_checkpoints(out, proc)
    _check_evaluate_matches_single_process_on_full_set(out)
