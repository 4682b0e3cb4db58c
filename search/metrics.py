"""Names of what every epoch of a trial reports: one place for each, imported elsewhere."""

VAL_ACC = "val_acc"  # the objective: accuracy after the last row, on validation
MODE = "max"
VAL_LOSS = "val_loss"
VAL_ACC_BY_STEP = "val_acc_by_step"  # 28 accuracies, after rows 1..28
TRAIN_LOSS = "train_loss"
EPOCH = "epoch"  # ASHA's time axis; survives a restore from checkpoint, unlike Tune's count
EPOCH_SECONDS = "epoch_seconds"
NODE = "node"  # Ray node id that ran the epoch
DIVERGED = "diverged"  # True on the one report of a trial whose loss went NaN/inf

# After the search, the best few configurations are retrained on other folds (confirm.py).
CONFIRMED_ACC = "confirmed_acc"  # accuracy over all the folds' validation digits
CONFIRMED_LOW = "confirmed_low"  # its 95% interval (Wilson)
CONFIRMED_HIGH = "confirmed_high"
CONFIRMED_FOLD_ACCS = "confirmed_fold_accs"  # each fold's accuracy (JSON list)
