"""Recurrent text models: an LSTM/GRU sentence classifier and a sequence tagger, on packed sequences.

Follows Hochreiter & Schmidhuber (1997, LSTM), Cho et al. (2014, GRU, https://arxiv.org/abs/1406.1078)
and bidirectional RNNs (Schuster & Paliwal, 1997), written with PyTorch's ``nn.LSTM`` /
``nn.GRU`` and ``torch.nn.utils.rnn.pack_padded_sequence`` (``enforce_sorted=False``): the recurrence
stops at each row's real length, so a padded batch gives each sequence exactly the result it gets
alone (the tests check 1e-6), and the backward direction starts at the last *real* token.

- :class:`RNNClassifier`: embedding -> dropout -> (bi)RNN -> final hidden state of the last layer
  (forward direction after the last real token, backward direction after the first) -> dropout -> linear.
- :class:`RNNTagger`: embedding -> dropout -> (bi)RNN outputs at every position -> dropout -> linear.

Inputs are right-padded ``input_ids`` ``(B, T)`` with ``lengths`` ``(B,)``, ``1 <= lengths <= T``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["RNNClassifier", "RNNTagger"]


class _RNNBackbone(nn.Module):
    """Embedding + packed (bi)LSTM/GRU shared by the classifier and the tagger."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        *,
        cell: Literal["lstm", "gru"],
        bidirectional: bool,
        num_layers: int,
        dropout: float,
        pad_id: int,
    ) -> None:
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id must be in [0, vocab_size={vocab_size}), got {pad_id}")
        self.cell, self.pad_id = cell, pad_id
        self.n_directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        # nn.LSTM's own dropout acts between stacked layers only (and warns with one layer).
        self.rnn = rnn_class(
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        """Width of a position's (or the sequence's) representation: ``hidden_size * directions``."""
        return self.rnn.hidden_size * self.n_directions

    def pack(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.nn.utils.rnn.PackedSequence:
        """Check the inputs, embed them and pack the real positions."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, T), got {tuple(input_ids.shape)}")
        if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
            raise TypeError(f"input_ids must have an integer dtype, got {input_ids.dtype}")
        if not isinstance(lengths, torch.Tensor):
            lengths = torch.as_tensor(lengths)
        if tuple(lengths.shape) != (input_ids.shape[0],):
            raise ValueError(f"lengths must have shape (B,) = ({input_ids.shape[0]},), got {tuple(lengths.shape)}")
        lengths_cpu = lengths.detach().to("cpu", torch.int64)  # pack_padded_sequence wants them on the CPU
        t = input_ids.shape[1]
        bad = (lengths_cpu < 1) | (lengths_cpu > t)
        if bool(bad.any()):
            raise ValueError(f"every length must be in [1, T={t}], got {lengths_cpu[bad].tolist()}")
        embedded = self.dropout(self.embedding(input_ids))  # (B, T, E)
        return pack_padded_sequence(embedded, lengths_cpu, batch_first=True, enforce_sorted=False)


class RNNClassifier(nn.Module):
    """Right-padded token ids ``(B, T)`` + lengths ``(B,)`` -> logits ``(B, n_classes)``.

    The sentence vector is the last layer's final hidden state of each direction, concatenated
    ``[forward; backward]`` (``2 * hidden_size`` when bidirectional). Padding never reaches it.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        n_classes: int,
        *,
        cell: Literal["lstm", "gru"] = "lstm",
        bidirectional: bool = True,
        num_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.backbone = _RNNBackbone(
            vocab_size,
            embed_dim,
            hidden_size,
            cell=cell,
            bidirectional=bidirectional,
            num_layers=num_layers,
            dropout=dropout,
            pad_id=pad_id,
        )
        self.head = nn.Linear(self.backbone.output_size, n_classes)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``input_ids`` (B, T) integer, right-padded; ``lengths`` (B,) with ``1 <= lengths <= T``.
        Returns logits (B, n_classes) in the parameters' dtype."""
        packed = self.backbone.pack(input_ids, lengths)
        _, state = self.backbone.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n); GRU: h_n
        # h_n: (layers * directions, B, H), in the original batch order (pack unsorts it).
        last_layer = h_n[-self.backbone.n_directions :]  # (directions, B, H)
        sentence = last_layer.transpose(0, 1).reshape(input_ids.shape[0], -1)  # (B, directions * H)
        logits: torch.Tensor = self.head(self.backbone.dropout(sentence))  # (B, n_classes)
        return logits


class RNNTagger(nn.Module):
    """Right-padded token ids ``(B, T)`` + lengths ``(B,)`` -> per-position logits ``(B, T, n_tags)``.

    Positions at or after a row's length hold the head's output for a zero state (its bias):
    leave them out of the loss and the metrics.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        n_tags: int,
        *,
        cell: Literal["lstm", "gru"] = "lstm",
        bidirectional: bool = True,
        num_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if n_tags < 1:
            raise ValueError(f"n_tags must be >= 1, got {n_tags}")
        self.backbone = _RNNBackbone(
            vocab_size,
            embed_dim,
            hidden_size,
            cell=cell,
            bidirectional=bidirectional,
            num_layers=num_layers,
            dropout=dropout,
            pad_id=pad_id,
        )
        self.head = nn.Linear(self.backbone.output_size, n_tags)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``input_ids`` (B, T) integer, right-padded; ``lengths`` (B,) with ``1 <= lengths <= T``.
        Returns logits (B, T, n_tags)."""
        packed = self.backbone.pack(input_ids, lengths)
        outputs, _ = self.backbone.rnn(packed)
        padded, _ = pad_packed_sequence(outputs, batch_first=True, total_length=input_ids.shape[1])  # (B, T, dirs*H)
        logits: torch.Tensor = self.head(self.backbone.dropout(padded))  # (B, T, n_tags)
        return logits
