"""The row-by-row MNIST LSTM: the tutorial's network, generalised over depth and width.

An image is read as a sequence of 28 rows of 28 pixels. Every row goes through a linear
projection, then a stack of LSTM layers; a shared output layer turns the hidden state at
*every* row into class logits, so one forward pass says how well the model knows the
digit after 1, 2, ... 28 rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ROWS = 28  # timesteps: one image row per step
ROW_PIXELS = 28  # features per step
NUM_CLASSES = 10


@dataclass(frozen=True)
class LSTMConfig:
    """Plain values that fully determine the network's shape and initialisation."""

    num_layers: int = 1
    hidden_size: int = 128
    dropout: float = 0.0
    forget_bias: float = 1.0

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {self.hidden_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_dict(cls, values: dict) -> LSTMConfig:
        """Pick this config's fields out of a larger dict (e.g. a Tune trial config)."""
        return cls(
            num_layers=int(values["num_layers"]),
            hidden_size=int(values["hidden_size"]),
            dropout=float(values["dropout"]),
            forget_bias=float(values["forget_bias"]),
        )

    def to_dict(self) -> dict:
        return asdict(self)


class RowLSTM(nn.Module):
    """Input projection -> multi-layer LSTM -> dropout -> per-timestep classifier."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.input_proj = nn.Linear(ROW_PIXELS, h)
        # nn.LSTM applies its dropout only *between* layers (never after the last one),
        # and warns if asked to with a single layer, hence the explicit 0.
        self.lstm = nn.LSTM(
            input_size=h,
            hidden_size=h,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(h, NUM_CLASSES)
        self._init_forget_bias(config.forget_bias)

    def _init_forget_bias(self, forget_bias: float) -> None:
        """Zero all gate biases, then give the forget gate `forget_bias`.

        As in TensorFlow's LSTM cell, a positive forget bias makes the cell remember by
        default early in training. PyTorch keeps two bias vectors per layer
        (`bias_ih`, `bias_hh`) that are added together, each laid out as the gates
        (i, f, g, o); the whole forget bias goes into `bias_ih` so the sum is exact.
        """
        h = self.config.hidden_size
        with torch.no_grad():
            for name, param in self.lstm.named_parameters():
                if name.startswith("bias_"):
                    param.zero_()
                    if name.startswith("bias_ih"):
                        param[h : 2 * h].fill_(forget_bias)

    @property
    def parameter_count(self) -> int:
        """Weights and biases, all trained: the model's size (`--objective accuracy+size`)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 28, 28) float in [0, 1] -> logits (B, 28, 10), one set per row read."""
        x = self.input_proj(images)  # (B, T, H)
        x, _ = self.lstm(x)  # (B, T, H)
        x = self.output_dropout(x)
        return self.classifier(x)  # (B, T, C)


class Ensemble(nn.Module):
    """Several trained RowLSTMs of one configuration, read as one model.

    Single trainings of a configuration differ by about a point of accuracy from one
    initialisation to the next; averaging their class probabilities removes much of that.
    Returns log-probabilities, so `.argmax(-1)` and `.softmax(-1)` work as on logits.
    """

    def __init__(self, members: list[RowLSTM]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 28, 28) float in [0, 1] -> log of the mean probabilities (B, 28, 10)."""
        probs = torch.stack([m(images).softmax(-1) for m in self.members])  # (M, B, T, C)
        return probs.mean(0).log()  # (B, T, C)
