"""Tests for mlcraft.models.encoder: Encoder against Hugging Face's BertModel (tiny random config,
weights copied by load_hf_bert_weights) with right and left padding, the padding mask, the config
and its conversion, the classification heads and a few training steps on toy tasks."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import ValidationError

from mlcraft.classroom.testing import assert_close
from mlcraft.models.encoder import (
    Encoder,
    EncoderBlock,
    EncoderConfig,
    SequenceClassifier,
    TokenClassifier,
    encoder_config_from_hf,
    load_hf_bert_weights,
)

pytestmark = pytest.mark.usefixtures("isolate_torch")

VOCAB, POSITIONS, WIDTH, HEADS, LAYERS, FF = 50, 16, 32, 4, 2, 64
# dtype -> (rtol, atol) of our last hidden state against BertModel's, same weights and inputs
PARITY = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5)}


def _hf_config(attn: str = "sdpa", **overrides: Any) -> Any:
    transformers = pytest.importorskip("transformers")
    fields: dict[str, Any] = {
        "vocab_size": VOCAB,
        "hidden_size": WIDTH,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": FF,
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    config = transformers.BertConfig(**(fields | overrides))
    config._attn_implementation = attn
    return config


def _hf_bert(attn: str = "sdpa") -> Any:
    """A tiny BertModel with every tensor random: HF starts LayerNorms at (1, 0) and biases at 0,
    which would hide a swapped or dropped tensor."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertModel(_hf_config(attn))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in hf.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=gen))
    return hf.eval()


def _inputs(padding: str, b: int = 4, t: int = 10, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, a 0/1 mask (lengths t, 1, and two in between) and segment ids."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (b, t), generator=gen)
    lengths = torch.tensor([t, 1, 6, 3])[:b]
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()  # right padding
    if padding == "left":
        mask = mask.flip(1)
    elif padding == "none":
        mask = torch.ones_like(mask)
    ids = ids.masked_fill(mask == 0, 0)
    types = torch.randint(0, 2, (b, t), generator=gen)
    return ids, mask, types


def _config(**overrides: Any) -> EncoderConfig:
    fields: dict[str, Any] = {
        "vocab_size": VOCAB,
        "max_positions": POSITIONS,
        "d_model": WIDTH,
        "n_heads": HEADS,
        "n_layers": LAYERS,
        "d_ff": FF,
    }
    return EncoderConfig(**(fields | overrides))


# --------------------------------------------------------------------------- parity with BertModel


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("padding", ["right", "left", "none"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_matches_hf_bert(dtype: torch.dtype, padding: str, attn: str) -> None:
    hf = _hf_bert(attn).to(dtype)
    ours = load_hf_bert_weights(Encoder(encoder_config_from_hf(hf.config)).to(dtype), hf).eval()
    ids, mask, types = _inputs(padding)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        actual = ours(ids, mask, types)
    assert actual.shape == (4, 10, WIDTH) and actual.dtype == dtype
    rtol, atol = PARITY[dtype]
    real = mask.bool()  # padded positions' outputs are meaningless; compare them all the same (both attend alike)
    assert_close(actual[real], expected[real], rtol=rtol, atol=atol, msg=f"{padding} padding, {dtype}, HF {attn}")
    assert_close(actual, expected, rtol=rtol, atol=atol, msg=f"every position, {padding}, {dtype}, HF {attn}")


def test_defaults_match_hf_without_mask_or_segments() -> None:
    hf = _hf_bert().double()
    ours = load_hf_bert_weights(Encoder(encoder_config_from_hf(hf.config)).double(), hf).eval()
    ids, _, _ = _inputs("none", b=2, t=POSITIONS)  # the longest input the positions allow
    with torch.no_grad():
        expected = hf(input_ids=ids).last_hidden_state
        assert_close(ours(ids), expected, rtol=1e-10, atol=1e-10, msg="no mask, no token_type_ids, T = max")


def test_loads_from_a_task_model_and_refuses_mismatched_shapes() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    task = transformers.BertForSequenceClassification(_hf_config(num_labels=3)).eval()
    ours = load_hf_bert_weights(Encoder(encoder_config_from_hf(task.config)), task).eval()
    ids, mask, _ = _inputs("right")
    with torch.no_grad():
        expected = task.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        assert_close(ours(ids, mask), expected, rtol=1e-5, atol=1e-5, msg="BertForSequenceClassification.bert")
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_hf_bert_weights(Encoder(_config(d_ff=2 * FF)), task)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_hf_bert_weights(Encoder(_config(n_layers=LAYERS + 1)), task)


def test_qkv_is_query_key_value_stacked() -> None:
    hf = _hf_bert()
    ours = load_hf_bert_weights(Encoder(encoder_config_from_hf(hf.config)), hf)
    attn = hf.encoder.layer[1].attention.self
    block = ours.blocks[1]
    assert isinstance(block, EncoderBlock)
    for offset, source in enumerate((attn.query, attn.key, attn.value)):
        rows = slice(offset * WIDTH, (offset + 1) * WIDTH)
        assert_close(block.attn.qkv.weight[rows], source.weight, rtol=0.0, atol=0.0, msg=f"qkv part {offset}")
        assert_close(block.attn.qkv.bias[rows], source.bias, rtol=0.0, atol=0.0, msg=f"qkv bias part {offset}")


# --------------------------------------------------------------------------- the mask


@pytest.mark.parametrize("padding", ["right", "left"])
def test_padded_tokens_do_not_change_real_positions(padding: str) -> None:
    torch.manual_seed(0)
    model = Encoder(_config()).double().eval()
    ids, mask, types = _inputs(padding)
    other = torch.where(mask.bool(), ids, torch.randint(1, VOCAB, ids.shape))  # different tokens in the padding
    real = mask.bool()
    with torch.no_grad():
        base, changed = model(ids, mask, types), model(other, mask, types)
        assert_close(changed[real], base[real], rtol=1e-12, atol=1e-12, msg=f"{padding} padding, masked")
        unmasked = model(other, None, types)
    # The control: without the mask the same change does reach the real positions.
    assert (unmasked[real] - base[real]).abs().max() > 1e-3


def test_row_without_real_tokens_stays_finite_and_leaves_other_rows_alone() -> None:
    torch.manual_seed(0)
    model = Encoder(_config()).eval()
    ids, mask, _ = _inputs("right")
    empty = mask.clone()
    empty[1] = 0
    with torch.no_grad():
        out = model(ids, empty)
        alone = model(ids[[0, 2, 3]], mask[[0, 2, 3]])
    assert torch.isfinite(out).all()
    assert_close(out[[0, 2, 3]], alone, rtol=1e-5, atol=1e-5, msg="rows next to an empty row")


def test_sequence_alone_equals_sequence_in_padded_batch() -> None:
    torch.manual_seed(0)
    model = Encoder(_config()).eval()
    ids, mask, _ = _inputs("right")
    with torch.no_grad():
        batch = model(ids, mask)
        alone = model(ids[2:3, :6], mask[2:3, :6])  # row 2 has 6 real tokens
    assert_close(batch[2:3, :6], alone, rtol=1e-5, atol=1e-5, msg="row 2 alone vs in the batch")


# --------------------------------------------------------------------------- config, inputs, modes


def test_config_validation() -> None:
    assert _config().d_model == WIDTH
    with pytest.raises(ValidationError, match="divisible"):
        _config(d_model=30, n_heads=4)
    with pytest.raises(ValidationError, match="pad_id"):
        _config(pad_id=VOCAB)
    with pytest.raises(ValidationError):
        EncoderConfig()  # type: ignore[call-arg]  # vocab_size is required
    with pytest.raises(ValidationError):
        _config(dropout=1.0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        EncoderConfig(**_config().model_dump(), n_head=2)  # type: ignore[call-arg]  # a typo is an error, not a silent default
    with pytest.raises(ValidationError, match="frozen"):
        _config().d_model = 64


def test_config_from_hf_copies_every_field_and_refuses_other_architectures() -> None:
    hf_config = _hf_config(hidden_dropout_prob=0.2, layer_norm_eps=1e-7, pad_token_id=3, type_vocab_size=3)
    config = encoder_config_from_hf(hf_config)
    expected = {
        "vocab_size": VOCAB,
        "max_positions": POSITIONS,
        "type_vocab_size": 3,
        "d_model": WIDTH,
        "n_heads": HEADS,
        "n_layers": LAYERS,
        "d_ff": FF,
        "dropout": 0.2,
        "layer_norm_eps": 1e-7,
        "pad_id": 3,
    }
    assert config.model_dump() == expected
    with pytest.raises(ValueError, match="hidden_act='gelu'"):
        encoder_config_from_hf(_hf_config(hidden_act="relu"))
    relative = _hf_config()
    relative.position_embedding_type = "relative_key"
    with pytest.raises(ValueError, match="absolute position"):
        encoder_config_from_hf(relative)
    with pytest.raises(ValueError, match="decoder"):
        encoder_config_from_hf(_hf_config(is_decoder=True))


def test_forward_rejects_bad_inputs() -> None:
    model = Encoder(_config())
    ids, mask, _ = _inputs("right")
    with pytest.raises(ValueError, match=f"17 tokens exceeds max_positions {POSITIONS}"):
        model(torch.ones(1, POSITIONS + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids \(4, 10\), got \(4, 9\)"):
        model(ids, mask[:, :9])
    with pytest.raises(ValueError, match="token_type_ids must have the shape"):
        model(ids, mask, mask[:2])
    with pytest.raises(ValueError, match=r"input_ids must have shape \(B, T\)"):
        model(ids[0])
    with pytest.raises(TypeError, match="integer dtype"):
        model(ids.float())


def test_dropout_acts_in_training_only() -> None:
    torch.manual_seed(0)
    model = Encoder(_config(dropout=0.3))
    ids, mask, _ = _inputs("right")
    model.train()
    assert not torch.equal(model(ids, mask), model(ids, mask))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, mask), model(ids, mask))


def test_bf16_autocast_stays_close_to_float32() -> None:
    torch.manual_seed(0)
    model = Encoder(_config()).eval()
    ids, mask, _ = _inputs("right")
    with torch.no_grad():
        reference = model(ids, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(ids, mask)
    assert torch.isfinite(low).all()
    # LayerNorm outputs are O(1); bf16 keeps ~3 significant digits through 2 blocks.
    assert_close(low.float(), reference, rtol=0.1, atol=0.1, msg="bf16 autocast vs float32")


def test_padding_embedding_starts_at_zero() -> None:
    model = Encoder(_config(pad_id=5))
    assert model.token_embedding.padding_idx == 5
    assert torch.count_nonzero(model.token_embedding.weight[5]) == 0
    assert torch.count_nonzero(model.token_embedding.weight[4]) > 0


# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_sequence_classifier_shapes_and_padding(pooling: str) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(Encoder(_config()), n_classes=3, pooling=pooling).eval()  # type: ignore[arg-type]
    ids, mask, _ = _inputs("right")
    with torch.no_grad():
        logits = model(ids, mask)
        alone = model(ids[2:3, :6], mask[2:3, :6])
        no_mask = model(ids[:1])
    assert logits.shape == (4, 3) and no_mask.shape == (1, 3)
    assert_close(logits[2:3], alone, rtol=1e-5, atol=1e-5, msg=f"{pooling} pooling: alone vs padded batch")


def test_heads_reject_bad_arguments() -> None:
    encoder = Encoder(_config())
    with pytest.raises(ValueError, match="pooling must be 'cls' or 'mean', got 'max'"):
        SequenceClassifier(encoder, 2, pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_classes must be >= 1, got 0"):
        SequenceClassifier(encoder, 0)
    with pytest.raises(ValueError, match="n_labels must be >= 1, got 0"):
        TokenClassifier(encoder, 0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        TokenClassifier(encoder, 2, dropout=1.5)


def _toy_sequences(n: int = 32, t: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded sequences of tokens 4..11 (lengths 3..8), label 1 when token 5 appears."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 12, (n, t), generator=gen)
    lengths = torch.randint(3, t + 1, (n,), generator=gen)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, 0)
    labels = ((ids == 5) & mask.bool()).any(dim=1).long()
    return ids, mask, labels


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_sequence_classifier_learns_a_toy_task(pooling: str) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(Encoder(_config(dropout=0.0)), 2, pooling=pooling, dropout=0.0)  # type: ignore[arg-type]
    ids, mask, labels = _toy_sequences()
    assert 0 < labels.sum() < len(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(ids, mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"{pooling}: loss went {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_token_classifier_shapes_and_learns_a_toy_task() -> None:
    torch.manual_seed(0)
    model = TokenClassifier(Encoder(_config(dropout=0.0)), n_labels=3, dropout=0.0)
    ids, mask, _ = _toy_sequences()
    labels = (ids % 3).masked_fill(mask == 0, -100)  # padding left out of the loss
    assert model(ids, mask).shape == (32, 8, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(ids, mask).flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"
