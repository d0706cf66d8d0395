# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # AdaMod quickstart
#
# `adamod_optax.adamod` is an ordinary `optax.GradientTransformation`: `init`, `update`,
# `optax.apply_updates`. This notebook shows it
#
# 1. on its own, and what its state holds;
# 2. inside `optax.chain` (gradient clipping, masked weight decay);
# 3. with a learning-rate schedule;
# 4. under `optax.inject_hyperparams` (and the bfloat16 pitfall);
# 5. in a Flax `nnx` training loop.
#
# AdaMod (Ding et al. 2019, arXiv:1910.12249) is Adam whose per-parameter learning rates
# `eta_t = lr / (sqrt(v_hat_t) + eps)` are capped by their own exponential moving average,
# `s_t = b3 s_{t-1} + (1 - b3) eta_t`, giving the step `min(eta_t, s_t) * m_hat_t`. The
# average starts at zero, so early steps are small: a built-in warmup whose length is set
# by `b3` (about `1 / (1 - b3)` steps; 1,000 for the default `b3 = 0.999`).
#
# Runs on a laptop CPU in under a minute. With `CI=true` or `ADAMOD_SMOKE=1` it runs even
# shorter (that is how the test suite and the documentation build execute it): 200 instead of
# 2,000 steps and 3 instead of 30 epochs. Every output of such a shortened run starts with
# "SMOKE MODE" and its numbers are not the ones this notebook is about; run it yourself for those.

# %%
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax

SMOKE = any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("CI", "ADAMOD_SMOKE"))
STEPS = 200 if SMOKE else 2000
# Outputs of the shortened smoke run start with this mark:
MARK = "SMOKE MODE: tiny run, numbers mean nothing | " if SMOKE else ""
print(MARK + ("smoke mode" if SMOKE else "full mode"), "| jax", jax.__version__, "| optax",
      optax.__version__, "| adamod_optax", adamod_optax.__version__)

# %% [markdown]
# ## 1. On its own
#
# An ill-conditioned quadratic, `f(x) = 0.5 (x_0^2 + 100 x_1^2)`, minimised with AdaMod and
# with Adam at the same learning rate.

# %%
curvature = jnp.array([1.0, 100.0])


def f(x):
    return 0.5 * jnp.sum(curvature * x**2)


def minimise(tx, steps=STEPS):
    params = jnp.array([1.0, 1.0])
    state = tx.init(params)

    def step(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(f)(params)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    (params, state), losses = jax.lax.scan(step, (params, state), None, length=steps)
    return params, state, losses


for name, tx in [("AdaMod", adamod_optax.adamod(0.1)), ("Adam", optax.adam(0.1))]:
    params, state, losses = minimise(tx)
    print(f"{MARK}{name:6s} f after 10/100/{STEPS} steps: "
          f"{losses[9]:.3g} / {losses[99]:.3g} / {losses[-1]:.3g}")

# %% [markdown]
# AdaMod starts slower than Adam here: its cap `s_t` starts at zero and needs on the order of
# `1/(1-b3)` steps to grow, the price of the built-in warmup (and exactly what keeps the first
# steps small where Adam's rates explode; see notebook 02).
#
# The state is a tuple, one entry per link of the chain AdaMod is built from
# (`scale_by_bounded_adam` with the momental bound as its rate transformation, decoupled weight
# decay, `scale(-1)`). The first holds Adam's moments and, in `rate_state.rate_avg`, the moving
# average `s_t` of the learning rates that caps each parameter's step.

# %%
params, state, _ = minimise(adamod_optax.adamod(0.1))
core = state[0]
print(type(core).__name__, core._fields)
print(f"{MARK}step count:", int(core.count))
print(f"{MARK}rate average s_t per parameter:", core.rate_state.rate_avg)

# %% [markdown]
# ## 2. Inside `optax.chain`
#
# AdaMod composes like any optax optimizer. Here: clip the global gradient norm first, then
# AdaMod with decoupled weight decay (`theta -= wd * lr * theta`, as in `optax.adamw`) applied to
# the weight matrices only, through a mask.

# %%
key = jax.random.key(0)
params = {"w": jax.random.normal(key, (3, 2)), "b": jnp.ones((2,))}
mask = {"w": True, "b": False}  # decay weights, not biases
tx = optax.chain(
    optax.clip_by_global_norm(1.0),
    adamod_optax.adamod(learning_rate=1e-2, weight_decay=1e-2, mask=mask),
)
state = tx.init(params)
x = jax.random.normal(jax.random.key(1), (16, 3))
y = x @ jnp.array([[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]])


def mse(p):
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


@jax.jit
def chain_step(params, state):
    loss, grads = jax.value_and_grad(mse)(params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss


for t in range(STEPS):
    params, state, loss = chain_step(params, state)
    if t in (0, 9, 99, STEPS - 1):
        print(f"{MARK}step {t + 1:5d}  mse {loss:.4f}")

# %% [markdown]
# ## 3. Learning-rate schedules
#
# `learning_rate` takes any optax schedule. Note where it enters: the scheduled rate is part of
# `eta_t`, so it is also averaged into the cap `s_t`. When the schedule drops, `eta_t` drops at
# once and the cap follows it down over about `1/(1-b3)` steps; the step is the smaller of the
# two, so a decay takes effect immediately.
#
# Below: the step size `|update|` of one parameter under a cosine schedule, for Adam and AdaMod
# (`b3 = 0.99` so the cap's own warmup is short enough to see), on noisy gradients.

# %%
schedule = optax.cosine_decay_schedule(init_value=1e-2, decay_steps=STEPS)
noise = 1.0 + 0.3 * jax.random.normal(jax.random.key(2), (STEPS,))


def step_sizes(tx):
    state = tx.init(jnp.zeros(()))

    def step(state, g):
        updates, state = tx.update(g, state, jnp.zeros(()))
        return state, jnp.abs(updates)

    return jax.lax.scan(step, state, noise)[1]


sizes = {
    "schedule": jax.vmap(schedule)(jnp.arange(STEPS)),
    "Adam": step_sizes(optax.adam(schedule)),
    "AdaMod b3=0.99": step_sizes(adamod_optax.adamod(schedule, b3=0.99)),
}
for t in sorted({0, 10, 100, STEPS // 2, STEPS - 1}):
    row = "  ".join(f"{k} {float(v[t]):.2e}" for k, v in sizes.items())
    print(f"{MARK}step {t + 1:5d}  {row}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.2))
for k, v in sizes.items():
    ax.plot(np.arange(1, STEPS + 1), np.asarray(v), label=k, lw=1)
ax.set_xlabel("step")
ax.set_ylabel("|update|")
ax.set_yscale("log")
ax.legend()
ax.set_title(MARK.replace(" | ", "\n") + "Cosine schedule: Adam vs AdaMod step size",
             color="crimson" if SMOKE else None)
fig.tight_layout()

# %% [markdown]
# ## 4. `optax.inject_hyperparams`
#
# To change hyperparameters during training (or log them), wrap the factory. The injected
# values live in the optimizer state and can be edited between steps.
#
# **Low precision:** `inject_hyperparams` casts the hyperparameters to the parameters' dtype.
# For bfloat16 parameters `b3 = 0.999` becomes exactly `1.0` and the rate average would never
# move; pass `hyperparam_dtype=jnp.float32`. This package detects the bad case and raises.
#
# A second bfloat16 effect concerns the optimizer *state*: by default the moments and the rate
# average are stored in the parameters' dtype (as in `optax.adam`). With `b3 = 0.999` each step
# adds `0.1%` of the current rate to the average, which bfloat16 (8 significant bits) rounds
# away once the average is a fraction of the rate: the cap stalls and steps stay too small.
# `nu_dtype=jnp.float32` keeps the average (and the second moment) in float32. Under
# `inject_hyperparams`, list the dtype arguments in `static_args`: `jnp.float32` is callable
# and would otherwise be taken for a schedule.

# %%
params = jnp.ones((4,), jnp.bfloat16)
grads = jnp.full((4,), 0.5, jnp.bfloat16)


def make(**kw):
    return optax.inject_hyperparams(
        adamod_optax.adamod, hyperparam_dtype=jnp.float32, static_args=("mu_dtype", "nu_dtype")
    )(learning_rate=1e-2, **kw)


@functools.partial(jax.jit, static_argnums=(0, 2))
def run_steps(tx, state, n):
    def step(state, _):
        updates, state = tx.update(grads, state, params)
        return state, updates[0]

    return jax.lax.scan(step, state, None, length=n)


tx = make()
state = tx.init(params)
print({k: (float(v), str(v.dtype)) for k, v in state.hyperparams.items()})

for label, tx in [("bf16 state (default)", make()),
                  ("nu_dtype=float32", make(nu_dtype=jnp.float32))]:
    state, steps = run_steps(tx, tx.init(params), 3000)
    print(f"{label:22s} update at step 1: {float(steps[0]):.2e}, "
          f"step 3000: {float(steps[-1]):.2e}")

# The injected values live in the state and can be changed between steps:
state.hyperparams["learning_rate"] = jnp.asarray(1e-3, jnp.float32)  # e.g. a manual decay
state, after = run_steps(tx, state, 1)
print(f"one step after lowering the learning rate 10x: {float(after[0]):.2e}")

# %%
# Without hyperparam_dtype: a clear error instead of silently frozen training.
try:
    bad = optax.inject_hyperparams(adamod_optax.adamod)(learning_rate=1e-2)
    bad_state = bad.init(params)
    bad.update(grads, bad_state, params)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 5. A Flax `nnx` training loop
#
# `nnx.Optimizer(model, tx, wrt=nnx.Param)` keeps the optax state next to the model;
# `optimizer.update(model, grads)` applies one step. Data: scikit-learn's bundled 8x8 digits
# (1,797 images, no download).

# %%
from flax import nnx
from sklearn.datasets import load_digits

digits = load_digits()
xs = jnp.asarray(digits.data / 16.0, jnp.float32)
ys = jnp.asarray(digits.target, jnp.int32)
perm = np.random.default_rng(0).permutation(len(xs))
train_idx, test_idx = perm[:1500], perm[1500:]


class MLP(nnx.Module):
    def __init__(self, din, dhidden, dout, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(din, dhidden, rngs=rngs)
        self.out = nnx.Linear(dhidden, dout, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


model = MLP(64, 128, 10, rngs=nnx.Rngs(0))
optimizer = nnx.Optimizer(model, adamod_optax.adamod(learning_rate=1e-2), wrt=nnx.Param)


@nnx.jit
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def accuracy(model, x, y):
    return jnp.mean(jnp.argmax(model(x), -1) == y)


epochs, batch = (3 if SMOKE else 30), 50
rng = np.random.default_rng(1)
for epoch in range(1, epochs + 1):
    order = rng.permutation(train_idx)
    losses = [train_step(model, optimizer, xs[b], ys[b])
              for b in np.array_split(order, len(order) // batch)]
    if epoch in (1, epochs) or epoch % 10 == 0:
        print(f"{MARK}epoch {epoch:3d}  train loss {np.mean(losses):.3f}  "
              f"test accuracy {float(accuracy(model, xs[test_idx], ys[test_idx])):.3f}")

# %% [markdown]
# ## Where next
#
# * `03_lr_robustness`: SGD with momentum, Adam and AdaMod at three learning rates on
#   Fashion-MNIST (the paper's Figure 6).
# * `04_b3_sweep`: how `b3` (the cap's memory) changes training.
# * `05_family`: AdaBound, AMSBound, DiffGrad and DiffMod beside AdaMod.
