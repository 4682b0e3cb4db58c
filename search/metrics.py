"""Names of what every epoch of a trial reports: one place for each, imported elsewhere."""

VAL_ACC = "val_acc"  # the objective: accuracy after the last row, on validation
MODE = "max"
VAL_LOSS = "val_loss"
VAL_ACC_BY_STEP = "val_acc_by_step"  # 28 accuracies, after rows 1..28
# Anytime recognition, from val_acc_by_step: how well a model knows a digit part-read.
VAL_AUC_ROWS = "val_auc_rows"  # mean accuracy over rows 1..28 (area under the curve)
VAL_ROWS_TO_50 = "val_rows_to_50"  # first row with >= 50% accuracy (NaN: never)
VAL_ROWS_TO_90 = "val_rows_to_90"  # first row with >= 90% accuracy (NaN: never)
PARAM_COUNT = "params"  # the model's parameter count
TRAIN_LOSS = "train_loss"
EPOCH = "epoch"  # ASHA's time axis; survives a restore from checkpoint, unlike Tune's count
EPOCH_SECONDS = "epoch_seconds"
# Training and evaluation seconds of all the trial's epochs so far, also across a restore:
# ASHA's time axis under --asha-time seconds (search.cost).
TRAIN_SECONDS = "train_seconds"
NODE = "node"  # Ray node id that ran the epoch
DEVICE = "device"  # what trained it: "cuda", or "cpu" (also for a GPU share without CUDA)
DIVERGED = "diverged"  # True on the one report of a trial whose loss went NaN/inf

# After the search, the best few configurations are retrained on other folds (confirm.py).
CONFIRMED_ACC = "confirmed_acc"  # accuracy over all the folds' validation digits
CONFIRMED_LOW = "confirmed_low"  # its 95% interval (Wilson)
CONFIRMED_HIGH = "confirmed_high"
CONFIRMED_FOLD_ACCS = "confirmed_fold_accs"  # each fold's accuracy (JSON list)
CONFIRMED_AUC = "confirmed_auc_rows"  # area under the accuracy-by-row curve, all folds
CONFIRMED_AUC_LOW = "confirmed_auc_low"  # its 95% interval (normal, over digits)
CONFIRMED_AUC_HIGH = "confirmed_auc_high"

# What a search can optimise (`--objective`): a name -> (metric, mode). A multi-objective
# search names two, joined by "+"; the first is primary: ASHA stops trials on it, each
# trial's best epoch and the winner are chosen by it.
OBJECTIVES = {
    "accuracy": (VAL_ACC, "max"),
    "anytime": (VAL_AUC_ROWS, "max"),
    "size": (PARAM_COUNT, "min"),
}
OBJECTIVE_CHOICES = ("accuracy", "anytime", "accuracy+anytime", "accuracy+size")
# How the report and the summary name each objective's figure.
METRIC_WORDS = {
    VAL_ACC: "accuracy",
    VAL_AUC_ROWS: "area under the row curve",
    PARAM_COUNT: "parameters",
}
# Each ranked metric's confirmed figure (the confirmation retrains and measures it again).
CONFIRMED_OF = {VAL_ACC: CONFIRMED_ACC, VAL_AUC_ROWS: CONFIRMED_AUC}


def objective_metrics(objective: str) -> list[tuple[str, str]]:
    """ "accuracy+size" -> [("val_acc", "max"), ("params", "min")]."""
    return [OBJECTIVES[name] for name in objective.split("+")]


def primary_metric(objective: str) -> str:
    return objective_metrics(objective)[0][0]
