"""Train a small Flax NNX model with AdaMod.

Run: ``python examples/flax_nnx_adamod.py``. A two-layer MLP learns a noisy
sine curve; the loss printed every 50 steps falls. ``nnx.Optimizer`` holds the
optax state; ``optimizer.update(model, grads)`` applies one AdaMod step.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from adamod_optax import adamod


class MLP(nnx.Module):
    def __init__(self, hidden: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(1, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.tanh(self.hidden(x)))


def make_data(n: int = 256, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, size=(n, 1)).astype(np.float32)
    y = np.sin(x) + 0.05 * rng.normal(size=(n, 1)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, x, y):
    def loss_fn(model):
        return jnp.mean((model(x) - y) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)  # flax >= 0.11: update(model, grads)
    return loss


def train(steps: int = 300, seed: int = 0, verbose: bool = False) -> list[float]:
    """Train for ``steps`` full-batch steps; returns the loss of every step."""
    model = MLP(32, rngs=nnx.Rngs(seed))
    schedule = optax.cosine_decay_schedule(3e-2, decay_steps=steps)
    optimizer = nnx.Optimizer(model, adamod(schedule, b3=0.99, weight_decay=1e-4), wrt=nnx.Param)
    x, y = make_data(seed=seed)
    losses = []
    for step in range(steps):
        losses.append(float(train_step(model, optimizer, x, y)))
        if verbose and step % 50 == 0:
            print(f"step {step:4d}  loss {losses[-1]:.4f}")
    return losses


if __name__ == "__main__":
    losses = train(verbose=True)
    print(f"first loss {losses[0]:.4f}, last loss {losses[-1]:.4f}")
