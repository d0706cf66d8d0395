"""The Fashion-MNIST convergence benchmark in miniature: it trains, it is reproducible, and the
CLI writes its JSON, table and figure. Skipped when the data set is not installed."""

import json
import os

import numpy as np
import pytest

from benchmarks import convergence, datasets
from benchmarks import convergence_fmnist as cf
from tests import dataset_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

@pytest.fixture
def needs_data():
    dataset_check.require(datasets.missing_fashion_mnist())


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_json(path):
    return json.loads(_read(path))


@pytest.fixture(scope="module")
def data():
    return cf.load_data(smoke=True)


@pytest.mark.slow
@pytest.mark.usefixtures("needs_data")
def test_training_learns_and_is_reproducible(data):
    import adamod_optax

    def make(lr):
        return adamod_optax.adamod(lr)

    r1, r1_slow = cf.run(make, [0.01, 1e-4], data, seeds=(0, 1), epochs=2)
    (r2,) = cf.run(make, [0.01], data, seeds=(0, 1), epochs=2)
    acc = np.asarray(r1["test_acc"])
    assert acc.shape == (2, 2)
    # Ten classes: chance is 10%; two epochs on 2,048 images reach well above it.
    assert acc[:, -1].min() > 0.5
    # The epoch-mean training loss falls from the first to the second epoch.
    loss = np.asarray(r1["train_loss"])
    assert np.all(loss[:, 1] < loss[:, 0])
    # Same seed, same result (whether batched with another value or not); different seeds,
    # different runs; the hyperparameter reaches the optimizer (a 100x smaller rate learns less).
    np.testing.assert_allclose(r1["test_acc"], r2["test_acc"], atol=2e-3)
    assert r1["test_acc"][0] != r1["test_acc"][1]
    assert np.mean(r1_slow["final_test_acc"]) < np.mean(r1["final_test_acc"]) - 0.05


def test_summary_and_format():
    s = cf.summary([0.8, 0.9, 0.7])
    assert s["median"] == pytest.approx(0.8) and s["mean"] == pytest.approx(0.8)
    assert s["std"] == pytest.approx(0.1)  # sample std, ddof=1
    assert cf.fmt([0.8, 0.9, 0.7]) == "80.0 (80.0 ± 10.0)"
    assert cf.summary([0.5])["std"] == 0.0


@pytest.mark.slow
@pytest.mark.usefixtures("needs_data")
def test_cli_writes_json_table_and_png(tmp_path):
    out = str(tmp_path)
    rc = convergence.main(["fmnist", "--smoke", "--epochs", "1", "--seeds", "2",
                           "--lrs", "0.01", "--out", out])
    assert rc == 0
    payload = _read_json(os.path.join(out, "fmnist_lr_smoke.json"))
    assert payload["config"]["smoke"] and payload["config"]["epochs"] == 1
    assert set(payload["results"]) == {"SGDM", "Adam", "AdaMod"}
    assert len(payload["results"]["AdaMod"]["0.01"]["final_test_acc"]) == 2
    table = _read(os.path.join(out, "fmnist_lr_smoke.md")).splitlines()
    assert table[0] == "| optimizer | lr = 0.01 |" and len(table) == 5
    assert os.path.getsize(os.path.join(out, "fmnist_lr_smoke.png")) > 1000


@pytest.mark.slow
@pytest.mark.usefixtures("needs_data")
def test_cli_b3_task(tmp_path):
    out = str(tmp_path)
    convergence.main(["fmnist-b3", "--smoke", "--epochs", "1", "--seeds", "1", "--b3", "0.9",
                      "--lrs", "0.001", "--out", out])
    payload = _read_json(os.path.join(out, "fmnist_b3_smoke.json"))
    assert set(payload["results"]["0.001"]) == {"b3=0.9", "Adam"}
    assert _read(os.path.join(out, "fmnist_b3_smoke.md")).count("\n") == 4


def test_cli_unknown_task_lists_tasks(capsys):
    assert convergence.main(["nope"]) == 2
    assert "fmnist-b3" in capsys.readouterr().out


def test_cli_missing_data_exits_with_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.FASHION_MNIST_ENV, str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        convergence.main(["fmnist", "--smoke", "--out", str(tmp_path)])
    assert "apt-get install -y dataset-fashion-mnist" in str(exit_info.value)
    assert not os.listdir(tmp_path)  # nothing written
