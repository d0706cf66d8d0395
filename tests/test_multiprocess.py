"""Real multi-process training on ``jax.distributed``: bitwise results, preemption, faults.

Every test starts ``examples/multiprocess_fsdp.py`` in its launcher mode, which runs N OS
processes on 127.0.0.1 (``JAX_PLATFORMS=cpu``, 2 simulated CPU devices each unless said
otherwise, gloo collectives, a coordinator bound to loopback on a free port). The model
is an MLP trained with ``adamod`` on a global ("data", "fsdp") mesh; params and every
params-shaped optimizer-state leaf are split over all devices, counters replicated.
Each run's processes gather the final params and optimizer state and write them as
numpy (``--dump-final``), which is what the tests compare, leaf by leaf, bit for bit.

What is asserted:

* (a) the processes of a run hold identical params and state;
* (b) 2 processes x 2 devices equal 1 process x 4 devices that also goes through
  ``jax.distributed.initialize(num_processes=1)`` (same gloo collectives) bit for bit.
  A plain run without the distributed runtime on 4 devices is NOT bitwise equal (XLA's
  in-process all-reduce adds in another order); measured here after 30 steps: 24 of the
  26 leaves differ, by at most 4.6e-7 over all leaves (an optimizer-state leaf) and 6.0e-8
  over the params, whose entries reach 0.82. The test bounds the difference at 1e-5;
* (c) a process SIGKILLed after the step-20 checkpoint ends the job (the survivor's
  next collective fails at once), and the job restarted from that checkpoint ends bit
  for bit equal to the uninterrupted run;
* (d) that checkpoint, written by 2 processes, restored onto 1 process x 4 devices and
  onto 4 processes x 1 device, continues to the same bits;
* (e) a process killed while a checkpoint is being written: the example's test hook
  ``--test-pause-save-at-step 20`` makes process 0 stop inside orbax's save after every
  process wrote its shards into the temporary directory and before the commit (it
  writes the marker file ``paused_in_save``); the test then SIGKILLs process 0. The
  restarted job must ignore the half-written step 20 and resume from step 10, ending bit
  for bit equal to the uninterrupted run;
* a preemption notice (SIGTERM) makes the processes agree on a step, save there and exit;
  the restart resumes from it and ends bit for bit equal to the uninterrupted run;
* (f) a peer that never starts (initialization timeout), a coordinator port already
  taken (checked by the launcher, and as JAX reports it), a peer killed mid-step, a peer
  that freezes mid-step (heartbeat timeout), Ctrl-C and the job timeout all end the job
  within a bounded time with a message saying what happened;
* (g) the fixture ``jobs`` SIGKILLs the process group of every launcher and worker a
  test started and asserts that none of those processes is left.

Two to three and a half minutes on 2 CPU cores (138 s to 194 s measured, the slower runs
while other jobs loaded the machine; the single slowest job: 4 processes, ~15 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint  # noqa: F401  (a test dependency: fail, don't skip, without it)
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "multiprocess_fsdp.py"
STEPS, CKPT_EVERY = 30, 10
RUN_TIMEOUT = 240  # seconds: a hard bound on any single job in this file


def _alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


class Jobs:
    """Starts launcher jobs and remembers every pid they started, to end them all."""

    def __init__(self):
        self.pids: set[int] = set()
        self.workdirs: list[pathlib.Path] = []

    def _record_workers(self):
        for workdir in self.workdirs:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                info = json.loads((workdir / "workers.json").read_text())
                self.pids.update(int(p) for p in info["workers"].values())

    def start(self, workdir: pathlib.Path, *args: str, processes: int = 2,
              devices: int = 2) -> tuple[subprocess.Popen, pathlib.Path]:
        """Starts ``--local-processes`` in its own session; output goes to a log file."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdirs.append(workdir)
        (workdir / "workers.json").unlink(missing_ok=True)
        logfile = workdir / f"launcher_{len(self.pids)}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        cmd = [sys.executable, str(EXAMPLE), "--local-processes", str(processes),
               "--local-devices", str(devices), "--workdir", str(workdir),
               "--steps", str(STEPS), "--ckpt-every", str(CKPT_EVERY),
               "--job-timeout", "180", *args]
        with open(logfile, "w") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.pids.add(proc.pid)
        return proc, logfile

    def finish(self, proc: subprocess.Popen, logfile: pathlib.Path,
               timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
        """Waits for a launcher (killing it on timeout); returns (code, output)."""
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.end_all()
            pytest.fail(f"job did not end within {timeout} s:\n{logfile.read_text()[-6000:]}")
        self._record_workers()
        return code, logfile.read_text()

    def run(self, workdir, *args, processes=2, devices=2, expect_ok=True):
        """Runs a job to its end; returns (code, output, seconds)."""
        t0 = time.monotonic()
        code, out = self.finish(*self.start(workdir, *args, processes=processes,
                                            devices=devices))
        elapsed = time.monotonic() - t0
        if expect_ok:
            assert code == 0, out[-6000:]
        return code, out, elapsed

    def worker_pid(self, workdir: pathlib.Path, process: int, timeout: float = 60) -> int:
        """The pid of worker ``process`` of the job in ``workdir`` (waits for the file)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                info = json.loads((workdir / "workers.json").read_text())
                self.pids.update(int(p) for p in info["workers"].values())
                return int(info["workers"][str(process)])
            time.sleep(0.1)
        raise AssertionError(f"no workers.json in {workdir}")

    def end_all(self):
        """SIGKILLs the process group of every pid seen (each is a session leader)."""
        self._record_workers()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def jobs():
    """Gives a test a ``Jobs``; afterwards, ends them all and checks nothing survived."""
    tracker = Jobs()
    try:
        yield tracker
    finally:
        tracker.end_all()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in tracker.pids):
            time.sleep(0.1)
        left = sorted(p for p in tracker.pids if _alive(p))
        assert not left, f"processes outlived the test: {left}"


# --- helpers ---------------------------------------------------------------------------


def load_final(workdir: pathlib.Path, process: int = 0) -> dict[str, np.ndarray]:
    """The params + optimizer state that process ``process`` gathered at the end."""
    with np.load(workdir / "final" / f"process_{process}.npz") as f:
        return {k: f[k] for k in f.files}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    """Same leaves, same dtypes, same bits (NaN-safe: compares the raw bytes)."""
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), f"{key} differs"


def _hook_time(out: str) -> float:
    return float(re.search(r"test hook: .* at t=([0-9.]+)", out).group(1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: 2 processes x 2 devices, 30 steps, final dump."""
    workdir = tmp_path_factory.mktemp("reference")
    tracker = Jobs()
    try:
        _, out, seconds = tracker.run(workdir, "--dump-final")
    finally:
        tracker.end_all()
    assert not [p for p in tracker.pids if _alive(p)]
    return workdir, out, seconds


# --- (a), (b): bitwise agreement -----------------------------------------------------


def test_all_processes_agree_bit_for_bit(reference):
    workdir, out, _ = reference
    p0, p1 = load_final(workdir, 0), load_final(workdir, 1)
    assert_bitwise_equal(p0, p1)
    # params and every optimizer-state leaf are there: 6 params, AdaMod's mu, nu and
    # rate average for each, and the two step counters.
    assert len(p0) == 6 + 3 * 6 + 2, sorted(p0)
    assert sum(".mu[" in k for k in p0) == sum(".rate_avg[" in k for k in p0) == 6
    assert int(p0["['opt_state'][1][0].count"]) == STEPS
    # Both processes wrote their own shards into every committed checkpoint.
    step = workdir / "checkpoints" / str(STEPS)
    assert (step / "commit_success.txt").exists()
    assert {p.name for p in (step / "default").glob("ocdbt.process_*")} == {
        "ocdbt.process_0", "ocdbt.process_1"}
    assert "no checkpoint" in out and "step 30 loss" in out


def test_one_process_four_devices_equals_two_processes(reference, jobs, tmp_path):
    ref, _, _ = reference
    jobs.run(tmp_path / "one", "--dump-final", processes=1, devices=4)
    assert_bitwise_equal(load_final(tmp_path / "one"), load_final(ref))


def test_plain_in_process_run_differs_only_in_the_last_bits(reference, tmp_path):
    """Without jax.distributed the all-reduce is XLA's in-process one: not bitwise."""
    ref = load_final(reference[0])
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(EXAMPLE), "--no-distributed", "--workdir", str(tmp_path),
           "--steps", str(STEPS), "--ckpt-every", str(CKPT_EVERY), "--dump-final"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    plain = load_final(tmp_path)
    assert sorted(plain) == sorted(ref)
    diff = {k: float(np.max(np.abs(plain[k].astype(np.float64) - ref[k]))) for k in ref}
    worst = max(diff.values())
    worst_params = max(v for k, v in diff.items() if k.startswith("['params']"))
    scale = max(float(np.max(np.abs(ref[k]))) for k in ref if k.startswith("['params']"))
    print(f"plain vs distributed: {sum(v > 0 for v in diff.values())} of {len(diff)} leaves "
          f"differ; max |diff| {worst:.3g} (params: {worst_params:.3g}, params up to "
          f"{scale:.3g})")
    assert worst < 1e-5, worst


# --- (c), (d): preemption and layout changes ---------------------------------------


@pytest.fixture(scope="module")
def killed_after_checkpoint(tmp_path_factory):
    """A 2-process job whose process 1 SIGKILLs itself before step 25 (after ckpt 20)."""
    workdir = tmp_path_factory.mktemp("killed")
    tracker = Jobs()
    try:
        code, out, _ = tracker.run(workdir, "--test-die-at-step", "25", expect_ok=False)
        end = time.time()
    finally:
        tracker.end_all()
    return workdir, code, out, end - _hook_time(out)


def test_sigkilled_process_ends_job_and_restart_is_bit_identical(
        reference, killed_after_checkpoint, jobs, tmp_path):
    src, code, out, seconds_to_end = killed_after_checkpoint
    assert code == 1
    assert "process 1" in out and "was killed by SIGKILL" in out, out[-4000:]
    assert "a peer process died or dropped its connection" in out, out[-4000:]
    print(f"killed peer: job ended {seconds_to_end:.2f} s after the SIGKILL")
    assert seconds_to_end < 5, seconds_to_end  # measured: under a second
    assert sorted(int(p.name) for p in (src / "checkpoints").iterdir()) == [10, 20]

    workdir = tmp_path / "restart"
    shutil.copytree(src / "checkpoints", workdir / "checkpoints")
    _, out, _ = jobs.run(workdir, "--dump-final")
    assert "restored checkpoint step 20" in out
    assert_bitwise_equal(load_final(workdir, 0), load_final(reference[0]))
    assert_bitwise_equal(load_final(workdir, 1), load_final(reference[0]))


@pytest.mark.parametrize(("processes", "devices"), [(1, 4), (4, 1)])
def test_two_process_checkpoint_restores_onto_another_layout(
        reference, killed_after_checkpoint, jobs, tmp_path, processes, devices):
    src = killed_after_checkpoint[0]
    workdir = tmp_path / f"{processes}x{devices}"
    shutil.copytree(src / "checkpoints", workdir / "checkpoints")
    _, out, _ = jobs.run(workdir, "--dump-final", processes=processes, devices=devices)
    assert out.count("restored checkpoint step 20") == processes, out[-4000:]
    for p in range(processes):
        assert_bitwise_equal(load_final(workdir, p), load_final(reference[0]))


# --- (e): killed while a checkpoint is being written ---------------------------------


def test_kill_during_checkpoint_write_resumes_from_previous(reference, jobs, tmp_path):
    workdir = tmp_path / "midsave"
    proc, logfile = jobs.start(workdir, "--test-pause-save-at-step", "20")
    marker = workdir / "paused_in_save"
    deadline = time.monotonic() + RUN_TIMEOUT
    while not marker.exists():
        assert proc.poll() is None, logfile.read_text()[-4000:]
        assert time.monotonic() < deadline, "the save never paused"
        time.sleep(0.05)
    ckpts = workdir / "checkpoints"
    # Mid-save: the step-20 data of both processes is in a temporary directory, no
    # committed step 20 exists.
    tmp_dirs = [p for p in ckpts.iterdir() if p.name.startswith("20.")]
    assert tmp_dirs and not (ckpts / "20").exists(), list(ckpts.iterdir())
    assert "tmp" in tmp_dirs[0].name
    written = {p.name for p in tmp_dirs[0].rglob("ocdbt.process_*")}
    assert written == {"ocdbt.process_0", "ocdbt.process_1"}, written
    os.kill(jobs.worker_pid(workdir, 0), signal.SIGKILL)
    code, out = jobs.finish(proc, logfile)
    assert code == 1 and "process 0" in out and "was killed by SIGKILL" in out, out[-4000:]
    assert not (ckpts / "20").exists()

    _, out, _ = jobs.run(workdir, "--dump-final")
    assert "restored checkpoint step 10" in out, out[-4000:]
    assert_bitwise_equal(load_final(workdir, 0), load_final(reference[0]))
    assert (ckpts / "20" / "commit_success.txt").exists()  # written again, committed
    assert not [p for p in ckpts.iterdir() if "tmp" in p.name]  # leftovers cleaned


def test_preemption_notice_saves_a_checkpoint_and_resume_is_bit_identical(
        reference, jobs, tmp_path):
    """SIGTERM to the launcher = a scheduler's preemption notice, forwarded to every worker.

    JAX's preemption notifier catches it, the processes agree on a step, orbax saves there
    (PreemptionCheckpointingPolicy), the workers exit with code 75; the restart resumes
    from that step and ends bit for bit equal to the uninterrupted run.
    """
    workdir = tmp_path / "preempt"
    proc, logfile = jobs.start(workdir)
    deadline = time.monotonic() + RUN_TIMEOUT
    while not all(f"process {i}: no checkpoint" in logfile.read_text() for i in (0, 1)):
        assert proc.poll() is None and time.monotonic() < deadline, logfile.read_text()[-4000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    code, out = jobs.finish(proc, logfile)
    assert code == 75 and "launcher: job preempted" in out, out[-4000:]
    saved = re.findall(r"process (\d): preemption notice: checkpoint step (\d+) saved", out)
    assert sorted(p for p, _ in saved) == ["0", "1"] and len({s for _, s in saved}) == 1, saved
    step = int(saved[0][1])
    print(f"preemption notice: both processes saved step {step} and exited")
    assert 0 < step < STEPS, step
    assert (workdir / "checkpoints" / str(step) / "commit_success.txt").exists()

    _, out, _ = jobs.run(workdir, "--dump-final")
    assert f"restored checkpoint step {step}" in out, out[-4000:]
    assert_bitwise_equal(load_final(workdir, 0), load_final(reference[0]))


# --- (f): faults end the job in bounded time with a clear message -------------------


def test_peer_that_never_starts_ends_after_init_timeout(jobs, tmp_path):
    code, out, seconds = jobs.run(tmp_path, "--test-never-start", "1", "--init-timeout", "5",
                                  expect_ok=False)
    assert code == 1
    assert "jax.distributed.initialize timed out after --init-timeout=5 s" in out, out[-4000:]
    assert "not all 2 processes connected" in out
    # ~3 s to start Python and import JAX, then the 5 s timeout; measured ~11 s.
    print(f"peer never started: job ended {seconds:.1f} s after launch")
    assert 5 < seconds < 30, seconds


def test_port_already_taken(jobs, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        # The launcher checks the port before starting anything.
        code, out, seconds = jobs.run(tmp_path / "a", "--port", port, expect_ok=False)
        print(f"port taken (launcher check): job ended {seconds:.2f} s after launch")
        assert code == 2 and seconds < 10, (seconds, out)
        assert f"coordinator port 127.0.0.1:{port} is already in use" in out
        # Without that check, process 0 fails to start the coordinator (JAX raises, or at
        # times crashes with SIGSEGV); the message comes from the worker or from the
        # launcher reading gRPC's log line. The launcher then ends process 1, which would
        # otherwise wait for the init timeout.
        code, out, seconds = jobs.run(tmp_path / "b", "--port", port,
                                      "--test-skip-port-check", expect_ok=False)
        assert code == 1, out[-4000:]
        assert f"could not start the coordinator: 127.0.0.1:{port} is already in use" in out
        print(f"port taken (JAX): job ended {seconds:.1f} s after launch")
        assert "process 0" in out and seconds < 30, (seconds, out[-4000:])


def test_peer_frozen_mid_step_ends_after_heartbeat_timeout(jobs, tmp_path):
    code, out, _ = jobs.run(tmp_path, "--test-freeze-at-step", "5", "--heartbeat-timeout", "5",
                            expect_ok=False)
    seconds = time.time() - _hook_time(out)
    assert code == 1
    assert "no heartbeat within --heartbeat-timeout=5 s" in out, out[-4000:]
    assert "process 0" in out and "SIGABRT" in out
    print(f"frozen peer: job ended {seconds:.1f} s after the SIGSTOP")
    # Measured 3.7-5.8 s: the timeout counts from the last heartbeat, which can come a
    # while before the freeze; so the lower bound is loose.
    assert 2 < seconds < 20, seconds


def test_ctrl_c_and_job_timeout_end_every_worker(jobs, tmp_path):
    proc, logfile = jobs.start(tmp_path / "int", "--steps", "100000")
    pids = [jobs.worker_pid(tmp_path / "int", i) for i in (0, 1)]
    while "step 10 loss" not in logfile.read_text():
        assert proc.poll() is None, logfile.read_text()[-4000:]
        time.sleep(0.1)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, out = jobs.finish(proc, logfile, timeout=30)
    assert code == 130 and "interrupted; stopping all workers" in out
    print(f"Ctrl-C: job ended {time.monotonic() - t0:.2f} s after SIGINT")
    assert time.monotonic() - t0 < 5
    assert not [p for p in pids if _alive(p)]

    code, out, seconds = jobs.run(tmp_path / "slow", "--steps", "100000", "--job-timeout",
                                  "20", expect_ok=False)
    assert code == 1 and "job timeout (20 s) reached" in out, out[-4000:]
    print(f"job timeout 20 s: job ended {seconds:.1f} s after launch")
    assert seconds < 30
