"""Multi-process data-parallel + FSDP training with AdaMod on ``jax.distributed``.

Every process runs this same program. JAX's distributed runtime joins them into one set
of global devices; a global ``Mesh`` spans them all; the params and every params-shaped
leaf of the optimizer state (AdaMod's ``mu``, ``nu`` and rate average) are split along
their first axis over the mesh (FSDP, ZeRO-3 style), the scalar step counters are
replicated; each process feeds its own rows of the global batch; an orbax
``CheckpointManager`` saves from every process and the run resumes from the latest
checkpoint when started again (into the abstract sharded state, so the number of
processes and devices may change between runs).

Three ways to run it:

* **N local processes on one machine** (CPU, for trying it out and for the tests)::

      python examples/multiprocess_fsdp.py --local-processes 2 --steps 40 --workdir /tmp/run

  The launcher picks a free port on 127.0.0.1, starts N workers, each in its own process
  group with ``JAX_PLATFORMS=cpu`` and ``--local-devices`` simulated CPU devices (default
  2), gloo CPU collectives, and SLURM_/OMPI_/PMI_ variables removed so that JAX does not
  mistake the machine for a cluster. It relays their output prefixed with ``[pI]`` and
  ends every worker (SIGKILL to its process group) as soon as one fails, on
  ``--job-timeout`` and on Ctrl-C. Run it again with the same ``--workdir`` to resume.
  A SIGTERM sent to the launcher is forwarded to the workers as a preemption notice.

* **On a cluster** start one worker per host (or per GPU) with your scheduler and no
  ``--local-processes``::

      srun python examples/multiprocess_fsdp.py --steps 1000 --workdir /shared/run

  The worker calls ``jax.distributed.initialize()`` without arguments, which detects
  SLURM, TPU pods, Open MPI and multi-GPU hosts. Elsewhere pass ``--coordinator HOST:PORT
  --num-processes N --process-id I``. ``--workdir`` must be a directory every process can
  reach (a shared file system or a bucket path orbax understands).

* **One process without the distributed runtime** (``--no-distributed``), for comparison.

Timeouts (seconds; all given to ``jax.distributed.initialize``):

* ``--init-timeout`` (default 60 for local runs, i.e. with ``--local-processes`` or a
  coordinator on 127.x/localhost, else JAX's 300): how long
  ``initialize`` waits for every process to connect. A peer that never starts ends the
  job after this long.
* ``--heartbeat-timeout`` (default 10 locally, else JAX's 100): a process that stops
  sending heartbeats (killed, host lost) is declared dead after this long and JAX aborts
  the others, so a job on a cluster without our launcher ends too.
* ``--shutdown-timeout`` (default 30 locally, else JAX's 300): how long the final barrier
  at exit waits for the slowest process.

Preemption: checkpoints are saved every ``--ckpt-every`` steps and also at the step the
processes agree on after a preemption notice (SIGTERM, which JAX's preemption notifier
catches: a worker does not die of it). The workers then exit with code 75; starting the
job again resumes from that checkpoint.

At the end ``--dump-final`` makes every process gather the full params and optimizer
state (fully replicated numpy arrays) and write ``WORKDIR/final/process_I.npz``, so runs
can be compared bit for bit. ``WORKDIR/metrics/process_I.json`` holds timings.

Options starting with ``--test-`` inject faults for the tests (a process that kills
itself, one that never starts, a save that pauses before its commit); leave them alone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

# Only the standard library at import time: the launcher never starts JAX, and a worker
# must call jax.distributed.initialize before anything else touches a JAX backend.

STRIPPED_ENV_PREFIXES = ("SLURM_", "OMPI_", "PMI_", "PMIX_")
PREEMPTED = 75  # exit code of a worker that saved a checkpoint on a preemption notice
LOCAL_DEFAULTS = {"init_timeout": 60, "heartbeat_timeout": 10, "shutdown_timeout": 30}
CLUSTER_DEFAULTS = {"init_timeout": 300, "heartbeat_timeout": 100, "shutdown_timeout": 300}


def log(msg: str) -> None:
    """Prints one line and flushes (worker output is relayed line by line)."""
    print(msg, flush=True)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the command line (launcher, worker and training options together)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_argument_group("launching")
    g.add_argument("--local-processes", type=int, default=None,
                   help="start this many worker processes on this machine (127.0.0.1)")
    g.add_argument("--local-devices", type=int, default=2,
                   help="simulated CPU devices per local process (default 2)")
    g.add_argument("--port", type=int, default=None,
                   help="coordinator port for --local-processes (default: a free one)")
    g.add_argument("--job-timeout", type=float, default=900.0,
                   help="launcher: end all workers after this many seconds (default 900)")
    g.add_argument("--preempt-grace", type=float, default=60.0,
                   help="launcher: on SIGTERM, forward it to the workers (a preemption notice) "
                        "and give them this many seconds to save and exit (default 60)")
    g.add_argument("--coordinator", default=None, help="worker: coordinator HOST:PORT")
    g.add_argument("--coordinator-bind", default=None,
                   help="worker: address the coordinator listens on (process 0 only)")
    g.add_argument("--num-processes", type=int, default=None, help="worker: process count")
    g.add_argument("--process-id", type=int, default=None, help="worker: this process' id")
    g.add_argument("--no-distributed", action="store_true",
                   help="run in this process without jax.distributed (for comparison)")
    g.add_argument("--init-timeout", type=int, default=None)
    g.add_argument("--heartbeat-timeout", type=int, default=None)
    g.add_argument("--shutdown-timeout", type=int, default=None)

    t = p.add_argument_group("training")
    t.add_argument("--workdir", required=True, help="checkpoints, final dumps, metrics")
    t.add_argument("--steps", type=int, default=40, help="train until this step count")
    t.add_argument("--ckpt-every", type=int, default=10, help="save every K steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--global-batch", type=int, default=64)
    t.add_argument("--hidden", type=int, default=128)
    t.add_argument("--fsdp", type=int, default=None,
                   help="mesh axis 'fsdp' size; 'data' gets the rest (default: all devices)")
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--dump-final", action="store_true",
                   help="write WORKDIR/final/process_I.npz with the gathered params+state")
    t.add_argument("--no-async-checkpointing", action="store_true")
    t.add_argument("--wait-after-save", action="store_true",
                   help="wait for each save to commit (to time it; slows training)")

    f = p.add_argument_group("fault injection (tests only)")
    f.add_argument("--test-die-at-step", type=int, default=None,
                   help="process --test-die-process SIGKILLs itself before this step")
    f.add_argument("--test-die-process", type=int, default=1)
    f.add_argument("--test-skip-port-check", action="store_true",
                   help="launcher: do not check that --port is free (JAX finds out)")
    f.add_argument("--test-freeze-at-step", type=int, default=None,
                   help="process --test-die-process SIGSTOPs itself before this step")
    f.add_argument("--test-never-start", type=int, default=None,
                   help="launcher: do not start this process id")
    f.add_argument("--test-pause-save-at-step", type=int, default=None,
                   help="process 0 pauses the save of this step after every process wrote "
                        "its data and before the commit, and writes WORKDIR/paused_in_save")
    args = p.parse_args(argv)
    local = args.local_processes or (args.coordinator or "").startswith(("127.", "localhost"))
    defaults = LOCAL_DEFAULTS if local else CLUSTER_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def timeout_args(args) -> list[str]:
    """The timeout options, as passed from the launcher to each worker."""
    return ["--init-timeout", str(args.init_timeout),
            "--heartbeat-timeout", str(args.heartbeat_timeout),
            "--shutdown-timeout", str(args.shutdown_timeout)]


# --------------------------------------------------------------------------------------
# Launcher: N workers on 127.0.0.1
# --------------------------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound right now."""
    return _bindable("127.0.0.1", port)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def worker_env(local_devices: int) -> dict[str, str]:
    """The environment of a local worker: CPU only, N simulated devices, no cluster vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_ENV_PREFIXES)}
    flags = env.get("XLA_FLAGS", "").split()
    flags = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
    flags.append(f"--xla_force_host_platform_device_count={local_devices}")
    env.update(XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    return env


def describe_exit(code: int) -> str:
    """'exited with code 1' or 'was killed by SIGKILL'."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Launcher:
    """Starts local workers, relays their output, and ends all of them on any failure."""

    def __init__(self, args: argparse.Namespace, passthrough: list[str]):
        self.args = args
        self.passthrough = passthrough
        self.procs: dict[int, subprocess.Popen] = {}
        self.errors: dict[int, list[str]] = {}
        self.last_line: dict[int, str] = {}
        self.preempt_deadline: float | None = None
        self.preempt_requested = False
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def forward_preemption(self) -> None:
        """SIGTERM to every worker (JAX's preemption notice), then wait a bounded time."""
        if self.preempt_deadline is None:
            self.preempt_deadline = time.monotonic() + self.args.preempt_grace
            log(f"launcher: SIGTERM: forwarding it to the workers as a preemption notice; "
                f"waiting up to {self.args.preempt_grace:.0f} s for them to save and exit")
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)

    def _relay(self, pid: int, stream) -> None:
        fatal = None  # lines of a JAX fatal error ("Terminating process because ...")
        for line in stream:
            line = line.rstrip("\n")
            if "Terminating process because" in line and "absl::Status:" in line:
                fatal = [line.split("absl::Status:", 1)[1].strip()]
            elif fatal is not None and not line.startswith("*** Check failure"):
                fatal.append(line.strip())
            elif fatal is not None:
                self.errors.setdefault(pid, []).append(self._explain_abort(" ".join(fatal)))
                fatal = None
            if "Failed to add port to server" in line:
                # gRPC could not bind the coordinator's address. JAX then raises or, at
                # times, crashes (SIGSEGV) before the worker can say so itself.
                addr = line.rsplit("for ", 1)[-1].strip(" '\"")
                self.errors.setdefault(pid, []).append(
                    f"ERROR: could not start the coordinator: {addr} is already in use")
            if line.startswith("ERROR:"):
                self.errors.setdefault(pid, []).append(line)
            elif line.strip() and not line.startswith(("W0", "I0", "E0", "  ")):
                self.last_line[pid] = line.strip()
            with self.lock:
                print(f"[p{pid}] {line}", flush=True)

    def _explain_abort(self, status: str) -> str:
        """One line saying why JAX's distributed runtime aborted a worker."""
        a = self.args
        if "DEADLINE_EXCEEDED" in status and "RegisterTask" in status:
            why = (f"jax.distributed.initialize timed out after --init-timeout={a.init_timeout} s: "
                   f"not all {a.local_processes} processes connected to the coordinator "
                   f"(a peer never started or cannot reach it)")
        elif "stopped sending heartbeats" in status:
            why = (f"JAX declared a peer dead: no heartbeat within --heartbeat-timeout="
                   f"{a.heartbeat_timeout} s (a process was killed, froze or lost its host)")
        else:
            why = "JAX's distributed runtime aborted the process"
        return f"ERROR: {why} [JAX said: {status[:300]}]"

    def start(self, port: int) -> None:
        """Starts the workers, each in a new session (its own process group)."""
        a = self.args
        env = worker_env(a.local_devices)
        script = os.path.abspath(__file__)
        workdir = pathlib.Path(a.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        for i in range(a.local_processes):
            if i == a.test_never_start:
                log(f"launcher: NOT starting process {i} (--test-never-start)")
                continue
            cmd = [sys.executable, script, *self.passthrough,
                   "--coordinator", f"127.0.0.1:{port}",
                   "--coordinator-bind", f"127.0.0.1:{port}",
                   "--num-processes", str(a.local_processes), "--process-id", str(i),
                   *timeout_args(a)]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            self.procs[i] = proc
            thread = threading.Thread(target=self._relay, args=(i, proc.stdout), daemon=True)
            thread.start()
            self.threads.append(thread)
        pids = {str(i): p.pid for i, p in self.procs.items()}
        (workdir / "workers.json").write_text(json.dumps({"launcher": os.getpid(),
                                                          "workers": pids}))
        log(f"launcher: started {len(self.procs)} worker(s) on 127.0.0.1:{port}, "
            f"pids {pids}")

    def stop_all(self) -> None:
        """SIGKILLs every worker's process group and reaps the workers.

        Not SIGTERM: once ``jax.distributed`` is up, JAX's preemption notifier catches
        SIGTERM (on a cluster it means "you are about to be preempted"), so a worker would
        not stop on it.
        """
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs.values():
            p.wait()
        for t in self.threads:
            t.join(timeout=2.0)

    def wait(self) -> int:
        """Waits for the workers; returns the launcher's exit code (0: all succeeded)."""
        t0 = time.monotonic()
        while True:
            if self.preempt_requested and self.preempt_deadline is None:
                self.forward_preemption()
            codes = {i: p.poll() for i, p in self.procs.items()}
            failed = {i: c for i, c in codes.items() if c not in (None, 0, PREEMPTED)}
            if failed:
                elapsed = time.monotonic() - t0
                time.sleep(0.3)  # let the relay threads print the workers' last words
                codes = {i: p.poll() for i, p in self.procs.items()}
                failed = {i: c for i, c in codes.items() if c not in (None, 0, PREEMPTED)}
                for i, code in sorted(failed.items()):
                    reason = (self.errors.get(i, [])[-1:] or
                              [f"last output: {self.last_line.get(i, 'none')}"])[0]
                    log(f"launcher: JOB FAILED: process {i} (pid {self.procs[i].pid}) "
                        f"{describe_exit(code)} ({reason})")
                log(f"launcher: first failure seen {elapsed:.1f} s after start; "
                    f"stopping the other workers")
                self.stop_all()
                log(f"launcher: all workers ended {time.monotonic() - t0:.1f} s after start")
                return 1
            if all(c in (0, PREEMPTED) for c in codes.values()):
                for t in self.threads:
                    t.join(timeout=2.0)
                if PREEMPTED in codes.values():
                    log(f"launcher: job preempted: the workers saved a checkpoint and exited "
                        f"{time.monotonic() - t0:.1f} s after start; run the same command "
                        f"again to resume")
                    return PREEMPTED
                log(f"launcher: all {len(codes)} workers finished in "
                    f"{time.monotonic() - t0:.1f} s")
                return 0
            if self.preempt_deadline is not None and time.monotonic() > self.preempt_deadline:
                log(f"launcher: JOB FAILED: workers still running {self.args.preempt_grace:.0f} "
                    f"s after the preemption notice; stopping all workers")
                self.stop_all()
                return 1
            if time.monotonic() - t0 > self.args.job_timeout:
                running = sorted(i for i, c in codes.items() if c is None)
                log(f"launcher: JOB FAILED: job timeout ({self.args.job_timeout:.0f} s) "
                    f"reached, processes {running} still running; stopping all workers")
                self.stop_all()
                return 1
            time.sleep(0.05)


def strip_launcher_args(argv: list[str]) -> list[str]:
    """The command line minus the options that only the launcher uses."""
    drop_with_value = {"--local-processes", "--local-devices", "--port", "--job-timeout",
                       "--preempt-grace",
                       "--test-never-start", "--init-timeout",
                       "--heartbeat-timeout", "--shutdown-timeout"}
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        name = tok.split("=", 1)[0]
        if name == "--test-skip-port-check":
            continue
        if name in drop_with_value:
            skip = "=" not in tok
            continue
        out.append(tok)
    return out


def launch_local(args: argparse.Namespace, argv: list[str]) -> int:
    """``--local-processes N``: run N workers on 127.0.0.1 and supervise them."""
    if args.port is None:
        port = free_port()
    else:
        port = args.port
        if not args.test_skip_port_check and not port_is_free(port):
            log(f"launcher: JOB FAILED: coordinator port 127.0.0.1:{port} is already in use; "
                f"choose another --port or leave it out to pick a free one")
            return 2
    launcher = Launcher(args, strip_launcher_args(argv))

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Explicitly, also for SIGINT: a shell starting us in the background (``cmd &``) makes
    # Python inherit "ignore SIGINT", and Ctrl-C / kill -INT would do nothing.
    signal.signal(signal.SIGINT, interrupt)
    # SIGTERM is what a scheduler sends ahead of a preemption: pass it on to the workers.
    # (The handler only sets a flag; the supervision loop does the work.)
    def preempt(signum, frame):
        launcher.preempt_requested = True

    signal.signal(signal.SIGTERM, preempt)
    try:
        launcher.start(port)
        return launcher.wait()
    except KeyboardInterrupt:
        log("launcher: interrupted; stopping all workers")
        launcher.stop_all()
        return 130
    except BaseException:
        launcher.stop_all()
        raise


# --------------------------------------------------------------------------------------
# Worker: the training program every process runs
# --------------------------------------------------------------------------------------


def init_distributed(args: argparse.Namespace) -> None:
    """Joins the job; must run before anything else uses JAX."""
    import jax

    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {"initialization_timeout": args.init_timeout,
              "heartbeat_timeout_seconds": args.heartbeat_timeout,
              "shutdown_timeout_seconds": args.shutdown_timeout}
    if args.coordinator is not None:
        kwargs.update(coordinator_address=args.coordinator, num_processes=args.num_processes,
                      process_id=args.process_id)
        if args.coordinator_bind:
            kwargs["coordinator_bind_address"] = args.coordinator_bind
    where = args.coordinator or "auto-detected coordinator"
    log(f"joining {where} (init timeout {args.init_timeout} s, heartbeat timeout "
        f"{args.heartbeat_timeout} s)")
    t0 = time.monotonic()
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as e:
        elapsed = time.monotonic() - t0
        text = str(e)
        low = text.lower()
        bind = args.coordinator_bind or ""
        host, _, port = bind.rpartition(":")
        if ("rpc server" in low or "address already in use" in low) and port.isdigit() and (
            not _bindable(host, int(port))
        ):
            why = f"could not start the coordinator: {bind} is already in use"
        elif "deadline" in low or "timed out" in low or "timeout" in low:
            why = (f"not every one of the {args.num_processes} processes connected to "
                   f"{where} within --init-timeout={args.init_timeout} s (a peer never "
                   f"started, crashed early, or cannot reach the coordinator)")
        else:
            why = "jax.distributed.initialize failed"
        first = text.strip().splitlines()[0][:300] if text.strip() else type(e).__name__
        log(f"ERROR: {why} [after {elapsed:.1f} s; JAX said: {first}]")
        sys.exit(3)
    args.init_s = time.monotonic() - t0
    log(f"process {jax.process_index()}/{jax.process_count()} joined in "
        f"{args.init_s:.1f} s: {jax.local_device_count()} local of "
        f"{jax.device_count()} global devices")


def pausing_checkpoint_args(ocp, marker: pathlib.Path):
    """Save/restore args whose handler pauses before the commit (test hook).

    Orbax's save: every process writes its shards into a temporary directory, the
    processes meet at a barrier, then process 0 calls the handler's ``finalize`` and
    commits (renames the temporary directory to the step directory). This handler's
    ``finalize`` writes ``marker`` and sleeps once it is armed, which holds the checkpoint
    in the state "all data written, not committed" for as long as a test needs to kill a
    process there. Returns ``(save_args_cls, restore_args_cls, arm)``.
    """
    armed = threading.Event()

    class PausingHandler(ocp.StandardCheckpointHandler):
        def finalize(self, directory):
            if armed.is_set():
                marker.write_text(str(directory))
                log(f"test hook: pausing before the commit of {directory}")
                time.sleep(3600)
            return super().finalize(directory)

    @ocp.args.register_with_handler(PausingHandler, for_save=True)
    @dataclasses.dataclass
    class PausingSave(ocp.args.StandardSave):
        pass

    @ocp.args.register_with_handler(PausingHandler, for_restore=True)
    @dataclasses.dataclass
    class PausingRestore(ocp.args.StandardRestore):
        pass

    return PausingSave, PausingRestore, armed.set


def train(args: argparse.Namespace) -> int:
    """The training program: mesh, sharded params and state, steps, checkpoints.

    Returns 0 when it reached ``--steps``, ``PREEMPTED`` (75) when it saved a checkpoint
    on a preemption notice and stopped early.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import orbax.checkpoint as ocp
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from adamod_optax import adamod

    pid, nproc = jax.process_index(), jax.process_count()
    workdir = pathlib.Path(args.workdir).absolute()
    metrics: dict = {"process": pid, "processes": nproc, "devices": jax.device_count(),
                     "init_s": getattr(args, "init_s", None)}

    # --- the global mesh: ("data", "fsdp"); batch over both, params over "fsdp" ---------
    n = jax.device_count()
    fsdp = args.fsdp or n
    # Auto axes: the SPMD partitioner decides where to all-gather the FSDP-split params.
    mesh = jax.make_mesh((n // fsdp, fsdp), ("data", "fsdp"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 2)
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P(("data", "fsdp")))

    # --- model: an MLP; every param split along its first axis over "fsdp" ------------
    d_in, d_out, hidden = 16, 8, args.hidden
    shapes = {"w1": (d_in, hidden), "b1": (hidden,), "w2": (hidden, hidden),
              "b2": (hidden,), "w3": (hidden, d_out), "b3": (d_out,)}
    param_shardings = {k: NamedSharding(mesh, P("fsdp")) for k in shapes}

    def init_params(key):
        keys = dict(zip(shapes, jax.random.split(key, len(shapes))))
        return {k: (jax.random.normal(keys[k], s) / np.sqrt(s[0]) if len(s) == 2
                    else jnp.zeros(s)) for k, s in shapes.items()}

    def loss_fn(params, x, y):
        h = jnp.tanh(x @ params["w1"] + params["b1"])
        h = jnp.tanh(h @ params["w2"] + params["b2"])
        return jnp.mean((h @ params["w3"] + params["b3"] - y) ** 2)

    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        adamod(optax.cosine_decay_schedule(3e-3, max(args.steps, 1)), b3=0.999,
               weight_decay=1e-4, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
    )

    # --- state shardings: params-shaped leaves like their param, counters replicated ---
    abstract_params = jax.eval_shape(init_params, jax.random.key(0))
    state_shardings = optax.tree.map_params(
        tx,
        lambda _, sharding: sharding,
        jax.eval_shape(tx.init, abstract_params),
        param_shardings,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct),
    )

    def fresh_state():
        params = jax.jit(init_params, out_shardings=param_shardings)(
            jax.random.key(args.seed))
        opt_state = jax.jit(tx.init, out_shardings=state_shardings)(params)
        return {"params": params, "opt_state": opt_state}

    # The abstract sharded state: what a checkpoint is restored into (this run's layout,
    # whatever the layout of the run that wrote it).
    shardings = {"params": param_shardings, "opt_state": state_shardings}
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        jax.eval_shape(fresh_state), shardings)

    # --- data: the global batch of step k depends only on (seed, k) --------------------
    teacher = np.random.default_rng([args.seed, 10**6])
    t1 = teacher.standard_normal((d_in, 32)).astype(np.float32)
    t2 = teacher.standard_normal((32, d_out)).astype(np.float32)
    rows = sorted({idx[0].indices(args.global_batch)[:2] for idx in
                   batch_sharding.addressable_devices_indices_map(
                       (args.global_batch, d_in)).values()})
    lo, hi = rows[0][0], rows[-1][1]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(rows)), "non-contiguous local rows"

    def global_batch(k):
        rng = np.random.default_rng([args.seed, k])
        x = rng.standard_normal((args.global_batch, d_in)).astype(np.float32)
        return x, np.tanh(x @ t1) @ t2 / 4.0

    def local_batch(k):
        x, y = global_batch(k)
        xs = jax.make_array_from_process_local_data(batch_sharding, x[lo:hi], x.shape)
        ys = jax.make_array_from_process_local_data(batch_sharding, y[lo:hi], y.shape)
        return xs, ys

    @jax.jit
    def _step(state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, y)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates),
                "opt_state": opt_state}, loss

    train_step = jax.jit(_step, donate_argnums=(0,), out_shardings=(shardings, replicated))

    # --- checkpoints: every process saves its shards; resume from the latest ---------
    save_args, restore_args, arm_pause = ocp.args.StandardSave, ocp.args.StandardRestore, None
    if args.test_pause_save_at_step is not None:
        save_args, restore_args, arm_pause = pausing_checkpoint_args(
            ocp, workdir / "paused_in_save")
    manager = ocp.CheckpointManager(
        workdir / "checkpoints",
        options=ocp.CheckpointManagerOptions(
            # Every K steps, and at the step all processes agree on after a preemption
            # notice (SIGTERM, caught by JAX's preemption notifier).
            save_decision_policy=ocp.checkpoint_managers.AnySavePolicy([
                ocp.checkpoint_managers.FixedIntervalPolicy(args.ckpt_every),
                ocp.checkpoint_managers.PreemptionCheckpointingPolicy(),
            ]),
            max_to_keep=3,
            enable_async_checkpointing=not args.no_async_checkpointing,
            cleanup_tmp_directories=True),
    )
    latest = manager.latest_step()
    if latest is None:
        state, start = fresh_state(), 0
        log(f"process {pid}: no checkpoint in {workdir / 'checkpoints'}: starting at step 0")
    else:
        t0 = time.perf_counter()
        state = manager.restore(latest, args=restore_args(abstract))
        jax.block_until_ready(state)
        metrics["restore_s"] = time.perf_counter() - t0
        start = latest
        log(f"process {pid}: restored checkpoint step {latest} in "
            f"{metrics['restore_s']:.2f} s")
    for leaf, want in zip(jax.tree.leaves(state), jax.tree.leaves(shardings)):
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim), (leaf.sharding, want)

    # --- the loop -----------------------------------------------------------------------
    losses, step_times, saves = {}, [], []
    t_prev = time.perf_counter()
    for k in range(start, args.steps):
        if k == args.test_die_at_step:
            # Every process first finishes (commits) the pending checkpoint, so the kill
            # lands strictly after it; then the chosen process dies.
            manager.wait_until_finished()
            multihost_utils.sync_global_devices("test-die-after-checkpoint")
        if k == args.test_die_at_step and pid == args.test_die_process:
            log(f"test hook: process {pid} kills itself (SIGKILL) before step {k} "
                f"at t={time.time():.3f}")
            os.kill(os.getpid(), signal.SIGKILL)
        if k == args.test_freeze_at_step and pid == args.test_die_process:
            log(f"test hook: process {pid} freezes itself (SIGSTOP) before step {k} "
                f"at t={time.time():.3f}")
            os.kill(os.getpid(), signal.SIGSTOP)
        state, loss = train_step(state, *local_batch(k))
        if (k + 1) % args.log_every == 0 or k + 1 == args.steps:
            loss = float(loss)  # waits for the step
            losses[k + 1] = loss
            if pid == 0:
                log(f"step {k + 1} loss {loss:.6f}")
        if k + 1 == args.test_pause_save_at_step:
            # Earlier saves commit in the background: let them finish first, so that the
            # pause hits this step's commit and not a late one of an earlier step.
            manager.wait_until_finished()
            arm_pause()
        if manager.should_save(k + 1):  # call it every step (preemption sync protocol)
            jax.block_until_ready(state)
            t0 = time.perf_counter()
            manager.save(k + 1, args=save_args(state))
            blocking = time.perf_counter() - t0
            if args.wait_after_save:
                manager.wait_until_finished()
            saves.append({"step": k + 1, "blocking_s": blocking,
                          "total_s": time.perf_counter() - t0})
            if pid == 0:
                log(f"checkpoint step {k + 1} saved ({blocking:.2f} s blocking)")
        jax.block_until_ready(loss)
        now = time.perf_counter()
        step_times.append(now - t_prev)
        t_prev = now
        if manager.reached_preemption(k + 1):
            manager.wait_until_finished()
            log(f"process {pid}: preemption notice: checkpoint step {k + 1} saved; exiting "
                f"(code {PREEMPTED}); start the job again to resume")
            preempted_at = k + 1
            break
    else:
        preempted_at = None
    manager.wait_until_finished()
    manager.close()

    metrics.update(start_step=start, end_step=preempted_at or args.steps,
                   preempted=preempted_at is not None, step_times_s=step_times, saves=saves,
                   losses=losses)
    (workdir / "metrics").mkdir(parents=True, exist_ok=True)
    (workdir / "metrics" / f"process_{pid}.json").write_text(json.dumps(metrics, indent=1))

    if preempted_at is not None:
        return PREEMPTED
    if args.dump_final:
        gathered = multihost_utils.process_allgather(state, tiled=True)
        flat = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in
                jax.tree_util.tree_flatten_with_path(gathered)[0]}
        (workdir / "final").mkdir(parents=True, exist_ok=True)
        np.savez(workdir / "final" / f"process_{pid}.npz", **flat)
    log(f"process {pid}: done at step {args.steps}")
    return 0


def main(argv=None) -> int:
    """Entry point: launcher with --local-processes, otherwise a worker."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.local_processes:
        return launch_local(args, argv)
    if args.no_distributed:
        return train(args)
    init_distributed(args)
    try:
        return train(args)
    except Exception as e:
        text = str(e).strip()
        first = text.splitlines()[0][:300] if text else type(e).__name__
        hint = ""
        if "gloo" in text.lower() or "connection closed" in text.lower():
            hint = " (a collective failed: a peer process died or dropped its connection)"
        traceback.print_exc()
        log(f"ERROR: training failed on this process{hint}: {type(e).__name__}: {first}")
        # Skip JAX's exit barrier: with a dead peer it would wait for the heartbeat timeout
        # and then abort. Exiting now lets the launcher or the scheduler end the job.
        sys.stdout.flush()
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
