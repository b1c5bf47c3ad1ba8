"""The learning-rate range test: train briefly while the lr grows exponentially, watch the loss.

Follows L. N. Smith (2017), "Cyclical learning rates for training neural networks", WACV,
https://arxiv.org/abs/1506.01186 (section 3.3, "How can one estimate reasonable minimum and
maximum boundary values?"), in the form fastai's ``lr_find`` popularised: the lr grows
geometrically from ``start_lr`` to ``end_lr``, one batch per step; the batch losses are smoothed
with a bias-corrected exponential moving average (as Adam corrects its moments); the test stops
once the smoothed loss exceeds ``diverge_factor`` times its minimum so far. The suggested lr is
a tenth of the lr at the smoothed minimum. The model and the optimizer are restored afterwards,
so the test can run right before the real training.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mlcraft.training.trainer import move_to
from mlcraft.utils.logging import get_logger

__all__ = ["LRRangeTestResult", "lr_range_test"]

log = get_logger(__name__)

OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class LRRangeTestResult:
    """What :func:`lr_range_test` saw, one entry per step taken (``len(lrs) <= num_steps``).

    Attributes:
        lrs: the lr of each step, ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``.
        losses: the raw batch loss of each step (before that step's update).
        smoothed: the bias-corrected moving average of ``losses`` with factor ``smooth``.
        min_loss_lr: the lr at the minimum of the smoothed loss: already close to divergence,
            and later than the raw minimum because the moving average lags.
        suggested_lr: ``min_loss_lr / 10``, the rule fastai's ``SuggestionMethod.Minimum`` uses.
            It is the suggestion because it is robust: on the course's problems it lands inside
            the range where short constant-lr runs train best.
        steepest_lr: the lr where the smoothed loss falls fastest against ``log(lr)``, searched up
            to the smoothed minimum (``lrs[i]`` for the most negative forward difference
            ``(s[i+1] - s[i]) / (log lr[i+1] - log lr[i])``); ``lrs[0]`` when the smoothed loss
            never falls (the range started too high). More aggressive, and fragile at the start
            of the curve, where the average rests on a few batches.
        diverged: whether the test stopped early because the loss blew up.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    min_loss_lr: float
    suggested_lr: float
    steepest_lr: float
    diverged: bool


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches from ``loader``, starting it again whenever it is exhausted."""
    produced = 0
    while True:
        before = produced
        for batch in loader:
            produced += 1
            yield batch
        if produced == 0:
            raise ValueError("the loader yielded no batch")
        if produced == before:  # a one-shot iterator (a generator) cannot be restarted
            raise ValueError(
                f"the loader ran out after {produced} batches; pass a re-iterable one (a DataLoader, a list)"
            )


def _steepest(lrs: list[float], smoothed: list[float]) -> float:
    stop = min(range(len(smoothed)), key=smoothed.__getitem__)  # search up to the minimum only
    if stop == 0:
        log.warning("the smoothed loss never fell; start the range lower", start_lr=lrs[0])
        return lrs[0]
    slopes = [
        (smoothed[i + 1] - smoothed[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
        for i in range(stop)  # pairs (i, i + 1) with i + 1 <= stop
    ]
    return lrs[min(range(len(slopes)), key=slopes.__getitem__)]


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | OptimizerFactory,
    loader: Iterable[Any],
    loss_fn: Callable[[Any, Any], torch.Tensor],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
) -> LRRangeTestResult:
    """Run the LR range test on ``model`` and put it back as it was.

    Step ``i`` (0-based) sets every param group's lr to ``start_lr * (end_lr / start_lr) **
    (i / (num_steps - 1))`` (the sequence ``ExponentialLR`` gives with ``gamma = (end_lr /
    start_lr) ** (1 / (num_steps - 1))``), takes one batch ``(inputs, targets)`` from ``loader``
    (restarting it when exhausted), and makes one optimizer step on ``loss_fn(model(inputs),
    targets)``, which must be a scalar mean loss. Smoothing: ``avg_i = smooth * avg_{i-1} +
    (1 - smooth) * loss_i`` from ``avg_{-1} = 0``, reported as ``avg_i / (1 - smooth ** (i + 1))``.
    The test stops after the first step whose smoothed loss is non-finite or exceeds
    ``diverge_factor`` times the smallest smoothed loss before it (that step is kept in the result).

    Args:
        model: the module to probe; it is put in train mode during the test. Batches are moved
            to the device of its first parameter.
        optimizer: an optimizer over ``model``'s parameters, or a factory called as
            ``factory(model.parameters())`` (e.g. ``lambda ps: torch.optim.AdamW(ps, lr=1e-3)``);
            the lr it was built with is overridden.
        loader: an iterable of batches, e.g. a ``DataLoader``.
        loss_fn: ``(outputs, targets) -> scalar loss``.
        start_lr, end_lr: the range, ``0 < start_lr < end_lr``.
        num_steps: steps over the range, ``>= 2``.
        smooth: the moving-average factor in ``[0, 1)``; 0 keeps the raw losses.
        diverge_factor: the stopping threshold, ``> 1``.

    Afterwards the model's ``state_dict`` (weights and buffers) and the mode of every submodule
    are restored, gradients are ``None``, and a passed optimizer gets its ``state_dict`` back
    (moments, step counts and lrs). Global RNG states are not restored: the test draws dropout
    masks and shuffles the loader like any training.

    Raises:
        ValueError: for a range, step count, smoothing factor or threshold outside the above, a
            loader without batches, or a first loss that is not finite (``nan``/``inf`` before any
            update: the data, the model's initialisation or ``loss_fn`` is broken, and no lr can be
            suggested). The model and the optimizer are restored before any of these is raised.
    """
    if not (math.isfinite(start_lr) and math.isfinite(end_lr) and 0 < start_lr < end_lr):
        raise ValueError(f"need finite 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an int >= 2, got {num_steps!r}")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    if not (math.isfinite(diverge_factor) and diverge_factor > 1.0):
        raise ValueError(f"diverge_factor must be finite and > 1, got {diverge_factor}")

    model_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    modes = [(module, module.training) for module in model.modules()]
    if isinstance(optimizer, torch.optim.Optimizer):
        opt, opt_state = optimizer, copy.deepcopy(optimizer.state_dict())
    else:
        opt, opt_state = optimizer(model.parameters()), None
    device = next(itertools.chain(model.parameters(), [torch.empty(0)])).device

    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    diverged = False
    average, best = 0.0, math.inf
    model.train()
    try:
        batches = _cycle(loader)
        for i in range(num_steps):
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            for group in opt.param_groups:
                group["lr"] = lr
            inputs, targets = move_to(next(batches), device)
            loss = loss_fn(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            average = smooth * average + (1.0 - smooth) * value
            corrected = average / (1.0 - smooth ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(corrected)
            if not math.isfinite(corrected) or corrected > diverge_factor * best:
                diverged = True
                break
            best = min(best, corrected)
    finally:
        model.load_state_dict(model_state)
        for module, training in modes:
            module.training = training
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        opt.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)

    if not math.isfinite(losses[0]):  # then every smoothed value is non-finite: there is no minimum
        raise ValueError(
            f"the first loss is {losses[0]}, computed at the initial weights before any optimizer step, so "
            f"no lr is to blame (start_lr={start_lr}): check the batch (nan/inf inputs, labels out of "
            "range), the model's initialisation and loss_fn before running the test"
        )
    finite = [s if math.isfinite(s) else math.inf for s in smoothed]
    min_loss_lr = lrs[min(range(len(finite)), key=finite.__getitem__)]
    result = LRRangeTestResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        min_loss_lr=min_loss_lr,
        suggested_lr=min_loss_lr / 10,
        steepest_lr=_steepest(lrs, finite),
        diverged=diverged,
    )
    log.info(
        "lr_range_test",
        steps=len(lrs),
        diverged=diverged,
        min_loss_lr=result.min_loss_lr,
        suggested_lr=result.suggested_lr,
        steepest_lr=result.steepest_lr,
    )
    return result
