"""Names of what every epoch of a trial reports: one place for each, imported elsewhere.

A trial judged by cross-validation reports its folds' models together: every figure is
measured on all the folds' validation series, each by the model that did not train on it.
"""

VAL_ACC = "val_acc"  # the objective: accuracy after each series' last step, on validation
MODE = "max"
VAL_LOSS = "val_loss"
VAL_ACC_BY_STEP = "val_acc_by_step"  # accuracy after steps 1..S (JSON list)
VAL_ACC_BY_SHARE = "val_acc_by_share"  # after reading 5%, 10%, ... 100% of each series
# Anytime recognition: how well a model knows the class of a part-read series.
VAL_AREA = "val_area"  # mean over series of the share of its steps read right (in [0, 1])
VAL_STEPS_TO_50 = "val_steps_to_50"  # first step with >= 50% accuracy (NaN: never)
VAL_STEPS_TO_90 = "val_steps_to_90"  # first step with >= 90% accuracy (NaN: never)
# Early classification (models.early): the stopping rule whose harmonic mean of accuracy
# and earliness was best on these validation series, and its figures.
VAL_HM = "val_hm"
VAL_EARLY_ACC = "val_early_acc"
VAL_EARLINESS = "val_earliness"  # mean share of each series read before the decision
VAL_THRESHOLD = "val_threshold"  # the rule: decide once the top class has this probability
# What ASHA ranks trials by: the primary objective, ties broken by the lower validation
# loss (`rank_score`). Small validation sets tie often: 50 series give accuracies in steps
# of 0.02, and on an easy set many trials reach 1.0; ASHA would let every one of them on.
RANK_SCORE = "rank_score"
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
CONFIRMED_ACC = "confirmed_acc"  # accuracy over all the folds' validation series
CONFIRMED_LOW = "confirmed_low"  # its 95% interval (Wilson)
CONFIRMED_HIGH = "confirmed_high"
CONFIRMED_FOLD_ACCS = "confirmed_fold_accs"  # each fold's accuracy (JSON list)
CONFIRMED_AREA = "confirmed_area"  # area under the accuracy-by-step curve, all folds
CONFIRMED_AREA_LOW = "confirmed_area_low"  # its 95% interval (normal, over series)
CONFIRMED_AREA_HIGH = "confirmed_area_high"
# The search's stopping rule (the trial's threshold), applied to the folds' series.
CONFIRMED_HM = "confirmed_hm"
CONFIRMED_HM_LOW = "confirmed_hm_low"  # its 95% interval (bootstrap over series)
CONFIRMED_HM_HIGH = "confirmed_hm_high"
CONFIRMED_EARLY_ACC = "confirmed_early_acc"
CONFIRMED_EARLINESS = "confirmed_earliness"

# What a search can optimise (`--objective`): a name -> (metric, mode). A multi-objective
# search names two, joined by "+"; the first is primary: ASHA stops trials on it, each
# trial's best epoch and the winner are chosen by it.
OBJECTIVES = {
    "accuracy": (VAL_ACC, "max"),
    "anytime": (VAL_AREA, "max"),
    "early": (VAL_HM, "max"),
    "size": (PARAM_COUNT, "min"),
}
OBJECTIVE_CHOICES = ("accuracy", "anytime", "early", "accuracy+anytime", "accuracy+size")
# How the report and the summary name each objective's figure.
METRIC_WORDS = {
    VAL_ACC: "accuracy",
    VAL_AREA: "area under the accuracy-by-step curve",
    VAL_HM: "harmonic mean of early accuracy and earliness",
    PARAM_COUNT: "parameters",
}
# Each ranked metric's confirmed figure (the confirmation retrains and measures it again).
CONFIRMED_OF = {VAL_ACC: CONFIRMED_ACC, VAL_AREA: CONFIRMED_AREA, VAL_HM: CONFIRMED_HM}
# A confirmed figure's 95% interval columns.
INTERVAL_OF = {
    CONFIRMED_ACC: (CONFIRMED_LOW, CONFIRMED_HIGH),
    CONFIRMED_AREA: (CONFIRMED_AREA_LOW, CONFIRMED_AREA_HIGH),
    CONFIRMED_HM: (CONFIRMED_HM_LOW, CONFIRMED_HM_HIGH),
}


TIE_BREAK = 1e-4  # a loss of 1.0 weighs a hundredth of one series in 100


def rank_score(value: float, loss: float | None) -> float:
    """`value` of a maximised objective, less a trace of the validation `loss`: orders as
    (value, -loss) for losses under 1/TIE_BREAK times the value's smallest step."""
    return value - TIE_BREAK * min(loss, 100.0) if loss is not None else value


def objective_metrics(objective: str) -> list[tuple[str, str]]:
    """ "accuracy+size" -> [("val_acc", "max"), ("params", "min")]."""
    return [OBJECTIVES[name] for name in objective.split("+")]


def primary_metric(objective: str) -> str:
    return objective_metrics(objective)[0][0]
