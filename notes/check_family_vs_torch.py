"""Cross-check (needs torch + torch-optimizer 0.3.0; not part of the test suite).

Runs adamod_optax's adabound / amsbound / diffgrad next to torch-optimizer 0.3.0's AdaBound
(bit-identical to the original adabound 0.0.5 per ALGORITHMS.md) and DiffGrad for 1000 float64
steps with a linear-decay schedule (the torch lr set to the float32 value the jitted optax
schedule gives), coupled L2 on and off, fresh gradient tensors every step, and prints the max
deviation relative to parameter movement. Run: PYTHONPATH=. python notes/check_family_vs_torch.py
Measured 2026-11-22: <= 3.9e-16 for all six runs; the bounds were active (AdaBound vs the
unbounded Adam form differ by 0.26 after moving 0.76).
"""
import numpy as np, torch, torch_optimizer as topt, jax, jax.numpy as jnp, optax
jax.config.update("jax_enable_x64", True)
import adamod_optax as ao
torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(1)
p0 = rng.normal(size=(6,))
sched = optax.linear_schedule(3e-3, 1e-4, 800)
lrs = [float(jax.jit(sched)(jnp.int32(k))) for k in range(1000)]
def compare(name, make_torch, tx, steps=1000, wd=0.0):
    w = torch.tensor(p0.copy(), requires_grad=True)
    opt = make_torch([w])
    p, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
    step = jax.jit(tx.update)
    for k in range(steps):
        g = np.sin(0.3 * k + np.arange(6)) * 10.0 ** (np.arange(6) % 3 - 1) + 0.5 * (w.detach().numpy() - 0.3)
        for grp in opt.param_groups: grp["lr"] = lrs[k]
        w.grad = torch.tensor(g.copy())   # fresh tensor each step
        opt.step()
        u, s = step(jnp.asarray(g), s, p); p = optax.apply_updates(p, u)
    moved = np.max(np.abs(w.detach().numpy() - p0))
    print(name, "max dev rel to movement", np.max(np.abs(np.asarray(p) - w.detach().numpy())) / moved)
for wd in (0.0, 1e-2):
    compare(f"adabound wd={wd}", lambda ps: topt.AdaBound(ps, lr=lrs[0], final_lr=2e-3, gamma=1e-2, weight_decay=wd),
            ao.adabound(sched, 2e-3, 1e-2, weight_decay=wd))
    compare(f"amsbound wd={wd}", lambda ps: topt.AdaBound(ps, lr=lrs[0], final_lr=2e-3, gamma=1e-2, weight_decay=wd, amsbound=True),
            ao.amsbound(sched, 2e-3, 1e-2, weight_decay=wd))
    compare(f"diffgrad wd={wd}", lambda ps: topt.DiffGrad(ps, lr=lrs[0], weight_decay=wd), ao.diffgrad(sched, weight_decay=wd))

a = ao.adabound(sched, 2e-3, 1e-2); b = optax.chain(ao.scale_by_bounded_adam(sched), optax.scale(-1.0))
pa = pb = jnp.asarray(p0); sa, sb = a.init(pa), b.init(pb)
for k in range(1000):
    g = np.sin(0.3 * k + np.arange(6)) * 10.0 ** (np.arange(6) % 3 - 1)
    ua, sa = a.update(jnp.asarray(g + 0.5 * (np.asarray(pa) - 0.3)), sa, pa); ub, sb = b.update(jnp.asarray(g + 0.5 * (np.asarray(pb) - 0.3)), sb, pb)
    pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
print("adabound vs unbounded Adam form: gap", float(jnp.max(jnp.abs(pa - pb))), "moved", float(jnp.max(jnp.abs(pa - p0))))
