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
# # Translation without warmup (the paper's Table 2 and Figure 2)
#
# The AdaMod paper's central experiment is neural machine translation: a post-LayerNorm
# Transformer trained with fairseq's IWSLT'14 recipe (betas 0.9/0.98, eps 1e-9, weight decay
# 1e-4, label smoothing 0.1, an inverse-square-root schedule). Its Table 2, as quoted in the
# issue that asked for this experiment (BLEU):
#
# | data set, model | Adam, no warmup | Adam, 4,000-step warmup | AdaMod, no warmup |
# |---|---|---|---|
# | IWSLT'14 De-En, transformer-small | does not converge | 34.62 | 34.81 |
# | WMT'14 En-De, transformer-base | | 26.81 | 27.22 |
# | WMT'14 En-De, transformer-big | | 28.15 | 28.47 |
#
# The claim: drop the warmup, lose nothing (and gain 0.19-0.41 BLEU).
#
# Here, on data that needs no download: the Reina-Valera 1909 (Spanish) and King James
# (English) Bibles, whose verses are aligned, translated Spanish to English with a post-LN
# encoder-decoder Transformer scaled down from fairseq's `transformer_iwslt_de_en` to what two
# CPU cores train in about an hour per run (6 + 6 layers as in the recipe, d_model 128, 4 heads,
# feed-forward 256, a joint 8,000-piece sentencepiece vocabulary, dropout 0.1). Whole books are
# held out for validation and test. Three arms on one learning rate (1e-3) and one decay, three
# seeds each:
#
# * Adam (AdamW, decoupled weight decay as fairseq's Adam), constant for 200 steps, then
#   inverse-square-root decay: no warmup (the schedule of the authors' `cold_start` scheduler);
# * Adam with a linear warmup over those 200 steps (10% of the run), then the same decay
#   (fairseq's `inverse_sqrt`);
# * AdaMod (`b3 = 0.995`, a memory of 200 steps) on the no-warmup schedule.
#
# The code is `benchmarks.translation` (driver, `--resume`), `benchmarks.nmt` (model, beam
# search) and `benchmarks.bible` (data); the full run is
# `python -m benchmarks.translation --resume --workers 2` and writes `docs/results/translation/`.
# Data: `sudo apt-get install -y sword-text-kjv sword-text-sparv` and `pip install
# ".[translation]"`. Smoke mode (`CI=true` or `ADAMOD_SMOKE=1`, as in CI and in the
# documentation build) trains a 2 + 2-layer model for 6 steps on four small books: every output
# of that run is marked "SMOKE MODE" and its numbers mean nothing. The conclusions come from the
# committed full run, which this notebook loads from `docs/results/translation/` and shows
# first.

# %%
# requires-data: bible
import json
import pathlib
import tempfile

from IPython.display import Image, Markdown, display

from benchmarks import smoke as _smoke
from benchmarks import translation as tr

SMOKE = _smoke.smoke_requested()
RESULTS = pathlib.Path(tr.__file__).resolve().parents[1] / "docs" / "results" / "translation"
runs = tr.load_results(str(RESULTS))
print({arm: sorted(r["seed"] for r in rs) for arm, rs in runs.items()})

# %% [markdown]
# ## The committed full run
#
# Test BLEU (sacrebleu, detokenized, beam 5) and the final validation loss, median and range
# over the seeds; per-seed BLEU in the third column.

# %%
first = next(iter(runs.values()))[0]
print(f"{first['total_steps']} steps, {first['num_params']:,} parameters, test books "
      f"{', '.join(first['held_out']['test'])} ({first['data']['test_pairs']} verses)")
print("sacrebleu", first["sacrebleu_signature"])
display(Markdown(tr.table(runs)))
for line in (tr.compare(runs, "adamod", "adam_warmup"), tr.compare(runs, "adamod", "adam")):
    if line:
        print(line)

# %% [markdown]
# Loss curves (the paper's Figure 2) and the largest effective learning rate, median over
# seeds with the range shaded:

# %%
display(Image(str(RESULTS / "translation_curves.png")))

# %% [markdown]
# The per-parameter learning rates over training, from `adamod_optax.learning_rate_summary`
# (the paper's Figures 1 and 3): a histogram of `log10` of every parameter's effective rate
# every 20 steps, leaving out elements whose gradient was exactly zero that step (embedding
# rows of subwords absent from the batch).

# %%
display(Image(str(RESULTS / "translation_lr_histograms.png")))

# %% [markdown]
# What the BLEU numbers look like: the first verses of the test books with each arm's
# translation (seed 0).

# %%
src = (RESULTS / "test.src.txt").read_text(encoding="utf-8").splitlines()
ref = (RESULTS / "test.ref.txt").read_text(encoding="utf-8").splitlines()
ids = (RESULTS / "test.ids.txt").read_text(encoding="utf-8").splitlines()
hyps = {arm: (RESULTS / min(rs, key=lambda r: r["seed"])["hypotheses"]).read_text(
    encoding="utf-8").splitlines() for arm, rs in runs.items()}
for i in (3, 4, 200):
    print(f"{ids[i]}\n  source:    {src[i]}\n  reference: {ref[i]}")
    for arm, h in hyps.items():
        print(f"  {tr.ARM_NAMES[arm]:20s} {h[i]}")
    print()

# %% [markdown]
# ## The same code at smoke size
#
# A check that the experiment still runs end to end: every arm trains, decodes and is scored
# (in smoke mode: six steps of a tiny model; in full mode this cell only says how to rerun).

# %%
if SMOKE:
    with tempfile.TemporaryDirectory() as tmp:
        tr.main(["--seeds", "0", "--out", f"{tmp}/out", "--work", f"{tmp}/work"])
        smoke_runs = tr.load_results(f"{tmp}/out")
        display(Markdown(f"**{_smoke.LABEL}.**\n\n" + tr.table(smoke_runs)))
        print(_smoke.label(json.dumps({a: round(r[0]["bleu"], 2)
                                       for a, r in smoke_runs.items()})))
else:
    print("full mode: rerun with  python -m benchmarks.translation --resume --workers 2")

# %% [markdown]
# ## What the full run says
#
# * **Adam without warmup** stalls: its validation loss sits at 6.4-6.5 from step 100 to step
#   200 (to step 300 in two of three seeds) while the other two fall to 5.8 by step 200 and
#   5.5 by step 300, and it never catches up. Test BLEU 1.53 [1.22, 1.92]
#   against 9.56 [9.03, 9.68] with the warmup (median [min, max] over three seeds). In the paper
#   it "does not converge"; here it keeps training, slowly and unevenly across seeds: the
#   first steps at the full learning rate leave the post-LN Transformer in a state it
#   recovers from only partly.
# * **AdaMod without warmup** scores 9.38 [9.26, 9.67]: its seeds' range overlaps warmed-up Adam's,
#   so at three seeds the two are not told apart. "Drop the warmup, lose nothing" holds on
#   this task. The paper's further gain (+0.19 BLEU on IWSLT'14, +0.41 and +0.32 on WMT'14)
#   is smaller than our spread between seeds, and our medians differ the other way (-0.18):
#   this run neither confirms nor refutes it.
# * The curves of AdaMod and warmed-up Adam lie on each other from about step 300 on. The
#   right panel of the first figure shows why: AdaMod's cap on the rates (`b3 = 0.995`, a
#   memory of 200 steps) rises over the first few hundred steps much as the 200-step warmup
#   does, then both follow the learning-rate schedule. The cap binds for every parameter at
#   step 1, for 73% at step 200, 12% at step 600 and 7-18% from then on (seed 0; the JSON's
#   `fraction_bounded`).
# * Limits: 2,000 updates (about 3.4 epochs) is 4% of the 50,000 in the authors' released
#   recipe, the model is a quarter of `transformer_iwslt_de_en`'s width, and the absolute
#   BLEU (about 10) is far from a trained system's. The `b3` sweep of the paper's Figure 9
#   was not run on this task: the nine runs used the compute budget. Its Fashion-MNIST and
#   character-model analogues are on the results page.
