"""Layers shared by the benchmark Transformers (:mod:`benchmarks.charlm`, :mod:`benchmarks.nmt`).

Plain functions of a params dict, so the models stay pytrees of arrays that any optax
transformation (and the package's diagnostics) can walk.
"""

from __future__ import annotations


def layer_norm(x, p, eps: float = 1e-5):
    """LayerNorm over the last axis with ``p["scale"]`` and ``p["bias"]``."""
    import jax

    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def dense(x, p):
    """``x @ p["w"] + p["b"]``."""
    return x @ p["w"] + p["b"]
