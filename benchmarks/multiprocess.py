"""Step time and checkpoint save/restore time with 1, 2 and 4 processes on one machine.

Runs ``examples/multiprocess_fsdp.py`` through its local launcher with 1, 2 and 4 OS
processes on 127.0.0.1 (CPU, gloo collectives), always 4 global devices (1 x 4, 2 x 2,
4 x 1), so the model, the mesh and the arithmetic are the same and only the number of
processes changes. For each layout and model width:

1. a fresh run of ``--steps`` steps saving every ``--ckpt-every`` steps with
   ``--wait-after-save`` (so a save's time includes the commit); reported: the median
   time of a step that neither compiles nor saves (the first 3 steps are left out),
   the blocking and the total (committed) time of a save, the time spent in
   ``jax.distributed.initialize``, and the launcher's wall time for the whole job;
2. a second run in the same directory that restores the last checkpoint (into the
   sharded abstract state) and takes one step; reported: the restore time.

Times are process 0's. Usage (from the repository root)::

    python -m benchmarks.multiprocess                  # about 3 minutes on 2 cores
    python -m benchmarks.multiprocess --out docs/results/multiprocess

Writes ``multiprocess.json`` (raw: every step time, every save) and ``multiprocess.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "multiprocess_fsdp.py"
LAYOUTS = [(1, 4), (2, 2), (4, 1)]


def machine() -> dict:
    """CPU model, core count, date and library versions."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
    except (OSError, AttributeError):
        model = platform.processor() or "unknown"
    versions = {}
    for name in ("jax", "jaxlib", "optax", "orbax-checkpoint"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # not installed
            versions[name] = None
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "versions": versions,
    }


def run_job(workdir: pathlib.Path, processes: int, devices: int, extra: list[str]) -> dict:
    """Runs one launcher job; returns process 0's metrics plus the wall time."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(EXAMPLE), "--local-processes", str(processes),
           "--local-devices", str(devices), "--workdir", str(workdir), *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{(proc.stdout + proc.stderr)[-6000:]}")
    metrics = json.loads((workdir / "metrics" / "process_0.json").read_text())
    metrics["wall_s"] = wall
    return metrics


def measure(processes: int, devices: int, hidden: int, steps: int, every: int) -> dict:
    """A fresh run (step and save times) and a resumed run (restore time)."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        load_before = os.getloadavg()[0]
        common = ["--hidden", str(hidden), "--ckpt-every", str(every), "--log-every", "1000"]
        fresh = run_job(workdir, processes, devices,
                        [*common, "--steps", str(steps), "--wait-after-save"])
        load_after = os.getloadavg()[0]
        resumed = run_job(workdir, processes, devices, [*common, "--steps", str(steps + 1)])
    save_steps = {s["step"] for s in fresh["saves"]}
    # step_times_s[i] is step i+1 (it includes that step's save, if any)
    plain = [t for i, t in enumerate(fresh["step_times_s"])
             if i >= 3 and (i + 1) not in save_steps]
    n_params = 16 * hidden + hidden + hidden * hidden + hidden + hidden * 8 + 8
    return {
        "processes": processes,
        "devices_per_process": devices,
        "hidden": hidden,
        "params": n_params,
        "steps": steps,
        "step_ms_median": 1e3 * statistics.median(plain),
        "step_ms_min": 1e3 * min(plain),
        "save_blocking_s_median": statistics.median(s["blocking_s"] for s in fresh["saves"]),
        "save_total_s_median": statistics.median(s["total_s"] for s in fresh["saves"]),
        "restore_s": resumed["restore_s"],
        "init_s": fresh["init_s"],
        "job_wall_s": fresh["wall_s"],
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": load_after,
        "raw_fresh": fresh,
        "raw_resumed": resumed,
    }


def markdown(info: dict, rows: list[dict]) -> str:
    """The results table."""
    m = info["machine"]
    lines = [
        "# Multi-process training on one machine: step and checkpoint times",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores; {m['date']}; Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        f"`python -m benchmarks.multiprocess`: `examples/multiprocess_fsdp.py`, 4 global CPU "
        f"devices, gloo collectives over 127.0.0.1, {info['steps']} steps, a checkpoint every "
        f"{info['every']} steps (orbax, every process writes its shards; each save waited "
        f"for until committed). Times are process 0's; step = median of the steps that "
        f"neither compile nor save.",
        "",
        "| processes x devices | params | step ms (median) | step ms (min) | save blocking s "
        "| save committed s | restore s | distributed init s | job wall s | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['processes']} x {r['devices_per_process']} | {r['params']:,} "
            f"| {r['step_ms_median']:.1f} | {r['step_ms_min']:.1f} "
            f"| {r['save_blocking_s_median']:.3f} | {r['save_total_s_median']:.3f} "
            f"| {r['restore_s']:.3f} | {r['init_s']:.2f} | {r['job_wall_s']:.1f} "
            f"| {r['loadavg_1min_before']:.1f} / {r['loadavg_1min_after']:.1f} |"
        )
    lines += [
        "",
        "Load avg: the machine's 1-minute load average before / after the timed run (other "
        "jobs on the machine count; with 2 cores, anything above ~2 means the workers "
        "waited for a core).",
        "",
        "All processes share the machine's cores here, so more processes means more "
        "contention, not "
        "more compute; the figures show the overhead of the distributed runtime on one "
        "machine, not how a real cluster scales.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    """Runs every layout and writes the JSON and the markdown table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/results/multiprocess")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 1024])
    args = p.parse_args(argv)
    info = {"machine": machine(), "steps": args.steps, "every": args.every}
    rows = []
    for hidden in args.hidden:
        for processes, devices in LAYOUTS:
            row = measure(processes, devices, hidden, args.steps, args.every)
            print(f"{processes} x {devices}, hidden {hidden}: step {row['step_ms_median']:.1f} "
                  f"ms, save {row['save_total_s_median']:.3f} s, restore "
                  f"{row['restore_s']:.3f} s", flush=True)
            rows.append(row)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "multiprocess.json").write_text(json.dumps({**info, "rows": rows}, indent=1))
    (out / "multiprocess.md").write_text(markdown(info, rows))
    print(markdown(info, rows))


if __name__ == "__main__":
    main()
