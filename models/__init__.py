"""Row-by-row MNIST LSTMs and their pure-torch training loop."""

from models.lstm import NUM_CLASSES, ROW_PIXELS, ROWS, Ensemble, LSTMConfig, RowLSTM

__all__ = ["NUM_CLASSES", "ROWS", "ROW_PIXELS", "Ensemble", "LSTMConfig", "RowLSTM"]
