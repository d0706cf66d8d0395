"""Generate the golden trajectories from the PyTorch releases.

Usage (from the repository root; needs torch, never a dependency of the package)::

    pip install torch==2.13.0
    pip install --no-deps torch-optimizer==0.3.0 pytorch-ranger adabound==0.0.5
    python -m tests.golden.generate          # writes tests/golden/<optimizer>.npz

    python -m tests.golden.generate --check    # regenerate in memory, compare with the files

For every configuration of ``problem.configs()`` it runs 1000 float64 steps of
the original release on the closed-loop problem of ``problem.py``

* ``adamod``:   ``torch_optimizer.AdaMod`` (torch-optimizer 0.3.0), which the
  reference notes found bit-identical to the authors' released AdaMod;
* ``adabound``: ``adabound.AdaBound(amsbound=False)`` (the authors' PyPI
  release ``adabound==0.0.5``); ``amsbound``: the same with ``amsbound=True``;
* ``diffgrad``: ``torch_optimizer.DiffGrad`` (torch-optimizer 0.3.0);

applying the learning-rate table by setting ``param_group["lr"]`` before each
step (AdaBound is built with ``lr = table[0]``, which it keeps as ``base_lr``).
Weight decay is the releases' own: decoupled ``wd * lr_t * theta`` in AdaMod,
coupled L2 ``g + wd * theta`` in AdaBound/AMSBound and DiffGrad. A config's
``decay_leaves`` becomes two torch parameter groups (weight_decay 0 for the
other leaves).

Each ``<optimizer>.npz`` holds, per config ``c`` (keys ``c|...``):

* ``c|params0|<leaf>``: theta_0;
* ``c|snapshots|<leaf>``: theta at ``c|snapshot_steps`` (100, 200, ..., 1000);
* ``c|grads_at_snapshots|<leaf>``: ``problem.grad`` evaluated at those params
  and step, so the tests notice if ``problem.py`` drifts from the data;
* ``c|lr_table``: the learning rate set before each step;
* ``c|config``: JSON with the hyperparameters (this package's names), the
  torch keyword arguments actually used and the schedule kind;

plus ``meta``: JSON with the library versions and the AdaMod cross-check.

Before trusting the releases the script replays every config in NumPy
float64 (AdaMod with ``benchmarks/numpy_reference.py``'s ``AdaModReleased``; AdaBound,
AMSBound and DiffGrad with short loops written here from the update rules) and
records, in ``c|config`` and ``meta``, the largest deviation relative to the
parameters' movement, and the fraction of element-steps where the bound was
active (AdaMod: ``s_t < eta_t``; AdaBound: the lower/upper clip).
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np

from tests.golden import problem

HERE = os.path.dirname(os.path.abspath(__file__))

OPTIMIZERS = ("adamod", "adabound", "amsbound", "diffgrad")


def _torch_optimizer(name, params, cfg):
    """The release's optimizer over torch ``params`` (dict leaf -> Parameter)."""
    import adabound
    import torch_optimizer

    h = cfg["hyper"]
    # AdaBound keeps its construction lr as base_lr: it must be table[0]. AdaMod
    # and DiffGrad reject lr = 0 at construction but read group["lr"] at each
    # step, so any positive placeholder is equivalent for them.
    lr0 = float(cfg["lr_table"][0])
    if name in ("adamod", "diffgrad") and lr0 == 0.0:
        lr0 = float(np.max(cfg["lr_table"]))
    b1, b2, eps = h.get("b1", 0.9), h.get("b2", 0.999), h.get("eps", 1e-8)
    wd = h.get("weight_decay", 0.0)
    decay_leaves = h.get("decay_leaves")
    if decay_leaves is None:
        groups = [{"params": [params[k] for k in problem.LEAVES]}]
    else:
        groups = [
            {"params": [params[k] for k in problem.LEAVES if k in decay_leaves]},
            {"params": [params[k] for k in problem.LEAVES if k not in decay_leaves],
             "weight_decay": 0.0},
        ]
    if name == "adamod":
        kw = {"lr": lr0, "betas": (b1, b2), "beta3": h.get("b3", 0.999), "eps": eps,
              "weight_decay": wd}
        return torch_optimizer.AdaMod(groups, **kw), kw
    if name in ("adabound", "amsbound"):
        kw = {"lr": lr0, "betas": (b1, b2), "final_lr": h.get("final_lr", 0.1),
              "gamma": h.get("gamma", 1e-3), "eps": eps, "weight_decay": wd,
              "amsbound": name == "amsbound"}
        return adabound.AdaBound(groups, **kw), kw
    if name == "diffgrad":
        kw = {"lr": lr0, "betas": (b1, b2), "eps": eps, "weight_decay": wd}
        return torch_optimizer.DiffGrad(groups, **kw), kw
    raise ValueError(name)


def run_torch(name: str, cfg: dict) -> tuple[dict, dict]:
    """1000 float64 steps of the release; returns (snapshots by step, torch kwargs)."""
    import torch

    params = {
        k: torch.nn.Parameter(torch.from_numpy(v.copy()))
        for k, v in problem.initial_params().items()
    }
    opt, kw = _torch_optimizer(name, params, cfg)
    table = cfg["lr_table"]
    snaps = {}
    for k in range(problem.N_STEPS):
        grads = problem.grad({n: p.detach().numpy() for n, p in params.items()}, k)
        for n, p in params.items():
            p.grad = torch.from_numpy(grads[n].copy())
        for group in opt.param_groups:
            group["lr"] = float(table[k])
        opt.step()
        if (k + 1) % problem.SNAPSHOT_EVERY == 0:
            snaps[k + 1] = {n: p.detach().numpy().copy() for n, p in params.items()}
    kw = {a: list(v) if isinstance(v, tuple) else v for a, v in kw.items()}
    return snaps, kw


def run_numpy(name: str, cfg: dict) -> tuple[dict, dict]:
    """The same run in NumPy float64, to check the torch side before trusting it.

    AdaMod uses ``benchmarks/numpy_reference.py``'s ``AdaModReleased``; AdaBound/AMSBound
    and DiffGrad are written here from the update rules in
    ``shared/reference/ALGORITHMS.md``. Also returns how often the bound was
    active (fraction of element-steps), to show that the data exercises it.
    """
    from benchmarks.numpy_reference import AdaModReleased

    h = cfg["hyper"]
    b1, b2, eps = h.get("b1", 0.9), h.get("b2", 0.999), h.get("eps", 1e-8)
    wd_all = h.get("weight_decay", 0.0)
    decay_leaves = h.get("decay_leaves")
    wd = {k: wd_all if decay_leaves is None or k in decay_leaves else 0.0
          for k in problem.LEAVES}
    lr0 = float(cfg["lr_table"][0])
    params = problem.initial_params()
    zeros = {k: np.zeros_like(v) for k, v in params.items()}
    m, v, vmax, gprev = dict(zeros), dict(zeros), dict(zeros), dict(zeros)
    adamod = AdaModReleased(b1=b1, b2=b2, b3=h.get("b3", 0.999), eps=eps)
    counts = {"lower": 0, "upper": 0, "elements": 0}
    snaps = {}
    for k in range(problem.N_STEPS):
        t = k + 1
        lr = float(cfg["lr_table"][k])
        grads = problem.grad(params, k)
        if name == "adamod":
            mask = {leaf: wd[leaf] != 0 for leaf in problem.LEAVES}
            params = adamod.step(params, grads, lr, weight_decay=wd_all, decay_mask=mask)
            eta, s = adamod.rates(lr)
            for leaf in problem.LEAVES:
                counts["upper"] += int(np.sum(s[leaf] < eta[leaf]))  # capped by s_t
                counts["elements"] += eta[leaf].size
        else:
            a = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            new = {}
            for leaf in problem.LEAVES:
                p = params[leaf]
                g = grads[leaf] + wd[leaf] * p  # coupled L2
                m[leaf] = b1 * m[leaf] + (1 - b1) * g
                v[leaf] = b2 * v[leaf] + (1 - b2) * g * g
                vmax[leaf] = np.maximum(vmax[leaf], v[leaf])
                if name == "diffgrad":
                    dfc = 1.0 / (1.0 + np.exp(-np.abs(gprev[leaf] - g)))
                    gprev[leaf] = g
                    new[leaf] = p - a * (m[leaf] * dfc) / (np.sqrt(v[leaf]) + eps)
                    continue
                final = h.get("final_lr", 0.1) * lr / lr0
                gamma = h.get("gamma", 1e-3)
                lower = final * (1 - 1 / (gamma * t + 1))
                upper = final * (1 + 1 / (gamma * t))
                vv = vmax[leaf] if name == "amsbound" else v[leaf]
                eta = a / (np.sqrt(vv) + eps)
                counts["lower"] += int(np.sum(eta < lower))
                counts["upper"] += int(np.sum(eta > upper))
                counts["elements"] += eta.size
                new[leaf] = p - np.clip(eta, lower, upper) * m[leaf]
            params = new
        if (k + 1) % problem.SNAPSHOT_EVERY == 0:
            snaps[k + 1] = {n: val.copy() for n, val in params.items()}
    n = counts.pop("elements")
    activity = {key: val / n for key, val in counts.items()} if n else {}
    return snaps, activity


def relative_deviation(params0: dict, ref: dict, other: dict) -> float:
    """max over leaves of max|other - ref| / max|ref - params0|."""
    return max(
        float(np.max(np.abs(other[k] - ref[k])) / np.max(np.abs(ref[k] - params0[k])))
        for k in problem.LEAVES
    )


def build(name: str) -> tuple[dict, dict]:
    """All arrays of ``<name>.npz`` and a summary per config."""
    arrays, summary = {}, {}
    for c, cfg in problem.configs()[name].items():
        snaps, kw = run_torch(name, cfg)
        steps = sorted(snaps)
        p0 = problem.initial_params()
        for leaf in problem.LEAVES:
            arrays[f"{c}|params0|{leaf}"] = p0[leaf]
            arrays[f"{c}|snapshots|{leaf}"] = np.stack([snaps[s][leaf] for s in steps])
            arrays[f"{c}|grads_at_snapshots|{leaf}"] = np.stack(
                [problem.grad(snaps[s], s)[leaf] for s in steps]
            )
        arrays[f"{c}|snapshot_steps"] = np.asarray(steps, dtype=np.int64)
        arrays[f"{c}|lr_table"] = np.asarray(cfg["lr_table"], dtype=np.float64)
        movement = {
            leaf: float(np.max(np.abs(snaps[steps[-1]][leaf] - p0[leaf])))
            for leaf in problem.LEAVES
        }
        info = {"schedule": cfg["schedule"], "hyper": cfg["hyper"], "torch_kwargs": kw,
                "final_movement": movement}
        ref, activity = run_numpy(name, cfg)
        info["numpy_reference_max_rel_dev"] = max(
            relative_deviation(p0, ref[s], snaps[s]) for s in steps
        )
        info["bound_active_fraction"] = activity
        arrays[f"{c}|config"] = np.asarray(json.dumps(info, sort_keys=True))
        summary[c] = info
        for leaf in problem.LEAVES:
            if not np.all(np.isfinite(arrays[f"{c}|snapshots|{leaf}"])):
                raise RuntimeError(f"{name}/{c}: non-finite params")
    return arrays, summary


def versions() -> dict:
    import importlib.metadata as md

    import torch

    out = {"python": platform.python_version(), "numpy": np.__version__,
           "torch": torch.__version__}
    for dist in ("torch-optimizer", "adabound", "pytorch-ranger"):
        out[dist] = md.version(dist)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=HERE, help="directory for the .npz files")
    parser.add_argument("--check", action="store_true",
                        help="compare with the existing files instead of writing")
    args = parser.parse_args()

    import torch

    torch.set_default_dtype(torch.float64)
    for name in OPTIMIZERS:
        arrays, summary = build(name)
        meta = {"optimizer": name, "versions": versions(), "n_steps": problem.N_STEPS,
                "generator": "tests/golden/generate.py"}
        meta["numpy_reference_max_rel_dev"] = {
            c: s["numpy_reference_max_rel_dev"] for c, s in summary.items()
        }
        arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
        path = os.path.join(args.out, f"{name}.npz")
        for c, s in summary.items():
            act = ", ".join(f"{k} {v:.2f}" for k, v in s["bound_active_fraction"].items())
            extra = f"  vs NumPy {s['numpy_reference_max_rel_dev']:.2e}"
            extra += f"  bound active: {act}" if act else ""
            moves = ", ".join(f"{k} {v:.3g}" for k, v in s["final_movement"].items())
            print(f"{name:9s} {c:22s} moved {moves}{extra}")
        if args.check:
            with np.load(path, allow_pickle=False) as old:
                for key, value in arrays.items():
                    if key == "meta" or key.endswith("|config"):
                        continue
                    dev = float(np.max(np.abs(old[key] - value))) if value.size else 0.0
                    if dev != 0.0:
                        print(f"  {key}: differs by {dev:.3e}")
            print(f"checked {path}")
        else:
            np.savez_compressed(path, **arrays)
            print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
