"""NumPy float64 references of the update rules, written from the published rules.

Each reference is a small class with ``step(params, grads, lr, ...)`` acting on
dicts of float64 arrays, written line by line from the algorithm statements
(the released AdaMod code and the paper's Algorithm 2), independent of the
package's code structure. ``lr`` is the learning rate in force at this step.

Plain NumPy, no JAX and no package import: ``benchmarks.accuracy`` and
``benchmarks.robustness`` measure the package against these classes, and the
tests (``tests/``) import them from here.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AdaBound",
    "AdaBoundLowerAdaModUpper",
    "AdaModPaper",
    "AdaModReleased",
    "DiffGrad",
    "DiffMod",
]


class _AdaModBase:
    def __init__(self, b1=0.9, b2=0.999, b3=0.999, eps=1e-8, eps_root=0.0):
        # eps_root: added inside the square root, as optax.scale_by_adam does (on v_t in
        # the released form, on v_hat_t in the paper's); 0 in both published algorithms.
        self.b1, self.b2, self.b3, self.eps, self.eps_root = b1, b2, b3, eps, eps_root
        self.t = 0
        self.m = self.v = self.s = None

    def _start(self, params):
        """Lazily create zero moments; advance and return the 1-based step."""
        if self.m is None:
            self.m = {k: np.zeros_like(p) for k, p in params.items()}
            self.v = {k: np.zeros_like(p) for k, p in params.items()}
            self.s = {k: np.zeros_like(p) for k, p in params.items()}
        self.t += 1
        return self.t


class AdaModReleased(_AdaModBase):
    """AdaMod as in the authors' released PyTorch code."""

    def step(self, params, grads, lr, weight_decay=0.0, decay_mask=None):
        t = self._start(params)
        out = {}
        for k, p in params.items():
            g = grads[k]
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            a = lr * np.sqrt(1 - self.b2**t) / (1 - self.b1**t)
            eta = a / (np.sqrt(self.v[k] + self.eps_root) + self.eps)
            self.s[k] = self.b3 * self.s[k] + (1 - self.b3) * eta
            wd = weight_decay if decay_mask is None or decay_mask[k] else 0.0
            if wd != 0:
                p = p - wd * lr * p
            out[k] = p - np.minimum(eta, self.s[k]) * self.m[k]
        return out

    def rates(self, lr):
        """(eta_t, s_t) of the last step, to check the bound."""
        t = self.t
        a = lr * np.sqrt(1 - self.b2**t) / (1 - self.b1**t)
        eta = {k: a / (np.sqrt(v + self.eps_root) + self.eps) for k, v in self.v.items()}
        return eta, dict(self.s)


class AdaModPaper(_AdaModBase):
    """AdaMod as written in the paper (Algorithm 2), plus decoupled decay."""

    def step(self, params, grads, lr, weight_decay=0.0, decay_mask=None):
        t = self._start(params)
        out = {}
        for k, p in params.items():
            g = grads[k]
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            m_hat = self.m[k] / (1 - self.b1**t)
            v_hat = self.v[k] / (1 - self.b2**t)
            eta = lr / (np.sqrt(v_hat + self.eps_root) + self.eps)
            self.s[k] = self.b3 * self.s[k] + (1 - self.b3) * eta
            wd = weight_decay if decay_mask is None or decay_mask[k] else 0.0
            if wd != 0:
                p = p - wd * lr * p
            out[k] = p - np.minimum(eta, self.s[k]) * m_hat
        return out


def _friction(g_prev, g, version):
    """DiffGrad's friction coefficient of d = g_prev - g, the three published shapes."""
    d = g_prev - g
    if version == 0:
        return 1.0 / (1.0 + np.exp(-np.abs(d)))
    if version == 1:
        return 1.0 / (1.0 + np.exp(-d))
    if version == 2:
        return 9.0 / (1.0 + np.exp(-0.5 * np.abs(d))) - 4.0
    raise ValueError(version)


class _FamilyBase:
    """Step counter and lazily created zero buffers named in ``BUFFERS``."""

    BUFFERS: tuple = ()
    t = 0

    def _start(self, params):
        """Create the zero buffers on the first call; advance and return the 1-based step."""
        if self.t == 0:
            for name in self.BUFFERS:
                setattr(self, name, {k: np.zeros_like(p) for k, p in params.items()})
        self.t += 1
        return self.t

    def _decay(self, k, g, p, weight_decay, decay_mask, decoupled):
        """(gradient after coupled L2, the decoupled rate to apply to theta instead)."""
        wd = weight_decay if decay_mask is None or decay_mask[k] else 0.0
        return (g, wd) if decoupled else (g + wd * p, 0.0)

    def _moments(self, k, g, t):
        """Update m and v with g; return sqrt(1 - b2^t) / (1 - b1^t) (a_t without lr)."""
        self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
        self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
        return np.sqrt(1 - self.b2**t) / (1 - self.b1**t)


class AdaBound(_FamilyBase):
    """AdaBound / AMSBound as in the original release (``adabound`` 0.0.5).

    ``step(..., decoupled=False)`` is the original coupled L2 (g += wd*theta);
    ``decoupled=True`` applies theta -= wd*lr*theta before the update instead.
    """

    BUFFERS = ("m", "v", "vmax")

    def __init__(self, base_lr, final_lr=0.1, gamma=1e-3, b1=0.9, b2=0.999, eps=1e-8,
                 amsbound=False, eps_root=0.0):
        self.base_lr, self.final_lr, self.gamma = base_lr, final_lr, gamma
        self.b1, self.b2, self.eps, self.amsbound = b1, b2, eps, amsbound
        self.eps_root = eps_root

    def step(self, params, grads, lr, weight_decay=0.0, decay_mask=None, decoupled=False):
        t = self._start(params)
        out = {}
        for k, p in params.items():
            g, wd = self._decay(k, grads[k], p, weight_decay, decay_mask, decoupled)
            a = lr * self._moments(k, g, t)
            v = self.v[k]
            if self.amsbound:
                self.vmax[k] = np.maximum(self.vmax[k], self.v[k])
                v = self.vmax[k]
            eta = a / (np.sqrt(v + self.eps_root) + self.eps)
            final = self.final_lr * lr / self.base_lr
            lower = final * (1 - 1 / (self.gamma * t + 1))
            upper = final * (1 + 1 / (self.gamma * t))
            p = p - wd * lr * p
            out[k] = p - np.clip(eta, lower, upper) * self.m[k]
        return out


class DiffGrad(_FamilyBase):
    """DiffGrad as in torch-optimizer 0.3.0 (coupled L2; previous gradient 0 at t=1).

    The previous gradient is the one after L2 decay, as the release stores it.
    ``decoupled=True`` applies theta -= wd*lr*theta instead of L2.
    """

    BUFFERS = ("m", "v", "g_prev")

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8, version=0):
        self.b1, self.b2, self.eps, self.version = b1, b2, eps, version

    def step(self, params, grads, lr, weight_decay=0.0, decay_mask=None, decoupled=False):
        t = self._start(params)
        out = {}
        for k, p in params.items():
            g, wd = self._decay(k, grads[k], p, weight_decay, decay_mask, decoupled)
            a = lr * self._moments(k, g, t)
            dfc = _friction(self.g_prev[k], g, self.version)
            self.g_prev[k] = np.array(g, copy=True)
            p = p - wd * lr * p
            out[k] = p - a * (self.m[k] * dfc) / (np.sqrt(self.v[k]) + self.eps)
        return out


class DiffMod(_FamilyBase):
    """DiffMod: released AdaMod with friction on the momentum after the bound."""

    BUFFERS = ("m", "v", "s", "g_prev")

    def __init__(self, b1=0.9, b2=0.999, b3=0.999, eps=1e-8, version=0):
        self.b1, self.b2, self.b3, self.eps, self.version = b1, b2, b3, eps, version

    def step(self, params, grads, lr, weight_decay=0.0, decay_mask=None):
        t = self._start(params)
        out = {}
        for k, p in params.items():
            g, wd = self._decay(k, grads[k], p, weight_decay, decay_mask, decoupled=True)
            eta = lr * self._moments(k, g, t) / (np.sqrt(self.v[k]) + self.eps)
            self.s[k] = self.b3 * self.s[k] + (1 - self.b3) * eta
            dfc = _friction(self.g_prev[k], g, self.version)
            self.g_prev[k] = np.array(g, copy=True)
            p = p - wd * lr * p
            out[k] = p - np.minimum(eta, self.s[k]) * (self.m[k] * dfc)
        return out


class AdaBoundLowerAdaModUpper(_FamilyBase):
    """Chaining example: AdaBound's lower bound, then AdaMod's momental (upper) bound.

    eta' = max(eta, lower_t); s_t = b3 s + (1-b3) eta'; step = min(eta', s_t) * m.
    """

    BUFFERS = ("m", "v", "s")

    def __init__(self, base_lr, final_lr=0.1, gamma=1e-3, b1=0.9, b2=0.999, b3=0.999,
                 eps=1e-8):
        self.base_lr, self.final_lr, self.gamma = base_lr, final_lr, gamma
        self.b1, self.b2, self.b3, self.eps = b1, b2, b3, eps

    def step(self, params, grads, lr):
        t = self._start(params)
        out = {}
        for k, p in params.items():
            eta = lr * self._moments(k, grads[k], t) / (np.sqrt(self.v[k]) + self.eps)
            lower = self.final_lr * lr / self.base_lr * (1 - 1 / (self.gamma * t + 1))
            eta = np.maximum(eta, lower)
            self.s[k] = self.b3 * self.s[k] + (1 - self.b3) * eta
            out[k] = p - np.minimum(eta, self.s[k]) * self.m[k]
        return out
