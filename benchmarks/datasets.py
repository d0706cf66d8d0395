"""Offline loaders for the real data sets used by the examples and benchmarks.

Nothing here downloads anything: the data come from operating-system packages.

Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, MIT licence) ships in Debian and
Ubuntu as ``dataset-fashion-mnist``, which installs the four original idx
gzip files in ``/usr/share/datasets/fashion-mnist/``::

  sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist

Example::

  >>> from benchmarks.datasets import load_fashion_mnist
  >>> data = load_fashion_mnist()                       # doctest: +SKIP
  >>> data.x_train.shape, data.x_train.dtype             # doctest: +SKIP
  ((60000, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

import gzip
import os
from typing import NamedTuple

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where the Debian package ``dataset-fashion-mnist`` installs the files."""

FASHION_MNIST_ENV = "ADAMOD_FASHION_MNIST_DIR"
"""Environment variable overriding :data:`FASHION_MNIST_DIR`."""

FASHION_MNIST_INSTALL = "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"
"""The command that installs the data (Debian/Ubuntu)."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing; the message says how to install them."""


class FashionMNIST(NamedTuple):
    """Fashion-MNIST as NumPy arrays.

    Attributes:
      x_train: ``uint8[60000, 28, 28]`` training images, 0 (background) to 255.
      y_train: ``uint8[60000]`` training labels in ``0..9``.
      x_test: ``uint8[10000, 28, 28]`` test images.
      y_test: ``uint8[10000]`` test labels.
      class_names: the ten class names, indexed by label.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple = FASHION_MNIST_CLASSES


def read_idx(path: str) -> np.ndarray:
    """Reads one idx file (optionally gzip-compressed) of unsigned bytes.

    The idx format: two zero bytes, a type code (``0x08`` = uint8), the number
    of dimensions ``d``, ``d`` big-endian uint32 sizes, then the data.

    Raises:
      ValueError: if the header is not that of a uint8 idx file or the data
        are shorter or longer than the header says.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not a uint8 idx file (header {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header announces shape {shape} ({expected} bytes) "
            f"but {len(raw) - header} bytes follow"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def fashion_mnist_dir(data_dir: str | None = None) -> str:
    """The directory searched: ``data_dir``, else ``$ADAMOD_FASHION_MNIST_DIR``, else the
    Debian location."""
    return data_dir or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR


def missing_fashion_mnist(data_dir: str | None = None) -> str | None:
    """None if Fashion-MNIST is readable, else a message saying what is missing and how to
    install it (convenient for ``pytest.skip``)."""
    root = fashion_mnist_dir(data_dir)
    missing = [n for n in _FILES.values() if not os.path.isfile(os.path.join(root, n))]
    if not missing:
        return None
    return (
        f"Fashion-MNIST not found: {', '.join(missing)} missing in {root}. "
        f"Install it with `{FASHION_MNIST_INSTALL}` (Debian/Ubuntu package "
        f"dataset-fashion-mnist), or point ${FASHION_MNIST_ENV} at a directory holding "
        f"the four original idx .gz files."
    )


def load_fashion_mnist(data_dir: str | None = None) -> FashionMNIST:
    """Loads the full Fashion-MNIST data set (60,000 train / 10,000 test images).

    Args:
      data_dir: a directory holding the four original files
        (``train-images-idx3-ubyte.gz`` and so on). Defaults to
        ``$ADAMOD_FASHION_MNIST_DIR`` or ``/usr/share/datasets/fashion-mnist``.

    Returns:
      A :class:`FashionMNIST` of ``uint8`` arrays. Scale and flatten as the
      model needs, e.g. ``x.reshape(len(x), -1) / 255.0``.

    Raises:
      DatasetNotFoundError: if a file is missing; the message gives the install
        command.
      ValueError: if a file is corrupt or the images and labels disagree.
    """
    message = missing_fashion_mnist(data_dir)
    if message is not None:
        raise DatasetNotFoundError(message)
    root = fashion_mnist_dir(data_dir)
    arrays = {k: read_idx(os.path.join(root, name)) for k, name in _FILES.items()}
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"Fashion-MNIST {split} split is inconsistent: images {x.shape}, labels {y.shape}"
            )
        if y.size and y.max() > 9:
            raise ValueError(f"Fashion-MNIST {split} labels outside 0..9 (max {y.max()})")
    return FashionMNIST(**arrays)
