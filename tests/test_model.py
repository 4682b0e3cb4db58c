import math

import numpy as np
import pytest
import torch

from models.classifier import Classifier, as_batch
from models.early import THRESHOLDS, StoppingRule, best_rule, harmonic_mean, outcomes
from models.lstm import Ensemble, LSTMConfig, SequenceLSTM, SeriesShape, steps_of
from models.train import (
    STEP_LOSSES,
    Evaluation,
    Fold,
    SeriesTensors,
    build,
    epoch_samples,
    evaluate,
    evaluate_probs,
    fit,
    predict_proba,
    sequence_loss,
    share_steps,
    step_weights,
    train_epoch,
)

ROWS, PIXELS, CLASSES = 28, 28, 10
DIGITS = SeriesShape(PIXELS, CLASSES, (0.0,) * PIXELS, (255.0,) * PIXELS)


def make(shape: SeriesShape = DIGITS, **overrides) -> SequenceLSTM:
    torch.manual_seed(0)
    return SequenceLSTM(LSTMConfig(**{"num_layers": 2, "hidden_size": 24, **overrides}), shape)


def series_shape(features: int = 3, classes: int = 4) -> SeriesShape:
    return SeriesShape(features, classes, (0.5,) * features, (2.0,) * features)


def whole(values: torch.Tensor, labels: torch.Tensor) -> SeriesTensors:
    return SeriesTensors(values, torch.full((len(values),), values.shape[1]), labels)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_logits_at_every_step(num_layers):
    model = make(num_layers=num_layers)
    logits = model(torch.rand(5, ROWS, PIXELS) * 255)
    assert logits.shape == (5, ROWS, CLASSES)


@pytest.mark.parametrize(("length", "patch", "steps"), [(150, 4, 38), (24, 1, 24), (7, 8, 1)])
def test_a_patch_reads_that_many_time_points_per_step(length, patch, steps):
    model = make(series_shape(), patch=patch)
    assert model(torch.randn(2, length, 3)).shape == (2, steps, 4)
    assert model.input_proj.in_features == 3 * patch
    assert steps_of(torch.tensor([length]), patch).item() == steps


@pytest.mark.parametrize("forget_bias", [0.0, 1.0, 2.5])
def test_forget_gate_bias_sums_to_chosen_value(forget_bias):
    model = make(num_layers=3, forget_bias=forget_bias)
    h = model.config.hidden_size
    for layer in range(3):
        b_ih = getattr(model.lstm, f"bias_ih_l{layer}")
        b_hh = getattr(model.lstm, f"bias_hh_l{layer}")
        total = b_ih + b_hh  # gates (i, f, g, o), each of size h
        assert torch.allclose(total[h : 2 * h], torch.full((h,), forget_bias))
        # The other gates start at zero, as in the tutorial's TensorFlow cell.
        assert torch.count_nonzero(total[:h]) == 0
        assert torch.count_nonzero(total[2 * h :]) == 0


def test_dropout_between_layers_only_with_several_layers():
    assert make(num_layers=1, dropout=0.4).lstm.dropout == 0.0
    assert make(num_layers=3, dropout=0.4).lstm.dropout == 0.4
    assert make(num_layers=1, dropout=0.4).output_dropout.p == 0.4


def test_dropout_acts_in_training_not_in_eval():
    model = make(num_layers=2, dropout=0.5)
    x = torch.rand(8, ROWS, PIXELS)
    model.eval()
    assert torch.equal(model(x), model(x))  # deterministic: no dropout at evaluation
    model.train()
    assert not torch.equal(model(x), model(x))


def test_output_at_step_t_depends_only_on_steps_up_to_t():
    model = make().eval()
    x = torch.rand(2, ROWS, PIXELS) * 255
    changed = x.clone()
    changed[:, 20:] = 0.0  # change only rows 21..28
    a, b = model(x), model(changed)
    assert torch.equal(a[:, :20], b[:, :20])
    assert not torch.equal(a[:, 20:], b[:, 20:])


def test_the_model_scales_raw_values_with_its_own_buffers():
    shape = SeriesShape(2, 3, (10.0, -5.0), (2.0, 4.0))
    model = make(shape).eval()
    assert torch.equal(model.shift, torch.tensor([10.0, -5.0]))
    raw = torch.randn(4, 9, 2) * torch.tensor([2.0, 4.0]) + torch.tensor([10.0, -5.0])
    # The same network fed pre-scaled values through unit buffers answers the same.
    plain = SequenceLSTM(model.config, SeriesShape(2, 3, (0.0, 0.0), (1.0, 1.0))).eval()
    plain.load_state_dict({**model.state_dict(), "shift": torch.zeros(2), "scale": torch.ones(2)})
    scaled = (raw - torch.tensor([10.0, -5.0])) / torch.tensor([2.0, 4.0])
    assert torch.allclose(model(raw), plain(scaled), atol=1e-6)
    # The scaling travels in the state_dict: a model loaded from it needs nothing else.
    again = SequenceLSTM(model.config, SeriesShape(2, 3, (0.0, 0.0), (1.0, 1.0)))
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.eval()(raw), model(raw))


@pytest.mark.parametrize("patch", [1, 3])
def test_padding_never_changes_a_prediction(patch):
    """A series' scores after each of its own steps are the same alone, padded with
    zeros, or padded with garbage next to longer series in one batch."""
    model = make(series_shape(), patch=patch).eval()
    short = torch.randn(1, 10, 3)
    alone = model(short, torch.tensor([10]))  # (1, S, C)
    batch = torch.randn(3, 17, 3) * 50  # garbage everywhere, then the short series
    batch[1, :10] = short[0]
    lengths = torch.tensor([17, 10, 13])
    together = model(batch, lengths)
    own = steps_of(torch.tensor(10), patch).item()
    assert torch.allclose(together[1, :own], alone[0, :own], atol=1e-6)
    # And the other rows do not depend on the short series' padding either.
    batch[1, 10:] = -7.0
    assert torch.allclose(model(batch, lengths)[1, :own], alone[0, :own], atol=1e-6)


def test_evaluation_judges_each_series_at_its_own_end():
    model = make(series_shape(classes=3), patch=2).eval()
    values = torch.randn(5, 12, 3)
    lengths = torch.tensor([12, 3, 7, 12, 1])
    labels = torch.tensor([0, 1, 2, 0, 1])
    probs = predict_proba(model, SeriesTensors(values, lengths, labels))
    result = evaluate_probs(probs, labels, lengths, patch=2)
    ends = steps_of(lengths, 2) - 1
    final = probs[torch.arange(5), ends].argmax(-1)
    assert result.acc == pytest.approx(float((final == labels).double().mean()))
    # After the last step every series has been read whole: the curves end at acc.
    assert result.acc_by_step[-1] == pytest.approx(result.acc)
    assert result.acc_by_share[-1] == pytest.approx(result.acc)
    # Step 1 of a 1-point series is its end; its answer holds from then on.
    assert len(result.acc_by_step) == 6 and len(result.acc_by_share) == 20


def test_shares_read_round_up_to_whole_time_points_and_steps():
    lengths = torch.tensor([20, 7])
    steps = share_steps(lengths, patch=1)  # (2, 20): at 5%, 10%, ... 100%
    assert steps[0].tolist() == list(range(1, 21))
    assert steps[1, 0].item() == 1 and steps[1, -1].item() == 7
    assert steps[1, 9].item() == 4  # half of 7 points: 4 read
    assert share_steps(lengths, patch=4)[0, -1].item() == 5


def test_the_area_is_each_series_share_of_its_steps_read_right():
    probs = torch.zeros(2, 4, 2)
    probs[..., 0] = 1.0  # always says class 0
    labels, lengths = torch.tensor([0, 1]), torch.tensor([4, 2])
    result = evaluate_probs(probs, labels, lengths, patch=1)
    assert result.area == pytest.approx(0.5)  # (4/4 + 0/2) / 2
    assert result.acc_by_step == [0.5] * 4


def test_training_learns_a_separable_toy_problem():
    # Class = which of the 10 first pixels of the last row is lit.
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (512,))
    images = torch.zeros(512, ROWS, PIXELS, dtype=torch.uint8)
    images[torch.arange(512), -1, labels] = 255
    model = make(num_layers=1, hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = whole(images, labels)
    before = evaluate(model, data).acc
    for _ in range(15):
        loss = train_epoch(model, optimizer, data, batch_size=64)
    after = evaluate(model, data)
    assert before < 0.3 and after.acc > 0.95 and loss < 0.5
    assert len(after.acc_by_step) == ROWS
    # Nothing tells the classes apart before the last row.
    assert max(after.acc_by_step[:-1]) < 0.5


def test_a_short_epoch_reads_at_least_the_minimum_series():
    assert epoch_samples(40) == 4000
    assert epoch_samples(40, folds=5) == 800
    assert epoch_samples(4000) == 4000 and epoch_samples(54_000, folds=1) == 54_000
    model = make(series_shape())
    seen = []
    model.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    data = SeriesTensors(torch.randn(10, 5, 3), torch.full((10,), 5), torch.randint(0, 4, (10,)))
    train_epoch(model, torch.optim.SGD(model.parameters(), 0.01), data, 4, samples=37)
    assert sum(seen) == 37


def test_an_epoch_returns_the_mean_loss_over_every_series_it_read():
    model = make(series_shape())
    data = SeriesTensors(torch.randn(10, 5, 3), torch.full((10,), 5), torch.randint(0, 4, (10,)))
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # the model stays as it is
    mean = train_epoch(model, frozen, data, batch_size=4)  # batches of 4, 4 and 2
    model.train()  # as in the epoch (dropout 0: the same scores)
    with torch.no_grad():
        expected = sequence_loss(model(data.values), data.labels, "last")
    assert mean == pytest.approx(float(expected), rel=1e-5)


def test_a_resumed_fit_sees_the_same_batches_as_one_that_never_stopped():
    shape = series_shape(classes=2)
    config = {"num_layers": 1, "hidden_size": 8, "dropout": 0.0, "forget_bias": 1.0, "lr": 1e-2}
    data = SeriesTensors(torch.randn(40, 5, 3), torch.full((40,), 5), torch.tensor([0, 1] * 20))

    def fold() -> Fold:
        model, optimizer = build(config, shape, seed=0)
        return Fold(model, optimizer, data, data)

    whole, resumed = fold(), fold()
    list(fit([whole], batch_size=8, epochs=2, seed=3))
    list(fit([resumed], batch_size=8, epochs=1, seed=3))
    torch.rand(100)  # other work between the sessions moves torch's global generator
    list(fit([resumed], batch_size=8, epochs=2, seed=3, start_epoch=2))
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_predict_proba_steps_sum_to_one():
    probs = predict_proba(make(), torch.rand(3, ROWS, PIXELS))
    assert probs.shape == (3, ROWS, CLASSES)
    assert torch.allclose(probs.sum(-1), torch.ones(3, ROWS))


def test_bad_config_rejected():
    bad = {
        "num_layers": (0, "num_layers must be >= 1, got 0"),
        "hidden_size": (0, "hidden_size must be >= 1, got 0"),
        "dropout": (1.0, r"dropout must be in \[0, 1\), got 1.0"),
        "patch": (0, "patch must be >= 1, got 0"),
    }
    for name, (value, says) in bad.items():
        with pytest.raises(ValueError, match=f"^{says}$"):
            LSTMConfig(**{name: value})
    LSTMConfig(num_layers=1, hidden_size=1, dropout=0.0, patch=1)  # the smallest there is
    with pytest.raises(ValueError, match="^shift and scale need one value per feature$"):
        SeriesShape(2, 3, (0.0,), (1.0, 1.0))


def test_the_validation_loss_is_the_mean_log_loss_at_each_series_end():
    probs = torch.full((2, 3, 2), 0.5)
    probs[0, 2] = torch.tensor([0.8, 0.2])  # series 0 ends at step 3, series 1 at step 1
    result = evaluate_probs(probs, torch.tensor([0, 1]), torch.tensor([3, 1]), patch=1)
    assert result.loss == pytest.approx((-math.log(0.8) - math.log(0.5)) / 2)


def test_step_weights_sum_to_one_and_put_the_loss_where_named():
    def weights(loss: str) -> torch.Tensor:
        return step_weights(loss, torch.tensor([ROWS]), ROWS)[0]

    assert weights("last").tolist() == [0.0] * (ROWS - 1) + [1.0]
    assert torch.allclose(weights("uniform"), torch.full((ROWS,), 1 / ROWS))
    rising = weights("all")
    assert rising.sum().item() == pytest.approx(1.0)
    assert rising[-1].item() == pytest.approx(ROWS * rising[0].item())
    assert rising[9].item() == pytest.approx(10 * rising[0].item())
    mixed = weights("mixed")
    assert torch.allclose(mixed, (weights("last") + rising) / 2)
    # A shorter series weighs its own steps only, each row summing to 1.
    short = step_weights("all", torch.tensor([3, ROWS]), ROWS)
    assert short[0].tolist()[:3] == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    assert short[0, 3:].abs().sum() == 0 and torch.allclose(short.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="unknown loss"):
        step_weights("first", torch.tensor([ROWS]), ROWS)


def test_every_step_losses_weigh_each_steps_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(4, ROWS, CLASSES), torch.randint(0, CLASSES, (4,))
    by_row = [torch.nn.functional.cross_entropy(logits[:, t], labels) for t in range(ROWS)]
    assert sequence_loss(logits, labels, "uniform").item() == pytest.approx(
        sum(v.item() for v in by_row) / ROWS, rel=1e-5
    )
    rising = sum(t * v.item() for t, v in enumerate(by_row, start=1)) / sum(range(1, ROWS + 1))
    assert sequence_loss(logits, labels, "all").item() == pytest.approx(rising, rel=1e-5)
    assert sequence_loss(logits, labels, "last").item() == pytest.approx(by_row[-1].item())
    # With every series full length, the per-series path gives the same numbers.
    full = torch.full((4,), ROWS)
    for loss in STEP_LOSSES:
        assert sequence_loss(logits, labels, loss, full).item() == pytest.approx(
            sequence_loss(logits, labels, loss).item(), rel=1e-5
        )


@pytest.mark.parametrize("loss", STEP_LOSSES)
def test_a_series_loss_looks_at_its_own_steps_only(loss):
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 6, 3), torch.tensor([1, 2])
    steps = torch.tensor([6, 3])
    base = sequence_loss(logits, labels, loss, steps)
    changed = logits.clone()
    changed[1, 3:] = 100.0  # the second series' steps past its end
    assert sequence_loss(changed, labels, loss, steps).item() == pytest.approx(base.item())
    # The short series alone: its own weights over its 3 steps.
    alone = sequence_loss(logits[1:, :3], labels[1:], loss)
    first = sequence_loss(logits[:1], labels[:1], loss)
    assert base.item() == pytest.approx((alone.item() + first.item()) / 2, rel=1e-5)


def test_an_every_step_loss_changes_the_gradient_early_steps_get():
    model = make(num_layers=1, hidden_size=16)
    x, labels = torch.rand(8, ROWS, PIXELS) * 255, torch.randint(0, CLASSES, (8,))
    grads = {}
    for loss in ("last", "all"):
        model.zero_grad()
        sequence_loss(model(x), labels, loss).backward()
        grads[loss] = model.classifier.weight.grad.clone()
    # The classifier reads every step's hidden state: only the every-step loss asks it
    # about step 1, so the two gradients differ.
    assert not torch.allclose(grads["last"], grads["all"])


def test_an_every_step_loss_teaches_the_model_to_answer_as_soon_as_it_can():
    # Class = which of the first 10 pixels of row 10 is lit; nothing changes after it.
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (512,))
    images = torch.zeros(512, ROWS, PIXELS, dtype=torch.uint8)
    images[torch.arange(512), 9, labels] = 255
    data = whole(images, labels)
    model = make(num_layers=1, hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        train_epoch(model, optimizer, data, batch_size=64, loss="uniform")
    result = evaluate(model, data)
    # Guessing until row 9, sure from row 10 (where the last-row loss never asks).
    assert max(result.acc_by_step[:9]) < 0.3
    assert result.first_step_reaching(0.9) == 10 and result.acc > 0.9


def test_anytime_figures_of_an_evaluation():
    curve = [0.1] * 10 + [0.5] * 10 + [0.95] * 8
    early = best_rule(
        outcomes(torch.full((1, 2, 2), 0.5), torch.tensor([0]), *[torch.tensor([2])] * 2, 1)
    )
    result = Evaluation(0.1, 0.95, curve, curve, 0.4, early)
    assert result.auc_steps == pytest.approx((1.0 + 5.0 + 7.6) / ROWS)
    assert (result.first_step_reaching(0.5), result.first_step_reaching(0.9)) == (11, 21)
    assert result.first_step_reaching(0.99) is None


def test_harmonic_mean_of_accuracy_and_earliness():
    assert harmonic_mean(0.93, 0.245) == pytest.approx(0.833, abs=1e-3)  # SR2-CF1 on GunPoint
    assert harmonic_mean(1.0, 0.0) == 1.0
    assert harmonic_mean(0.0, 1.0) == 0.0


def test_the_stopping_rule_decides_at_the_first_confident_step_or_the_last():
    probs = torch.tensor(
        [
            [[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]],  # sure of class 0 at step 2
            [[0.5, 0.5], [0.4, 0.6], [0.3, 0.7]],  # never sure: decides at its end
            [[0.55, 0.45], [0.5, 0.5], [0.0, 1.0]],  # 2 steps long: its step 3 is padding
        ]
    )
    steps = torch.tensor([3, 3, 2])
    classes, at = StoppingRule(0.85).decide(probs, steps)
    assert at[0].tolist() == [2, 3, 2]
    assert classes[0].tolist() == [0, 1, 0]


def test_the_trade_off_curve_and_the_best_threshold():
    # Series of 4 points: confident and right after step 1 for half of them; the others
    # only become sure (and right) at step 4.
    probs = torch.full((4, 4, 2), 0.5)
    labels = torch.tensor([0, 0, 1, 1])
    probs[:2, :, 0], probs[:2, :, 1] = 0.95, 0.05
    probs[2:, :3, 0], probs[2:, :3, 1] = 0.6, 0.4  # leaning wrong while unsure
    probs[2:, 3, 0], probs[2:, 3, 1] = 0.01, 0.99
    lengths = torch.full((4,), 4)
    curve = {r.threshold: r for r in outcomes(probs, labels, steps_of(lengths, 1), lengths, 1)}
    at_once = curve[0.0]  # decides at step 1: the unsure half wrong
    assert (at_once.accuracy, at_once.earliness) == (0.5, 0.25)
    patient = curve[0.9]  # waits for 0.9: half decide at step 1, half at step 4
    assert patient.accuracy == 1.0 and patient.earliness == pytest.approx((0.25 + 1.0) / 2)
    never = curve[1.1]
    assert never.earliness == 1.0 and never.hm == 0.0
    # Deciding at once (HM 0.6) beats waiting for certainty (HM 0.545) here.
    best = best_rule(list(curve.values()))
    assert best.hm == pytest.approx(0.6)
    assert harmonic_mean(1.0, 0.625) < 0.6
    assert best.threshold <= 0.6
    assert set(curve) == set(THRESHOLDS)


def test_earliness_counts_time_points_not_steps():
    probs = torch.tensor([[[0.99, 0.01], [0.99, 0.01]]])  # 2 steps of patch 4
    lengths = torch.tensor([6])  # 6 points: step 1 reads 4 of them
    result = outcomes(probs, torch.tensor([0]), steps_of(lengths, 4), lengths, 4, (0.9,))[0]
    assert result.earliness == pytest.approx(4 / 6)


def test_fit_judges_the_folds_out_of_fold():
    torch.manual_seed(0)
    shape = series_shape(classes=2)
    config = {"num_layers": 1, "hidden_size": 8, "dropout": 0.0, "forget_bias": 1.0, "lr": 1e-2}
    folds = []
    for k in range(2):
        model, optimizer = build(config, shape, seed=k)
        data = SeriesTensors(torch.randn(6, 5, 3), torch.full((6,), 5), torch.tensor([0, 1] * 3))
        val = SeriesTensors(
            torch.randn(3 + k, 5, 3), torch.full((3 + k,), 5), torch.zeros(3 + k).long()
        )
        folds.append(Fold(model, optimizer, data, val))
    (result,) = fit(folds, batch_size=4, epochs=1, seed=0)
    assert not result.diverged
    # 7 validation series in all, each judged once: accuracy in sevenths.
    assert math.isclose(result.val.acc * 7, round(result.val.acc * 7))


def test_an_ensemble_averages_its_members_probabilities():
    a, b = make(series_shape()).eval(), make(series_shape(), num_layers=1).eval()
    x = torch.randn(2, 6, 3)
    ensemble = Ensemble([a, b]).eval()
    expected = (a(x).softmax(-1) + b(x).softmax(-1)) / 2
    assert torch.allclose(ensemble(x).exp(), expected, atol=1e-6)
    # Each member reads each series to its own end only.
    lengths = torch.tensor([6, 3])
    x[1, 3:] = 100.0  # past the second series' end
    expected = (a(x, lengths).softmax(-1) + b(x, lengths).softmax(-1)) / 2
    assert torch.allclose(ensemble(x, lengths).exp(), expected, atol=1e-6)
    assert not torch.allclose(ensemble(x, lengths), ensemble(x))


def test_a_config_is_read_back_from_a_trial_s_config():
    config = LSTMConfig(num_layers=3, hidden_size=40, dropout=0.3, forget_bias=0.5, patch=4)
    trial = {**config.to_dict(), "lr": 1e-3, "batch_size": 64}  # a Tune trial's config
    assert LSTMConfig.from_dict(trial) == config
    del trial["patch"]  # a space that does not search it
    assert LSTMConfig.from_dict(trial).patch == 1


def test_a_classifier_takes_series_as_users_have_them():
    model = make(series_shape(features=1, classes=3)).eval()
    winner = Classifier(model, ["walk", "run", "sit"], StoppingRule(0.0))
    arrays = [np.random.randn(7), np.random.randn(4)]  # a list of unequal univariate series
    labels = winner.predict(arrays)
    assert set(labels) <= {"walk", "run", "sit"} and len(labels) == 2
    values, lengths = as_batch(arrays)
    assert values.shape == (2, 7, 1) and lengths.tolist() == [7, 4]
    # The same series as one padded array with lengths: the same answers.
    padded = np.zeros((2, 7))
    padded[0], padded[1, :4] = arrays[0], arrays[1]
    assert winner.predict(padded, lengths=[7, 4]) == labels
    assert winner.predict_proba(padded, lengths=[7, 4]).shape == (2, 3)
    classes, read = winner.predict_early(arrays)
    assert read.tolist() == [1 / 7, 1 / 4]  # threshold 0: decides after the first point
    # A rule never sure enough reads each series to its own end, never past it.
    # (An untrained model's bias answers one class for everything: without it, and with
    # the weights scaled up, the answers depend on the values read.)
    model = make(series_shape(features=1, classes=3), num_layers=1).eval()
    with torch.no_grad():
        model.classifier.bias.zero_()
        model.classifier.weight.mul_(100)
    patient = Classifier(model, ["walk", "run", "sit"], StoppingRule(1.1))
    short = np.random.default_rng(0).normal(size=(12, 2)) * 3
    junk = np.concatenate([short, np.linspace(-50, 50, 12 * 5).reshape(12, 5)], axis=1)
    assert patient.predict(list(short)) != patient.predict(list(junk))  # junk would tell
    answers = patient.predict_early(junk, lengths=[2] * 12)[0]  # (12, 7): 2 points each
    assert answers == patient.predict(list(short))
    with pytest.raises(ValueError, match="reads 1 value"):
        winner.predict(np.zeros((2, 5, 2)))


def unequal_series() -> tuple[list[np.ndarray], np.ndarray]:
    """Two univariate series of 7 and 4 points, as a list and as one zero-padded array."""
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=7), rng.normal(size=4)]
    padded = np.zeros((2, 7))
    padded[0], padded[1, :4] = arrays[0], arrays[1]
    return arrays, padded


def test_a_classifier_reads_each_series_to_its_own_end_and_no_further():
    model = make(series_shape(features=1, classes=3)).eval()
    winner = Classifier(model, ["walk", "run", "sit"], StoppingRule(0.0))
    arrays, padded = unequal_series()
    by_step, steps = winner.proba_by_step(arrays)
    assert steps.tolist() == [7, 4]
    # After each series' own last point: row 1 after its 4th step, not its 3rd or 7th.
    expected = torch.stack([by_step[0, 6], by_step[1, 3]]).numpy()
    assert np.allclose(winner.predict_proba(arrays), expected, atol=1e-6)
    assert np.allclose(winner.predict_proba(padded, lengths=[7, 4]), expected, atol=1e-6)
    # Without its length, the second series' padding is read as values.
    assert not np.allclose(winner.predict_proba(padded)[1], expected[1], atol=1e-3)
    early, read = winner.predict_early(padded, lengths=[7, 4])
    assert (early, read.tolist()) == (winner.predict_early(arrays)[0], [1 / 7, 1 / 4])


def test_predict_names_the_most_probable_class_of_each_series_read_to_its_end(monkeypatch):
    winner = Classifier(make(series_shape(features=1, classes=3)), ["walk", "run", "sit"])
    asked = []

    def predict_proba(series, lengths=None):
        asked.append(lengths)
        return np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])

    monkeypatch.setattr(winner, "predict_proba", predict_proba)
    assert winner.predict(np.zeros((2, 7)), lengths=[7, 4]) == ["sit", "walk"]
    assert asked == [[7, 4]]


def test_predict_early_says_what_share_of_each_series_it_read_in_time_points():
    # Two points per step: a decision at step 1 has read 2 of 7 points, and of a series
    # of 1 point, all of it.
    model = make(series_shape(features=1, classes=3), patch=2).eval()
    winner = Classifier(model, ["walk", "run", "sit"], StoppingRule(0.0))
    labels, read = winner.predict_early([np.ones(7), np.ones(1)])
    assert read.tolist() == [2 / 7, 1.0] and len(labels) == 2
    with pytest.raises(ValueError, match="^this model has no stopping rule$"):
        Classifier(model, ["walk", "run", "sit"]).predict_early([np.ones(7)])


@pytest.mark.parametrize(
    "series",
    [
        np.arange(14).reshape(2, 7),  # integers
        np.zeros((2, 7, 1), dtype=np.float64),
        [np.arange(7), np.arange(4)],
        [np.zeros((7, 1)), np.zeros(1)],  # a series of one point is a series
    ],
)
def test_series_become_float32_values_with_integer_lengths(series):
    values, lengths = as_batch(series)
    assert values.dtype == torch.float32 and values.shape[::2] == (2, 1)
    assert lengths.dtype == torch.long
    given = as_batch(np.zeros((2, 7)), lengths=np.array([7.0, 4.0]))[1]
    assert given.dtype == torch.long and given.tolist() == [7, 4]


@pytest.mark.parametrize(
    ("series", "lengths", "message"),
    [
        (
            np.zeros((2, 7, 1, 1)),
            None,
            r"series must be \(N, T, F\) or \(N, T\), got \(2, 7, 1, 1\)$",
        ),
        (np.zeros((2, 7)), [7], r"lengths must be \(2,\) values in 1\.\.7$"),
        (np.zeros((2, 7)), [7, 0], r"lengths must be \(2,\) values in 1\.\.7$"),
        (np.zeros((2, 7)), [8, 4], r"lengths must be \(2,\) values in 1\.\.7$"),
        (
            [np.zeros(7)],
            [7],
            "^lengths go with an array of series; a list's series have their own$",
        ),
        ([], None, r"^a list of series holds \(T_i, F\) or \(T_i,\) arrays, none empty$"),
        ([np.zeros(7), np.zeros(0)], None, "none empty$"),
        ([np.zeros((7, 1, 1))], None, "none empty$"),
    ],
)
def test_series_a_model_cannot_read_are_refused_saying_why(series, lengths, message):
    with pytest.raises(ValueError, match=message):
        as_batch(series, lengths)
    as_batch(np.zeros((2, 7)), lengths=[1, 7])  # the edges themselves are fine


def test_the_cli_knows_the_same_losses_as_the_training_loop():
    from search.config import STEP_LOSSES as FLAG_CHOICES

    assert FLAG_CHOICES == STEP_LOSSES


def test_a_series_one_step_long_is_decided_at_its_only_step():
    probs = torch.full((2, 3, 2), 0.5)  # never sure: each series decides at its end
    probs[0, 0] = torch.tensor([0.6, 0.4])
    probs[0, 1] = torch.tensor([0.4, 0.6])  # past series 0's end: never read
    classes, at = StoppingRule(0.9).decide(probs, torch.tensor([1, 3]))
    assert at.tolist() == [[1, 3]] and classes[0, 0] == 0  # (rules, series)
