"""The small ReLU MLP of the digits and Fashion-MNIST experiments (plain JAX)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Layers ``{"w", "b"}`` with weights drawn from N(0, 1/fan_in) and zero biases.

    One key is split off ``key`` per layer, in order (the digits experiments' scheme).
    """
    params = []
    for din, dout in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        params.append({"w": jax.random.normal(sub, (din, dout), jnp.float32) / np.sqrt(din),
                       "b": jnp.zeros((dout,), jnp.float32)})
    return params


def mlp_logits(params: Sequence[dict[str, Any]], x: jax.Array) -> jax.Array:
    """ReLU hidden layers, a linear output layer."""
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def mlp_loss(params: Sequence[dict[str, Any]], x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy against integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(mlp_logits(params, x), y).mean()
