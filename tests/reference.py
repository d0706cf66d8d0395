"""NumPy float64 references of the update rules, written from the published rules.

Each reference is a small class with ``step(params, grads, lr, ...)`` acting on
dicts of float64 arrays, written line by line from the algorithm statements
(the released AdaMod code and the paper's Algorithm 2), independent of the
package's code structure. ``lr`` is the learning rate in force at this step.
"""

from __future__ import annotations

import numpy as np


class _AdaModBase:
    def __init__(self, b1=0.9, b2=0.999, b3=0.999, eps=1e-8):
        self.b1, self.b2, self.b3, self.eps = b1, b2, b3, eps
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
            eta = a / (np.sqrt(self.v[k]) + self.eps)
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
        eta = {k: a / (np.sqrt(v) + self.eps) for k, v in self.v.items()}
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
            eta = lr / (np.sqrt(v_hat) + self.eps)
            self.s[k] = self.b3 * self.s[k] + (1 - self.b3) * eta
            wd = weight_decay if decay_mask is None or decay_mask[k] else 0.0
            if wd != 0:
                p = p - wd * lr * p
            out[k] = p - np.minimum(eta, self.s[k]) * m_hat
        return out
