"""Tests for mlcraft.models.recurrent: RNNClassifier and RNNTagger against the same nn.LSTM / nn.GRU
run without packing on each unpadded sequence; padding invariance, length-1 inputs, both cells,
one and two layers, one and two directions, input checks and a toy task learned."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from mlcraft.classroom.testing import assert_close
from mlcraft.models.recurrent import RNNClassifier, RNNTagger

pytestmark = pytest.mark.usefixtures("isolate_torch")

VOCAB, EMBED, HIDDEN = 20, 8, 6
TOL = {torch.float32: (1e-6, 1e-6), torch.float64: (1e-12, 1e-12)}
# (cell, bidirectional, num_layers)
SHAPES = [("lstm", True, 1), ("lstm", False, 2), ("gru", True, 2), ("gru", False, 1)]
SHAPE_IDS = [f"{cell}-{'bi' if bi else 'uni'}-{layers}layer" for cell, bi, layers in SHAPES]


def _batch(lengths: list[int], t: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random ids (tokens 1..VOCAB-1, padding 0) and their lengths."""
    gen = torch.Generator().manual_seed(seed)
    t = max(lengths) if t is None else t
    ids = torch.randint(1, VOCAB, (len(lengths), t), generator=gen)
    lens = torch.tensor(lengths)
    ids = ids.masked_fill(torch.arange(t)[None, :] >= lens[:, None], 0)
    return ids, lens


def _model(kind: str, cell: Any, bidirectional: bool, layers: int, n_out: int = 3, **kwargs: Any) -> Any:
    torch.manual_seed(0)
    cls = RNNClassifier if kind == "classifier" else RNNTagger
    return cls(VOCAB, EMBED, HIDDEN, n_out, cell=cell, bidirectional=bidirectional, num_layers=layers, **kwargs)


def _classifier_oracle(model: RNNClassifier, ids: torch.Tensor) -> torch.Tensor:
    """The same embedding, RNN and head on one unpadded sequence (1, L), no packing."""
    _, state = model.backbone.rnn(model.backbone.embedding(ids))
    h_n = state[0] if isinstance(state, tuple) else state  # (layers * directions, 1, H)
    sentence = torch.cat(list(h_n[-model.backbone.n_directions :]), dim=-1)  # (1, directions * H)
    out: torch.Tensor = model.head(sentence)
    return out


def _tagger_oracle(model: RNNTagger, ids: torch.Tensor) -> torch.Tensor:
    outputs, _ = model.backbone.rnn(model.backbone.embedding(ids))  # (1, L, directions * H)
    out: torch.Tensor = model.head(outputs)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("cell", "bidirectional", "layers"), SHAPES, ids=SHAPE_IDS)
def test_classifier_equals_unpacked_rnn_on_each_sequence(
    cell: str, bidirectional: bool, layers: int, dtype: torch.dtype
) -> None:
    model = _model("classifier", cell, bidirectional, layers).to(dtype).eval()
    ids, lengths = _batch([5, 1, 9, 3, 9, 2], t=11)
    with torch.no_grad():
        batched = model(ids, lengths)
        assert batched.shape == (6, 3) and batched.dtype == dtype
        rtol, atol = TOL[dtype]
        for row, length in enumerate(lengths.tolist()):
            alone = model(ids[row : row + 1, :length], lengths[row : row + 1])
            oracle = _classifier_oracle(model, ids[row : row + 1, :length])
            assert_close(batched[row : row + 1], oracle, rtol=rtol, atol=atol, msg=f"row {row}: batch vs unpacked RNN")
            assert_close(alone, batched[row : row + 1], rtol=rtol, atol=atol, msg=f"row {row}: alone vs padded batch")


@pytest.mark.parametrize(("cell", "bidirectional", "layers"), SHAPES, ids=SHAPE_IDS)
def test_tagger_equals_unpacked_rnn_and_padding_gets_the_zero_state(
    cell: str, bidirectional: bool, layers: int
) -> None:
    model = _model("tagger", cell, bidirectional, layers, n_out=4).eval()
    ids, lengths = _batch([4, 7, 1], t=8)
    with torch.no_grad():
        tags = model(ids, lengths)
        assert tags.shape == (3, 8, 4)
        for row, length in enumerate(lengths.tolist()):
            oracle = _tagger_oracle(model, ids[row : row + 1, :length])
            assert_close(tags[row : row + 1, :length], oracle, rtol=1e-6, atol=1e-6, msg=f"row {row}, real positions")
            padded = tags[row, length:]
            assert_close(padded, model.head.bias.expand_as(padded), rtol=0.0, atol=0.0, msg=f"row {row}, padding")


@pytest.mark.parametrize("kind", ["classifier", "tagger"])
def test_padding_content_and_extra_padding_change_nothing(kind: str, device: torch.device) -> None:
    model = _model(kind, "lstm", True, 1).to(device).eval()
    ids, lengths = _batch([6, 2, 4])
    junk = torch.where(ids == 0, torch.randint(1, VOCAB, ids.shape), ids)  # tokens in the padding
    longer = torch.cat([junk, torch.randint(1, VOCAB, (3, 5))], dim=1)  # five more padded positions
    with torch.no_grad():
        base = model(ids.to(device), lengths.to(device))
        other = model(longer.to(device), lengths)
    if kind == "tagger":
        other = other[:, : ids.shape[1]]
        real = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).to(device)
        base, other = base[real], other[real]
    assert_close(other, base, rtol=1e-6, atol=1e-6, msg=f"{kind}: padding content and length")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_length_one_inputs(cell: str) -> None:
    model = _model("classifier", cell, True, 1).eval()
    ids, lengths = _batch([1, 1, 1], t=1)
    with torch.no_grad():
        out = model(ids, lengths)
        oracle = torch.cat([_classifier_oracle(model, ids[i : i + 1]) for i in range(3)])
    assert_close(out, oracle, rtol=1e-6, atol=1e-6, msg=f"{cell}, T = 1")
    tagger = _model("tagger", cell, True, 1).eval()
    assert tagger(ids, lengths).shape == (3, 1, 3)


def test_bidirectional_uses_both_final_states() -> None:
    model = _model("classifier", "gru", True, 1)
    assert model.head.in_features == 2 * HIDDEN
    assert _model("classifier", "gru", False, 3).head.in_features == HIDDEN
    # The backward state depends on the first token: changing it must change the logits of a
    # model whose head reads only the backward half.
    with torch.no_grad():
        model.head.weight[:, :HIDDEN] = 0.0
        ids, lengths = _batch([5])
        changed = ids.clone()
        changed[0, 0] = 1 + ids[0, 0] % (VOCAB - 1)
        assert (model(ids, lengths) - model(changed, lengths)).abs().max() > 1e-6


def test_inputs_are_checked() -> None:
    model = _model("classifier", "lstm", True, 1)
    ids, lengths = _batch([3, 2])
    with pytest.raises(ValueError, match=r"every length must be in \[1, T=3\], got \[0\]"):
        model(ids, torch.tensor([3, 0]))
    with pytest.raises(ValueError, match=r"every length must be in \[1, T=3\], got \[4\]"):
        model(ids, torch.tensor([4, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\), got \(3,\)"):
        model(ids, torch.tensor([3, 2, 1]))
    with pytest.raises(ValueError, match=r"input_ids must have shape \(B, T\)"):
        model(ids[0], lengths[:1])
    with pytest.raises(TypeError, match="integer dtype"):
        model(ids.float(), lengths)
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru', got 'rnn'"):
        RNNClassifier(VOCAB, EMBED, HIDDEN, 2, cell="rnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"pad_id must be in \[0, vocab_size=20\), got 20"):
        RNNTagger(VOCAB, EMBED, HIDDEN, 2, pad_id=VOCAB)
    with pytest.raises(ValueError, match="n_classes must be >= 1, got 0"):
        RNNClassifier(VOCAB, EMBED, HIDDEN, 0)
    with pytest.raises(ValueError, match="hidden_size must be >= 1, got 0"):
        RNNTagger(VOCAB, EMBED, 0, 2)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        RNNTagger(VOCAB, EMBED, HIDDEN, 2, dropout=1.0)


def test_dropout_with_one_layer_does_not_warn_and_acts_in_training() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nn.LSTM warns about dropout with num_layers=1
        model = _model("classifier", "lstm", True, 1, dropout=0.5)
    ids, lengths = _batch([5, 3])
    model.train()
    assert not torch.equal(model(ids, lengths), model(ids, lengths))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, lengths), model(ids, lengths))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_classifier_learns_whether_token_3_appears(cell: str) -> None:
    gen = torch.Generator().manual_seed(1)
    ids, lengths = _batch(torch.randint(2, 9, (64,), generator=gen).tolist(), seed=2)
    ids = torch.where(ids == 3, 4, ids)  # no 3 yet
    positive = torch.arange(64) % 2 == 0
    where = (torch.rand(64, generator=gen) * lengths).long()  # a real position of each row
    ids[positive, where[positive]] = 3
    labels = positive.long()
    model = _model("classifier", cell, True, 1, n_out=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(ids, lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    accuracy = (model(ids, lengths).argmax(1) == labels).float().mean().item()
    assert losses[-1] < 0.3 * losses[0] and accuracy > 0.95, f"{cell}: {losses[0]:.3f} -> {losses[-1]:.3f}, {accuracy}"
