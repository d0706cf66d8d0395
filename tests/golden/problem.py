"""The problem behind the golden trajectories: pure NumPy, no RNG, reproducible.

Imported both by ``generate.py`` (which drives the PyTorch releases) and by
``tests/test_golden.py`` (which drives this package), so that both sides see
the same closed-loop gradients ``g_k = grad(params_k, k)``.

The parameters are three leaves of different shapes and gradient scales::

  w: (4, 3)  weight of a small least-squares fit, coupled to b
  b: (3,)    bias of the same fit
  s: (1,)    a lone scalar whose gradient is ~1e-4 times smaller

The gradient is a mildly contractive quadratic pull (least squares on fixed
inputs plus a small ridge toward a target) plus a deterministic, sin-based
"noise" that depends only on the step ``k``. Two elements receive an exactly
zero gradient for many steps (``w[0, 2]`` for the first 60 steps and then two
steps in three; ``b[2]`` two steps in four), so that the second moment is
exactly zero and ``eps`` decides the per-parameter learning rate there.

Everything is built from closed-form ``sin``/``cos`` expressions of integer
indices: there is no random stream whose algorithm could change.
"""

from __future__ import annotations

import numpy as np

N_STEPS = 1000
SNAPSHOT_EVERY = 100
LEAVES = ("w", "b", "s")

# Fixed inputs of the least-squares pull: X (6, 4), targets W*, b*, Y = X W* + b*.
_N = 6
_X = np.cos(0.7 * np.arange(_N * 4, dtype=np.float64).reshape(_N, 4) + 0.3)
_W_STAR = 0.8 * np.sin(0.45 * np.arange(12, dtype=np.float64).reshape(4, 3) + 2.0)
_B_STAR = np.array([0.25, -0.4, 0.1])
_Y = _X @ _W_STAR + _B_STAR
_RIDGE = 0.1
_S_STAR = -0.3
_S_SCALE = 2e-4  # gradient scale of the scalar leaf, ~1e-4 of the others

# Per-element noise: amplitude * sin(freq * k + phase) * (1 + 0.5 cos(slow * k)).
_NOISE_AMP = {"w": 0.3, "b": 0.2, "s": 0.5}


def _noise(leaf: str, shape: tuple[int, ...], k: int, offset: float) -> np.ndarray:
    i = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    freq = 0.31 + 0.173 * i + offset
    phase = 1.7 * i + 3.0 * offset
    slow = 0.013 + 0.002 * i
    return _NOISE_AMP[leaf] * np.sin(freq * k + phase) * (1.0 + 0.5 * np.cos(slow * k))


def initial_params() -> dict[str, np.ndarray]:
    """theta_0: float64 arrays, a fresh copy on each call."""
    i = np.arange(12, dtype=np.float64).reshape(4, 3)
    return {
        "w": 0.5 * np.cos(1.3 * i + 0.4),
        "b": 0.3 * np.sin(0.9 * np.arange(3, dtype=np.float64) + 1.1),
        "s": np.array([0.8]),
    }


def grad(params: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The gradient fed at (0-based) step ``k`` given the current params.

    ``params`` values may be anything ``np.asarray`` accepts (NumPy or JAX
    arrays, torch tensors via ``.numpy()``); the result is float64 NumPy.
    """
    w = np.asarray(params["w"], dtype=np.float64)
    b = np.asarray(params["b"], dtype=np.float64)
    s = np.asarray(params["s"], dtype=np.float64)
    r = _X @ w + b - _Y  # (N, 3) residuals of the least-squares pull
    gw = _X.T @ r / _N + _RIDGE * (w - _W_STAR) + _noise("w", w.shape, k, 0.0)
    gb = r.mean(axis=0) + _RIDGE * (b - _B_STAR) + _noise("b", b.shape, k, 0.05)
    gs = _S_SCALE * ((s - _S_STAR) + _noise("s", s.shape, k, 0.11))
    # Exactly-zero gradients (decided by k only, so both sides agree exactly).
    if k < 60 or k % 3 != 0:
        gw[0, 2] = 0.0
    if k % 4 in (1, 2):
        gb[2] = 0.0
    return {"w": gw, "b": gb, "s": gs}


# --------------------------------------------------------------------------
# Learning-rate tables: entry k is the learning rate in force at update k.


def constant(lr: float, n: int = N_STEPS) -> np.ndarray:
    return np.full(n, lr, dtype=np.float64)


def warmup_cosine(
    start: float, peak: float, end: float, warmup: int = 100, n: int = N_STEPS
) -> np.ndarray:
    """Linear warmup start -> peak over ``warmup`` steps, then cosine to ``end``."""
    k = np.arange(n, dtype=np.float64)
    up = start + (peak - start) * k / warmup
    frac = np.clip((k - warmup) / (n - 1 - warmup), 0.0, 1.0)
    down = end + 0.5 * (peak - end) * (1.0 + np.cos(np.pi * frac))
    return np.where(k < warmup, up, down)


def step_decay(lr: float, boundaries=(400, 700), factor: float = 0.5, n: int = N_STEPS):
    """Piecewise constant: ``lr`` times ``factor`` after each boundary."""
    k = np.arange(n)
    return lr * factor ** np.searchsorted(np.asarray(boundaries), k, side="right").astype(
        np.float64
    )


# --------------------------------------------------------------------------
# The configurations. Hyperparameters use this package's names; a config's
# "schedule" is "constant" (the tests pass the float) or "table" (the tests
# pass ``lambda count: table[count]``). "decay_leaves" lists the leaves that
# get weight decay (None: all); it becomes torch parameter groups on one side
# and the optax ``mask`` on the other.


def _cfg(table, schedule="constant", **hyper):
    return {"lr_table": table, "schedule": schedule, "hyper": hyper}


def configs() -> dict[str, dict[str, dict]]:
    """optimizer name -> config name -> {"lr_table", "schedule", "hyper"}."""
    adabound_like = {
        "defaults": _cfg(constant(1e-3)),
        "lr1e-2_wd": _cfg(constant(1e-2), final_lr=0.05, gamma=1e-2, weight_decay=1e-2),
        # AdaBound's bounds scale with lr_t / base_lr, base_lr = table[0] != 0.
        "warmup_cosine_wd": _cfg(
            warmup_cosine(1e-3, 5e-3, 2e-4), "table", weight_decay=1e-2
        ),
    }
    return {
        "adamod": {
            "defaults": _cfg(constant(1e-3)),
            "lr1e-2_wd": _cfg(constant(1e-2), weight_decay=2e-2),
            "warmup_cosine_wd": _cfg(warmup_cosine(0.0, 5e-3, 5e-5), "table", weight_decay=2e-2),
            "b3_0.99": _cfg(constant(2e-3), b3=0.99),
            "masked_wd_step_decay": _cfg(
                step_decay(5e-3), "table", weight_decay=5e-2, decay_leaves=["w", "s"]
            ),
            "b1_b2_eps": _cfg(constant(3e-3), b1=0.8, b2=0.99, eps=1e-6),
        },
        "adabound": adabound_like,
        "amsbound": adabound_like,
        "diffgrad": {
            "defaults": _cfg(constant(1e-3)),
            "lr1e-2_wd": _cfg(constant(1e-2), weight_decay=1e-2),
            "warmup_cosine_wd": _cfg(warmup_cosine(0.0, 5e-3, 5e-5), "table", weight_decay=1e-2),
        },
    }
