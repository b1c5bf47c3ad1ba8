"""Optimizer helpers: parameter groups for decoupled weight decay, and an EMA of the weights.

:func:`param_groups` splits a model's parameters into a group with weight decay (weight matrices,
convolution kernels) and one without (biases, normalisation weights, embeddings unless asked),
for AdamW (Loshchilov & Hutter, 2019, https://arxiv.org/abs/1711.05101). Keeping biases and
normalisation parameters out of decay is common ground: Google's BERT optimizer (by name,
``LayerNorm`` and ``bias``), nanoGPT (by dimension), timm's ``param_groups_weight_decay`` and
Hugging Face's ``Trainer`` all do it. Decay pulls a weight towards zero, which for a bias or a
norm's scale only removes a degree of freedom instead of regularising. Embeddings split the
field: minGPT keeps ``nn.Embedding`` out of decay, as the default here does; BERT and nanoGPT
("all weight tensors in matmuls + embeddings decay") decay them, as ``decay_embeddings=True`` does.

:class:`ModelEMA` keeps an exponential moving average of the weights (Polyak & Juditsky, 1992;
"mean teacher", Tarvainen & Valpola, 2017, https://arxiv.org/abs/1703.01780; timm's
``ModelEmaV2``). Without warmup it equals ``torch.optim.swa_utils.AveragedModel`` with
``multi_avg_fn=get_ema_multi_avg_fn(decay)`` after an initial ``update_parameters`` (see the tests).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["ModelEMA", "param_groups"]

# Modules whose parameters are never decayed: scales and shifts of normalisation layers.
# _NormBase covers BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm* and their lazy variants.
_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)
_EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile`` (``_orig_mod``), DDP and ``DataParallel`` (``module``)
    wrappers, however deeply nested; ``model`` itself when it is not wrapped."""
    while True:
        compiled_inner = getattr(model, "_orig_mod", None)
        if isinstance(compiled_inner, nn.Module):
            model = compiled_inner
        elif isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        else:
            return model


def _wants_decay(param: nn.Parameter, module: nn.Module, decay_embeddings: bool) -> bool:
    """The rule for one (parameter, owning module) pair."""
    if param.ndim < 2:  # biases, norm scales of any norm class, scalar temperatures
        return False
    if isinstance(module, _NORM_TYPES):
        return False
    return decay_embeddings or not isinstance(module, _EMBEDDING_TYPES)


def param_groups(model: nn.Module, weight_decay: float, *, decay_embeddings: bool = False) -> list[dict[str, Any]]:
    """Parameter groups for ``torch.optim.AdamW(param_groups(model, wd), lr=...)``.

    Rules, per parameter:

    - decayed: tensors with ``ndim >= 2`` (``Linear`` weights, convolution kernels, attention
      projections);
    - not decayed: tensors with ``ndim < 2`` (biases, the weight of any normalisation layer,
      scalars), every parameter of a normalisation module (BatchNorm/InstanceNorm, LayerNorm,
      GroupNorm, RMSNorm), and ``Embedding``/``EmbeddingBag`` tables unless ``decay_embeddings``;
    - a parameter shared by several modules (tied embedding and output matrices) appears once,
      under the name ``model.named_parameters()`` gives it, and is decayed only if *every* module
      holding it would decay it;
    - frozen parameters (``requires_grad=False``) are left out.

    Args:
        model: any module.
        weight_decay: the decoupled decay coefficient of the first group, ``>= 0``.
        decay_embeddings: decay embedding tables too.

    Returns:
        Up to two groups, in this order and without empty ones: ``{"params": [...],
        "param_names": [...], "weight_decay": weight_decay}`` and the same with
        ``"weight_decay": 0.0``. Parameters keep their ``named_parameters()`` order. Every
        trainable parameter is in exactly one group. ``param_names`` is the key PyTorch's
        optimizers use for names, so it appears in ``optimizer.state_dict()``.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        ValueError: for a negative or non-finite ``weight_decay``, or a model with no trainable parameter.
        RuntimeError: if the groups do not hold every trainable parameter exactly once (a model whose
            ``parameters()`` and ``named_parameters()`` disagree).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be finite and >= 0, got {weight_decay}")

    # id -> (first name, parameter, decay wanted by every owner so far)
    seen: dict[int, tuple[str, nn.Parameter, bool]] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):  # shared modules visited each time
        for local_name, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{local_name}" if module_name else local_name
            wants = _wants_decay(param, module, decay_embeddings)
            if id(param) in seen:
                first_name, _, decay = seen[id(param)]
                seen[id(param)] = (first_name, param, decay and wants)
            else:
                seen[id(param)] = (name, param, wants)

    groups: dict[bool, tuple[list[nn.Parameter], list[str]]] = {True: ([], []), False: ([], [])}
    for _, param in model.named_parameters():  # the canonical order and names, shared tensors once
        name, _, decay = seen[id(param)]
        if param.requires_grad:
            groups[decay][0].append(param)
            groups[decay][1].append(name)

    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    placed = [id(p) for params, _ in groups.values() for p in params]
    if len(placed) != len(set(placed)) or set(placed) != trainable:  # an internal invariant: a bug if it fails
        raise RuntimeError(
            f"param_groups placed {len(placed)} tensors ({len(set(placed))} distinct) for {len(trainable)} trainable "
            "parameters; every trainable parameter must be in exactly one group"
        )
    if not placed:
        raise ValueError(f"{type(model).__name__} has no trainable parameter (all frozen, or none at all)")
    return [
        {"params": params, "param_names": names, "weight_decay": weight_decay if decay else 0.0}
        for decay, (params, names) in groups.items()
        if params
    ]


class ModelEMA:
    """An exponential moving average of a model's weights, kept in a separate copy.

    After each optimizer step, ``update(model)`` applies to every floating-point parameter
    ``ema = decay_t * ema + (1 - decay_t) * param`` (with ``torch._foreach_lerp_``), where

    - ``decay_t = decay`` without warmup: the copy starts from the weights at construction,
      which keep a weight ``decay**t`` after ``t`` updates;
    - ``decay_t = 1 - (1 - decay) / (1 - decay**t)`` with ``warmup=True`` (``t`` counts updates
      from 1): Adam's bias correction, so the EMA after ``t`` updates is the weighted mean
      ``sum_i decay**(t-i) (1 - decay) p_i / (1 - decay**t)`` of the weights seen so far and the
      initial weights get none. The first update copies the weights.

    Buffers (BatchNorm's running statistics, ``num_batches_tracked``) are copied from the model
    with ``buffers="copy"`` (the default), or averaged like the parameters with ``"average"``
    (floating-point buffers only; integer ones are copied). Neither gives statistics that belong
    to the averaged weights exactly; ``torch.optim.swa_utils.update_bn`` recomputes them if that
    matters.

    The copy has the model's dtype and device. With bf16/fp16 weights, increments
    ``(1 - decay) * (param - ema)`` below the format's resolution are lost: average fp32 weights.

    ``model`` may be wrapped, at construction and in every call: ``torch.compile``'s
    ``OptimizedModule`` (``_orig_mod``), ``DistributedDataParallel`` and ``DataParallel``
    (``module``) are unwrapped, so the names compared are the plain model's and the copy is of
    the plain model.

    Attributes:
        module: the averaged copy of the unwrapped model, in eval mode, with
            ``requires_grad=False``. Evaluate it directly, or swap its weights into the (possibly
            wrapped) training model with :meth:`swapped_into`.
        num_updates: how many times :meth:`update` ran.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.999,
        *,
        warmup: bool = False,
        buffers: Literal["copy", "average"] = "copy",
    ) -> None:
        if not (isinstance(decay, float | int) and 0.0 <= decay <= 1.0):
            raise ValueError(f"decay must be in [0, 1], got {decay!r}")
        if buffers not in ("copy", "average"):
            raise ValueError(f"buffers must be 'copy' or 'average', got {buffers!r}")
        self.decay, self.warmup, self.buffers = float(decay), warmup, buffers
        model = _unwrap(model)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0
        self._param_names = [name for name, _ in model.named_parameters()]
        self._buffer_names = [name for name, _ in model.named_buffers()]

    def next_decay(self) -> float:
        """The ``decay_t`` the next :meth:`update` will use."""
        t = self.num_updates + 1
        if not self.warmup or self.decay == 1.0:
            return self.decay
        return 1.0 - (1.0 - self.decay) / (1.0 - self.decay**t)

    def _pairs(
        self, model: nn.Module, kind: Literal["parameters", "buffers"]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(ema tensor, model tensor) pairs, after checking that the two modules have the same names."""
        model = _unwrap(model)
        expected = self._param_names if kind == "parameters" else self._buffer_names
        mine = self.module.named_parameters() if kind == "parameters" else self.module.named_buffers()
        theirs = list(model.named_parameters() if kind == "parameters" else model.named_buffers())
        if [name for name, _ in theirs] != expected:
            got = [name for name, _ in theirs]
            raise ValueError(
                f"model {kind} {got[:6]}... (n={len(got)}) differ from the EMA's {expected[:6]}... (n={len(expected)})"
            )
        return [(e.detach(), m.detach()) for (_, e), (_, m) in zip(mine, theirs, strict=True)]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average the weights of ``model`` (same architecture as at construction) into the copy.

        Raises:
            ValueError: if ``model``'s parameter or buffer names differ from the copy's.
        """
        weight = 1.0 - self.next_decay()
        params = self._pairs(model, "parameters")
        buffers = self._pairs(model, "buffers")
        averaged, copied = [], []
        for (ema_tensor, model_tensor), average in [(pair, True) for pair in params] + [
            (pair, self.buffers == "average") for pair in buffers
        ]:
            if average and ema_tensor.is_floating_point():
                averaged.append((ema_tensor, model_tensor.to(ema_tensor.device)))
            else:
                copied.append((ema_tensor, model_tensor))
        if averaged:  # ema += weight * (param - ema), one fused call for all tensors
            torch._foreach_lerp_([e for e, _ in averaged], [m for _, m in averaged], weight)
        for ema_tensor, model_tensor in copied:
            ema_tensor.copy_(model_tensor)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the update count, for a checkpoint (``weights_only``-loadable)."""
        return {
            "module": self.module.state_dict(),
            "num_updates": self.num_updates,
            "decay": self.decay,
            "warmup": self.warmup,
            "buffers": self.buffers,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`.

        Raises:
            ValueError: if the saved decay, warmup or buffer mode differ from this object's.
        """
        saved = (state["decay"], state["warmup"], state["buffers"])
        if saved != (self.decay, self.warmup, self.buffers):
            raise ValueError(
                f"saved EMA settings (decay, warmup, buffers) = {saved} differ from {(self.decay, self.warmup, self.buffers)}"
            )
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])

    @contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Run a block with the averaged weights and buffers copied into ``model``; restore them after.

        Useful when evaluation code holds a reference to the trained model (a ``torch.compile``,
        DDP or ``DataParallel`` wrapper, a Trainer): the weights are copied into the module inside
        the wrapper, in place, and the wrapper itself is yielded. The model's own values are
        restored on exit, also after an exception. Costs one copy of the weights while inside.

        Raises:
            ValueError: if the unwrapped model's parameter or buffer names differ from the copy's.
        """
        pairs = self._pairs(model, "parameters") + self._pairs(model, "buffers")
        backup = [m.clone() for _, m in pairs]
        with torch.no_grad():
            for ema_tensor, model_tensor in pairs:
                model_tensor.copy_(ema_tensor)
        try:
            yield model
        finally:
            with torch.no_grad():
                for (_, model_tensor), saved in zip(pairs, backup, strict=True):
                    model_tensor.copy_(saved)
