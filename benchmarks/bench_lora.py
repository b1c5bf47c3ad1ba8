"""LoRA cost: full fine-tuning vs ``mlcraft.models.lora`` vs Hugging Face ``peft`` on the same small
DistilBERT-style classifier (random weights, built from a config), same run: trainable parameters,
AdamW state bytes after one step, and the median time of a training step (forward, loss, backward,
optimizer step), timed in interleaved rounds; ratios are to full fine-tuning. Both LoRA variants
adapt ``q_lin`` and ``v_lin`` with the same rank and train only the LoRA matrices (the classifier
head stays frozen, as peft without ``modules_to_save``); their outputs must agree before timing.

    python benchmarks/bench_lora.py [--dim 256] [--layers 4] [--rank 8] [--batch 16] [--seq 128] [--repeats 10]
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from _timing import interleaved_medians
from torch import nn

from mlcraft.models.lora import LoRALinear, apply_lora, count_parameters
from mlcraft.utils import best_device

TARGETS = ["q_lin", "v_lin"]


def build_model(args: argparse.Namespace) -> nn.Module:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    fields: dict[str, Any] = {
        "vocab_size": args.vocab,
        "dim": args.dim,
        "n_layers": args.layers,
        "n_heads": max(1, args.dim // 64),
        "hidden_dim": 4 * args.dim,
        "max_position_embeddings": max(512, args.seq),
        "num_labels": 2,
    }
    config = DistilBertConfig(**fields)
    torch.manual_seed(0)
    model: nn.Module = DistilBertForSequenceClassification(config)
    return model


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimizer keeps per parameter (AdamW: exp_avg, exp_avg_sq, step)."""
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )


def make_step(
    model: nn.Module, batch: dict[str, torch.Tensor], labels: torch.Tensor
) -> tuple[Callable[[], object], torch.optim.Optimizer]:
    """A closure running one training step of ``model``, and its AdamW optimizer."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        logits = model(**batch).logits
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from peft import LoraConfig, get_peft_model

    device = best_device()
    base = build_model(args).to(device).train()
    full = copy.deepcopy(base)
    ours = copy.deepcopy(base)
    apply_lora(ours, TARGETS, r=args.rank, alpha=args.alpha)
    theirs: Any = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=TARGETS, lora_dropout=0.0)
    )
    with torch.no_grad():  # same A (B is 0 in both at the start), so the three models start equal
        for name, module in ours.named_modules():
            if isinstance(module, LoRALinear):
                module.lora_A.copy_(theirs.base_model.model.get_submodule(name).lora_A["default"].weight)

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=gen).to(device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    labels = torch.randint(0, 2, (args.batch,), generator=gen).to(device)
    models: dict[str, nn.Module] = {"full fine-tuning": full, "mlcraft LoRA": ours, "peft LoRA": theirs}
    for model in models.values():
        model.eval()
    with torch.no_grad():
        outputs = {name: model(**batch).logits for name, model in models.items()}
    diff = (outputs["mlcraft LoRA"] - outputs["peft LoRA"]).abs().max().item()
    assert diff <= 1e-5, f"mlcraft and peft LoRA outputs differ by {diff}"
    for model in models.values():
        model.train()

    steps: dict[str, Callable[[], object]] = {}
    states: dict[str, int] = {}
    for name, model in models.items():
        step, optimizer = make_step(model, batch, labels)
        step()  # one step creates the optimizer state
        steps[name], states[name] = step, optimizer_state_bytes(optimizer)
    times = interleaved_medians(steps, device, args.repeats, warmup=1)
    counts = {name: count_parameters(model) for name, model in models.items()}
    assert counts["mlcraft LoRA"] == tuple(theirs.get_nb_trainable_parameters()), "trainable counts differ from peft"

    print(
        f"device {device.type}, DistilBERT dim {args.dim}, {args.layers} layers, vocab {args.vocab}, "
        f"batch {args.batch} x {args.seq} tokens, LoRA r={args.rank} alpha={args.alpha:g} on {TARGETS}, "
        f"|mlcraft - peft| logits {diff:.1e}"
    )
    print(
        f"{'':18s}{'trainable':>12s}{'of total':>10s}{'Adam state':>13s}{'step':>10s}   ratios to full (params, state, time)"
    )
    ref_trainable, ref_state, ref_time = (
        counts["full fine-tuning"][0],
        states["full fine-tuning"],
        times["full fine-tuning"],
    )
    for name in models:
        trainable, total = counts[name]
        print(
            f"{name:18s}{trainable:12,d}{100 * trainable / total:9.2f}%{states[name] / 2**20:10.2f} MiB"
            f"{1e3 * times[name]:8.1f} ms   {trainable / ref_trainable:.4f}  {states[name] / ref_state:.4f}  "
            f"{times[name] / ref_time:.2f}"
        )
    print(f"step time mlcraft / peft: {times['mlcraft LoRA'] / times['peft LoRA']:.2f}")


if __name__ == "__main__":
    main()
