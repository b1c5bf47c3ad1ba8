"""LoRA, low-rank adaptation of linear layers, written by hand.

Follows Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (ICLR 2022,
https://arxiv.org/abs/2106.09685), section 4.1, in the form of Hugging Face ``peft``'s
``LoraConfig`` + ``get_peft_model`` (``peft.tuners.lora.layer.Linear``), which the tests use as
the oracle: same initialisation, same forward, same choice of layers, same trainable count.

A frozen ``nn.Linear`` ``y = x W^T + b`` (``W`` of shape ``(out, in)``) gets a trainable update
of rank ``r``::

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T,    A: (r, in), B: (out, r)

``A`` starts like ``nn.Linear``'s weight (Kaiming-uniform with ``a = sqrt(5)``, as peft) and
``B`` at zero, so the adapted model starts equal to the base model. Training touches
``r * (in + out)`` numbers per layer instead of ``in * out``; after training
:meth:`LoRALinear.merge` folds ``(alpha / r) B A`` into ``W``, so inference costs nothing extra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mlcraft.utils.logging import get_logger

__all__ = ["LoRALinear", "apply_lora", "count_parameters", "merge_lora"]

log = get_logger(__name__)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update ``(alpha / r) B A``.

    Args:
        base: the layer to adapt; its parameters are frozen (``requires_grad = False``) in place.
        r: rank of the update, ``1 <= r``.
        alpha: scale numerator (``scale = alpha / r``), ``alpha > 0``.
        dropout: dropout on the input of the LoRA branch only (training mode), ``0 <= dropout < 1``.

    ``lora_A`` ``(r, in)`` and ``lora_B`` ``(out, r)`` take the dtype and device of ``base.weight``.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        _check_lora_args(r, alpha, dropout)
        self.base = base.requires_grad_(False)
        self.r, self.alpha, self.scale = r, float(alpha), float(alpha) / r
        dtype, device = base.weight.dtype, base.weight.device
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=dtype, device=device))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=dtype, device=device))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # peft's and nn.Linear's default: U(+-1/sqrt(in))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (..., in) -> (..., out): ``base(x) + scale * dropout(x) A^T B^T``."""
        update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T  # (..., r) then (..., out)
        out: torch.Tensor = self.base(x) + update * self.scale
        return out

    def delta_weight(self) -> torch.Tensor:
        """The update to the base weight, ``scale * B @ A`` (out, in), computed in float32 at least."""
        acc = torch.promote_types(self.lora_A.dtype, torch.float32)
        return (self.lora_B.to(acc) @ self.lora_A.to(acc)) * self.scale  # (out, in)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A new plain ``nn.Linear`` with weight ``W + scale * B @ A`` and the base bias: the same
        outputs as this module in eval mode (to floating-point tolerance). Its parameters keep the
        base's dtype, device and ``requires_grad``; this module is left unchanged."""
        weight, delta = self.base.weight, self.delta_weight()  # delta (out, in) in float32 or float64
        merged = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.base.bias is not None,
            dtype=weight.dtype,
            device=weight.device,
        )
        merged.weight.copy_((weight.to(delta.dtype) + delta).to(weight.dtype))
        if self.base.bias is not None and merged.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged.requires_grad_(weight.requires_grad)

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scale={self.scale:g}"


def _check_lora_args(r: int, alpha: float, dropout: float) -> None:
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"rank r must be an integer >= 1, got {r!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def _matches(name: str, target_modules: Sequence[str]) -> bool:
    """peft's rule for a list of names: the qualified name equals a target or ends with ``"." + target``."""
    return any(name == target or name.endswith(f".{target}") for target in target_modules)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def apply_lora(
    model: nn.Module, target_modules: Sequence[str], r: int, alpha: float, dropout: float = 0.0
) -> list[str]:
    """Wrap the chosen ``nn.Linear`` layers of ``model`` in :class:`LoRALinear`, in place.

    A linear layer is chosen when its qualified name (``model.named_modules()``) equals one of
    ``target_modules`` or ends with ``"." + target`` (peft's suffix rule: ``"q_lin"`` matches
    ``"transformer.layer.0.attention.q_lin"``). Every parameter of the model other than the new
    ``lora_A`` / ``lora_B`` is frozen (``requires_grad = False``), as peft does without
    ``modules_to_save``; unfreeze a new classification head yourself if it must train.

    Returns:
        The qualified names of the replaced layers, sorted.

    Raises:
        TypeError: ``target_modules`` is a single string (pass a list) or holds a non-string.
        ValueError: no ``nn.Linear`` matched, or invalid ``r`` / ``alpha`` / ``dropout``.
    """
    if isinstance(target_modules, str) or not all(isinstance(t, str) for t in target_modules):
        raise TypeError(f"target_modules must be a sequence of module names, e.g. ['q_lin'], got {target_modules!r}")
    targets = list(target_modules)
    _check_lora_args(r, alpha, dropout)
    lora_owned = {f"{name}.base" for name, module in model.named_modules() if isinstance(module, LoRALinear)}
    chosen = sorted(
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name not in lora_owned and _matches(name, targets)
    )
    if not chosen:
        linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
        raise ValueError(f"no nn.Linear matches target_modules={targets}; linear layers: {linear[:10]}")
    for param in model.parameters():
        param.requires_grad_(False)
    for name in chosen:
        base = model.get_submodule(name)
        assert isinstance(base, nn.Linear)
        _set_submodule(model, name, LoRALinear(base, r, alpha, dropout))
    trainable, total = count_parameters(model)
    log.debug("lora_applied", layers=len(chosen), r=r, alpha=alpha, trainable=trainable, total=total)
    return chosen


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear``, in place, and
    return ``model`` (the model itself when it is a ``LoRALinear``: then a new ``nn.Linear``)."""
    if isinstance(model, LoRALinear):
        return model.merge()
    names = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name in names:
        layer = model.get_submodule(name)
        assert isinstance(layer, LoRALinear)
        _set_submodule(model, name, layer.merge())
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` numbers of parameter elements; a shared (tied) tensor counts once."""
    params = list(model.parameters())  # parameters() yields each tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
