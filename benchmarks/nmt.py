"""A post-LayerNorm encoder-decoder Transformer for translation, in plain JAX.

The model of fairseq's ``transformer_iwslt_de_en`` recipe (Vaswani et al.
2017, post-LN), which the AdaMod paper trains in its Table 2, scaled down in
width and vocabulary for a CPU: sinusoidal positions, embeddings shared by the
encoder, the decoder and the output projection (one joint subword vocabulary),
ReLU feed-forward blocks, dropout on the embeddings and on every residual
branch, label-smoothed cross-entropy summed over target tokens and divided by
their number (fairseq's ``label_smoothed_cross_entropy``). Also: batches by
token count over length buckets, and beam search with a key/value cache.

Used by ``python -m benchmarks.translation``. Private: a demo model, not a
model library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from benchmarks.layers import dense, layer_norm

PAD, UNK, BOS, EOS = 0, 1, 2, 3
"""Special ids of the subword vocabulary (fixed when the tokenizer is trained)."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model size. fairseq's ``transformer_iwslt_de_en`` is d_model 512, 4 heads, ffn 1024,
    6 + 6 layers, dropout 0.3."""

    vocab_size: int = 8000
    d_model: int = 128
    heads: int = 4
    ffn: int = 256
    enc_layers: int = 6
    dec_layers: int = 6
    dropout: float = 0.1
    label_smoothing: float = 0.1

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads "
                             f"({self.heads})")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError("dropout and label_smoothing must lie in [0, 1)")


# --------------------------------------------------------------------------- #
# Parameters (fairseq's initialisation: Xavier-uniform weights, zero biases,
# N(0, d^-1/2) embeddings with a zero padding row).
# --------------------------------------------------------------------------- #


def init_params(key, cfg: ModelConfig) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    d, f = cfg.d_model, cfg.ffn
    keys = iter(jax.random.split(key, 1 + 5 * cfg.enc_layers + 8 * cfg.dec_layers))

    def dense(din, dout, gain=1.0):
        lim = gain * np.sqrt(6.0 / (din + dout))
        return {"w": jax.random.uniform(next(keys), (din, dout), jnp.float32, -lim, lim),
                "b": jnp.zeros((dout,), jnp.float32)}

    def ln():
        return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}

    def attn(kv_fused: int):
        # q, k, v: fairseq scales their Xavier init by 1/sqrt(2) (its qkv_same_dim case)
        return {"q": dense(d, d, 2**-0.5), "kv": dense(d, kv_fused * d, 2**-0.5),
                "out": dense(d, d)}

    embed = jax.random.normal(next(keys), (cfg.vocab_size, d), jnp.float32) * d**-0.5
    embed = embed.at[PAD].set(0.0)
    enc = [{"self": attn(2), "ln1": ln(), "ff1": dense(d, f), "ff2": dense(f, d), "ln2": ln()}
           for _ in range(cfg.enc_layers)]
    dec = [{"self": attn(2), "ln1": ln(), "cross": attn(2), "ln2": ln(),
            "ff1": dense(d, f), "ff2": dense(f, d), "ln3": ln()}
           for _ in range(cfg.dec_layers)]
    return {"embed": embed, "encoder": enc, "decoder": dec}


def num_params(params) -> int:
    import jax

    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


# --------------------------------------------------------------------------- #
# The network.
# --------------------------------------------------------------------------- #


def sinusoid(length: int, d: int) -> np.ndarray:
    """fairseq's sinusoidal positions: sines in the first half, cosines in the second."""
    half = d // 2
    freq = np.exp(-np.log(10000.0) * np.arange(half) / (half - 1))
    angle = np.arange(length)[:, None] * freq[None, :]
    return np.concatenate([np.sin(angle), np.cos(angle)], 1).astype(np.float32)


def _split_heads(x, h):
    return x.reshape(*x.shape[:-1], h, x.shape[-1] // h)


def _attend(q, k, v, mask):
    """q ``[B, Tq, H, c]``, k/v ``[B, Tk, H, c]``, mask broadcastable to ``[B, H, Tq, Tk]``."""
    import jax
    import jax.numpy as jnp

    logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / float(np.sqrt(q.shape[-1]))
    logits = jnp.where(mask, logits, -1e9)
    out = jnp.einsum("bhqk,bkhc->bqhc", jax.nn.softmax(logits, -1), v)
    return out.reshape(*out.shape[:2], -1)


def _kv(p, x, h):
    import jax.numpy as jnp

    k, v = jnp.split(dense(x, p["kv"]), 2, -1)
    return _split_heads(k, h), _split_heads(v, h)


class _Dropout:
    """Inverted dropout with one key per call site (no key: identity)."""

    def __init__(self, key, rate):
        self.key, self.rate, self.n = key, rate, 0

    def __call__(self, x):
        import jax
        import jax.numpy as jnp

        if self.key is None or self.rate == 0:
            return x
        self.n += 1
        keep = jax.random.bernoulli(jax.random.fold_in(self.key, self.n), 1 - self.rate, x.shape)
        return jnp.where(keep, x / (1 - self.rate), 0.0)


def _embed(params, tokens, cfg, offset=0):
    import jax.numpy as jnp

    pos = jnp.asarray(sinusoid(offset + tokens.shape[1], cfg.d_model))[offset:]
    return params["embed"][tokens] * float(np.sqrt(cfg.d_model)) + pos


def encode(params, src, cfg: ModelConfig, dropout_key=None):
    """Encoder states ``[B, S, d]`` for source ids ``[B, S]`` (``PAD`` = padding)."""
    drop = _Dropout(dropout_key, cfg.dropout)
    h = cfg.heads
    mask = (src != PAD)[:, None, None, :]
    x = drop(_embed(params, src, cfg))
    for p in params["encoder"]:
        k, v = _kv(p["self"], x, h)
        a = dense(_attend(_split_heads(dense(x, p["self"]["q"]), h), k, v, mask),
                   p["self"]["out"])
        x = layer_norm(x + drop(a), p["ln1"])
        f = dense(_relu(dense(x, p["ff1"])), p["ff2"])
        x = layer_norm(x + drop(f), p["ln2"])
    return x


def _relu(x):
    import jax

    return jax.nn.relu(x)


def _decoder_layer(p, x, self_kv, self_mask, cross_kv, src_mask, h, drop):
    q = _split_heads(dense(x, p["self"]["q"]), h)
    a = dense(_attend(q, *self_kv, self_mask), p["self"]["out"])
    x = layer_norm(x + drop(a), p["ln1"])
    q = _split_heads(dense(x, p["cross"]["q"]), h)
    c = dense(_attend(q, *cross_kv, src_mask), p["cross"]["out"])
    x = layer_norm(x + drop(c), p["ln2"])
    f = dense(_relu(dense(x, p["ff1"])), p["ff2"])
    return layer_norm(x + drop(f), p["ln3"])


def decode(params, enc, src, tgt_in, cfg: ModelConfig, dropout_key=None):
    """Logits ``[B, T, V]`` for teacher-forced target inputs ``[B, T]`` (``BOS`` first)."""
    import jax
    import jax.numpy as jnp

    key = None if dropout_key is None else jax.random.fold_in(dropout_key, 1)
    drop = _Dropout(key, cfg.dropout)
    h, t = cfg.heads, tgt_in.shape[1]
    src_mask = (src != PAD)[:, None, None, :]
    causal = jnp.tril(jnp.ones((t, t), bool))[None, None]
    x = drop(_embed(params, tgt_in, cfg))
    for p in params["decoder"]:
        x = _decoder_layer(p, x, _kv(p["self"], x, h), causal, _kv(p["cross"], enc, h),
                           src_mask, h, drop)
    return x @ params["embed"].T


class LossTerms(NamedTuple):
    """Sums over the non-padding target tokens of a batch.

    Attributes:
      loss: label-smoothed cross-entropy (nats), summed.
      nll: plain negative log-likelihood (nats), summed.
      tokens: number of target tokens (``EOS`` included, padding not).
    """

    loss: Any
    nll: Any
    tokens: Any


def loss_terms(params, batch, cfg: ModelConfig, dropout_key=None) -> LossTerms:
    """Label-smoothed and plain cross-entropy sums of ``batch = (src, tgt_in, tgt_out)``.

    Smoothing as fairseq's: ``(1 - e) nll + e * mean_v(-log p_v)``.
    """
    import jax
    import jax.numpy as jnp

    src, tgt_in, tgt_out = batch
    ekey = None if dropout_key is None else jax.random.fold_in(dropout_key, 0)
    logits = decode(params, encode(params, src, cfg, ekey), src, tgt_in, cfg, dropout_key)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    nll = -jnp.take_along_axis(logp, tgt_out[..., None], -1)[..., 0]
    smooth = -logp.mean(-1)
    e = cfg.label_smoothing
    mask = (tgt_out != PAD).astype(jnp.float32)
    return LossTerms(jnp.sum(((1 - e) * nll + e * smooth) * mask), jnp.sum(nll * mask),
                     jnp.sum(mask))


def train_loss(params, batch, cfg: ModelConfig, dropout_key):
    """The training objective: label-smoothed loss per target token (and the terms)."""
    terms = loss_terms(params, batch, cfg, dropout_key)
    return terms.loss / terms.tokens, terms


# --------------------------------------------------------------------------- #
# Beam search with a key/value cache.
# --------------------------------------------------------------------------- #


def beam_search(params, src, cfg: ModelConfig, *, beam: int, max_len: int,
                len_penalty: float = 1.0):
    """Best hypotheses ``[B, max_len]`` (ids after ``BOS``, ``PAD`` after ``EOS``).

    Keeps ``beam`` hypotheses per sentence; a finished one keeps its slot with a
    zero-cost continuation. The winner maximises ``score / length**len_penalty``
    (``length`` counts ``EOS``; fairseq's default normalisation). A hypothesis
    still open after ``max_len`` tokens is closed there. ``beam=1`` is greedy.
    Jit it with ``static_argnames=("cfg", "beam", "max_len", "len_penalty")``.
    """
    import jax
    import jax.numpy as jnp

    b, k, v = src.shape[0], beam, cfg.vocab_size
    h, d = cfg.heads, cfg.d_model
    enc = encode(params, src, cfg)
    rep = lambda x: jnp.repeat(x, k, axis=0)  # noqa: E731
    src_mask = rep((src != PAD)[:, None, None, :])
    cross = [_kv(p["cross"], rep(enc), h) for p in params["decoder"]]
    zeros = jnp.zeros((b * k, max_len, h, d // h), jnp.float32)
    cache = [(zeros, zeros) for _ in params["decoder"]]
    pos_table = jnp.asarray(sinusoid(max_len, d))
    neg = jnp.asarray(-jnp.inf, jnp.float32)
    only = lambda i: jnp.full((v,), neg).at[i].set(0.0)  # noqa: E731

    def step(carry):
        t, tokens, scores, finished, lengths, cache = carry
        x = params["embed"][tokens[:, t]] * float(np.sqrt(d)) + pos_table[t]
        x = x[:, None, :]
        mask = (jnp.arange(max_len) <= t)[None, None, None, :]
        new_cache = []
        for p, (kc, vc), ckv in zip(params["decoder"], cache, cross):
            kn, vn = _kv(p["self"], x, h)
            kc = jax.lax.dynamic_update_slice(kc, kn, (0, t, 0, 0))
            vc = jax.lax.dynamic_update_slice(vc, vn, (0, t, 0, 0))
            new_cache.append((kc, vc))
            x = _decoder_layer(p, x, (kc, vc), mask, ckv, src_mask, h, lambda y: y)
        logits = (x[:, 0] @ params["embed"].T).astype(jnp.float32)
        logp = jax.nn.log_softmax(logits, -1).at[:, PAD].set(neg).at[:, BOS].set(neg)
        logp = logp.reshape(b, k, v)
        logp = jnp.where(finished[..., None], only(PAD), logp)
        logp = jnp.where((t == max_len - 1) & ~finished[..., None], only(EOS), logp)
        cand = (scores[..., None] + logp).reshape(b, k * v)
        top, idx = jax.lax.top_k(cand, k)
        src_beam, tok = idx // v, idx % v

        def pick(x):  # reorder a [B*K, ...] array by the chosen source beams
            x = x.reshape(b, k, *x.shape[1:])
            ix = src_beam.reshape(b, k, *([1] * (x.ndim - 2)))
            return jnp.take_along_axis(x, ix, 1).reshape(b * k, *x.shape[2:])

        was_finished = jnp.take_along_axis(finished, src_beam, 1)
        lengths = jnp.take_along_axis(lengths, src_beam, 1) + (~was_finished)
        tokens = pick(tokens).at[:, t + 1].set(tok.reshape(-1))
        finished = was_finished | (tok == EOS)
        cache = [(pick(kc), pick(vc)) for kc, vc in new_cache]
        return t + 1, tokens, top, finished, lengths, cache

    def cond(carry):
        t, _, _, finished, _, _ = carry
        return (t < max_len) & ~jnp.all(finished)

    tokens = jnp.full((b * k, max_len + 1), PAD, jnp.int32).at[:, 0].set(BOS)
    scores = jnp.tile(jnp.concatenate([jnp.zeros((1,)), jnp.full((k - 1,), -jnp.inf)]), (b, 1))
    init = (jnp.asarray(0), tokens, scores.astype(jnp.float32), jnp.zeros((b, k), bool),
            jnp.zeros((b, k), jnp.int32), cache)
    _, tokens, scores, _, lengths, _ = jax.lax.while_loop(cond, step, init)
    norm = scores / jnp.maximum(lengths, 1).astype(jnp.float32) ** len_penalty
    best = jnp.argmax(norm, 1)
    tokens = tokens.reshape(b, k, max_len + 1)[jnp.arange(b), best, 1:]
    return tokens


def strip(ids: Sequence[int]) -> list[int]:
    """Ids up to (not including) the first ``EOS`` or ``PAD``."""
    out = []
    for i in ids:
        if i in (EOS, PAD):
            break
        out.append(int(i))
    return out


# --------------------------------------------------------------------------- #
# Batching by token count.
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class Batching:
    """Length buckets and the padded tokens per batch and side."""

    buckets: tuple[int, ...] = (16, 32, 48, 64)
    tokens_per_batch: int = 2048

    def rows(self, bucket: int) -> int:
        return self.tokens_per_batch // bucket


def encode_pairs(sp, pairs, max_len: int | None):
    """``(src_ids, tgt_ids)`` lists (``EOS`` appended to both), optionally dropping pairs
    longer than ``max_len`` on either side; returns the kept indices too."""
    src = sp.encode([p.es for p in pairs])
    tgt = sp.encode([p.en for p in pairs])
    keep = [i for i, (s, t) in enumerate(zip(src, tgt))
            if max_len is None or (len(s) + 1 <= max_len and len(t) + 1 <= max_len)]
    return [src[i] + [EOS] for i in keep], [tgt[i] + [EOS] for i in keep], keep


def _pad(rows: Sequence[Sequence[int]], n_rows: int, width: int, first: int | None = None):
    out = np.full((n_rows, width), PAD, np.int32)
    for r, ids in enumerate(rows):
        ids = list(ids) if first is None else [first, *ids[:-1]]
        out[r, :len(ids)] = ids
    return out


def bucket_of(length: int, batching: Batching) -> int:
    for b in batching.buckets:
        if length <= b:
            return b
    raise ValueError(f"length {length} exceeds the largest bucket {batching.buckets[-1]}")


def epoch_batches(src, tgt, batching: Batching, rng: np.random.Generator):
    """One epoch as a list of ``(bucket, row indices)``, in a shuffled order."""
    by_bucket: dict[int, list[int]] = {b: [] for b in batching.buckets}
    for i, (s, t) in enumerate(zip(src, tgt)):
        by_bucket[bucket_of(max(len(s), len(t)), batching)].append(i)
    batches = []
    for b, idx in by_bucket.items():
        idx = np.asarray(idx)[rng.permutation(len(idx))]
        n = batching.rows(b)
        batches += [(b, idx[j:j + n]) for j in range(0, len(idx), n)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def make_batch(src, tgt, bucket: int, rows, batching: Batching):
    """``(src, tgt_in, tgt_out)`` int32 arrays ``[rows(bucket), bucket]``; short batches
    are filled with padding rows (no tokens, no loss)."""
    n = batching.rows(bucket)
    s = _pad([src[i] for i in rows], n, bucket)
    t_out = _pad([tgt[i] for i in rows], n, bucket)
    t_in = _pad([tgt[i] for i in rows], n, bucket, first=BOS)
    return s, t_in, t_out


class BatchStream:
    """The training batches of one seed, batch ``k`` a pure function of ``(seed, k)``.

    Epoch ``e`` is shuffled by ``np.random.default_rng([seed, e])``, so a run
    resumed at step ``k`` sees exactly the batches an uninterrupted run sees.
    """

    def __init__(self, src, tgt, batching: Batching, seed: int):
        self.src, self.tgt, self.batching, self.seed = src, tgt, batching, seed
        self._epochs: list[list] = []

    def _epoch(self, e: int):
        while len(self._epochs) <= e:
            rng = np.random.default_rng([self.seed, len(self._epochs)])
            self._epochs.append(epoch_batches(self.src, self.tgt, self.batching, rng))
        return self._epochs[e]

    @property
    def batches_per_epoch(self) -> int:
        return len(self._epoch(0))

    def __getitem__(self, k: int):
        e, j = divmod(k, self.batches_per_epoch)
        bucket, rows = self._epoch(e)[j]
        return make_batch(self.src, self.tgt, bucket, rows, self.batching)
