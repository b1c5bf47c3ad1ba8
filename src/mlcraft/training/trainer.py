"""The production training loop: mixed precision, accumulation, clipping, schedules,
evaluation, early stopping, exact resume, and data parallel training.

The step follows PyTorch's AMP recipe (https://pytorch.org/docs/stable/notes/amp_examples.html):
``zero_grad(set_to_none=True)``; forward under ``torch.autocast``; ``scaler.scale(loss).backward()``;
``scaler.unscale_`` before ``clip_grad_norm_`` (so the norm is measured in real units);
``scaler.step`` skips the update when it found inf/NaN gradients. Gradient accumulation divides
each micro-batch loss by the number of micro-batches in its group, so an accumulated step equals
one step on the concatenated batch (for equal-sized micro-batches and a mean-reduced loss).

Resume is exact: a checkpoint holds the model, optimizer, scaler, scheduler, early-stopping
state, the position in the data (epoch and batches consumed) and every RNG state, and the data
order of an epoch depends only on ``seed + epoch``. On CPU in deterministic mode, a resumed run
produces bitwise the same losses as the uninterrupted one (see the tests).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from mlcraft.config.training import TrainingConfig
from mlcraft.training.callbacks import Callback, EarlyStopping
from mlcraft.training.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from mlcraft.training.distributed import DistributedContext, all_reduce_sum
from mlcraft.training.schedules import build_scheduler
from mlcraft.utils.device import amp_dtype, best_device
from mlcraft.utils.logging import get_logger
from mlcraft.utils.seed import seed_everything, set_deterministic

__all__ = ["Batch", "TrainState", "Trainer", "maybe_compile", "move_to"]

log = get_logger(__name__)

Batch = Any  # (inputs, targets): tensors, or lists/tuples/dicts of tensors
LossFn = Callable[[Any, Any], torch.Tensor]
MetricsFn = Callable[[Any, Any], Mapping[str, float | torch.Tensor]]

#: Consecutive skipped updates (non-finite gradients) after which training stops with an error.
MAX_CONSECUTIVE_SKIPS = 100


@dataclass
class TrainState:
    """Where the run is; saved in checkpoints."""

    step: int = 0  # optimizer updates applied
    epoch: int = 0  # current epoch (0-based)
    batches_done: int = 0  # micro-batches of the current epoch already consumed
    best_metric: float | None = None  # best value of config.monitor so far
    skipped_steps: int = 0  # updates skipped because gradients were inf/NaN
    stopped_early: bool = False


def move_to(batch: Batch, device: torch.device, non_blocking: bool = True) -> Batch:
    """Move every tensor in a (nested) batch to ``device``; other values are left as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {key: move_to(value, device, non_blocking) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # NamedTuple
        return type(batch)(*(move_to(value, device, non_blocking) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device, non_blocking) for value in batch)
    return batch


def _num_samples(targets: Any) -> int:
    if isinstance(targets, torch.Tensor):
        return int(targets.shape[0]) if targets.dim() else 1
    if isinstance(targets, Sequence):
        return len(targets)
    raise TypeError(f"cannot count samples in targets of type {type(targets).__name__}; use a tensor or a list")


def _total_norm(parameters: Iterable[torch.Tensor]) -> float:
    """Global L2 norm of the gradients (what ``clip_grad_norm_`` reports), without touching them."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
    return float(torch.linalg.vector_norm(torch.stack([n.float() for n in norms])))


def maybe_compile(model: nn.Module, enabled: bool, backend: str = "inductor") -> nn.Module:
    """``torch.compile(model)`` when asked and supported; the eager model otherwise (with a warning)."""
    if not enabled:
        return model
    dynamo = getattr(torch, "_dynamo", None)
    supported = hasattr(torch, "compile") and (dynamo is None or dynamo.is_dynamo_supported())
    if not supported:
        log.warning("torch.compile is not supported here; training runs eagerly")
        return model
    try:
        compiled: nn.Module = torch.compile(model, backend=backend)  # type: ignore[assignment]
    except Exception as err:  # compilation set-up fails in many platform-specific ways
        log.warning("torch.compile failed; training runs eagerly", error=str(err))
        return model
    return compiled


class Trainer:
    """Train ``model`` on ``train_data`` with ``loss_fn(model(inputs), targets)``.

    Args:
        model: the module to train (moved to ``device``), or a function without arguments that
            builds it: the Trainer calls it right after seeding, so the run is seeded once and
            the initial weights are reproducible too.
        config: the run's :class:`TrainingConfig`.
        train_data: a map-style dataset yielding ``(inputs, targets)``.
        loss_fn: returns the **mean** loss of a batch (accumulation relies on it).
        val_data: optional validation dataset; its loss is reported as ``val_loss``.
        metrics_fn: optional ``(outputs, targets) -> {name: sum over the batch}``; reported as
            ``val_<name>``, the sum divided by the number of validation samples.
        optimizer: defaults to ``AdamW(lr=config.lr, weight_decay=config.weight_decay)``.
        device: defaults to :func:`mlcraft.utils.best_device` (``cuda:LOCAL_RANK`` under DDP).
        distributed: the process's :class:`DistributedContext` (from ``init_distributed()``);
            with ``world_size > 1`` the model is wrapped in ``DistributedDataParallel``.
        callbacks: hooks for trackers; called on rank 0 only.
        collate_fn: passed to the ``DataLoader``s.

    Seeding happens here, once per run (``seed_everything(config.seed)``): pass a model builder
    rather than a model when its initialization must be reproducible too.
    """

    def __init__(
        self,
        model: nn.Module | Callable[[], nn.Module],
        config: TrainingConfig,
        train_data: Dataset[Any],
        loss_fn: LossFn,
        *,
        val_data: Dataset[Any] | None = None,
        metrics_fn: MetricsFn | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        device: torch.device | str | None = None,
        distributed: DistributedContext | None = None,
        callbacks: Iterable[Callback] = (),
        collate_fn: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        self.config = config
        self.dist = distributed or DistributedContext()
        seed_everything(config.seed)
        set_deterministic(config.deterministic)  # process-wide: the config decides, both ways
        if device is None:
            device = best_device()
            if device.type == "cuda" and self.dist.enabled:
                device = torch.device("cuda", self.dist.local_rank)
        self.device = torch.device(device)
        if not isinstance(model, nn.Module):
            model = model()  # built after seeding
            if not isinstance(model, nn.Module):
                raise TypeError(f"the model builder must return an nn.Module, got {type(model).__name__}")
        self.model = model.to(self.device)
        self.train_data, self.val_data = train_data, val_data
        self.loss_fn, self.metrics_fn, self.collate_fn = loss_fn, metrics_fn, collate_fn
        self.callbacks = list(callbacks) if self.dist.is_main else []

        wrapped: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DistributedDataParallel(self.model, device_ids=ids)
        self.train_model = maybe_compile(wrapped, config.compile)

        self.optimizer = optimizer or torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.amp_dtype = amp_dtype(self.device) if config.amp else None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.total_steps = config.max_steps or config.epochs * math.ceil(
            len(self._train_loader(0)) / config.accumulation_steps
        )
        self.scheduler = build_scheduler(
            self.optimizer,
            warmup_steps=min(config.warmup_steps, self.total_steps),
            total_steps=self.total_steps,
            schedule=config.schedule,
            min_lr_ratio=config.min_lr_ratio,
        )
        self.early_stopping = (
            EarlyStopping(config.early_stopping_patience, config.monitor_mode)
            if config.early_stopping_patience
            else None
        )
        self.state = TrainState()
        self._until_step: int | None = None
        self.history: list[dict[str, float]] = []  # one entry per optimizer update attempt
        self.eval_history: list[dict[str, float]] = []

    # ----------------------------------------------------------------------------- data
    def _train_loader(self, epoch: int) -> DataLoader[Any]:
        cfg = self.config
        common: dict[str, Any] = {
            "batch_size": cfg.batch_size,
            "num_workers": cfg.num_workers,
            "pin_memory": self.device.type == "cuda",
            "drop_last": cfg.drop_last,
            "collate_fn": self.collate_fn,
        }
        if self.dist.enabled:
            sampler: DistributedSampler[Any] = DistributedSampler(
                self.train_data,
                num_replicas=self.dist.world_size,
                rank=self.dist.rank,
                shuffle=True,
                seed=cfg.seed,
                drop_last=cfg.drop_last,
            )
            sampler.set_epoch(epoch)  # a different order each epoch, the same on every rank
            return DataLoader(self.train_data, sampler=sampler, **common)
        # The order of epoch e depends only on seed + e, so a resumed run sees the same batches.
        generator = torch.Generator().manual_seed(cfg.seed + epoch)
        return DataLoader(self.train_data, shuffle=True, generator=generator, **common)

    def _eval_loader(self, data: Dataset[Any]) -> DataLoader[Any]:
        if self.dist.enabled:  # an exact shard per rank (no padding), sums are all-reduced
            data = Subset(data, range(self.dist.rank, len(data), self.dist.world_size))  # type: ignore[arg-type]
        return DataLoader(
            data, batch_size=self.config.batch_size, shuffle=False, collate_fn=self.collate_fn, num_workers=0
        )

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ----------------------------------------------------------------------------- the step
    def _backward(self, batch: Batch, loss_scale: float, sync: bool) -> torch.Tensor:
        inputs, targets = move_to(batch, self.device)
        no_sync = getattr(self.train_model, "no_sync", None)
        context = no_sync() if (self.dist.enabled and not sync and no_sync is not None) else nullcontext()
        with context:
            with self._autocast():
                loss = self.loss_fn(self.train_model(inputs), targets)
            scaled = loss * loss_scale if loss_scale != 1.0 else loss  # skip a no-op multiply in the graph
            self.scaler.scale(scaled).backward()
        return loss.detach().float()

    def _update(self) -> tuple[float, bool]:
        """Unscale, clip, step (unless gradients are inf/NaN), zero grads. Returns (grad norm, skipped)."""
        self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip_norm is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm))
        else:  # measure only: clip_grad_norm_(inf) would also rescale every gradient by 1.0
            grad_norm = _total_norm(self.model.parameters())
        if self.scaler.is_enabled():
            scale_before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale_before
        else:
            skipped = not math.isfinite(grad_norm)
            if not skipped:
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if skipped:
            self.state.skipped_steps += 1
        else:
            self.scheduler.step()
            self.state.step += 1
        return grad_norm, skipped

    # ----------------------------------------------------------------------------- loop
    @property
    def finished(self) -> bool:
        """True once the run is over: ``max_steps`` reached, the last epoch done, or stopped early.

        False after a ``fit(until_step=...)`` that paused with steps left (another ``fit()`` goes on).
        """
        cfg = self.config
        if self.state.stopped_early:
            return True
        if cfg.max_steps is not None:
            return self.state.step >= cfg.max_steps
        return self.state.epoch >= cfg.epochs

    def _done(self) -> bool:
        return self.finished or (self._until_step is not None and self.state.step >= self._until_step)

    def fit(self, until_step: int | None = None) -> list[dict[str, float]]:
        """Train until ``max_steps``, the last epoch, or early stopping. Returns ``history``.

        ``until_step`` pauses after that many optimizer steps without changing the schedule
        (the run can be continued with another ``fit()``, or saved and resumed elsewhere).
        """
        cfg = self.config
        self._until_step = until_step
        for callback in self.callbacks:
            callback.on_fit_start(self)
        bar = tqdm(
            total=self.total_steps,
            initial=self.state.step,
            desc="train",
            unit="step",
            disable=not (cfg.progress and self.dist.is_main),
            leave=False,
        )
        consecutive_skips = 0
        self.model.train()
        while not self._done():
            loader = self._train_loader(self.state.epoch)
            n_batches = len(loader)
            group_losses: list[torch.Tensor] = []
            start = self.state.batches_done
            for index, batch in enumerate(itertools.islice(loader, start, None), start=start):
                group_start = index - index % cfg.accumulation_steps
                group_size = min(cfg.accumulation_steps, n_batches - group_start)
                last_in_group = index - group_start == group_size - 1
                group_losses.append(self._backward(batch, 1.0 / group_size, sync=last_in_group))
                if not last_in_group:
                    continue
                lr = self.optimizer.param_groups[0]["lr"]
                grad_norm, skipped = self._update()
                self.state.batches_done = index + 1
                consecutive_skips = consecutive_skips + 1 if skipped else 0
                if consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
                    raise RuntimeError(
                        f"gradients were inf/NaN for {consecutive_skips} consecutive steps at step "
                        f"{self.state.step}: lower the learning rate or check the data for NaNs"
                    )
                metrics = {
                    "step": float(self.state.step),
                    "epoch": float(self.state.epoch),
                    "loss": float(torch.stack(group_losses).mean()),
                    "lr": float(lr),
                    "grad_norm": grad_norm,
                    "skipped": float(skipped),
                }
                group_losses = []
                self.history.append(metrics)
                if skipped:
                    continue
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{lr:.2e}")
                self._after_step(metrics)
                if self._done():
                    break
            if self.state.batches_done >= n_batches:  # the epoch ran to its end (also when stopping on its last step)
                self.state.epoch += 1
                self.state.batches_done = 0
                if cfg.eval_every is None and self.val_data is not None:
                    self._evaluate_and_track()
        bar.close()
        if cfg.checkpoint_dir is not None:
            self.save_checkpoint(cfg.checkpoint_dir / "last.pt")
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return self.history

    def _after_step(self, metrics: dict[str, float]) -> None:
        cfg, step = self.config, self.state.step
        if step % cfg.log_every == 0 and self.dist.is_main:
            log.info("train", **metrics)
            for callback in self.callbacks:
                callback.on_step_end(self, metrics)
        if cfg.eval_every is not None and step % cfg.eval_every == 0 and self.val_data is not None:
            self._evaluate_and_track()
        if cfg.checkpoint_dir is not None and cfg.checkpoint_every is not None and step % cfg.checkpoint_every == 0:
            self.save_checkpoint(cfg.checkpoint_dir / "last.pt")

    def _evaluate_and_track(self) -> None:
        assert self.val_data is not None
        metrics = self.evaluate(self.val_data)
        metrics["step"] = float(self.state.step)
        self.eval_history.append(metrics)
        if self.dist.is_main:
            log.info("eval", **metrics)
            for callback in self.callbacks:
                callback.on_eval_end(self, metrics)
        value = metrics.get(self.config.monitor)
        if value is None:
            raise KeyError(f"monitored metric {self.config.monitor!r} not among {sorted(metrics)}; fix config.monitor")
        tracker = self.early_stopping or EarlyStopping(1, self.config.monitor_mode)
        if self.early_stopping is None:
            tracker.best = self.state.best_metric
        if tracker.improved(value):
            self.state.best_metric = value
            if self.config.checkpoint_dir is not None:
                self.save_checkpoint(self.config.checkpoint_dir / "best.pt")
        if self.early_stopping is not None and self.early_stopping.step(value):
            self.state.stopped_early = True

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self, data: Dataset[Any] | None = None) -> dict[str, float]:
        """Mean loss (and metrics) over ``data`` (default: the validation set) in eval mode,
        without autograd; the model's previous train/eval mode is restored afterwards."""
        dataset = data if data is not None else self.val_data
        if dataset is None:
            raise ValueError("no data to evaluate: pass a dataset or give the Trainer val_data")
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        try:
            with torch.inference_mode(), self._autocast():
                for batch in self._eval_loader(dataset):
                    inputs, targets = move_to(batch, self.device)
                    outputs = self.model(inputs)
                    n = _num_samples(targets)
                    batch_sums = {"loss": self.loss_fn(outputs, targets).double() * n}
                    if self.metrics_fn is not None:
                        batch_sums.update(
                            {
                                k: torch.as_tensor(v, dtype=torch.float64)
                                for k, v in self.metrics_fn(outputs, targets).items()
                            }
                        )
                    for key, value in batch_sums.items():
                        sums[key] = sums.get(key, torch.zeros((), dtype=torch.float64, device=self.device)) + value.to(
                            self.device
                        )
                    count += n
        finally:
            self.model.train(was_training)
        names = sorted(sums)
        totals = all_reduce_sum(torch.stack([*(sums[k] for k in names), count]))
        return {f"val_{name}": float(totals[i] / totals[-1]) for i, name in enumerate(names)}

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (model, optimizer, scaler, scheduler, position, RNG)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping else None,
            "state": asdict(self.state),
            "rng": capture_rng_state(),
            "config": self.config.model_dump(mode="json"),
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write a checkpoint (rank 0 only; other ranks wait for it)."""
        target = Path(path)
        if self.dist.is_main:
            save_checkpoint(target, self.state_dict())
            log.info("checkpoint", path=str(target), step=self.state.step)
        if self.dist.enabled:
            torch.distributed.barrier()
        return target

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint`; the next ``fit()`` resumes exactly.

        Raises:
            ValueError: if the checkpoint's config differs from this trainer's in a field that
                changes what is computed (anything but logging, progress and checkpoint paths).
        """
        payload = load_checkpoint(path, map_location=self.device)
        saved = TrainingConfig.model_validate(payload["config"])
        cosmetic = {"progress", "log_every", "checkpoint_dir", "checkpoint_every"}
        mismatched = [
            name
            for name in TrainingConfig.model_fields
            if name not in cosmetic and getattr(saved, name) != getattr(self.config, name)
        ]
        if mismatched:
            raise ValueError(
                f"{path}: checkpoint was trained with different {', '.join(mismatched)}; resume with the same config"
            )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.early_stopping is not None and payload["early_stopping"] is not None:
            self.early_stopping.load_state_dict(payload["early_stopping"])
        self.state = TrainState(**payload["state"])
        restore_rng_state(payload["rng"])
