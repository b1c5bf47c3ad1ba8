"""Tests for mlcraft.training.optim: parameter groups (against a hand listing and AdamW's own
decay) and ModelEMA (against torch.optim.swa_utils.AveragedModel and float64 loops)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mlcraft.training.optim import ModelEMA, param_groups


class TinyLM(nn.Module):
    """Embedding, LayerNorm, a BatchNorm'd MLP, a bias-free conv, a frozen scale, and an output
    layer tied to the embedding (GPT-2 style)."""

    def __init__(self, vocab: int = 11, dim: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.bn = nn.BatchNorm1d(dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1, bias=False)
        self.rms = nn.RMSNorm(dim)
        self.gn = nn.GroupNorm(2, dim)
        self.temperature = nn.Parameter(torch.tensor(1.0))  # 0-d: no decay
        self.frozen = nn.Parameter(torch.ones(dim, dim), requires_grad=False)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.embed(tokens))  # (B, T, D)
        h = self.bn(self.fc(h).transpose(1, 2))  # (B, D, T)
        h = self.gn(self.conv(h)).transpose(1, 2)  # (B, T, D)
        logits: torch.Tensor = self.head(self.rms(h @ self.frozen)) / self.temperature  # (B, T, V)
        return logits


# By hand: what each trainable parameter of TinyLM should get.
HAND_DECAY = ["fc.weight", "conv.weight"]
HAND_NO_DECAY = [
    "temperature",
    "embed.weight",  # embedding (and tied to head.weight, which is therefore not listed again)
    "norm.weight",
    "norm.bias",
    "fc.bias",
    "bn.weight",
    "bn.bias",
    "rms.weight",
    "gn.weight",
    "gn.bias",
]


def _names(groups: list[dict[str, object]], decay: bool) -> set[str]:
    found = [g for g in groups if (g["weight_decay"] != 0.0) == decay]
    assert len(found) <= 1
    return set(found[0]["param_names"]) if found else set()  # type: ignore[call-overload]


def test_param_groups_match_the_hand_listing() -> None:
    model = TinyLM()
    groups = param_groups(model, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert _names(groups, True) == set(HAND_DECAY)
    assert _names(groups, False) == set(HAND_NO_DECAY)
    for group in groups:  # names and tensors line up
        named = dict(model.named_parameters())
        assert all(p is named[n] for p, n in zip(group["params"], group["param_names"], strict=True))


def test_every_trainable_parameter_exactly_once_tied_counted_once_frozen_skipped() -> None:
    model = TinyLM()
    placed = [p for g in param_groups(model, 0.1) for p in g["params"]]
    assert len(placed) == len({id(p) for p in placed}), "a parameter appears twice"
    trainable = [p for p in model.parameters() if p.requires_grad]  # parameters() already dedups tied ones
    assert {id(p) for p in placed} == {id(p) for p in trainable}
    assert sum(p.numel() for p in placed) == sum(p.numel() for p in trainable)
    assert all(p is not model.frozen for p in placed)
    assert sum(p is model.embed.weight for p in placed) == 1


def test_decay_embeddings_flag_moves_the_tied_table_only() -> None:
    groups = param_groups(TinyLM(), 0.1, decay_embeddings=True)
    assert _names(groups, True) == {*HAND_DECAY, "embed.weight"}
    assert _names(groups, False) == set(HAND_NO_DECAY) - {"embed.weight"}


def test_tied_parameter_is_decayed_only_if_every_owner_would_decay_it() -> None:
    """The output layer alone would decay the shared matrix; the embedding vetoes it,
    whatever the registration order."""

    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 7, bias=False)
            self.embed = nn.Embedding(7, 4)
            self.embed.weight = self.head.weight

    names = _names(param_groups(HeadFirst(), 0.1), False)
    assert names == {"head.weight"}  # named_parameters' name, no decay


def test_norm_modules_with_two_dimensional_weights_are_not_decayed() -> None:
    """LayerNorm/RMSNorm over a (3, 4) shape hold 2-D weights: the dimension rule alone would decay them."""
    model = nn.ModuleDict(
        {"ln": nn.LayerNorm((3, 4)), "rms": nn.RMSNorm((3, 4)), "gn": nn.GroupNorm(2, 4), "lin": nn.Linear(4, 4)}
    )
    assert model["ln"].weight.ndim == 2 and model["rms"].weight.ndim == 2
    groups = param_groups(model, 0.1)
    assert _names(groups, True) == {"lin.weight"}
    assert _names(groups, False) == {"ln.weight", "ln.bias", "rms.weight", "gn.weight", "gn.bias", "lin.bias"}


def test_shared_module_is_listed_once() -> None:
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    groups = param_groups(model, 0.05)
    assert _names(groups, True) == {"0.weight"}
    assert _names(groups, False) == {"0.bias"}


def test_adamw_with_the_groups_decays_only_the_decay_group() -> None:
    """With zero gradients Adam's update is 0/(0 + eps) = 0, so one AdamW step shows the decay
    alone: p -> p * (1 - lr * wd) for the decay group, unchanged for the other."""
    torch.manual_seed(0)
    model = TinyLM()
    lr, wd = 0.1, 0.3
    opt = torch.optim.AdamW(param_groups(model, wd), lr=lr)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        if name in HAND_DECAY:
            expected = before[name] * (1 - lr * wd)
            torch.testing.assert_close(p.detach(), expected, rtol=1e-7, atol=0, msg=f"{name} shrinks by lr*wd*p")
            assert not torch.equal(p.detach(), before[name]), f"{name} did not move"
        else:
            torch.testing.assert_close(p.detach(), before[name], rtol=0, atol=0, msg=f"{name} must not be decayed")
    assert opt.state_dict()["param_groups"][0]["param_names"] == [
        n for n in HAND_DECAY if n in dict(model.named_parameters())
    ]


def test_model_without_decayable_parameters_gives_one_group() -> None:
    groups = param_groups(nn.LayerNorm(4), 0.1)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0 and groups[0]["param_names"] == ["weight", "bias"]


@pytest.mark.parametrize("weight_decay", [-0.1, math.inf, math.nan])
def test_param_groups_rejects_bad_weight_decay(weight_decay: float) -> None:
    with pytest.raises(ValueError, match="weight_decay must be finite and >= 0"):
        param_groups(nn.Linear(2, 2), weight_decay)


def test_param_groups_raises_when_parameters_and_named_parameters_disagree() -> None:
    """The exactly-once invariant is a RuntimeError, not an ``assert`` that ``python -O`` strips."""
    model = nn.Linear(3, 3)
    extra = nn.Parameter(torch.ones(2))
    own = list(model.parameters())
    model.parameters = lambda recurse=True: iter([*own, extra])  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match=r"placed 2 tensors .* for 3 trainable parameters"):
        param_groups(model, 0.1)


def test_param_groups_rejects_models_without_trainable_parameters() -> None:
    with pytest.raises(ValueError, match="no trainable parameter"):
        param_groups(nn.ReLU(), 0.1)
    with pytest.raises(ValueError, match="no trainable parameter"):
        param_groups(nn.Linear(2, 2).requires_grad_(False), 0.1)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        param_groups([nn.Parameter(torch.ones(2))], 0.1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# ModelEMA


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("decay", [0.9, 0.99, 0.999])
def test_ema_matches_averaged_model_and_a_float64_loop(decay: float) -> None:
    """300 updates. AveragedModel copies the weights on its first update; ours copies them at
    construction; with one initial update_parameters the two follow the same recursion."""
    torch.manual_seed(0)
    model = _bn_net()
    ema = ModelEMA(model, decay)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)  # type: ignore[no-untyped-call]
    reference.update_parameters(model)  # n_averaged 0 -> copy, like our construction
    oracle = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(300):
        loss = model(torch.randn(16, 5, generator=g)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
        reference.update_parameters(model)
        for n, p in model.named_parameters():
            oracle[n] = decay * oracle[n] + (1 - decay) * p.detach().double()
    assert ema.num_updates == 300
    for (n, mine), theirs in zip(ema.module.named_parameters(), reference.module.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7, msg=f"{n} vs AveragedModel")
        torch.testing.assert_close(mine.double(), oracle[n], rtol=1e-5, atol=1e-6, msg=f"{n} vs float64 loop")
        if n != "0.bias":  # a bias right before BatchNorm gets no gradient and never moves
            assert not torch.equal(mine, dict(model.named_parameters())[n]), f"{n}: the EMA is just the weights"
    for (n, buffer), their_buffer in zip(ema.module.named_buffers(), reference.module.buffers(), strict=True):
        assert torch.equal(buffer, their_buffer), f"buffer {n}: copied by both"
        assert torch.equal(buffer, dict(model.named_buffers())[n]), f"buffer {n}: copied from the model"


def test_ema_averaging_buffers_matches_averaged_model_with_use_buffers() -> None:
    decay = 0.95
    torch.manual_seed(0)
    model = _bn_net()
    ema = ModelEMA(model, decay, buffers="average")
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)  # type: ignore[no-untyped-call]
    reference.update_parameters(model)
    for _ in _train_steps_with(model, [ema.update, reference.update_parameters], steps=200):
        pass
    mine = dict(ema.module.named_buffers())
    theirs = dict(reference.module.named_buffers())
    for name in ("1.running_mean", "1.running_var"):
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-6, atol=1e-7, msg=f"{name} vs AveragedModel")
        assert not torch.equal(mine[name], dict(model.named_buffers())[name]), f"{name} was copied, not averaged"
    # Integer buffers cannot be averaged: ours copies num_batches_tracked (AveragedModel truncates an average).
    assert mine["1.num_batches_tracked"].item() == 200


def _train_steps_with(model: nn.Module, hooks: list[object], steps: int) -> list[int]:
    g = torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        loss = model(torch.randn(16, 5, generator=g)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for hook in hooks:
            hook(model)  # type: ignore[operator]
    return list(range(steps))


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.99])
def test_ema_warmup_is_the_bias_corrected_weighted_mean(decay: float) -> None:
    """Oracle, not recursive: sum_i d^(t-i) (1-d) p_i / (1 - d^t) over the weights after each step."""
    torch.manual_seed(0)
    model = _bn_net()
    ema = ModelEMA(model, decay, warmup=True)
    assert ema.next_decay() == 0.0  # the first update copies
    snapshots = []
    g = torch.Generator().manual_seed(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(40):
        loss = model(torch.randn(16, 5, generator=g)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
        snapshots.append({n: p.detach().double().clone() for n, p in model.named_parameters()})
        if len(snapshots) == 1:
            for n, p in ema.module.named_parameters():
                assert torch.equal(p, dict(model.named_parameters())[n]), "first warmup update copies"
    t = len(snapshots)
    for n, p in ema.module.named_parameters():
        weighted = sum(decay ** (t - i) * (1 - decay) * s[n] for i, s in enumerate(snapshots, start=1))
        expected = weighted / (1 - decay**t)
        torch.testing.assert_close(p.double(), expected, rtol=1e-5, atol=1e-6, msg=f"{n}: bias-corrected EMA")


def test_ema_decay_edge_values() -> None:
    """decay 0 follows the model exactly; decay 1 never moves."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    start = copy.deepcopy(model)
    follow, frozen = ModelEMA(model, 0.0), ModelEMA(model, 1.0, warmup=True)
    with torch.no_grad():
        model.weight.add_(1.0)
    follow.update(model)
    frozen.update(model)
    assert torch.equal(follow.module.get_parameter("weight"), model.weight)
    assert torch.equal(frozen.module.get_parameter("weight"), start.weight)


def test_ema_copy_is_detached_in_eval_mode_and_independent() -> None:
    model = _bn_net().train()
    ema = ModelEMA(model, 0.9)
    assert not ema.module.training and all(not p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in model.parameters()) and model.training
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(ema.module.parameters(), model.parameters(), strict=True))


def test_ema_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    model = _bn_net()
    ema = ModelEMA(model, 0.9, warmup=True)
    _train_steps_with(model, [ema.update], steps=5)
    state = ema.state_dict()
    restored = ModelEMA(_bn_net(), 0.9, warmup=True)  # other initial weights
    restored.load_state_dict(copy.deepcopy(state))
    assert restored.num_updates == 5
    _train_steps_with(model, [ema.update, restored.update], steps=3)
    for (n, a), b in zip(ema.module.state_dict().items(), restored.module.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{n} differs after resuming the EMA"
    with pytest.raises(ValueError, match="differ"):
        ModelEMA(_bn_net(), 0.99, warmup=True).load_state_dict(state)


def test_swapped_into_evaluates_with_the_average_and_restores() -> None:
    torch.manual_seed(0)
    model = _bn_net()
    ema = ModelEMA(model, 0.9)
    _train_steps_with(model, [ema.update], steps=10)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 5)
    model.eval()
    with ema.swapped_into(model) as swapped:
        assert swapped is model
        torch.testing.assert_close(model(x), ema.module(x), rtol=0, atol=0, msg="swapped-in model = EMA copy")
    for k, v in model.state_dict().items():
        assert torch.equal(v, own[k]), f"{k} not restored"
    with pytest.raises(RuntimeError, match="boom"), ema.swapped_into(model):
        raise RuntimeError("boom")
    for k, v in model.state_dict().items():
        assert torch.equal(v, own[k]), f"{k} not restored after an exception"


def _wrapped(model: nn.Module, wrapper: str) -> nn.Module:
    if wrapper == "compile":
        return torch.compile(model, backend="eager")  # type: ignore[return-value]
    if wrapper == "DataParallel":
        return nn.DataParallel(model)  # on a CPU-only machine: no device ids, forwards to the module
    return torch.compile(nn.DataParallel(model), backend="eager")  # type: ignore[return-value]


@pytest.mark.parametrize("wrapper", ["compile", "DataParallel", "compile(DataParallel)"])
def test_ema_unwraps_compiled_and_data_parallel_models(wrapper: str) -> None:
    """Names of a wrapped model carry ``_orig_mod.`` / ``module.`` prefixes: without unwrapping,
    update and swapped_into would refuse the wrapper (or the EMA would copy the wrapper)."""
    torch.manual_seed(0)
    model = _bn_net()
    wrapped = _wrapped(model, wrapper)
    assert [n for n, _ in wrapped.named_parameters()] != [n for n, _ in model.named_parameters()]
    built_from_wrapper, built_from_model = ModelEMA(wrapped, 0.9), ModelEMA(model, 0.9)
    assert type(built_from_wrapper.module) is nn.Sequential, "the copy is of the plain model"
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        loss = wrapped(torch.randn(8, 5, generator=g)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        built_from_wrapper.update(wrapped)
        built_from_model.update(wrapped)
    for mine, other in zip(built_from_wrapper.module.parameters(), built_from_model.module.parameters(), strict=True):
        assert torch.equal(mine, other), "the same average whether built from the wrapper or the plain model"
    own = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 5, generator=g)
    wrapped.eval()
    with built_from_wrapper.swapped_into(wrapped) as swapped:
        assert swapped is wrapped
        torch.testing.assert_close(
            wrapped(x), built_from_wrapper.module(x), rtol=0, atol=0, msg=f"{wrapper}: EMA inside"
        )
    assert not torch.equal(wrapped(x), built_from_wrapper.module(x)), "outside the block the model's own weights"
    for k, v in model.state_dict().items():
        assert torch.equal(v, own[k]), f"{wrapper}: {k} not restored"


def test_ema_half_precision_and_int_parameters() -> None:
    """bf16 models average in bf16 (per dtype); integer tensors are copied."""
    model = nn.Linear(4, 4).to(torch.bfloat16)
    model.register_buffer("counter", torch.tensor(3))
    ema = ModelEMA(model, 0.5, buffers="average")
    start = ema.module.get_parameter("weight").detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
        model.get_buffer("counter").add_(4)
    ema.update(model)
    torch.testing.assert_close(
        ema.module.get_parameter("weight").float(),
        (0.5 * start + 0.5 * model.weight.detach()).float(),
        rtol=1e-2,
        atol=1e-2,
    )
    assert ema.module.get_parameter("weight").dtype == torch.bfloat16
    assert ema.module.get_buffer("counter").item() == 7


@pytest.mark.parametrize("decay", [-0.1, 1.5, math.nan])
def test_ema_rejects_bad_decay(decay: float) -> None:
    with pytest.raises(ValueError, match="decay must be in"):
        ModelEMA(nn.Linear(2, 2), decay)


def test_ema_rejects_bad_buffer_mode_and_a_different_model() -> None:
    with pytest.raises(ValueError, match="buffers must be"):
        ModelEMA(nn.Linear(2, 2), 0.9, buffers="mean")  # type: ignore[arg-type]
    ema = ModelEMA(nn.Sequential(nn.Linear(2, 2)), 0.9)
    with pytest.raises(ValueError, match="differ from the EMA"):
        ema.update(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="differ from the EMA"):
        ema.update(nn.Sequential(nn.BatchNorm1d(2)))
