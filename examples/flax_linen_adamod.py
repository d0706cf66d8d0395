"""Train a small Flax Linen model with AdaMod through ``TrainState``.

Run: ``python examples/flax_linen_adamod.py``. A Linen MLP classifies two
interleaved half-moons; ``TrainState.create(..., tx=adamod(...))`` holds the
params and optax state, ``state.apply_gradients(grads=grads)`` applies a step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax.training import train_state

from adamod_optax import adamod


class MLP(nn.Module):
    hidden: int = 32

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(2)(x)


def make_data(n: int = 256, seed: int = 0):
    """Two interleaved half circles (labels 0 and 1) with a little noise."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, size=n)
    label = rng.integers(0, 2, size=n)
    x = np.where(label[:, None] == 0,
                 np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x + 0.1 * rng.normal(size=x.shape)
    return jnp.asarray(x, jnp.float32), jnp.asarray(label, jnp.int32)


@jax.jit
def train_step(state: train_state.TrainState, x, y):
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


def train(steps: int = 300, seed: int = 0, verbose: bool = False) -> list[float]:
    """Train for ``steps`` full-batch steps; returns the loss of every step."""
    x, y = make_data(seed=seed)
    model = MLP()
    params = model.init(jax.random.key(seed), x[:1])["params"]
    # Decay the kernels only: the mask is a callable params -> pytree of bools.
    decay_kernels = lambda p: jax.tree_util.tree_map_with_path(  # noqa: E731
        lambda path, _: path[-1].key == "kernel", p)
    tx = adamod(1e-2, b3=0.99, weight_decay=1e-4, mask=decay_kernels)
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    losses = []
    for step in range(steps):
        state, loss = train_step(state, x, y)
        losses.append(float(loss))
        if verbose and step % 50 == 0:
            print(f"step {step:4d}  loss {losses[-1]:.4f}")
    return losses


if __name__ == "__main__":
    losses = train(verbose=True)
    print(f"first loss {losses[0]:.4f}, last loss {losses[-1]:.4f}")
