import pytest
import torch

from models.lstm import NUM_CLASSES, ROWS, LSTMConfig, RowLSTM
from models.train import (
    ROW_LOSSES,
    Evaluation,
    evaluate,
    predict_proba,
    row_weights,
    sequence_loss,
    to_inputs,
    train_epoch,
)


def make(**overrides) -> RowLSTM:
    torch.manual_seed(0)
    return RowLSTM(LSTMConfig(**{"num_layers": 2, "hidden_size": 24, **overrides}))


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_logits_at_every_row(num_layers):
    model = make(num_layers=num_layers)
    logits = model(torch.rand(5, ROWS, 28))
    assert logits.shape == (5, ROWS, NUM_CLASSES)


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
    x = torch.rand(8, ROWS, 28)
    model.eval()
    assert torch.equal(model(x), model(x))  # deterministic: no dropout at evaluation
    model.train()
    assert not torch.equal(model(x), model(x))


def test_no_dropout_means_deterministic_training_forward():
    model = make(num_layers=2, dropout=0.0)
    model.train()
    x = torch.rand(8, ROWS, 28)
    assert torch.equal(model(x), model(x))


def test_output_at_row_t_depends_only_on_rows_up_to_t():
    model = make().eval()
    x = torch.rand(2, ROWS, 28)
    changed = x.clone()
    changed[:, 20:] = 0.0  # change only rows 21..28
    a, b = model(x), model(changed)
    assert torch.equal(a[:, :20], b[:, :20])
    assert not torch.equal(a[:, 20:], b[:, 20:])


def test_training_learns_a_separable_toy_problem():
    # Class = which of the 10 first pixels of the last row is lit.
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (512,))
    images = torch.zeros(512, ROWS, 28, dtype=torch.uint8)
    images[torch.arange(512), -1, labels] = 255
    model = make(num_layers=1, hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs = to_inputs(images)
    before = evaluate(model, inputs, labels).acc
    for _ in range(15):
        loss = train_epoch(model, optimizer, inputs, labels, batch_size=64)
    after = evaluate(model, inputs, labels)
    assert before < 0.3 and after.acc > 0.95 and loss < 0.5
    assert len(after.acc_by_step) == ROWS
    # Nothing tells the classes apart before the last row.
    assert max(after.acc_by_step[:-1]) < 0.5


def test_predict_proba_rows_sum_to_one():
    probs = predict_proba(make(), torch.rand(3, ROWS, 28))
    assert probs.shape == (3, ROWS, NUM_CLASSES)
    assert torch.allclose(probs.sum(-1), torch.ones(3, ROWS))


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        LSTMConfig(num_layers=0)
    with pytest.raises(ValueError):
        LSTMConfig(dropout=1.0)


def test_row_weights_sum_to_one_and_put_the_loss_where_named():
    assert row_weights("last").tolist() == [0.0] * (ROWS - 1) + [1.0]
    assert torch.allclose(row_weights("uniform"), torch.full((ROWS,), 1 / ROWS))
    rising = row_weights("all")
    assert rising.sum().item() == pytest.approx(1.0)
    assert rising[-1].item() == pytest.approx(ROWS * rising[0].item())
    assert rising[9].item() == pytest.approx(10 * rising[0].item())
    with pytest.raises(ValueError, match="unknown loss"):
        row_weights("first")


def test_every_row_losses_weigh_each_rows_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(4, ROWS, NUM_CLASSES), torch.randint(0, NUM_CLASSES, (4,))
    by_row = [torch.nn.functional.cross_entropy(logits[:, t], labels) for t in range(ROWS)]
    assert sequence_loss(logits, labels, "uniform").item() == pytest.approx(
        sum(v.item() for v in by_row) / ROWS, rel=1e-5
    )
    rising = sum(t * v.item() for t, v in enumerate(by_row, start=1)) / sum(range(1, ROWS + 1))
    assert sequence_loss(logits, labels, "all").item() == pytest.approx(rising, rel=1e-5)
    assert sequence_loss(logits, labels, "last").item() == pytest.approx(by_row[-1].item())


def test_an_every_row_loss_teaches_the_model_to_answer_as_soon_as_it_can():
    # Class = which of the first 10 pixels of row 10 is lit; nothing changes after it.
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (512,))
    images = torch.zeros(512, ROWS, 28, dtype=torch.uint8)
    images[torch.arange(512), 9, labels] = 255
    inputs = to_inputs(images)
    model = make(num_layers=1, hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        train_epoch(model, optimizer, inputs, labels, batch_size=64, loss="uniform")
    result = evaluate(model, inputs, labels)
    # Guessing until row 9, sure from row 10 (where the last-row loss never asks).
    assert max(result.acc_by_step[:9]) < 0.3
    assert result.first_row_reaching(0.9) == 10 and result.acc > 0.9


def test_anytime_figures_of_an_evaluation():
    curve = [0.1] * 10 + [0.5] * 10 + [0.95] * 8
    result = Evaluation(loss=0.1, acc=0.95, acc_by_step=curve)
    assert result.auc_rows == pytest.approx((1.0 + 5.0 + 7.6) / ROWS)
    assert (result.first_row_reaching(0.5), result.first_row_reaching(0.9)) == (11, 21)
    assert result.first_row_reaching(0.99) is None


def test_the_cli_knows_the_same_losses_as_the_training_loop():
    from search.config import ROW_LOSSES as FLAG_CHOICES

    assert FLAG_CHOICES == ROW_LOSSES
