"""The offline Fashion-MNIST loader: idx parsing, clear errors, and the real files if installed."""

import gzip

import numpy as np
import pytest

from benchmarks import datasets
from tests import dataset_check


def _write_idx(path, array, *, gz=True, header=None):
    array = np.asarray(array, np.uint8)
    head = header if header is not None else (
        bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes())
    (gzip.open if gz else open)(path, "wb").write(head + array.tobytes())


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    path = str(tmp_path / ("a.idx.gz" if gz else "a.idx"))
    _write_idx(path, a, gz=gz)
    out = datasets.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, a)


def test_read_idx_rejects_bad_header_and_length(tmp_path):
    bad = str(tmp_path / "bad.gz")
    _write_idx(bad, np.zeros(4), header=bytes([0, 0, 0x0D, 1]) + np.asarray([4], ">u4").tobytes())
    with pytest.raises(ValueError, match="not a uint8 idx file"):
        datasets.read_idx(bad)
    short = str(tmp_path / "short.gz")
    _write_idx(short, np.zeros(3), header=bytes([0, 0, 8, 1]) + np.asarray([4], ">u4").tobytes())
    with pytest.raises(ValueError, match="header announces shape"):
        datasets.read_idx(short)


def test_missing_data_names_the_install_command(tmp_path):
    message = datasets.missing_fashion_mnist(str(tmp_path))
    assert "apt-get install -y dataset-fashion-mnist" in message
    assert str(tmp_path) in message
    with pytest.raises(datasets.DatasetNotFoundError, match="apt-get install -y dataset-fashion"):
        datasets.load_fashion_mnist(str(tmp_path))
    assert issubclass(datasets.DatasetNotFoundError, FileNotFoundError)


def test_env_var_overrides_default_dir(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    names = datasets._FILES
    _write_idx(str(tmp_path / names["x_train"]), rng.integers(0, 256, (5, 28, 28)))
    _write_idx(str(tmp_path / names["y_train"]), [0, 1, 2, 3, 9])
    _write_idx(str(tmp_path / names["x_test"]), rng.integers(0, 256, (2, 28, 28)))
    _write_idx(str(tmp_path / names["y_test"]), [4, 5])
    monkeypatch.setenv(datasets.FASHION_MNIST_ENV, str(tmp_path))
    data = datasets.load_fashion_mnist()
    assert data.x_train.shape == (5, 28, 28) and data.y_test.tolist() == [4, 5]
    # Labels and images that disagree are rejected.
    _write_idx(str(tmp_path / names["y_test"]), [4, 5, 6])
    with pytest.raises(ValueError, match="inconsistent"):
        datasets.load_fashion_mnist()


@pytest.fixture(scope="module")
def fashion_mnist():
    dataset_check.require(datasets.missing_fashion_mnist(datasets.FASHION_MNIST_DIR))
    return datasets.load_fashion_mnist(datasets.FASHION_MNIST_DIR)


def test_real_fashion_mnist(fashion_mnist):
    d = fashion_mnist
    assert d.x_train.shape == (60000, 28, 28) and d.x_test.shape == (10000, 28, 28)
    assert d.x_train.dtype == np.uint8 and d.y_train.dtype == np.uint8
    # The published data set is class-balanced: 6,000 / 1,000 images per class.
    np.testing.assert_array_equal(np.bincount(d.y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), [1000] * 10)
    assert d.x_train.max() == 255 and d.x_train.min() == 0
    assert len(d.class_names) == 10 and d.class_names[9] == "Ankle boot"
