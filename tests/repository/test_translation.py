"""The translation experiment (``python -m benchmarks.translation``) in its smoke size.

Trains every arm a few steps on the Bible verse pairs, decodes a few test verses with beam
search, scores them with sacrebleu and writes each run's JSON and hypotheses; an interrupted
run (killed with SIGKILL after a checkpoint) resumed with ``--resume`` gives the uninterrupted
run's numbers and text. Also the pieces: verse cleaning, the split by book, the batches, and the
key/value-cached beam search against a decoder run from scratch at every step.

Needs the Debian packages ``sword-text-kjv sword-text-sparv`` (``.ci/run`` installs them); in
CI their absence fails, elsewhere it skips with the install command.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks import bible, nmt
from benchmarks import translation as tr
from tests import dataset_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def needs_data():
    dataset_check.require(bible.missing())


def _env(**extra):
    env = dict(os.environ, CI="true", PYTHONPATH=ROOT, **extra)
    return env


def _cli(args, timeout=600, **popen):
    return subprocess.run([sys.executable, "-m", "benchmarks.translation", *args], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=timeout, **popen)


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


# --- the pieces -----------------------------------------------------------------------------


def test_clean_verse():
    assert bible.clean_verse('Gracia<transChange type="added">sea</transChange>á vosotros') \
        == "Gracia sea á vosotros"
    assert bible.clean_verse("<w>Naomi</w>\u2019s <w>husband</w>.<note a='1'>Heb. x</note> ") \
        == "Naomi\u2019s husband."
    assert bible.clean_verse("the \\nd LORD &amp; ¶ his") == "the LORD & his"


def test_split_by_book_holds_whole_books_out():
    pairs = [bible.VersePair(b, 1, v, "es", "en") for b in ("A", "B", "C") for v in (1, 2)]
    split = bible.split_by_book(pairs, ["B"], ["C"])
    assert {p.book for p in split["train"]} == {"A"}
    assert [p.book for p in split["valid"]] == ["B", "B"]
    assert [p.book for p in split["test"]] == ["C", "C"]
    with pytest.raises(ValueError, match="unknown book"):
        bible.split_by_book(pairs, ["Z"], ["C"])
    with pytest.raises(ValueError, match="both validation and test"):
        bible.split_by_book(pairs, ["B"], ["B"])


def test_batches_are_a_function_of_seed_and_step():
    rng = np.random.default_rng(0)
    def sentence():
        return [*rng.integers(4, 50, size=rng.integers(1, 60)).tolist(), nmt.EOS]

    src = [sentence() for _ in range(300)]
    tgt = [sentence() for _ in range(300)]
    batching = nmt.Batching(buckets=(16, 32, 64), tokens_per_batch=256)
    a, b = nmt.BatchStream(src, tgt, batching, 3), nmt.BatchStream(src, tgt, batching, 3)
    n = a.batches_per_epoch
    for k in (0, 5, n - 1, n, 2 * n + 1):  # resuming at step k sees the same batch
        for x, y in zip(a[k], b[k]):
            np.testing.assert_array_equal(x, y)
    # one epoch holds every real target token once; tgt_in is tgt_out shifted behind BOS
    tokens = 0
    for k in range(n):
        s, t_in, t_out = a[k]
        assert s.shape == t_in.shape == t_out.shape and s.shape[0] * s.shape[1] == 256
        tokens += int((t_out != nmt.PAD).sum())
        np.testing.assert_array_equal(t_in[:, 0][t_out[:, 0] != nmt.PAD], nmt.BOS)
        np.testing.assert_array_equal(t_in[:, 1:][t_out[:, 1:] != nmt.PAD],
                                      t_out[:, :-1][t_out[:, 1:] != nmt.PAD])
    assert tokens == sum(len(t) for t in tgt)
    assert not all(np.array_equal(x, y) for x, y in
                   zip(a[0], nmt.BatchStream(src, tgt, batching, 4)[0]))


@pytest.mark.slow
def test_beam_search_with_cache_matches_decoding_from_scratch():
    """beam=1 with the key/value cache equals greedy decoding that reruns the whole decoder
    on the prefix at every step; a wider beam finds a sequence at least as likely."""
    import jax
    import jax.numpy as jnp

    cfg = nmt.ModelConfig(vocab_size=40, d_model=16, heads=2, ffn=32, enc_layers=2,
                          dec_layers=2)
    params = nmt.init_params(jax.random.PRNGKey(1), cfg)
    # make EOS likely enough that some sentences end early
    params["embed"] = params["embed"].at[nmt.EOS].mul(3.0)
    src = np.array([[5, 6, 7, 8, nmt.EOS, 0], [9, 10, nmt.EOS, 0, 0, 0],
                    [11, 12, 13, 14, 15, nmt.EOS]], np.int32)
    max_len = 9
    got = np.asarray(nmt.beam_search(params, src, cfg, beam=1, max_len=max_len))

    enc = nmt.encode(params, src, cfg)
    # the whole decoder on the prefix, padded to one length (the causal mask hides the rest)
    decode = jax.jit(lambda seq: nmt.decode(params, enc, src, seq, cfg))
    seq = np.full((3, max_len), nmt.PAD, np.int32)
    seq[:, 0] = nmt.BOS
    done = np.zeros(3, bool)
    out = np.full((3, max_len), nmt.PAD, np.int32)
    for t in range(max_len):
        logits = np.array(decode(jnp.asarray(seq)))[:, t]
        logits[:, [nmt.PAD, nmt.BOS]] = -np.inf
        nxt = np.where(t == max_len - 1, nmt.EOS, logits.argmax(-1))
        out[~done, t] = nxt[~done]
        done |= nxt == nmt.EOS
        if t + 1 < max_len:
            seq[:, t + 1] = nxt
        if done.all():
            break
    np.testing.assert_array_equal(got, out)
    assert (got == nmt.EOS).any(axis=1).all()

    def logprob(i, hyp):  # log-probability of hyp (up to EOS) under the model, its length
        ids = [*nmt.strip(hyp), nmt.EOS]
        tgt_in = np.full((3, max_len), nmt.PAD, np.int32)
        tgt_in[i, :len(ids)] = [nmt.BOS, *ids[:-1]]
        logp = np.asarray(jax.nn.log_softmax(decode(jnp.asarray(tgt_in)), -1))[i]
        return float(sum(logp[j, tok] for j, tok in enumerate(ids))), len(ids)

    wide = np.asarray(nmt.beam_search(params, src, cfg, beam=4, max_len=max_len))
    for i in range(3):
        (lp1, n1), (lp4, n4) = logprob(i, got[i]), logprob(i, wide[i])
        assert lp4 / n4 >= lp1 / n1 - 1e-5


# --- the experiment, smoke size -------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, needs_data):
    out = tmp_path_factory.mktemp("translation")
    r = _cli(["--seeds", "0", "--workers", "2", "--out", str(out / "out"),
              "--work", str(out / "work")])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r.stdout


@pytest.mark.slow
def test_smoke_run_writes_each_run_and_the_report(smoke_run):
    out, stdout = smoke_run
    res = out / "out"
    refs = _lines(res / "test.ref.txt")
    assert len(refs) == tr.SMOKE.test_limit == len(_lines(res / "test.src.txt"))
    for arm in tr.ARMS:
        run = json.loads((res / f"{arm}_seed0.json").read_text())
        assert run["smoke"] is True and run["arm"] == arm and run["seed"] == 0
        assert run["held_out"]["test"] == list(tr.SMOKE.test_books)
        assert run["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
        assert len(run["train_loss"]) == tr.SMOKE.steps and np.isfinite(run["train_loss"]).all()
        assert run["val_steps"][0] == 0 and run["val_steps"][-1] == tr.SMOKE.steps
        assert len(run["hist"]) == len(run["hist_steps"]) > 1
        assert run["b3"] == (tr.SMOKE.b3 if arm == "adamod" else None)
        assert len(_lines(res / run["hypotheses"])) == len(refs)
        # the schedules: warmup ramps up, the others start at the peak
        lr = run["lr"]
        assert (lr[0] < lr[tr.SMOKE.warmup - 1]) == (arm == "adam_warmup")
    md = (res / "translation.md").read_text()
    assert md.startswith("# SMOKE MODE: tiny run, numbers mean nothing")
    assert "one seed: no spread" in md
    for png in ("translation_curves.png", "translation_lr_histograms.png"):
        assert (res / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SMOKE MODE" in stdout
    check = _cli(["--check", "--out", str(res)])
    assert check.returncode == 0 and check.stdout.count(" ok") == 3, check.stdout


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(smoke_run, tmp_path):
    """SIGKILL after the step-10 checkpoint of a 30-step run, then --resume: the same losses,
    learning-rate histograms, hypotheses and BLEU as a run never interrupted."""
    steps = ["--steps", "30", "--jobs", "adamod:0"]
    whole = _cli([*steps, "--out", str(tmp_path / "whole"), "--work", str(tmp_path / "w1")])
    assert whole.returncode == 0, whole.stderr[-3000:]

    work = tmp_path / "w2"
    ckpt = work / "checkpoints" / "adamod_seed0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.translation", *steps, "--out",
         str(tmp_path / "cut"), "--work", str(work)],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (ckpt / "10").is_dir() and proc.poll() is None:
            assert time.monotonic() < deadline, "no step-10 checkpoint within 300 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "cut" / "adamod_seed0.json").exists()

    again = _cli([*steps, "--resume", "--out", str(tmp_path / "cut"), "--work", str(work)])
    assert again.returncode == 0, again.stderr[-3000:]
    a = json.loads((tmp_path / "whole" / "adamod_seed0.json").read_text())
    b = json.loads((tmp_path / "cut" / "adamod_seed0.json").read_text())
    assert b["resumed_at"] and b["resumed_at"][0] >= 10 and not a["resumed_at"]
    for key in ("train_loss", "train_nll", "lr", "val_loss", "hist", "lr_max", "bleu", "chrf"):
        assert a[key] == b[key], key
    assert _lines(tmp_path / "whole" / "adamod_seed0.hyp.txt") == \
        _lines(tmp_path / "cut" / "adamod_seed0.hyp.txt")


@pytest.mark.slow
def test_existing_checkpoints_without_resume_are_refused(smoke_run):
    out, _ = smoke_run
    r = _cli(["--jobs", "adam:0", "--out", str(out / "out"), "--work", str(out / "work")])
    assert r.returncode != 0 and "--resume" in r.stderr


def test_bad_arguments():
    r = _cli(["--arms", "sgd"])
    assert r.returncode == 2 and "--arms" in r.stderr
    r = _cli(["--jobs", "adam:x"])
    assert r.returncode != 0 and "arm:seed" in r.stderr


def test_committed_full_run_is_complete_and_its_bleu_recomputes():
    """docs/results/translation/ holds every arm at three seeds, run with the full
    configuration on the committed references, and sacrebleu on each committed hypothesis
    file gives the BLEU its JSON reports."""
    import dataclasses
    import hashlib

    out = os.path.join(ROOT, "docs", "results", "translation")
    runs = tr.load_results(out)
    assert {arm: sorted(r["seed"] for r in runs.get(arm, [])) for arm in tr.ARMS} == {
        arm: [0, 1, 2] for arm in tr.ARMS}
    refs = _lines(os.path.join(out, "test.ref.txt"))
    sha = hashlib.sha256("".join(r + "\n" for r in refs).encode()).hexdigest()
    full = json.loads(json.dumps(dataclasses.asdict(tr.FULL)))  # tuples as JSON lists
    for rs in runs.values():
        for r in rs:
            assert r["smoke"] is False and r["total_steps"] == tr.FULL.steps
            assert r["config"] == full, r["name"]
            assert r["references_sha256"] == sha and len(refs) == r["data"]["test_pairs"]
    rows = tr.check_bleu(out)
    assert len(rows) >= 9
    for name, reported, recomputed in rows:
        assert abs(reported - recomputed) < 1e-9, (name, reported, recomputed)
