"""Sequence LSTMs, their pure-torch training loop, and the early classifier's rule."""

from models.lstm import Ensemble, LSTMConfig, SequenceLSTM, SeriesShape

__all__ = ["Ensemble", "LSTMConfig", "SequenceLSTM", "SeriesShape"]
