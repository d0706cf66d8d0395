"""Spanish-to-English translation: Adam without and with warmup against AdaMod, scored with BLEU.

The AdaMod paper's central experiment (its Table 2 and Figures 1, 2, 9) on
data that needs no download: a post-LayerNorm encoder-decoder Transformer
(:mod:`benchmarks.nmt`, fairseq's ``transformer_iwslt_de_en`` scaled down)
trained on the Reina-Valera 1909 / King James verse pairs
(:mod:`benchmarks.bible`), whole books held out for validation and test,
test BLEU from ``sacrebleu`` on detokenized beam-search output. Three arms on
one learning rate and one inverse-square-root decay:

* ``adam``: AdamW (fairseq's Adam: decoupled weight decay), no warmup;
* ``adam_warmup``: the same with a linear warmup over the first
  ``warmup_fraction`` of the run (fairseq's ``inverse_sqrt`` schedule);
* ``adamod``: :func:`adamod_optax.adamod`, no warmup.

Every (arm, seed) checkpoints with orbax; ``--resume`` continues an
interrupted run with the same result as an uninterrupted one. Each finished
run writes at once, under ``--out``: ``<arm>_seed<k>.json`` (configuration,
losses, learning-rate histograms, BLEU, sacrebleu's signature) and
``<arm>_seed<k>.hyp.txt`` (detokenized test hypotheses, one verse a line,
aligned with ``test.ref.txt`` and ``test.src.txt``). ``--report`` rebuilds the
table (``translation.md``) and the figures from those files; ``--check``
recomputes every BLEU from the text files.

    python -m benchmarks.translation --resume --workers 2      # the full run (~3.5 h)
    python -m benchmarks.translation --report                  # table and figures again
    CI=true python -m benchmarks.translation --out /tmp/smoke  # seconds: the smoke size

Needs the ``translation`` extra and the Debian packages of the two Bibles::

    pip install ".[translation]"
    sudo apt-get install -y sword-text-kjv sword-text-sparv
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from benchmarks import bible, nmt
from benchmarks.smoke import label, smoke_requested

ARMS = ("adam", "adam_warmup", "adamod")
ARM_NAMES = {"adam": "Adam, no warmup", "adam_warmup": "Adam, linear warmup",
             "adamod": "AdaMod, no warmup"}
# Held-out books: both testaments, prose, poetry and letters; 330 + 555 verses.
VALID_BOOKS = ("Ruth", "Haggai", "Philippians", "I John")
TEST_BOOKS = ("Esther", "Jonah", "Ephesians", "Colossians", "James")


@dataclasses.dataclass(frozen=True)
class Config:
    """One experiment's size and hyperparameters (all arms share it)."""

    steps: int = 2000
    lr: float = 1e-3
    warmup_fraction: float = 0.1
    b1: float = 0.9
    b2: float = 0.98
    eps: float = 1e-9
    weight_decay: float = 1e-4
    b3: float = 0.995
    model: nmt.ModelConfig = dataclasses.field(default_factory=nmt.ModelConfig)
    batching: nmt.Batching = dataclasses.field(default_factory=nmt.Batching)
    vocab_size: int = 8000
    max_len: int = 64
    valid_books: tuple[str, ...] = VALID_BOOKS
    test_books: tuple[str, ...] = TEST_BOOKS
    train_books: Optional[tuple[str, ...]] = None  # None: every other book
    beam: int = 5
    len_penalty: float = 1.0
    test_limit: Optional[int] = None  # decode only the first n test verses (smoke)
    eval_every: int = 100
    hist_every: int = 20
    ckpt_every: int = 100

    @property
    def warmup(self) -> int:
        return max(round(self.warmup_fraction * self.steps), 1)

    def __post_init__(self):
        if self.model.vocab_size != self.vocab_size:
            raise ValueError("model.vocab_size must equal vocab_size")
        if self.steps < 1 or self.lr <= 0:
            raise ValueError(f"need steps >= 1 and lr > 0, got {self.steps}, {self.lr}")
        if not 0 < self.warmup_fraction <= 1:
            raise ValueError(f"warmup_fraction must lie in (0, 1], got {self.warmup_fraction}")
        if self.batching.buckets[-1] < self.max_len:
            raise ValueError("the largest length bucket must hold max_len tokens")


FULL = Config()
SMOKE = Config(
    steps=6, lr=1e-3, warmup_fraction=0.5, b3=0.9, vocab_size=300,
    model=nmt.ModelConfig(vocab_size=300, d_model=32, heads=2, ffn=64, enc_layers=2,
                          dec_layers=2),
    batching=nmt.Batching(buckets=(32, 64), tokens_per_batch=512),
    train_books=("Jonah", "Ruth", "Philemon", "Jude"), valid_books=("Obadiah",),
    test_books=("II John",), beam=2, test_limit=6, eval_every=3, hist_every=2, ckpt_every=2,
)


# --------------------------------------------------------------------------- #
# Optimizers: one learning rate, one decay; the arms differ in warmup and optimizer.
# --------------------------------------------------------------------------- #


def schedule(cfg: Config, warmup: bool):
    """fairseq's ``inverse_sqrt``: ``lr min(t / W, sqrt(W / t))`` at step ``t = count + 1``;
    without warmup ``lr min(1, sqrt(W / t))`` (constant, then the same decay)."""
    import jax.numpy as jnp

    w, lr = float(cfg.warmup), cfg.lr

    def fn(count):
        t = jnp.asarray(count, jnp.float32) + 1.0
        decay = jnp.sqrt(w / t)
        return lr * jnp.minimum(t / w if warmup else 1.0, decay)

    return fn


def describe_schedule(cfg: Config, warmup: bool) -> str:
    if warmup:
        return (f"linear warmup over {cfg.warmup} steps to {cfg.lr:g}, then "
                f"{cfg.lr:g} * sqrt({cfg.warmup} / t)")
    return f"{cfg.lr:g} for {cfg.warmup} steps, then {cfg.lr:g} * sqrt({cfg.warmup} / t)"


def optimizer(arm: str, cfg: Config):
    """(transformation, schedule, diagnostics keywords) of one arm."""
    import optax

    from adamod_optax import adamod

    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; expected one of {ARMS}")
    sched = schedule(cfg, warmup=arm == "adam_warmup")
    kw = dict(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if arm == "adamod":
        return adamod(sched, b3=cfg.b3, **kw), sched, {}
    # optax.adamw's state does not record its hyperparameters; the diagnostics need them
    return optax.adamw(sched, **kw), sched, dict(learning_rate=sched, b2=cfg.b2, eps=cfg.eps)


# --------------------------------------------------------------------------- #
# Data: pairs, tokenizer, encoded splits.
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class Data:
    train_src: list
    train_tgt: list
    valid_batches: list
    test: list  # VersePair
    tokenizer_path: str
    tokenizer_sha256: str
    counts: dict


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SystemExit(f"error: the translation experiment needs '{module}'. Install the "
                         f"extra:  pip install \".[translation]\"") from e


def train_tokenizer(pairs: Sequence[bible.VersePair], vocab_size: int, path: str) -> str:
    """A joint Spanish-English sentencepiece unigram vocabulary, trained on ``pairs``
    only (single-threaded: the same file every time). Returns ``path``."""
    spm = _require("sentencepiece")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    text = [p.es for p in pairs] + [p.en for p in pairs]
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text), model_writer=f, vocab_size=vocab_size,
            model_type="unigram", character_coverage=0.9995, num_threads=1,
            pad_id=nmt.PAD, unk_id=nmt.UNK, bos_id=nmt.BOS, eos_id=nmt.EOS,
            minloglevel=2)
    os.replace(tmp, path)
    return path


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def prepare(cfg: Config, work: str) -> Data:
    """Loads the pairs, splits by book, trains (or reuses) the tokenizer, encodes."""
    spm = _require("sentencepiece")
    pairs = bible.load_pairs()
    split = bible.split_by_book(pairs, cfg.valid_books, cfg.test_books)
    if cfg.train_books is not None:
        split["train"] = [p for p in split["train"] if p.book in cfg.train_books]
    key = hashlib.sha256(json.dumps([cfg.vocab_size, sorted({p.book for p in split["train"]}),
                                     len(split["train"])]).encode()).hexdigest()[:12]
    tok_path = os.path.join(work, f"spm_{cfg.vocab_size}_{key}.model")
    if not os.path.isfile(tok_path):
        train_tokenizer(split["train"], cfg.vocab_size, tok_path)
    sp = spm.SentencePieceProcessor(model_file=tok_path)
    src, tgt, _ = nmt.encode_pairs(sp, split["train"], cfg.max_len)
    vsrc, vtgt, _ = nmt.encode_pairs(sp, split["valid"], cfg.max_len)
    rng = np.random.default_rng(0)
    valid = [nmt.make_batch(vsrc, vtgt, b, rows, cfg.batching)
             for b, rows in nmt.epoch_batches(vsrc, vtgt, cfg.batching, rng)]
    test = split["test"][: cfg.test_limit]
    counts = {"pairs": len(pairs), "train_pairs_all_lengths": len(split["train"]),
              "train_pairs": len(src), "valid_pairs_all_lengths": len(split["valid"]),
              "valid_pairs": len(vsrc), "test_pairs": len(test),
              "train_target_tokens": int(sum(len(t) for t in tgt))}
    return Data(src, tgt, valid, test, tok_path, _sha256(tok_path), counts)


# --------------------------------------------------------------------------- #
# One run: train with checkpoints, decode the test books, score.
# --------------------------------------------------------------------------- #


def _jitted(arm: str, cfg: Config):
    import jax
    import optax

    from adamod_optax import learning_rate_summary

    tx, sched, rate_kw = optimizer(arm, cfg)

    @jax.jit
    def train_step(params, opt_state, batch, key):
        (_, terms), grads = jax.value_and_grad(nmt.train_loss, has_aux=True)(
            params, batch, cfg.model, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, terms, grads

    @jax.jit
    def summary(opt_state, grads):
        # 0.25-decade bins from 1e-9 to 1e4: Adam's rates reach lr / eps = 1e6 only where
        # v = 0 (left out), and the end bins hold whatever lies beyond.
        # No quantiles: sorting 3.8M rates costs 0.8 s, the histogram 0.06 s.
        return learning_rate_summary(opt_state, grads=grads, num_bins=52, log10_min=-9.0,
                                     log10_max=4.0, quantiles=(), **rate_kw)

    @jax.jit
    def eval_terms(params, batch):
        return nmt.loss_terms(params, batch, cfg.model)

    return tx, sched, train_step, summary, eval_terms


def _run_name(arm: str, seed: int, cfg: Optional[Config] = None) -> str:
    """``<arm>_seed<k>``; an AdaMod run of the ``b3`` sweep (``--b3`` other than the
    experiment's) is ``adamod_b3-<b3>_seed<k>``."""
    if arm == "adamod" and cfg is not None and cfg.b3 != _default_b3(cfg):
        return f"adamod_b3-{cfg.b3:g}_seed{seed}"
    return f"{arm}_seed{seed}"


def _default_b3(cfg: Config) -> float:
    return SMOKE.b3 if cfg.vocab_size == SMOKE.vocab_size else FULL.b3


def _checkpoint_manager(path: str, cfg: Config):
    import orbax.checkpoint as ocp

    return ocp.CheckpointManager(
        os.path.abspath(path),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        item_names=("state", "log"))


def train_run(arm: str, seed: int, cfg: Config, data: Data, work: str, *,
              resume: bool, stop_after: Optional[int] = None,
              progress: bool = False) -> Optional[dict[str, Any]]:
    """Trains one (arm, seed); returns its log, or None when stopped at ``stop_after``.

    Saves ``params``, ``opt_state`` and the log every ``cfg.ckpt_every`` steps and
    at the end; with ``resume`` the latest checkpoint is restored first. The
    batches and dropout keys are functions of ``(seed, step)``, so a resumed run
    is the uninterrupted run. ``stop_after`` ends the process's work after that
    many steps (tests use it to simulate an interruption).
    """
    import jax
    import orbax.checkpoint as ocp

    tx, sched, train_step, summary, eval_terms = _jitted(arm, cfg)
    params = nmt.init_params(jax.random.PRNGKey(seed), cfg.model)
    opt_state = tx.init(params)
    log: dict[str, Any] = {"steps": [], "train_loss": [], "train_nll": [], "lr": [],
                           "val_steps": [], "val_loss": [], "val_nll": [],
                           "hist_steps": [], "hist": [], "lr_max": [], "fraction_bounded": [],
                           "train_seconds": 0.0, "resumed_at": []}
    ckpt_dir = os.path.join(work, "checkpoints", _run_name(arm, seed, cfg))
    manager = _checkpoint_manager(ckpt_dir, cfg)
    start = 0
    if resume and manager.latest_step() is not None:
        start = manager.latest_step()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                                {"params": params, "opt_state": opt_state})
        restored = manager.restore(start, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), log=ocp.args.JsonRestore()))
        params, opt_state = restored.state["params"], restored.state["opt_state"]
        log = dict(restored.log)
        log["resumed_at"] = [*log["resumed_at"], start]
    elif manager.latest_step() is not None:
        raise SystemExit(f"error: {ckpt_dir} holds checkpoints of an earlier run; pass "
                         "--resume to continue it, or delete the directory to start over.")
    stream = nmt.BatchStream(data.train_src, data.train_tgt, cfg.batching, seed)
    root_key = jax.random.PRNGKey(10_000 + seed)

    def validate():
        tot = np.zeros(3)
        for batch in data.valid_batches:
            tot += np.asarray(jax.device_get(eval_terms(params, batch)), np.float64)
        return tot[0] / tot[2], tot[1] / tot[2]

    def save(step):
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
            log=ocp.args.JsonSave(log)))
        manager.wait_until_finished()

    t0 = time.perf_counter()
    if start == 0:
        vl, vn = validate()
        log["val_steps"].append(0), log["val_loss"].append(vl), log["val_nll"].append(vn)
    for k in range(start, cfg.steps):
        params, opt_state, terms, grads = train_step(
            params, opt_state, stream[k], jax.random.fold_in(root_key, k))
        loss, nll, ntok = (float(x) for x in jax.device_get(terms))
        step = k + 1
        log["steps"].append(step)
        log["train_loss"].append(loss / ntok)
        log["train_nll"].append(nll / ntok)
        log["lr"].append(float(sched(k)))
        if not np.isfinite(loss):
            log["diverged_at"] = step
        if k == 0 or step % cfg.hist_every == 0:
            s = jax.device_get(summary(opt_state, grads))
            log["hist_steps"].append(step)
            log["hist"].append(np.asarray(s.histogram).tolist())
            log["lr_max"].append(float(s.maximum))
            log["fraction_bounded"].append(float(s.fraction_bounded))
            log["bin_edges"] = np.asarray(s.bin_edges).tolist()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            vl, vn = validate()
            log["val_steps"].append(step), log["val_loss"].append(vl), log["val_nll"].append(vn)
        if progress and (step % 10 == 0 or step == cfg.steps):
            print(f"[{_run_name(arm, seed, cfg)}] step {step}/{cfg.steps} loss "
                  f"{np.mean(log['train_loss'][-10:]):.3f} val "
                  f"{log['val_loss'][-1]:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            log["train_seconds"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            save(step)
        if stop_after is not None and step - start >= stop_after and step < cfg.steps:
            manager.close()
            return None
    manager.close()
    log["params"] = params
    log["batches_per_epoch"] = stream.batches_per_epoch
    return log


def translate(params, cfg: Config, data: Data, sp) -> list[str]:
    """Detokenized beam-search translations of the test verses, in order."""
    import jax

    search = jax.jit(nmt.beam_search, static_argnames=("cfg", "beam", "max_len", "len_penalty"))
    ids = [[*s, nmt.EOS] for s in sp.encode([p.es for p in data.test])]
    order = np.argsort([len(s) for s in ids], kind="stable")
    out: list[Optional[str]] = [None] * len(ids)
    rows = max(1, 96 // cfg.beam)
    for j in range(0, len(order), rows):
        chunk = order[j:j + rows]
        width = 16 * -(-max(len(ids[i]) for i in chunk) // 16)
        src = np.full((rows, width), nmt.PAD, np.int32)
        for r, i in enumerate(chunk):
            src[r, :len(ids[i])] = ids[i]
        hyp = jax.device_get(search(params, src, cfg.model, beam=cfg.beam,
                                    max_len=int(1.5 * width) + 8,
                                    len_penalty=cfg.len_penalty))
        for r, i in enumerate(chunk):
            out[i] = sp.decode(nmt.strip(hyp[r]))
    return [o or "" for o in out]


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> tuple[float, str, float]:
    """(BLEU, sacrebleu signature, chrF) of detokenized hypotheses against one reference."""
    metrics = _require("sacrebleu.metrics")
    b = metrics.BLEU()
    score = b.corpus_score(list(hyps), [list(refs)]).score
    chrf = metrics.CHRF().corpus_score(list(hyps), [list(refs)]).score
    return float(score), str(b.get_signature()), float(chrf)


def _write_text(path: str, lines: Sequence[str]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(line.replace("\n", " ") + "\n" for line in lines))
    os.replace(tmp, path)


def _read_text(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


# What a run's numbers depend on: the optimizers, the data, the model and this driver.
_CODE_PATHS = ("adamod_optax", "benchmarks/bible.py", "benchmarks/nmt.py",
               "benchmarks/translation.py")


def git_revision() -> str:
    """The commit the code ran at (``+dirty`` with uncommitted changes to the files a run's
    numbers depend on), or ``unknown``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *_CODE_PATHS],
                               cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def machine() -> str:
    from benchmarks.report import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()}"


def run_one(arm: str, seed: int, cfg: Config, data: Data, out: str, work: str, *,
            resume: bool, stop_after: Optional[int] = None, progress: bool = False,
            smoke: bool = False) -> Optional[dict[str, Any]]:
    """Trains, decodes, scores and writes one (arm, seed); None if stopped early."""
    import jax

    spm = _require("sentencepiece")
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    log = train_run(arm, seed, cfg, data, work, resume=resume, stop_after=stop_after,
                    progress=progress)
    if log is None:
        return None
    params = log.pop("params")
    sp = spm.SentencePieceProcessor(model_file=data.tokenizer_path)
    t_dec = time.perf_counter()
    hyps = translate(params, cfg, data, sp)
    decode_seconds = time.perf_counter() - t_dec
    refs = [p.en for p in data.test]
    score, signature, chrf = bleu(hyps, refs)
    os.makedirs(out, exist_ok=True)
    name = _run_name(arm, seed, cfg)
    _write_text(os.path.join(out, f"{name}.hyp.txt"), hyps)
    result = {
        "arm": arm, "name": ARM_NAMES[arm], "seed": seed, "total_steps": cfg.steps,
        "b3_sweep": name != f"{arm}_seed{seed}",
        "learning_rate": cfg.lr, "schedule": describe_schedule(cfg, arm == "adam_warmup"),
        "optimizer": ("adamod_optax.adamod" if arm == "adamod" else "optax.adamw"),
        "b1": cfg.b1, "b2": cfg.b2, "eps": cfg.eps, "weight_decay": cfg.weight_decay,
        "b3": cfg.b3 if arm == "adamod" else None,
        "config": dataclasses.asdict(cfg),
        "num_params": nmt.num_params(params),
        "held_out": {"valid": list(cfg.valid_books), "test": list(cfg.test_books)},
        "data": data.counts,
        "tokenizer": {"library": "sentencepiece " + spm.__version__, "type": "unigram",
                      "vocab_size": cfg.vocab_size, "joint": True,
                      "trained_on": "training split, Spanish and English",
                      "sha256": data.tokenizer_sha256},
        "decoding": {"beam": cfg.beam, "len_penalty": cfg.len_penalty,
                     "max_len": "1.5 * padded source length + 8"},
        "bleu": score, "chrf": chrf, "sacrebleu_signature": signature,
        "hypotheses": f"{name}.hyp.txt", "references": "test.ref.txt",
        "references_sha256": hashlib.sha256("".join(r + "\n" for r in refs)
                                            .encode()).hexdigest(),
        "smoke": smoke,
        "machine": machine(), "jax": jax.__version__, "code": git_revision(),
        "train_seconds": log["train_seconds"], "decode_seconds": decode_seconds,
        "process_seconds_this_session": {"wall": time.perf_counter() - t_wall,
                                         "cpu": time.process_time() - t_cpu},
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **{k: v for k, v in log.items() if k != "train_seconds"},
    }
    path = os.path.join(out, f"{name}.json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)
    return result


def write_references(cfg: Config, data: Data, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    _write_text(os.path.join(out, "test.ref.txt"), [p.en for p in data.test])
    _write_text(os.path.join(out, "test.src.txt"), [p.es for p in data.test])
    _write_text(os.path.join(out, "test.ids.txt"),
                [f"{p.book} {p.chapter}:{p.verse}" for p in data.test])


# --------------------------------------------------------------------------- #
# Workers: one single-threaded process per CPU, ended by pid.
# --------------------------------------------------------------------------- #

SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def single_thread_env() -> dict[str, str]:
    """The environment of a worker: XLA on one thread (results then do not depend on
    how many cores the machine has free)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_FLAGS).strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


def run_workers(jobs: Sequence[tuple[str, int]], argv: Sequence[str], workers: int) -> int:
    """Runs each job in its own child process, at most ``workers`` at a time, each pinned to
    one CPU and single-threaded; children that outlive an error or Ctrl-C are ended by pid."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    queue = list(jobs)
    running: dict[int, subprocess.Popen] = {}  # cpu slot -> process
    rc = 0
    try:
        while queue or running:
            for slot in [s for s, p in running.items() if p.poll() is not None]:
                rc = max(rc, running.pop(slot).returncode)
            while queue and len(running) < workers:
                slot = next(i for i in range(workers) if i not in running)
                arm, seed = queue.pop(0)
                cmd = [sys.executable, "-m", "benchmarks.translation", *argv,
                       "--jobs", f"{arm}:{seed}", "--resume"]
                cpu = cpus[slot % len(cpus)]
                running[slot] = subprocess.Popen(
                    cmd, env=single_thread_env(), start_new_session=True,
                    preexec_fn=(lambda c=cpu: os.sched_setaffinity(0, {c}))
                    if hasattr(os, "sched_setaffinity") else None)
            time.sleep(1.0)
    finally:
        for p in running.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
    return rc


# --------------------------------------------------------------------------- #
# Report: table, figures, BLEU check.
# --------------------------------------------------------------------------- #


def load_results(out: str) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for arm in ARMS:
        files = sorted(f for f in os.listdir(out) if f.startswith(f"{arm}_seed")
                       and f.endswith(".json")) if os.path.isdir(out) else []
        for f in files:
            with open(os.path.join(out, f)) as fh:
                runs.setdefault(arm, []).append(json.load(fh))
    return runs


def load_sweep(out: str) -> list[dict[str, Any]]:
    """The runs of the ``b3`` sweep (``adamod_b3-<b3>_seed<k>.json``)."""
    if not os.path.isdir(out):
        return []
    runs = []
    for f in sorted(os.listdir(out)):
        if f.startswith("adamod_b3-") and f.endswith(".json"):
            with open(os.path.join(out, f)) as fh:
                runs.append(json.load(fh))
    return runs


def sweep_table(runs: dict[str, list[dict[str, Any]]], sweep: list[dict[str, Any]]) -> str:
    """Markdown: AdaMod's BLEU and final validation loss per ``b3`` and seed (the runs of
    the main experiment at its ``b3`` included), beside Adam with warmup on the same seeds."""
    rows = sorted([*runs.get("adamod", []), *sweep], key=lambda r: (r["b3"], r["seed"]))
    seeds = {r["seed"] for r in sweep}
    lines = ["| optimizer | b3 (memory, steps) | seed | test BLEU | final validation loss |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r["seed"] in seeds:
            lines.append(f"| AdaMod | {r['b3']:g} ({1 / (1 - r['b3']):.0f}) | {r['seed']} | "
                         f"{r['bleu']:.2f} | {r['val_loss'][-1]:.3f} |")
    for r in runs.get("adam_warmup", []):
        if r["seed"] in seeds:
            lines.append(f"| Adam, linear warmup | - | {r['seed']} | {r['bleu']:.2f} | "
                         f"{r['val_loss'][-1]:.3f} |")
    return "\n".join(lines)


def check_bleu(out: str) -> list[tuple[str, float, float]]:
    """Recomputes every run's BLEU from its hypothesis file and the references."""
    refs = _read_text(os.path.join(out, "test.ref.txt"))
    rows = []
    for runs in [*load_results(out).values(), load_sweep(out)]:
        for r in runs:
            hyps = _read_text(os.path.join(out, r["hypotheses"]))
            if len(hyps) != len(refs):
                raise ValueError(f"{r['hypotheses']}: {len(hyps)} lines, {len(refs)} references")
            rows.append((r["hypotheses"], r["bleu"], bleu(hyps, refs)[0]))
    return rows


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    v = np.asarray(values, np.float64)
    return float(np.median(v)), float(v.min()), float(v.max())


def table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: per arm, BLEU and final validation loss as median [min, max] over seeds."""
    lines = ["| arm | test BLEU: median [min, max] | per seed | chrF: median | "
             "final validation loss (label-smoothed) | seeds |", "|---|---|---|---|---|---|"]
    for arm, rs in runs.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        b = _spread([r["bleu"] for r in rs])
        v = _spread([r["val_loss"][-1] for r in rs])
        c = _spread([r["chrf"] for r in rs])
        per = ", ".join(f"{r['bleu']:.2f}" for r in rs)
        lines.append(f"| {ARM_NAMES[arm]} | {b[0]:.2f} [{b[1]:.2f}, {b[2]:.2f}] | {per} | "
                     f"{c[0]:.1f} | {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}] | {len(rs)} |")
    return "\n".join(lines)


def compare(runs: dict[str, list[dict[str, Any]]], a: str, b: str) -> str:
    """'better' only where the seeds' ranges do not overlap."""
    if a not in runs or b not in runs:
        return ""
    ba, bb = ([r["bleu"] for r in runs[x]] for x in (a, b))
    if min(len(ba), len(bb)) < 2:
        return (f"{ARM_NAMES[a]} ({np.median(ba):.2f}) and {ARM_NAMES[b]} "
                f"({np.median(bb):.2f}): one seed: no spread to compare against")
    if min(ba) > max(bb):
        verdict = "better than"
    elif max(ba) < min(bb):
        verdict = "worse than"
    else:
        verdict = "not distinguishable from (the seeds' ranges overlap)"
    return (f"{ARM_NAMES[a]} ({np.median(ba):.2f}) is {verdict} {ARM_NAMES[b]} "
            f"({np.median(bb):.2f})")


def plot_curves(runs, path: str, title_prefix: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for arm, rs in runs.items():
        for ax, xkey, key, smooth in ((axes[0], "steps", "train_loss",
                                       min(25, len(rs[0]["steps"]))),
                                      (axes[1], "val_steps", "val_loss", 1),
                                      (axes[2], "hist_steps", "lr_max", 1)):
            n = min(len(r[key]) for r in rs)
            x = np.asarray(rs[0][xkey][:n])
            ys = np.asarray([r[key][:n] for r in rs], np.float64)
            if smooth > 1:
                kernel = np.ones(smooth) / smooth
                ys = np.asarray([np.convolve(y, kernel, "valid") for y in ys])
                x = x[smooth - 1:]
            line, = ax.plot(x, np.median(ys, 0), label=f"{ARM_NAMES[arm]} ({len(rs)} seeds)")
            if len(rs) > 1:
                ax.fill_between(x, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
    axes[0].set_ylabel("train loss, label-smoothed (25-step mean)")
    axes[1].set_ylabel("validation loss, label-smoothed")
    axes[2].set_ylabel("largest effective learning rate\n"
                       "(all parameters; lr / eps = 1e6 where v = 0)")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title_prefix + "Spanish-to-English Transformer: median over seeds, "
                 "range shaded", color="crimson" if title_prefix else None)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_histograms(runs, path: str, title_prefix: str = "") -> str:
    """Per-parameter learning-rate histograms over training, first seed of each arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    arms = list(runs)
    fig, axes = plt.subplots(1, len(arms), figsize=(5 * len(arms), 3.8), sharey=True,
                             squeeze=False)
    im = None
    for ax, arm in zip(axes[0], arms):
        r = min(runs[arm], key=lambda r: r["seed"])
        hist = np.asarray(r["hist"], np.float64)
        hist = hist / np.maximum(hist.sum(1, keepdims=True), 1)
        edges = np.log10(np.asarray(r["bin_edges"]))
        x_edges = np.concatenate([[0], r["hist_steps"]])
        im = ax.pcolormesh(x_edges, edges, np.where(hist > 0, hist, np.nan).T,
                           norm=LogNorm(1e-5, 1), cmap="viridis", shading="flat")
        # No "max" line here: the largest rate is that of parameters that never had a
        # gradient (lr / eps, 1e6), far above the top bin; the curves figure plots it.
        ax.set_ylim(edges[0], edges[-1])
        ax.set_title(f"{ARM_NAMES[arm]} (seed {r['seed']})", fontsize=10)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("log10 effective learning rate\n(end bins: beyond)")
    fig.colorbar(im, ax=axes, label="fraction of parameters with a gradient")
    fig.suptitle(title_prefix + "per-parameter learning rates over training",
                 color="crimson" if title_prefix else None, y=1.06 if title_prefix else 0.98)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def report(out: str, title_prefix: str = "") -> str:
    """Writes ``translation.md`` and the two figures from the run files in ``out``."""
    runs = load_results(out)
    if not runs:
        raise SystemExit(f"error: no finished runs (<arm>_seed<k>.json) in {out}")
    first = next(iter(runs.values()))[0]
    sig = {r["sacrebleu_signature"] for rs in runs.values() for r in rs}
    everything = [r for rs in runs.values() for r in rs] + load_sweep(out)
    total = sum(r["train_seconds"] + r["decode_seconds"] for r in everything)
    lines = [
        f"# {title_prefix}Spanish-to-English translation: Adam with and without warmup, AdaMod",
        "",
        f"{first['total_steps']} steps, learning rate {first['learning_rate']:g}, betas "
        f"({first['b1']}, {first['b2']}), eps {first['eps']:g}, weight decay "
        f"{first['weight_decay']:g}, AdaMod b3 {first['config']['b3']}; "
        f"{first['num_params']:,} parameters; beam {first['decoding']['beam']}. "
        f"Test: {', '.join(first['held_out']['test'])} ({first['data']['test_pairs']} verses); "
        f"validation: {', '.join(first['held_out']['valid'])}.",
        "",
        table(runs), "",
        "sacrebleu: " + "; ".join(sorted(sig)), "",
        *[c + "." for c in (compare(runs, "adamod", "adam_warmup"),
                            compare(runs, "adamod", "adam")) if c], "",
        f"Machine: {first['machine']}; train + decode time of all runs {total / 3600:.2f} "
        "h (single-threaded processes).",
    ]
    sweep = load_sweep(out)
    if sweep:
        lines += ["", "AdaMod's b3 (the paper's Figure 9), the seeds the sweep ran:", "",
                  sweep_table(runs, sweep)]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out, "translation.md"), "w") as f:
        f.write(md)
    plot_curves(runs, os.path.join(out, "translation_curves.png"), title_prefix)
    plot_histograms(runs, os.path.join(out, "translation_lr_histograms.png"), title_prefix)
    return md


# --------------------------------------------------------------------------- #
# Command line.
# --------------------------------------------------------------------------- #


def _parse_jobs(spec: str, arms: Sequence[str], seeds: Sequence[int]):
    if not spec:
        return [(a, s) for s in seeds for a in arms]
    jobs = []
    for item in spec.split(","):
        arm, _, seed = item.partition(":")
        if arm not in ARMS or not seed.isdigit():
            raise SystemExit(f"error: --jobs wants arm:seed items with arm in {ARMS}, "
                             f"got {item!r}")
        jobs.append((arm, int(seed)))
    return jobs


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.translation",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None,
                   help="where each finished run's JSON and texts go (default "
                        "docs/results/translation; in smoke mode outputs/translation_smoke)")
    p.add_argument("--work", default=None,
                   help="checkpoints and the tokenizer, not committed (default "
                        "outputs/translation, in smoke mode outputs/translation_smoke/work)")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--jobs", default="", help="arm:seed,... instead of --arms x --seeds")
    p.add_argument("--steps", type=int, default=None, help="override the run length")
    p.add_argument("--b3", type=float, default=None,
                   help="AdaMod's b3 for a sweep run (written as adamod_b3-<b3>_seed<k>)")
    p.add_argument("--resume", action="store_true",
                   help="continue interrupted runs from their checkpoints; skip finished ones")
    p.add_argument("--workers", type=int, default=1,
                   help="run the jobs in this many single-threaded processes, one per CPU")
    p.add_argument("--report", action="store_true", help="only rebuild table and figures")
    p.add_argument("--check", action="store_true",
                   help="only recompute every BLEU from the committed text files")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    smoke = smoke_requested()
    cfg = SMOKE if smoke else FULL
    args.out = args.out or ("outputs/translation_smoke" if smoke else "docs/results/translation")
    args.work = args.work or (os.path.join(args.out, "work") if smoke else "outputs/translation")
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.b3 is not None:
        cfg = dataclasses.replace(cfg, b3=args.b3)
    if args.check:
        bad = 0
        for name, reported, recomputed in check_bleu(args.out):
            ok = abs(reported - recomputed) < 1e-9
            bad += not ok
            print(f"{name}: reported {reported:.4f}, recomputed {recomputed:.4f} "
                  f"{'ok' if ok else 'MISMATCH'}")
        return int(bad > 0)
    prefix = label("", smoke) + ": " if smoke else ""
    if args.report:
        print(report(args.out, prefix))
        return 0
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds wants comma-separated integers, got {args.seeds!r}")
    arms = args.arms.split(",")
    if any(a not in ARMS for a in arms):
        p.error(f"--arms: choose from {ARMS}, got {arms}")
    jobs = _parse_jobs(args.jobs, arms, seeds)
    done = {(r["arm"], r["seed"]) for rs in load_results(args.out).values() for r in rs
            if r["b3"] in (None, cfg.b3)}
    done |= {("adamod", r["seed"]) for r in load_sweep(args.out) if r["b3"] == cfg.b3}
    pending = [j for j in jobs if not (args.resume and j in done)]
    data = prepare(cfg, args.work)  # tokenizer trained once, before any worker starts
    write_references(cfg, data, args.out)
    if args.workers > 1 and len(pending) > 1:
        child = [a for a in argv if a not in ("--resume",)]
        i = 0
        while i < len(child):  # the children get their own --jobs and --workers
            if child[i] in ("--jobs", "--workers", "--arms", "--seeds"):
                del child[i:i + 2]
            else:
                i += 1
        rc = run_workers(pending, child, args.workers)
    else:
        rc = 0
        for arm, seed in pending:
            r = run_one(arm, seed, cfg, data, args.out, args.work, resume=args.resume,
                        progress=args.progress, smoke=smoke)
            print(f"{prefix}{_run_name(arm, seed, cfg)}: BLEU {r['bleu']:.2f}, final validation "
                  f"loss {r['val_loss'][-1]:.3f}", flush=True)
    if args.workers > 1 or not args.jobs:
        print(report(args.out, prefix))
    return rc


if __name__ == "__main__":
    sys.exit(main())
