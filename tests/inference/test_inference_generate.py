"""Tests for mlcraft.inference.generate: filter_logits, sample_next and generate (with and
without a KV cache, including contexts that outgrow block_size)."""

from __future__ import annotations

import pytest
import torch

from mlcraft.inference.generate import filter_logits, generate, sample_next
from mlcraft.models.gpt import GPT, GPTConfig

VOCAB, BLOCK = 23, 8
NEG_INF = float("-inf")


pytestmark = pytest.mark.usefixtures("isolate_torch")


def _model(device: torch.device | str = "cpu", dropout: float = 0.0) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, d_model=16, dropout=dropout))
    # GPT-2's init (std 0.02) gives near-uniform logits; widen them so argmax and sampling see
    # clear gaps (cached and uncached logits differ by float rounding only).
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=gen))
    return model.to(device).eval()


def _prompt(b: int = 2, t: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def _gen(device: torch.device | str = "cpu", seed: int = 0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


SAMPLING = {
    "greedy": {"temperature": 0.0},
    "temperature": {"temperature": 0.8},
    "top_k": {"temperature": 1.0, "top_k": 5},
    "top_p": {"temperature": 1.2, "top_p": 0.8},
    "top_k+top_p": {"temperature": 0.9, "top_k": 6, "top_p": 0.9},
}


# --------------------------------------------------------------------------- generate: cache parity


@pytest.mark.parametrize("mode", list(SAMPLING))
@pytest.mark.parametrize("new_tokens", [4, 3 * BLOCK], ids=["within-block", "window-slides"])
def test_generate_cache_and_no_cache_agree(device: torch.device, mode: str, new_tokens: int) -> None:
    model = _model(device)
    prompt = _prompt().to(device)
    kwargs = SAMPLING[mode]
    cached = generate(model, prompt, new_tokens, use_cache=True, generator=_gen(device), **kwargs)  # type: ignore[arg-type]
    uncached = generate(model, prompt, new_tokens, use_cache=False, generator=_gen(device), **kwargs)  # type: ignore[arg-type]
    assert cached.shape == (2, 3 + new_tokens)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :3], prompt)
    assert int(cached.min()) >= 0
    assert int(cached.max()) < VOCAB


def test_generate_prompt_longer_than_block(device: torch.device) -> None:
    model = _model(device)
    prompt = _prompt(t=BLOCK + 5).to(device)
    a = generate(model, prompt, 6, temperature=0.7, use_cache=True, generator=_gen(device))
    b = generate(model, prompt, 6, temperature=0.7, use_cache=False, generator=_gen(device))
    assert a.shape == (2, BLOCK + 11)
    assert torch.equal(a, b)


def _reference_loop(
    model: GPT,
    idx: torch.Tensor,
    n: int,
    temperature: float,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Generation written out: re-run the last block_size tokens, take the last position."""
    with torch.no_grad():
        for _ in range(n):
            logits = model(idx[:, -BLOCK:])[:, -1, :]
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = logits.sort(dim=-1, descending=True).values[:, top_k - 1 : top_k]
                    logits = logits.masked_fill(logits < kth, NEG_INF)
                nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
    return idx


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_equals_argmax_by_hand(use_cache: bool) -> None:
    model = _model()
    prompt = _prompt()
    out = generate(model, prompt, 2 * BLOCK, temperature=0.0, use_cache=use_cache)
    assert torch.equal(out, _reference_loop(model, prompt, 2 * BLOCK, temperature=0.0))
    # Not a constant sequence: the test would notice a frozen context window.
    assert len(set(out[0, 3:].tolist())) > 1


@pytest.mark.parametrize("use_cache", [True, False])
def test_top_k_sampling_equals_reference_loop(use_cache: bool) -> None:
    model = _model()
    prompt = _prompt()
    out = generate(model, prompt, 2 * BLOCK, temperature=0.7, top_k=4, use_cache=use_cache, generator=_gen())
    expected = _reference_loop(model, prompt, 2 * BLOCK, temperature=0.7, top_k=4, generator=_gen())
    assert torch.equal(out, expected)


def test_different_seeds_give_different_samples() -> None:
    model = _model()
    a = generate(model, _prompt(), 20, temperature=1.5, generator=_gen(seed=0))
    b = generate(model, _prompt(), 20, temperature=1.5, generator=_gen(seed=1))
    assert not torch.equal(a, b)


def test_temperature_zero_is_greedy() -> None:
    model = _model()
    greedy = generate(model, _prompt(), 10, temperature=0.0)
    assert torch.equal(greedy, generate(model, _prompt(), 10, temperature=1.0, top_k=1, generator=_gen()))
    assert torch.equal(greedy, generate(model, _prompt(), 10, temperature=0.0, generator=_gen(seed=9)))


def test_generate_zero_new_tokens_returns_prompt() -> None:
    prompt = _prompt()
    assert torch.equal(generate(_model(), prompt, 0), prompt)


@pytest.mark.parametrize(
    ("prompt", "n", "kwargs"),
    [
        (torch.zeros(2, 3, dtype=torch.long), -1, {}),
        (torch.zeros(3, dtype=torch.long), 2, {}),
        (torch.zeros(2, 0, dtype=torch.long), 2, {}),
        (torch.zeros(1, 3, dtype=torch.long), 2, {"temperature": -0.5}),
        (torch.zeros(1, 3, dtype=torch.long), 2, {"top_k": 0}),
        (torch.zeros(1, 3, dtype=torch.long), 2, {"top_p": 0.0}),
        (torch.zeros(1, 3, dtype=torch.long), 2, {"top_p": 1.5}),
    ],
)
def test_generate_invalid_arguments_raise(prompt: torch.Tensor, n: int, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        generate(_model(), prompt, n, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("training", [True, False])
def test_generate_restores_train_mode(training: bool) -> None:
    model = _model()
    model.train(training)
    generate(model, _prompt(), 3)
    assert all(m.training is training for m in model.modules())
    # ...also when generation fails half-way.
    with pytest.raises(ValueError):
        generate(model, _prompt(), 3, top_k=0)
    assert all(m.training is training for m in model.modules())


def test_generate_runs_in_eval_mode() -> None:
    """A model with dropout, left in training mode, still generates deterministically."""
    noisy = _model(dropout=0.5).train()
    clean = _model(dropout=0.0)
    a = generate(noisy, _prompt(), 10, temperature=0.0)
    assert torch.equal(a, generate(clean, _prompt(), 10, temperature=0.0))


# --------------------------------------------------------------------------- filter_logits: top-k


def test_top_k_keeps_exactly_k() -> None:
    logits = torch.randn(4, 50, generator=_gen())
    for k in (1, 3, 10, 50):
        out = filter_logits(logits, top_k=k)
        kept = torch.isfinite(out)
        assert kept.sum(dim=-1).tolist() == [k] * 4
        # Kept values are untouched, and they are the k largest.
        assert torch.equal(out[kept], logits[kept])
        expected = torch.zeros_like(kept).scatter(-1, logits.topk(k, dim=-1).indices, True)
        assert torch.equal(kept, expected)


def test_top_k_larger_than_vocab_keeps_all() -> None:
    logits = torch.randn(2, 5, generator=_gen())
    assert torch.equal(filter_logits(logits, top_k=100), logits)


def test_top_k_keeps_ties_at_the_boundary() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0, 2.0, 0.0]])
    out = filter_logits(logits, top_k=2)
    assert torch.isfinite(out).tolist() == [[True, False, True, True, False]]


@pytest.mark.parametrize("k", [0, -1])
def test_top_k_invalid_raises(k: int) -> None:
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(torch.zeros(1, 4), top_k=k)


# --------------------------------------------------------------------------- filter_logits: top-p


def _nucleus_reference(row: torch.Tensor, p: float) -> set[int]:
    """Smallest prefix of tokens sorted by probability whose mass reaches p (float64)."""
    probs = torch.softmax(row.double(), dim=-1)
    order = sorted(range(len(row)), key=lambda i: -probs[i].item())
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i].item()
        if mass >= p:
            break
    return kept


def test_top_p_matches_reference_loop() -> None:
    """p is put half way between consecutive cumulative masses, so the answer cannot hinge on
    rounding: keeping i + 1 tokens is the only right answer, for every i."""
    logits = torch.randn(3, 12, generator=_gen(seed=4)) * 2
    for row in logits:
        cum = torch.softmax(row.double(), dim=-1).sort(descending=True).values.cumsum(0)
        for i in range(len(row) - 1):
            p = 0.5 * ((cum[i - 1].item() if i else 0.0) + cum[i].item())
            out = filter_logits(row[None], top_p=p)[0]
            kept = {int(j) for j in torch.nonzero(torch.isfinite(out))}
            assert kept == _nucleus_reference(row, p)
            assert len(kept) == i + 1
            assert torch.equal(out[sorted(kept)], row[sorted(kept)])


def test_top_p_always_keeps_the_top_token() -> None:
    logits = torch.randn(5, 20, generator=_gen(seed=5))
    out = filter_logits(logits, top_p=1e-9)
    assert torch.isfinite(out).sum(dim=-1).tolist() == [1] * 5
    assert torch.equal(torch.isfinite(out).float().argmax(dim=-1), logits.argmax(dim=-1))


def test_top_p_keeps_all_tokens_when_the_mass_is_needed() -> None:
    logits = torch.zeros(1, 4)  # 4 x 0.25
    assert torch.isfinite(filter_logits(logits, top_p=0.76)).sum() == 4
    assert torch.isfinite(filter_logits(logits, top_p=0.74)).sum() == 3


def test_top_p_one_keeps_everything() -> None:
    logits = torch.tensor([[0.0, -10.0, -20.0], [0.0, -17.0, -17.0]])
    assert torch.equal(filter_logits(logits, top_p=1.0), logits)


def test_top_k_then_top_p_renormalises_over_the_kept_tokens() -> None:
    # probs ∝ e^{3, 2, 1, 0, ...}; after top-2 the masses are 0.731, 0.269: top_p 0.7 keeps one.
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    both = filter_logits(logits, top_k=2, top_p=0.7)
    assert torch.isfinite(both).tolist() == [[True, False, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_k=2, top_p=0.75)).sum() == 2


@pytest.mark.parametrize("p", [0.0, -0.2, 1.01])
def test_top_p_invalid_raises(p: float) -> None:
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(torch.zeros(1, 4), top_p=p)


def test_filter_logits_without_options_is_identity() -> None:
    logits = torch.randn(2, 7, generator=_gen())
    assert torch.equal(filter_logits(logits), logits)


# --------------------------------------------------------------------------- sample_next


def test_sample_next_temperature_matches_scaled_softmax() -> None:
    logits = torch.randn(6, 9, generator=_gen(seed=6))
    got = sample_next(logits, temperature=0.5, generator=_gen(seed=7))
    expected = torch.multinomial(torch.softmax(logits / 0.5, dim=-1), 1, generator=_gen(seed=7))
    assert got.shape == (6, 1)
    assert torch.equal(got, expected)


def test_sample_next_greedy_and_invalid_temperature() -> None:
    logits = torch.randn(3, 9, generator=_gen(seed=8))
    assert torch.equal(sample_next(logits, temperature=0.0), logits.argmax(dim=-1, keepdim=True))
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, temperature=-1.0)


def test_sample_next_never_picks_filtered_tokens() -> None:
    logits = torch.zeros(1000, 10)  # uniform: every token is equally likely before filtering
    logits[:, :3] = 1.0
    picks = sample_next(logits, top_k=3, generator=_gen())
    assert set(picks.flatten().tolist()) == {0, 1, 2}
