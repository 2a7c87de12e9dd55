"""Tests for the whole project, in reading order of the files.

embeddings/attention/layers/model -> schedules/losses -> data -> train -> plots -> this file itself.
Every test name starts with the stem of the file it checks, so `pytest test_all.py -k test_attention_` runs
attention.py's tests only; test_all_… checks this file and README's exercise table (`## 과제로 쓰기`).
Every test asserts behaviour; reference values come from PyTorch's own modules,
independent computations, or (BLEU) numbers computed once with sacreBLEU.
"""
import ast
import concurrent.futures
import contextlib
import csv
import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import importlib
import itertools
import json
import math
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading

import matplotlib.figure
import matplotlib.font_manager
import matplotlib.text
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attention
import data
import embeddings
import layers
import losses
import model
import plots
import schedules
import train
from data import demo_corpus, demo_kind, demo_splits, needs_reordering
from train import _bleu_tokenize_13a, bleu, token_accuracy


def _fixture(name):
    """tests/<name>.json: 테스트의 리터럴 데이터 (손으로 쓴 쌍, 작은 파일의 내용, 잘못된 인자와 명령줄 표 …)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests", name + ".json"), encoding="utf-8") as f:
        return json.load(f)


# ══════ section: model ══════
# Checked against PyTorch's own layers with our weights copied in (nn.MultiheadAttention,
# nn.LayerNorm, nn.TransformerEncoderLayer / DecoderLayer, nn.Transformer), the paper's formulas
# (§3.5 sinusoids, §3.3 FFN), an exhaustive search over every hypothesis (beam search), and a
# reverse-the-sequence task that only a correct model learns.
def _model_copy(pairs):
    """Copy weight and bias of each (ours, reference) pair of nn.Linear / LayerNorm."""
    with torch.no_grad():
        for ours, ref in pairs:
            ref.weight.copy_(ours.weight)
            ref.bias.copy_(ours.bias)


def _model_copy_mha(ours, ref):
    """nn.MultiheadAttention keeps [W_q; W_k; W_v] in one in_proj."""
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
    _model_copy([(ours.w_o, ref.out_proj)])


def _model_copy_layer(ours, ref):
    """Our EncoderLayer / DecoderLayer into nn.TransformerEncoderLayer / DecoderLayer."""
    _model_copy_mha(ours.self_attn, ref.self_attn)
    if isinstance(ours, layers.DecoderLayer):
        _model_copy_mha(ours.cross_attn, ref.multihead_attn)
        subs = (ours.sub_self, ours.sub_cross, ours.sub_ffn)
    else:
        subs = (ours.sub_attn, ours.sub_ffn)
    _model_copy([(ours.ffn.w_1, ref.linear1), (ours.ffn.w_2, ref.linear2)]
                + [(sub.norm, getattr(ref, f"norm{i}")) for i, sub in enumerate(subs, 1)])


def _model_randomize_norms(module, seed):
    """Our LayerNorms start at (1, 0); give them random values so copying them is really tested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (p for m in module.modules() if isinstance(m, layers.LayerNorm) for p in (m.weight, m.bias)):
            p.add_(0.3 * torch.randn(p.shape, generator=gen))


def _model_tokens(seed, batch=3, length=7, vocab=20, lengths=(7, 4, 2)):
    """Right-padded random token ids (pad = 0, real ids >= 7)."""
    tokens = torch.randint(7, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    return tokens


def _model_small(seed=0, **kw):
    torch.manual_seed(seed)
    return model.Transformer(20, 20, **{**dict(d_model=32, num_heads=4, num_layers=2, d_ff=64, dropout=0.0), **kw})


def _model_grads(out, inputs, seed=0):
    """Gradients of a random projection of out w.r.t. inputs."""
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad((out * weight).sum(), inputs)


# ------------------------------------------------ vs nn.MultiheadAttention, nn.LayerNorm, nn.Transformer
@pytest.mark.parametrize("case", ["padding", "causal", "cross", "separate_kv"])
def test_attention_mha_equals_torch_multihead_attention(case):
    # fused q/k/v projection (self), fused k/v (cross), three projections (separate_kv);
    # fast path (F.scaled_dot_product_attention) and the explicit formula, values and gradients
    torch.manual_seed(0)
    ours = attention.MultiHeadAttention(16, 4, dropout=0.0)
    ref = nn.MultiheadAttention(16, 4, dropout=0.0, batch_first=True)
    _model_copy_mha(ours, ref)
    src_tokens = _model_tokens(1, length=6, lengths=(6, 3, 1))
    x, q, y = (torch.randn(3, n, 16, requires_grad=True) for n in (6, 4, 6))
    args = {"padding": (x, x, x), "causal": (x, x, x), "cross": (q, x, x), "separate_kv": (q, x, y)}[case]
    inputs = tuple({id(a): a for a in args}.values())
    ours_mask, ref_kw = attention.padding_mask(src_tokens, 0), dict(key_padding_mask=src_tokens == 0)
    if case == "causal":
        ours_mask = attention.look_ahead_mask(6)
        ref_kw = dict(attn_mask=~ours_mask[0, 0])                   # PyTorch: True = forbidden
    ref_out, ref_w = ref(*args, need_weights=True, average_attn_weights=False, **ref_kw)
    ref_grads = _model_grads(ref_out, inputs)
    for fast in (True, False):
        ours.use_fast_path = fast
        out = ours(*args, mask=ours_mask)
        assert torch.allclose(out, ref_out, atol=1e-5)
        assert all(torch.allclose(g, r, atol=1e-5) for g, r in zip(_model_grads(out, inputs), ref_grads))
    ours.keep_weights = True
    ours(*args, mask=ours_mask)
    assert torch.allclose(ours.last_weights, ref_w, atol=1e-6)


@pytest.mark.parametrize("fast_backward", [True, False])
def test_layers_layer_norm_equals_torch_layer_norm(fast_backward):
    # the hand-derived backward is also checked by gradcheck in layers._LayerNormFunction's doctest
    x = (3 * torch.randn(4, 5, 16, generator=torch.Generator().manual_seed(0)) + 2).requires_grad_()
    ours, ref = layers.LayerNorm(16, fast_backward=fast_backward), nn.LayerNorm(16)
    _model_randomize_norms(ours, 1)
    _model_copy([(ours, ref)])
    out, ref_out = ours(x), ref(x)
    assert torch.allclose(out, ref_out, atol=1e-5)
    grads = zip(_model_grads(out, (x, ours.weight, ours.bias)), _model_grads(ref_out, (x, ref.weight, ref.bias)))
    assert all(torch.allclose(g, r, atol=1e-5) for g, r in grads)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_model_encoder_decoder_and_whole_model_equal_torch_transformer(norm_first, activation):
    # every EncoderLayer / DecoderLayer against nn.TransformerEncoderLayer / DecoderLayer in nn.Transformer
    ours = _model_small(0, norm_first=norm_first, activation=activation, share_embeddings=True, tie_output=True)
    _model_randomize_norms(ours, 5)
    ref = nn.Transformer(32, 4, 2, 2, 64, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first)
    for a, b in [*zip(ours.encoder.layers, ref.encoder.layers), *zip(ours.decoder.layers, ref.decoder.layers)]:
        _model_copy_layer(a, b)
    if norm_first:                 # our Pre-LN stack ends in a norm each; the paper's Post-LN one has none
        _model_copy([(ours.encoder.norm, ref.encoder.norm), (ours.decoder.norm, ref.decoder.norm)])
    else:
        ref.encoder.norm = ref.decoder.norm = None
    src, tgt = _model_tokens(4, length=7, lengths=(7, 5, 3)), _model_tokens(5, length=5, lengths=(5, 5, 5))
    src_x, tgt_x = ours.pos_enc(ours.src_embed(src)), ours.pos_enc(ours.tgt_embed(tgt))
    assert torch.allclose(ours.encode(src), ref.encoder(src_x, src_key_padding_mask=src == 0), atol=1e-5)
    logits = ours(src, tgt)
    ref_logits = ours.project(ref(src_x, tgt_x, tgt_mask=~attention.look_ahead_mask(5)[0, 0],
                                  src_key_padding_mask=src == 0, memory_key_padding_mask=src == 0))
    assert logits.shape == (3, 5, 20) and torch.allclose(logits, ref_logits, atol=1e-5)
    (g,), (r,) = _model_grads(logits, (ours.src_embed.weight,)), _model_grads(ref_logits, (ours.src_embed.weight,))
    assert torch.allclose(g, r, atol=1e-5)


# ------------------------------------------------ all-padding rows, causality (hand-made inputs)
def test_attention_fully_masked_rows_and_all_padding_sources_stay_finite():
    q, kv = torch.randn(1, 2, 3, 4, requires_grad=True), torch.randn(1, 2, 3, 4, requires_grad=True)
    mask = torch.tensor([True, True, False])[:, None] & torch.tensor([True, False, True])  # row 2 all False
    out, w = attention.scaled_dot_product_attention(q, kv, kv, mask)
    assert torch.equal(out[..., 2, :], torch.zeros(1, 2, 4)) and torch.equal(w[..., 2, :], torch.zeros(1, 2, 3))
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(kv.grad).all()
    mha = attention.MultiHeadAttention(8, 2, dropout=0.0)
    x = torch.randn(2, 3, 8, requires_grad=True)
    all_pad = attention.padding_mask(torch.tensor([[5, 6, 7], [0, 0, 0]]), 0)
    for fast in (True, False):
        mha.use_fast_path = fast
        y = mha(x, x, x, all_pad)
        assert torch.isfinite(y).all() and torch.allclose(y[1], mha.w_o.bias.expand(3, 8))  # zero context
        assert torch.isfinite(torch.autograd.grad(y.sum(), x)[0]).all()


@pytest.mark.parametrize("norm_first", [False, True])
def test_model_fully_masked_rows_and_all_padding_sources_stay_finite(norm_first):
    m = _model_small(0, dropout=0.1, norm_first=norm_first)
    src, tgt = torch.tensor([[5, 6, 7, 8], [0, 0, 0, 0]]), torch.tensor([[2, 5, 6], [2, 0, 0]])
    for mode in (True, False):
        m.train(mode)
        m.zero_grad()
        logits = m(src, tgt)
        assert torch.isfinite(logits).all()
        F.cross_entropy(logits.reshape(-1, 20), tgt.reshape(-1), ignore_index=0).backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert model.greedy_decode(m, src, 2, 3, max_len=5)[1] is not None
    assert len(model.beam_search(m, src, 2, 3, beam_size=2, max_len=5)) == 2


def test_model_future_targets_and_extra_source_padding_never_change_outputs():
    m = _model_small(1).eval()
    src = _model_tokens(6, length=6, lengths=(6, 4, 2))
    tgt = _model_tokens(7, length=6, lengths=(6, 6, 6))
    base = m(src, tgt)
    for j in range(1, 6):
        changed = tgt.clone()
        changed[:, j:] = (changed[:, j:] + 3) % 13 + 7
        out = m(src, changed)
        assert torch.allclose(out[:, :j], base[:, :j], atol=1e-6)
        assert not torch.allclose(out[:, j:], base[:, j:], atol=1e-3)
    padded = torch.cat([src, torch.zeros(3, 5, dtype=torch.long)], dim=1)
    assert torch.allclose(m(padded, tgt), base, atol=1e-5)
    assert model.greedy_decode(m, src, 2, 3, max_len=8) == model.greedy_decode(m, padded, 2, 3, max_len=8)


# ------------------------------------------------ decoding vs the full decoder, exhaustive search
@pytest.mark.parametrize("norm_first", [False, True])
def test_model_cached_decoding_equals_full_decoder_at_every_step(norm_first):
    m = _model_small(3, norm_first=norm_first).eval()
    src = _model_tokens(10, length=6, lengths=(6, 4, 2))
    tgt = _model_tokens(11, length=7, lengths=(7, 7, 7))
    src_mask = attention.padding_mask(src, 0)
    memory = m.encode(src, src_mask)
    full = m.decode(tgt, memory, src_mask)
    cache = {}
    for t in range(7):
        assert torch.allclose(m.decode(tgt[:, t:t + 1], memory, src_mask, cache)[:, 0], full[:, t], atol=1e-5)
    assert cache["length"] == 7 and cache["layers"][0]["self"]["k"].shape == (3, 4, 7, 8)
    assert cache["layers"][0]["cross"]["k"].shape == (3, 4, 6, 8)      # computed once, never grows
    m.train()
    src = _model_tokens(12, batch=4, length=6, lengths=(6, 5, 3, 1))
    with_cache = model.greedy_decode(m, src, 2, 3)                     # default max_len: source + 50
    assert with_cache == model.greedy_decode(m, src, 2, 3, use_cache=False)
    assert all(len(h) <= n + 50 for h, n in zip(with_cache, (6, 5, 3, 1))) and m.training  # mode restored


def _model_tiny(seed, vocab=10, scale=3.0, **kw):
    """A one-layer random model whose output layer is scaled up, so next-token distributions are
    peaked (like a trained model's) and beam search has real choices to make."""
    torch.manual_seed(seed)
    m = model.Transformer(vocab, vocab, d_model=16, num_heads=2, num_layers=1, d_ff=32, dropout=0.0, **kw)
    with torch.no_grad():
        m.generator.weight.mul_(scale)
    return m


def test_model_beam_search_never_loses_a_finished_hypothesis():
    # When [EOS] is among the K best first tokens, the empty hypothesis is finished at step 0;
    # whatever beam search returns must score at least as well (the old search could drop it).
    checked = 0
    for seed in range(40):
        m = _model_tiny(seed, scale=2.0)
        src = torch.randint(4, 10, (8, 5), generator=torch.Generator().manual_seed(seed))
        hyps, scores = model.beam_search(m, src, 2, 3, beam_size=4, max_len=10, return_scores=True)
        empty = model.score_hypotheses(m, src, [[]] * 8, 2, 3)
        with torch.no_grad():
            first = F.log_softmax(m.eval()(src, torch.full((8, 1), 2))[:, 0], dim=-1)   # (8, V)
        first[:, :3] = float("-inf")                                   # [PAD] [UNK] [BOS] never generated
        for i in torch.nonzero((first.topk(4, dim=-1).indices == 3).any(dim=-1)).flatten().tolist():
            checked += 1
            assert scores[i] >= empty[i] - 1e-5, (seed, i, hyps[i], scores[i], empty[i])
    assert checked > 100


@pytest.mark.parametrize("vocab, max_len, beam_size", [(6, 3, 6), (8, 3, 20), (7, 4, 36)])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5])
def test_model_beam_search_with_room_for_every_candidate_equals_exhaustive_search(vocab, max_len, beam_size, alpha):
    # ids 0, 1, 2 ([PAD] [UNK] [BOS]) are never generated, so the search space is 3 ([EOS]) .. vocab-1.
    # beam_size >= the number of candidates at every step but the last, so nothing is ever pruned.
    words = list(range(4, vocab))
    ended = [list(s) for n in range(max_len) for s in itertools.product(words, repeat=n)]  # ... [EOS]
    cut = [list(s) for s in itertools.product(words, repeat=max_len)]                     # stopped at max_len
    space, flags = ended + cut, [True] * len(ended) + [False] * len(cut)
    for seed in range(3):
        m = _model_tiny(seed, vocab)
        src = torch.randint(4, vocab, (2, 4), generator=torch.Generator().manual_seed(seed))
        src[1, 2:] = 0
        hyps, scores = model.beam_search(m, src, 2, 3, beam_size=beam_size, alpha=alpha, max_len=max_len,
                                         return_scores=True)
        for i in range(2):
            every = model.score_hypotheses(m, src[i:i + 1].expand(len(space), -1), space, 2, 3, alpha, flags)
            best = int(np.argmax(every))
            assert hyps[i] == space[best] and abs(scores[i] - every[best]) < 1e-4, (seed, i, hyps[i], space[best])


def test_model_beam_search_beats_greedy_returns_real_scores_and_batches_like_one_sentence():
    m = _model_tiny(7, vocab=12)
    lengths = [6, 4, 2, 1]
    src = _model_tokens(7, batch=4, length=6, vocab=12, lengths=lengths)
    greedy = model.greedy_decode(m, src, 2, 3, max_len=12)
    hyps, scores = model.beam_search(m, src, 2, 3, beam_size=4, max_len=12, return_scores=True)
    greedy_scores = model.score_hypotheses(m, src, greedy, 2, 3, ended=[len(h) < 12 for h in greedy])
    assert np.allclose(scores, model.score_hypotheses(m, src, hyps, 2, 3, ended=[len(h) < 12 for h in hyps]),
                       atol=1e-4)                                      # the returned score is real
    assert all(b >= g - 1e-5 for b, g in zip(scores, greedy_scores))
    assert any(b > g + 1e-4 for b, g in zip(scores, greedy_scores))    # beam finds something better
    for i, n in enumerate(lengths):                                    # batching changes nothing
        one, one_score = model.beam_search(m, src[i:i + 1, :n], 2, 3, beam_size=4, max_len=12, return_scores=True)
        assert one == [hyps[i]] and abs(one_score[0] - scores[i]) < 1e-4


def test_model_decoders_never_emit_pad_unk_or_bos_and_stop_at_the_positional_table():
    for seed in range(4):
        m = _model_tiny(seed, vocab=12)
        with torch.no_grad():
            m.generator.bias[:3] = 5.0                                  # make [PAD] [UNK] [BOS] tempting
            m.generator.bias[3] = -2.0                                  # and [EOS] less so: hypotheses get long
        src = torch.randint(4, 12, (6, 5), generator=torch.Generator().manual_seed(seed))
        greedy = model.greedy_decode(m, src, 2, 3, max_len=8)
        assert model.beam_search(m, src, 2, 3, beam_size=1, max_len=8) == greedy
        for hyps in (greedy, model.beam_search(m, src, 2, 3, beam_size=4, max_len=8)):
            emitted = {t for h in hyps for t in h}
            assert emitted and not {0, 1, 2} & emitted, hyps
    m = _model_tiny(0, vocab=12, max_len=32)
    with torch.no_grad():
        m.generator.bias[3] = -1e4                                      # [EOS] never wins: run to the cap
    src = torch.randint(4, 12, (2, 30), generator=torch.Generator().manual_seed(0))   # 30 + 50 > 32
    for max_len in (None, 100):
        greedy = model.greedy_decode(m, src, 2, 3, max_len=max_len)
        hyps, scores = model.beam_search(m, src, 2, 3, beam_size=3, max_len=max_len, return_scores=True)
        assert [len(h) for h in greedy] == [32, 32] and [len(h) for h in hyps] == [32, 32]
        assert np.allclose(model.score_hypotheses(m, src, hyps, 2, 3, ended=[False, False]), scores, atol=1e-4)
    with pytest.raises(ValueError, match="원문"):
        model.greedy_decode(m, torch.randint(4, 12, (1, 33)), 2, 3)


def _model_reverse_batch(gen, n, max_len=8, symbols=10):
    """Random sequences of ids 7..16 (length 3..max_len); target = [BOS] reversed [EOS]."""
    lengths = torch.randint(3, max_len + 1, (n,), generator=gen)
    src, tgt = torch.zeros(n, max_len, dtype=torch.long), torch.zeros(n, max_len + 2, dtype=torch.long)
    for i, n_i in enumerate(lengths.tolist()):
        seq = torch.randint(7, 7 + symbols, (n_i,), generator=gen)
        src[i, :n_i] = seq
        tgt[i, 0], tgt[i, 1:n_i + 1], tgt[i, n_i + 1] = 2, seq.flip(0), 3
    return src, tgt


def test_model_small_transformer_learns_to_reverse_sequences():
    # One thread: this tiny model gains nothing from a second one, and a single thread is not
    # slowed down many times when other processes keep the cores busy (OpenMP spin-waiting).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        m = model.Transformer(17, 17, d_model=64, num_heads=4, num_layers=2, d_ff=128, dropout=0.0)
        opt = torch.optim.Adam(m.parameters(), lr=3e-3, betas=(0.9, 0.98))
        steps, warmup = 400, 50
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, (steps - s) / (steps - warmup)))
        for _ in range(steps):
            src, tgt = _model_reverse_batch(gen, 64)
            loss = F.cross_entropy(m(src, tgt[:, :-1]).reshape(-1, 17), tgt[:, 1:].reshape(-1), ignore_index=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        src, _ = _model_reverse_batch(torch.Generator().manual_seed(123), 300)
        hyps = model.greedy_decode(m, src, bos_id=2, eos_id=3)
    finally:
        torch.set_num_threads(threads)
    assert sum(h == [t for t in s.tolist() if t][::-1] for h, s in zip(hyps, src)) / len(hyps) >= 0.99


# ------------------------------------------------ §3.5 / §3.3 formulas, recording hooks, init distributions, errors
def test_embeddings_sinusoids_special_rows_and_a_pad_row_that_stays_zero_when_tied_and_trained():
    angle = np.arange(30)[:, None] / 10000 ** (2 * np.arange(5)[None, :] / 10)          # (pos, i)
    expected = np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(30, 10)       # 2i sin, 2i+1 cos
    assert np.allclose(embeddings.sinusoidal_encoding(30, 10).numpy(), expected, atol=1e-6)
    learned = embeddings.LearnedPositionalEncoding(8, dropout=0.0, max_len=6)   # offsets: PositionalEncoding doctest
    learned(torch.randn(2, 6, 8)).sum().backward()
    assert learned.weight.grad.abs().sum() > 0
    torch.manual_seed(0)
    emb = embeddings.TokenEmbedding(50, 16, pad_id=0, init="normal")
    tokens = torch.tensor([[0, 1, 2, 3, 10]])
    assert torch.allclose(emb(tokens), emb.weight[tokens] * 4.0) and torch.equal(emb.weight[0], torch.zeros(16))
    special = F.normalize(emb.weight[1:7], dim=-1)
    assert torch.allclose(special @ special.T, torch.eye(6), atol=1e-5)   # distinct, orthogonal
    norms = emb.weight.norm(dim=-1)
    assert 0.5 < norms[1:7].mean() / norms[7:].mean() < 2.0                 # same scale as ordinary rows
    again = embeddings.TokenEmbedding(50, 16, pad_id=0, init="xavier")
    assert torch.allclose(F.normalize(again.weight[1:7], dim=-1), special, atol=1e-6)  # deterministic
    m = _model_small(6, share_embeddings=True, tie_output=True)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    src, tgt = _model_tokens(14), _model_tokens(15, length=5, lengths=(5, 3, 2))
    for _ in range(3):
        loss = F.cross_entropy(m(src, tgt).reshape(-1, 20), tgt.reshape(-1))  # pad not even ignored
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(m.src_embed.weight[0], torch.zeros(32)) and m.generator.weight is m.src_embed.weight
    n_free = sum(p.numel() for p in _model_small(6).parameters())
    assert n_free - sum(p.numel() for p in m.parameters()) == 2 * 20 * 32   # one embedding + output matrix


def test_layers_ffn_variants_follow_their_formulas():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8)
    for name, act in [("relu", lambda t: torch.clamp(t, min=0)), ("gelu", F.gelu), ("glu", torch.sigmoid),
                      ("geglu", F.gelu), ("swiglu", lambda t: t * torch.sigmoid(t))]:
        f = layers.PositionwiseFeedForward(8, 32, dropout=0.0, activation=name)
        hidden = act(f.w_1(x)) if f.w_gate is None else act(f.w_gate(x)) * f.w_1(x)
        assert (f.w_gate is None) == (name in ("relu", "gelu"))
        assert torch.allclose(f(x), f.w_2(hidden), atol=1e-6), name


def test_model_record_attention_and_contributions_do_not_change_results():
    m = _model_small(7).eval()
    src = _model_tokens(16, length=6, lengths=(6, 4, 2))
    tgt = _model_tokens(17, length=4, lengths=(4, 4, 4))
    base = m(src, tgt)
    with model.record_attention(m) as maps, model.record_contributions(m) as contrib:
        out = m(src, tgt)
    assert torch.allclose(out, base, atol=1e-5)
    assert sorted(maps) == sorted(f"{side}.layers.{i}.{kind}" for i in range(2) for side, kind in
                                  [("encoder", "self_attn"), ("decoder", "self_attn"), ("decoder", "cross_attn")])
    enc, dec = maps["encoder.layers.0.self_attn"][0], maps["decoder.layers.0.self_attn"][0]
    cross = maps["decoder.layers.1.cross_attn"][0]
    assert enc.shape == (3, 4, 6, 6) and cross.shape == (3, 4, 4, 6) and dec.shape == (3, 4, 4, 4)
    assert torch.allclose(enc.sum(-1), torch.ones(3, 4, 6), atol=1e-5)
    assert torch.all(enc[2, :, :, 2:] == 0) and torch.all(cross[1, :, :, 4:] == 0)   # padding columns
    assert torch.all(dec[0, 0].triu(1) == 0)                                           # causal
    assert set(contrib) >= {"encoder.layers.1", "encoder.layers.1.sub_ffn", "decoder.layers.0.sub_cross"}
    assert all(len(v) == 1 and v[0] > 0 for v in contrib.values())
    assert not any(a.keep_weights for a in m.modules() if isinstance(a, attention.MultiHeadAttention))
    with model.record_attention(m) as maps:
        model.greedy_decode(m, src, 2, 3, max_len=5)
    steps = maps["decoder.layers.0.cross_attn"]
    assert len(steps) == 5 and steps[0].shape == (3, 4, 1, 6)                      # one map per step


def test_model_init_schemes_have_their_distributions():
    for scheme, check in [
        ("xavier", lambda w: w.abs().max() <= math.sqrt(6 / (w.size(0) + w.size(1))) + 1e-6),
        ("he", lambda w: abs(w.std().item() - math.sqrt(2 / w.size(1))) < 0.1 * math.sqrt(2 / w.size(1))),
        ("normal", lambda w: abs(w.std().item() - 0.02) < 0.002),
    ]:
        torch.manual_seed(0)
        m = model.Transformer(40, 40, d_model=64, num_heads=4, num_layers=1, d_ff=256, init=scheme,
                              tie_output=True)
        for w in (m.encoder.layers[0].ffn.w_1.weight, m.decoder.layers[0].cross_attn.w_o.weight):
            assert check(w), scheme
        assert m.generator.weight is m.tgt_embed.weight and torch.equal(m.tgt_embed.weight[0], torch.zeros(64))
        assert torch.all(m.encoder.layers[0].ffn.w_1.bias == 0)


_BAD_CALLS = _fixture("bad_calls")   # 인자가 모두 리터럴인 잘못된 호출: 이름 → [모듈.함수, 위치 인자, 키워드 인자, 오류 문구]


def _bad_calls(section, files):
    """tests/bad_calls.json 의 한 절 → {파일: {이름: (호출, 오류 문구)}} (파일 = 부르는 함수의 모듈, files 중 하나)."""
    def call(name, args, kwargs):
        module, function = name.split(".")
        return lambda: getattr(importlib.import_module(module), function)(*args, **kwargs)
    by_file = {stem: {} for stem in files}
    for key, (name, args, kwargs, match) in _BAD_CALLS[section].items():
        if name.split(".")[0] not in by_file:
            raise ValueError(f"tests/bad_calls.json 의 {section}.{key}: {name} 은 {files} 의 함수가 아닙니다")
        by_file[name.split(".")[0]][key] = (call(name, args, kwargs), match)
    return by_file


def _raises_one_korean_line(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value) and any("가" <= c <= "힣" for c in str(err.value))


def _bad_call_cases(table):
    """{이름: (호출, 오류 문구)} → (호출, 오류 문구) 를 이름을 id 로 매개변수화."""
    return pytest.mark.parametrize("call, match", table.values(), ids=list(table))


_MODEL_BAD_ARGUMENTS = _bad_calls("model", ("embeddings", "attention", "layers", "model"))
# 여기서 더하는 것은 텐서나 모델이 필요한 호출만
_MODEL_BAD_ARGUMENTS["embeddings"].update({
    "position_past_max_len": (lambda: embeddings.PositionalEncoding(8, 0.0, 6)(torch.zeros(2, 2, 8), offset=5),
                              "max_len=6"),
})
_MODEL_BAD_ARGUMENTS["model"].update({
    "unknown_positional": (lambda: _model_small(positional="rotary"), "positional"),
    "unknown_init_scheme": (lambda: model.init_weights(_model_small(), "orthogonal"), "scheme"),
    "source_longer_than_max_len": (lambda: _model_small(8, max_len=8)(torch.ones(1, 9, dtype=torch.long),
                                                                      torch.ones(1, 2, dtype=torch.long)), "원문 길이"),
    "beam_size_zero": (lambda: model.beam_search(_model_small(8), torch.ones(1, 3, dtype=torch.long), 2, 3,
                                                 beam_size=0), "beam_size"),
})


@_bad_call_cases(_MODEL_BAD_ARGUMENTS["embeddings"])
def test_embeddings_bad_arguments_raise_one_korean_line(call, match):
    _raises_one_korean_line(call, match)


@_bad_call_cases(_MODEL_BAD_ARGUMENTS["attention"])
def test_attention_bad_arguments_raise_one_korean_line(call, match):
    _raises_one_korean_line(call, match)


@_bad_call_cases(_MODEL_BAD_ARGUMENTS["layers"])
def test_layers_bad_arguments_raise_one_korean_line(call, match):
    _raises_one_korean_line(call, match)


@_bad_call_cases(_MODEL_BAD_ARGUMENTS["model"])
def test_model_bad_arguments_raise_one_korean_line(call, match):
    _raises_one_korean_line(call, match)


# ══════ section: schedules_losses ══════
# Checked against PyTorch's LR schedulers (OneCycleLR, CyclicLR, PolynomialLR, CosineAnnealingLR,
# driven step by step; LambdaLR for as_lambda_lr), F.cross_entropy (label_smoothing, ignore_index),
# F.kl_div in float64, and the formulas computed directly in float64.
def _schedules_adam(lr=0.1):
    """파라미터 하나짜리 옵티마이저 (스케줄 비교용)."""
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr, betas=(0.9, 0.98), eps=1e-9)


def _schedules_run(optimizer, scheduler, steps):
    """steps 번 업데이트하며 매 업데이트의 (lr, β1) 을 모은다."""
    seen = []
    for _ in range(steps):
        seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"][0]))
        optimizer.step()
        scheduler.step()
    return seen


_LR = torch.optim.lr_scheduler
_P = functools.partial
_SCHEDULE_CASES = _fixture("schedule_cases")   # 이름: 우리 스케줄 [함수, 키워드 인자], PyTorch 스케줄러, 업데이트 수 …


@pytest.mark.parametrize("name", list(_SCHEDULE_CASES["against_pytorch"]))
def test_schedules_match_pytorch_schedulers(name):
    # 우리 step k + offset 은 PyTorch 의 (k − 1 + shift) 번째 업데이트와 같다. 감쇠 계열은 shift = 1: PyTorch 는
    # 첫 업데이트가 peak 이고, 우리는 step = warmup = 0 이 peak 이다 (schedules.py 설명). 워밍업 w 를 둔 cyclic_lr 은
    # PyTorch 곡선을 w 스텝 민 것이다 (offset = w).
    case = _SCHEDULE_CASES["against_pytorch"][name]
    opt, steps, shift = _schedules_adam(), case["steps"], case["shift"]
    expected = _schedules_run(opt, getattr(_LR, case["torch"][0])(opt, **case["torch"][1]), steps + shift)[shift:]
    updates = [k + case.get("offset", 0) for k in range(1, steps + 1)]
    lr_fn = _P(getattr(schedules, case["lr"][0]), **case["lr"][1])
    assert [lr_fn(k) for k in updates] == pytest.approx([lr for lr, _ in expected], rel=1e-12, abs=1e-18)
    if "momentum" in case:
        momentum_fn = _P(getattr(schedules, case["momentum"][0]), **case["momentum"][1])
        assert [momentum_fn(k) for k in updates] == pytest.approx([beta for _, beta in expected], rel=1e-12, abs=0)


def test_schedules_paper_peak_at_warmup():
    for d_model in (128, 512, 1024):
        for warmup in (10, 400, 4000):
            peak = schedules.transformer_lr(warmup, d_model, warmup)
            assert math.isclose(peak, d_model ** -0.5 * warmup ** -0.5, rel_tol=1e-12)
            lrs = [schedules.transformer_lr(s, d_model, warmup) for s in range(1, 3 * warmup + 1)]
            assert max(range(len(lrs)), key=lrs.__getitem__) + 1 == warmup
            # 워밍업 동안 step 에 정비례, 그 뒤로 1/√step
            assert math.isclose(lrs[warmup // 2 - 1] / lrs[0], warmup // 2, rel_tol=1e-9)
            assert math.isclose(schedules.transformer_lr(4 * warmup, d_model, warmup), peak / 2, rel_tol=1e-12)


@pytest.mark.parametrize("name", list(_SCHEDULE_CASES["lambda_lr"]))
def test_schedules_lambda_lr_equals_pure_function_and_resumes(name):
    fn = _P(getattr(schedules, _SCHEDULE_CASES["lambda_lr"][name][0]), **_SCHEDULE_CASES["lambda_lr"][name][1])
    opt = _schedules_adam(lr=7.0)  # 옵티마이저의 lr 은 무시되어야 한다
    _LR.StepLR(opt, step_size=5)  # 앞선 스케줄러가 남긴 initial_lr = 7.0 도 무시
    sched = schedules.as_lambda_lr(opt, fn)
    assert [lr for lr, _ in _schedules_run(opt, sched, 25)] == [fn(s) for s in range(1, 26)]  # total 뒤도 오류 없음
    # 체크포인트: weights_only=True 로 읽히고, 새 옵티마이저/스케줄러가 같은 곳에서 이어 간다
    buffer = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    opt2 = _schedules_adam(lr=7.0)
    sched2 = schedules.as_lambda_lr(opt2, fn)
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    assert [lr for lr, _ in _schedules_run(opt2, sched2, 3)] == [fn(s) for s in range(26, 29)]


def _losses_batch(seed=0, shape=(3, 7), vocab=11, pad=0):
    """무작위 logits (…, V) 와 끝이 패딩인 targets (…)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, vocab, generator=gen) * 3
    targets = torch.randint(0, vocab, shape, generator=gen)
    targets[..., -2:] = pad
    return logits, targets


@pytest.mark.parametrize("shape, pad, eps, dtype, reduction", [
    ((3, 7), 0, 0.1, torch.float32, "mean"), ((20,), 4, 0.1, torch.float32, "mean"),
    ((2, 5), 0, 0.0, torch.float32, "mean"), ((2, 9), 1, 0.3, torch.float32, "mean"),
    ((3, 7), 0, 0.1, torch.float32, "sum"), ((3, 7), 0, 0.1, torch.float16, "mean"),
    ((3, 7), 0, 0.1, torch.bfloat16, "mean")])
def test_losses_label_smoothing_matches_pytorch(shape, pad, eps, dtype, reduction):
    logits, targets = _losses_batch(seed=len(shape) + pad, shape=shape, pad=pad)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = losses.label_smoothed_cross_entropy(a.to(dtype), targets, epsilon=eps, ignore_index=pad,
                                               reduction=reduction)
    ref = F.cross_entropy(b.to(dtype).float().reshape(-1, 11), targets.reshape(-1), label_smoothing=eps,
                          ignore_index=pad, reduction=reduction)
    assert ours.dtype == torch.float32   # fp16/bf16 logits are computed in float32
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0 if reduction == "mean" else 1e-6)
    if dtype == torch.float32:
        ours.backward()
        ref.backward()
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=0)


def test_losses_smoothed_targets_and_kl_variant_match_independent_computation():
    # spread="all": H(q, p) 를 q 로 직접 계산한 값이 label_smoothed_cross_entropy 와 같다
    logits, targets = _losses_batch(seed=5, shape=(6,))
    q = losses.smoothed_targets(targets, 11, epsilon=0.1)
    assert torch.allclose(q.sum(-1), torch.ones(6))
    per_token = -(q * F.log_softmax(logits, -1)).sum(-1)[targets != 0]
    assert torch.allclose(losses.label_smoothed_cross_entropy(logits, targets), per_token.mean(), atol=1e-6)
    # KL 형태: q 를 (N, V) 로 직접 채우고 F.kl_div (float64)
    logits, targets = _losses_batch(seed=1, shape=(4, 6), vocab=9, pad=0)
    eps, vocab = 0.1, 9
    a = logits.clone().requires_grad_(True)
    ours = losses.label_smoothed_kl_div(a, targets, epsilon=eps, ignore_index=0)
    real = targets.reshape(-1) != 0
    flat_t = targets.reshape(-1)[real]
    q = torch.full((flat_t.numel(), vocab), eps / (vocab - 1), dtype=torch.float64)
    q.scatter_(1, flat_t.unsqueeze(1), 1 - eps)
    b = logits.double().clone().requires_grad_(True)
    ref = F.kl_div(F.log_softmax(b.reshape(-1, vocab)[real], dim=-1), q, reduction="sum") / flat_t.numel()
    assert abs(ours.item() - ref.item()) < 1e-6
    # KL = H(q, p) − H(q): 확률 목표를 받는 F.cross_entropy 와 상수만큼 다르고, 기울기는 같다
    ce_soft = F.cross_entropy(b.reshape(-1, vocab)[real], q, reduction="mean")
    entropy_q = -(q * q.log()).sum(-1).mean()
    assert abs(ours.item() - (ce_soft - entropy_q).item()) < 1e-6
    ours.backward()
    ce_soft.backward()
    assert torch.allclose(a.grad.double(), b.grad, atol=1e-6)
    # 두 스무딩 정의는 실제로 다른 값을 준다 (모듈의 "논문과 다른 점")
    pytorch_style = losses.label_smoothed_cross_entropy(logits, targets, epsilon=eps)
    assert abs((pytorch_style - ours).item() - entropy_q.item()) > 1e-3


def test_losses_finite_where_probability_is_zero_or_all_is_padding():
    logits = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(2))
    logits[0, 0, :3] = -math.inf                  # 정답(0) 을 포함해 세 칸의 확률이 정확히 0
    logits[0, 1, 4] = -math.inf
    logits[1, 3] = -math.inf                      # 패딩 위치의 행 전체 −inf (무시되어야 함)
    targets = torch.tensor([[0, 2, 5, 1], [3, 3, 4, 0]])
    extreme = torch.tensor([[[-3.0, -65504.0, 0.0, 1.0, 65504.0, 2.0]]], dtype=torch.float16)  # fp16 끝값
    # 정답 p_t ≈ 0 ([[1]]), p_t = 1 정확히 ([[4]]: 1 − p_t = 0)
    inputs = [(logits, targets), (extreme, torch.tensor([[1]])), (extreme, torch.tensor([[4]]))]
    for loss_fn in (losses.label_smoothed_cross_entropy, losses.label_smoothed_kl_div,
                    _P(losses.focal_loss, gamma=0.5), _P(losses.focal_loss, gamma=2.0)):
        for x, t in inputs:
            leaf = x.clone().requires_grad_(True)
            loss = loss_fn(leaf, t)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()
    leaf = logits.clone().requires_grad_(True)
    loss = losses.masked_lm_loss(leaf, torch.tensor([[0, -100, 5, -100], [-100, 3, -100, -100]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()
    # 유한한 극단값은 바닥값으로 바꾸지 않는다: PyTorch 와 같은 값, 정답 logit 을 올리는 기울기
    leaf = extreme.float().requires_grad_(True)
    loss = losses.label_smoothed_cross_entropy(leaf, torch.tensor([[1]]))
    ref = F.cross_entropy(extreme.float().reshape(-1, 6), torch.tensor([1]), label_smoothing=0.1)
    assert torch.allclose(loss, ref, rtol=1e-6)
    loss.backward()
    assert leaf.grad[0, 0, 1] < 0
    leaf = torch.randn(2, 3, 5, requires_grad=True)   # 패딩뿐: 손실 0, 기울기 0 (PyTorch 는 nan)
    loss = losses.label_smoothed_cross_entropy(leaf, torch.zeros(2, 3, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(leaf.grad == 0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_losses_nan_or_plus_inf_logits_give_a_nonfinite_loss(bad):
    # −inf (확률 0) 만 바닥값으로 바꾼다. NaN·+inf 를 유한한 손실로 숨기면 학습이 발산을 못 알아챈다.
    logits, targets = _losses_batch(seed=5)
    logits[0, 1, 3] = bad
    for loss_fn in (losses.label_smoothed_cross_entropy, _P(losses.label_smoothed_cross_entropy, reduction="sum"),
                    losses.label_smoothed_kl_div, losses.focal_loss):
        assert not torch.isfinite(loss_fn(logits, targets))


def test_losses_focal_gamma_zero_is_cross_entropy():
    logits, targets = _losses_batch(seed=4)
    ce = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=0)
    assert torch.allclose(losses.focal_loss(logits, targets, gamma=0.0), ce, atol=1e-6)
    # γ = 2: float64 로 직접 계산한 −(1 − p_t)^2 log p_t 와 같고, 교차 엔트로피보다 작다
    log_p_t = F.log_softmax(logits.double(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)[targets != 0]
    focal = losses.focal_loss(logits, targets, gamma=2.0)
    assert abs(focal.item() - (-(1 - log_p_t.exp()) ** 2 * log_p_t).mean().item()) < 1e-6 and focal < ce
    weights = losses.focal_weight(torch.tensor([0.0, 0.5, 1.0]), gamma=3.0)
    assert torch.allclose(weights, torch.tensor([1.0, 0.125, 0.0]), atol=1e-12)


def test_losses_masked_lm_uses_masked_positions_only():
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 8, 13, generator=gen)
    labels = torch.full((2, 8), -100)
    labels[0, 1], labels[0, 5], labels[1, 2] = 4, 0, 12
    leaf = logits.clone().requires_grad_(True)
    loss = losses.masked_lm_loss(leaf, labels)
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(-1, 13), labels.reshape(-1), ignore_index=-100),
                          atol=1e-6)
    loss.backward()
    unmasked = labels == -100
    assert torch.all(leaf.grad[unmasked] == 0) and torch.all(leaf.grad[~unmasked].abs().sum(-1) > 0)
    changed = logits.clone()
    changed[unmasked] = torch.randn(int(unmasked.sum()), 13, generator=gen) * 10
    assert torch.equal(losses.masked_lm_loss(changed, labels), loss.detach())


_SCHEDULES_LOSSES_BAD_INPUT = _bad_calls("schedules_losses", ("schedules", "losses"))
# 여기서 더하는 것은 텐서나 옵티마이저가 필요한 호출만
_SCHEDULES_LOSSES_BAD_INPUT["schedules"].update({
    "not_callable": (lambda: schedules.as_lambda_lr(_schedules_adam(), 0.1), "호출 가능한"),
})
_SCHEDULES_LOSSES_BAD_INPUT["losses"].update({
    "negative_focal_gamma": (lambda: losses.focal_weight(torch.tensor([0.5]), gamma=-1.0), "gamma"),
    "target_outside_vocabulary": (lambda: losses.label_smoothed_cross_entropy(torch.randn(2, 5), torch.tensor([1, 5])),
                                  r"\[0, 5\)"),
    "shapes_differ": (lambda: losses.focal_loss(torch.randn(2, 3, 5), torch.ones(3, 2, dtype=torch.long)), "앞쪽 모양"),
    "kl_epsilon_0": (lambda: losses.label_smoothed_kl_div(torch.randn(2, 5), torch.tensor([1, 2]), epsilon=0.0),
                     "epsilon"),
    "unknown_spread": (lambda: losses.smoothed_targets(torch.tensor([1]), 5, spread="pad"), "spread"),
    "reduction_none": (lambda: losses.label_smoothed_cross_entropy(torch.randn(2, 5), torch.tensor([1, 2]),
                                                                   reduction="none"), "reduction"),
})


@_bad_call_cases(_SCHEDULES_LOSSES_BAD_INPUT["schedules"])
def test_schedules_bad_input_raises_one_korean_line(call, match):
    _raises_one_korean_line(call, match)


@_bad_call_cases(_SCHEDULES_LOSSES_BAD_INPUT["losses"])
def test_losses_bad_input_raises_one_korean_line(call, match):
    _raises_one_korean_line(call, match)


# ══════ section: data ══════
# 참조: BPE 는 data.learn_merges_naive (병합마다 모든 쌍을 다시 세는 순진한 학습)와 무작위 문자열 왕복,
# 코퍼스는 손으로 만든 WMT14 공식 배치·단순 배치, 내려받기는 127.0.0.1 의 로컬 HTTP 서버 (연결 끊기, 손상).
_DATA_ROOT = os.path.dirname(os.path.abspath(data.__file__))
_DATA_FILES = _fixture("corpus_files")         # 손으로 쓴 BPE 학습 문장, 작은 WMT14·단순 배치 파일, 잘못된 SGM …
_DATA_LINES = _DATA_FILES["bpe_lines"] * 5


def _data_random_string(rng):
    """0~30 번: 글자 모음 하나를 골라 그 조각을 잇는다 (tests/corpus_files.json 의 random_pools: 한국어·자모·
    이모지(ZWJ, 국기)·결합 문자·여러 공백·제어 문자·서로게이트·한자·보조 평면·특수 토큰처럼 보이는 글자)."""
    def part(kind, *a):                         # ["text", s], ["choice", 후보들], ["range", 처음, 끝] (16진 코드 포인트)
        if kind == "range":
            return chr(rng.randint(int(a[0], 16), int(a[1], 16)))
        return rng.choice(a[0]) if kind == "choice" else a[0]
    pools = _DATA_FILES["random_pools"]
    return "".join("".join(part(*p) for p in rng.choice(pools)) for _ in range(rng.randint(0, 30)))


def test_data_bpe_normalize_idempotent_and_round_trip_1000_random_strings():
    assert data.normalize("x\x00y\x07z\ud800") == "xyz"                # 제어 문자·서로게이트 제거
    with pytest.raises(ValueError, match="str"):
        data.normalize(b"bytes")
    bpe = data.train_bpe(_DATA_LINES, vocab_size=200)
    assert 150 < len(bpe) <= 200
    rng = random.Random(0)
    for _ in range(1000):
        s = _data_random_string(rng)
        once = data.normalize(s)
        assert data.normalize(once) == once and once == once.strip() and "  " not in once
        ids = bpe.encode(s)
        assert all(data.EOW_ID <= i < len(bpe) for i in ids)           # 특수 토큰([UNK] 포함)은 안 나온다
        assert bpe.decode(ids) == once, repr(s)
    hex_digits = "🙂".encode("utf-8").hex().upper()                   # 못 본 글자: UTF-8 바이트의 니블 + 단독 </w>
    assert bpe.token_strings(bpe.encode("🙂")) == [f"<x{h}>" for h in hex_digits] + ["</w>"]


def test_data_bpe_special_tokens_never_split_or_merged(tmp_path):
    assert data.SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[CLS]", "[SEP]", "[MASK]")
    assert (data.PAD_ID, data.UNK_ID, data.BOS_ID, data.EOS_ID, data.CLS_ID, data.SEP_ID, data.MASK_ID) == \
        tuple(range(7))
    bpe = data.train_bpe(["[MASK] x[MASK]y [CLS]z <x0>", "a</w>b a</w>c a</w>d a</w>e"] * 50 + _DATA_LINES, 260)
    assert "a</w>b</w>" in bpe.tokens and bpe.tokens[:7] == list(data.SPECIAL_TOKENS)   # 글자 '</w>' 도 병합된다
    assert not set(bpe.tokens[7:]) & set(data.SPECIAL_TOKENS)          # 병합이 특수 토큰 이름을 만들지 않음
    for text in ("a [MASK] b", "x[MASK]y a</w>b <x0>", "[PAD]", "a</w>bc"):          # 본문의 '[MASK]' 는 보통 글자
        ids = bpe.encode(text)
        assert min(ids) >= 7 and bpe.decode(ids) == text
    bpe.save(str(tmp_path / "bpe.txt"))
    assert data.BPE.load(str(tmp_path / "bpe.txt")).tokens == bpe.tokens
    out = [data.BOS_ID] + bpe.encode("der Hund") + [data.EOS_ID, data.PAD_ID, data.PAD_ID]
    assert bpe.decode(out) == "der Hund" and bpe.decode(out, skip_special=False) == "[BOS] der Hund [EOS] [PAD] [PAD]"
    with pytest.raises(ValueError, match="어휘"):
        bpe.decode([len(bpe)])


def test_data_bpe_incremental_learning_matches_naive_recount():
    rng = random.Random(3)
    syll = ["ba", "na", "an", "aa", "ab", "ra", "ka", "te", "et", "ee", "n", "a"]
    lines = [" ".join("".join(rng.choice(syll) for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 8)))
             for _ in range(300)]
    bpe = data.train_bpe(lines, vocab_size=10_000)                   # 빈도 2 미만까지 모두 병합
    alphabet, words = data.bpe_start(data.count_words(lines))
    assert len(bpe.merges) > 100 and bpe.merges == data.learn_merges_naive(words, 10_000, len(bpe) - len(bpe.merges))
    for word in data.count_words(lines):                              # 인코딩 = 학습 순서대로 병합한 분할
        symbols = bpe._word_symbols(word)
        for k, pair in enumerate(bpe.merges):
            symbols = data.merge_pair(symbols, pair, len(bpe) - len(bpe.merges) + k)
        assert bpe.encode(word) == symbols


def test_data_bpe_save_load_and_malformed_files(tmp_path):
    bpe = data.train_bpe(_DATA_LINES, vocab_size=180)
    path = str(tmp_path / "bpe.txt")
    bpe.save(path)
    text = open(path, encoding="utf-8").read()
    assert text.startswith("#version: ") and "merges " in text          # 사람이 읽는 텍스트
    loaded, rng = data.BPE.load(path), random.Random(5)
    samples = _DATA_LINES + [_data_random_string(rng) for _ in range(200)]
    assert [loaded.encode(s) for s in samples] == [bpe.encode(s) for s in samples] and loaded.tokens == bpe.tokens
    lines = text.split("\n")
    for name, content in {"version": ["#version: other 9"] + lines[1:], "truncated": lines[:-5],
                          "bad_merge_id": lines[:-2] + ["999999 3 xx", ""],
                          "wrong_token_text": lines[:-2] + [" ".join(lines[-2].split(" ")[:2]) + " NOT-IT", ""],
                          "extra_line": lines[:-1] + ["garbage", ""],
                          "bad_char": [l if not l.startswith("char ") else "char 0041 B" for l in lines]}.items():
        bad = str(tmp_path / f"{name}.txt")
        with open(bad, "w", encoding="utf-8") as f:
            f.write("\n".join(content))
        with pytest.raises(ValueError) as err:
            data.BPE.load(bad)
        assert bad in str(err.value) and "번째 줄" in str(err.value), name
        where = {"version": 1, "bad_char": next(i for i, l in enumerate(lines, 1) if l.startswith("char ")),
                 "truncated": len(lines) - 4, "wrong_token_text": len(lines) - 1, "extra_line": len(lines)}
        if name in where:                               # 잘못된 줄 바로 그 번호 (읽고 난 줄, 없으면 다음 줄)
            assert f" {where[name]}번째 줄" in str(err.value), (name, str(err.value))
    with pytest.raises(FileNotFoundError):
        data.BPE.load(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="vocab_size"):
        data.train_bpe(_DATA_LINES, vocab_size=30)


# --- 코퍼스 읽기 ---------------------------------------------------------------
def _data_write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode("utf-8"))


def test_data_wmt14_official_and_simple_layouts_and_errors(tmp_path):
    root, simple, sgm = str(tmp_path / "wmt"), str(tmp_path / "simple"), str(tmp_path / "simple" / "sgm")
    for folder, files in ((root, "wmt14"), (simple, "simple"), (sgm, "sgm_refused")):
        for name, content in _DATA_FILES[files].items():
            words = ("news " if name.endswith(".en") else "N ") * 300                # 단어 300개: 길이 필터가 뺀다
            _data_write(f"{folder}/{name}", content.replace("{300 words}", words))
    assert data.load_wmt14(root, "train") == [("Resumption of the session", "Wiederaufnahme der Sitzung"),
                                              ("hello world", "hallo Welt"),  # 맨 \r 은 줄을 나누지 않는다
                                              ("crawl one", "Crawl eins"), ("crawl three", "Crawl drei"),  # 빈 쪽 쌍 빠짐
                                              ("short news", "kurz")]          # 300 단어 문장은 길이 필터로
    assert len(data.load_wmt14(root, "train", max_words=None)) == 6
    assert list(data.iter_corpus(root, "valid")) == [("valid one", "gültig eins"), ("valid two", "gültig zwei")]
    assert data.load_wmt14(root, "test") == [("Tom & Jerry run .", "Tom & Jerry rennen ."), ("A & B", "A & B"),
                                             ("Second doc .", "Zweites Dokument .")]
    with pytest.raises(ValueError, match="split"):
        data.load_wmt14(root, "dev")
    assert data.load_wmt14(simple, "train") == [("a b c", "A B C"), ("last", "Letzte")]
    assert data.load_wmt14(simple, "test") == [("t", "T")]
    with pytest.raises(ValueError) as err:                            # 줄 수가 다르면 두 파일과 두 개수
        data.load_wmt14(simple, "valid")
    assert "valid.en" in str(err.value) and "valid.de" in str(err.value) and "3" in str(err.value)
    _data_write(f"{simple}/valid.de", b"1\n\xff\xfe bad\n3\n")          # 잘못된 UTF-8: 파일과 줄 번호
    with pytest.raises(ValueError, match=r"valid.de' 2번째 줄"):
        data.load_wmt14(simple, "valid")
    os.remove(f"{simple}/valid.en")
    with pytest.raises(FileNotFoundError, match="valid.en' 가 없습니다"):
        data.load_wmt14(simple, "valid")
    with pytest.raises(ValueError, match="dX"):                         # SGM: 어긋난 문서 id, 닫히지 않은 <seg>
        data.load_wmt14(sgm, "test")
    with pytest.raises(ValueError, match="seg"):
        list(data.read_sgm(f"{sgm}/bad.sgm"))


# --- 내려받기: 127.0.0.1 의 로컬 HTTP 서버 --------------------------------------
@contextlib.contextmanager
def _data_server(files, cut=()):
    """files: URL 경로 → 바이트 (Range 를 따른다). cut 의 경로는 첫 GET 에서 절반만 보내고 연결을 끊는다."""
    requests, cut = [], set(cut)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body, rng = files.get(self.path), self.headers.get("Range")
            requests.append((self.path, rng))
            if body is None:
                return self.send_error(404)
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            if start >= len(body) > 0:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                return self.end_headers()
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            half = self.path in cut and not cut.discard(self.path)             # 중간에 연결 끊기
            self.wfile.write(body[start:start + (len(body) - start) // 2] if half else body[start:])

        def log_message(self, *args):
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def _data_official_archives():
    """공식 아카이브 다섯 개의 작은 판 (URL 경로 → tgz 바이트): europarl 200 줄, 나머지 2 줄, 풀지 않을 파일도 하나씩."""
    out = {}
    for archive in data.WMT14_ARCHIVES:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, _ in archive.members + (("europarl-v7.fr-en.fr", None),):
                content = (_DATA_FILES["wmt14"][f"test-full/{name}"] if name.endswith(".sgm") else
                           "".join(f"{name} {k} Straße\n" for k in range(200 if "europarl" in name else 2))).encode()
                info = tarfile.TarInfo(f"some/dir/{name}")
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        out["/" + archive.url_path] = buf.getvalue()
    return out


_DATA_QUIET = dict(backoff=0.0, progress=False, log=lambda *a: None)


def test_data_download_resumes_after_cut_connection_and_refuses_corrupt_archives(tmp_path):
    files, europarl, dev = _data_official_archives(), "/wmt13/training-parallel-europarl-v7.tgz", "/wmt14/dev.tgz"
    root = str(tmp_path / "wmt14")
    _data_write(f"{root}/downloads/training-parallel-nc-v9.tgz.part", files["/wmt14/training-parallel-nc-v9.tgz"][:40])
    with _data_server(files, cut=[europarl]) as (url, requests):
        data.download_wmt14(root, base_url=url, **_DATA_QUIET)
        assert (europarl, None) in requests and any(p == europarl and r for p, r in requests)  # 끊긴 뒤 Range
        assert ("/wmt14/training-parallel-nc-v9.tgz", "bytes=40-") in requests     # 이전 실행의 부분 파일
        n_before = len(requests)
        data.download_wmt14(root, base_url=url, **_DATA_QUIET)        # 두 번째 실행은 아무것도 받지 않는다
        assert len(requests) == n_before
        train = data.load_wmt14(root, "train")
        assert len(train) == 204 and train[0] == ("europarl-v7.de-en.en 0 Straße", "europarl-v7.de-en.de 0 Straße")
        assert len(data.load_wmt14(root, "valid")) == 2 and len(data.load_wmt14(root, "test")) == 3
        assert not [f for _, _, names in os.walk(root) for f in names if "fr-en" in f]   # 필요한 파일만 푼다
        assert sorted(os.listdir(f"{root}/downloads")) == sorted(os.path.basename(p) for p in files)
        good, bad = files[dev], bytearray(files[dev])                   # 가운데 8바이트가 손상된 아카이브
        bad[len(bad) // 2:len(bad) // 2 + 8] = bytes(b ^ 0xFF for b in bad[len(bad) // 2:len(bad) // 2 + 8])
        files[dev], root = bytes(bad), str(tmp_path / "w")
        members = next(a for a in data.WMT14_ARCHIVES if a.name == "dev").members
        with pytest.raises(ValueError, match="손상"):
            data.download_wmt14(root, base_url=url, archives=[data.Archive("dev", "wmt14/dev.tgz", members)],
                                **_DATA_QUIET)
        assert not os.path.exists(f"{root}/dev") and os.listdir(f"{root}/downloads") == []   # 풀지 않고 지웠다
        files[dev] = good                                               # 체크섬이 다르면 SHA-256 으로 거절
        other = [data.Archive("dev", "wmt14/dev.tgz", members, sha256=hashlib.sha256(b"something else").hexdigest())]
        with pytest.raises(ValueError, match="SHA-256"):
            data.download_wmt14(root, base_url=url, archives=other, **_DATA_QUIET)
        assert not os.path.exists(f"{root}/dev") and os.listdir(f"{root}/downloads") == []
        right = [data.Archive("dev", "wmt14/dev.tgz", members, sha256=hashlib.sha256(good).hexdigest())]
        data.download_wmt14(root, base_url=url, archives=right, **_DATA_QUIET)
        assert open(f"{root}/dev/newstest2013.en").read().startswith("newstest2013.en 0 Straße\n")
        with pytest.raises(ValueError, match="HTTP 404"):
            data.download_wmt14(str(tmp_path / "x"), base_url=url + "/nothing", archives=right, **_DATA_QUIET)


def test_data_download_multi30k_layout_resume_and_refusals(tmp_path, capsys):
    stems, files, table, texts = {"train": "train", "valid": "val", "test": "test_2016_flickr"}, {}, [], {}
    for split, lang in ((s, l) for s in stems for l in ("en", "de")):    # 공식 .gz 여섯 개의 작은 판
        texts[f"{split}.{lang}"] = "".join(f"{split} {lang} {i} Straße\n" for i in range(50))
        name = f"{stems[split]}.{lang}.gz"
        files[f"/{name}"] = gzip.compress(texts[f"{split}.{lang}"].encode("utf-8"), mtime=0)
        table.append((name, hashlib.sha256(files[f"/{name}"]).hexdigest()))
    table = tuple(table)
    assert sorted(n for n, _ in table) == sorted(n for n, _ in data.MULTI30K_SHA256)  # 진짜 표와 같은 여섯 이름
    root, good = str(tmp_path / "m30k"), files["/val.de.gz"]
    with _data_server(files, cut=["/train.de.gz"]) as (url, requests):
        assert data.download_multi30k(root, base_url=url, checksums=table, **_DATA_QUIET) == root
        assert any(p == "/train.de.gz" and r for p, r in requests)   # 끊긴 뒤 Range 로 이어받았다
        n_before = len(requests)
        data.download_multi30k(root, base_url=url, checksums=table, **_DATA_QUIET)   # 다시: 아무것도 받지 않는다
        assert len(requests) == n_before
        assert all(open(os.path.join(root, name), encoding="utf-8").read() == text for name, text in texts.items())
        assert data.load_wmt14(root, "test")[3] == ("test en 3 Straße", "test de 3 Straße")  # 단순 배치로 읽힌다
        assert sorted(os.listdir(os.path.join(root, "downloads"))) == sorted(n for n, _ in table)  # .part 없음
        files["/val.de.gz"] = good[:-12] + b"wrong bytes!"              # 다른 바이트: SHA-256 이 어긋난다
        bad_sha, other = hashlib.sha256(files["/val.de.gz"]).hexdigest(), str(tmp_path / "m")
        with pytest.raises(ValueError) as err:
            data.download_multi30k(other, base_url=url, checksums=table, **_DATA_QUIET)
        assert all(s in str(err.value) for s in ("val.de.gz", dict(table)["val.de.gz"], bad_sha))
        assert not os.path.exists(f"{other}/valid.de") and "val.de" not in "".join(os.listdir(f"{other}/downloads"))
        cli = str(tmp_path / "cli")               # 명령줄: 진짜 체크섬 표와 맞지 않으므로 한 줄 오류, 종료 코드 2
        assert data.main(["download", "multi30k", "--dir", cli, "--base-url", url]) == 2
        err_lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("오류")]
        assert len(err_lines) == 1 and "SHA-256" in err_lines[0] and "train.en.gz" in err_lines[0]
        assert os.listdir(cli) == ["downloads"] and os.listdir(f"{cli}/downloads") == []
        with pytest.raises(ValueError, match="손상"):                  # 체크섬은 맞지만 gzip 이 손상: 지운다
            data.download_multi30k(other, base_url=url, checksums=dict(table, **{"val.de.gz": bad_sha}), **_DATA_QUIET)
        assert not os.path.exists(f"{other}/valid.de") and "val.de" not in "".join(os.listdir(f"{other}/downloads"))
        files["/val.de.gz"] = good                                     # 고쳐진 서버: 이어서 끝낸다
        data.download_multi30k(other, base_url=url, checksums=table, **_DATA_QUIET)
    assert len(data.load_wmt14(other, "valid")) == 50


# --- prepare 캐시 -------------------------------------------------------------
def _data_small_corpus(root, junk=False):
    """작은 평행 코퍼스 120 쌍. junk: Common Crawl 에 실제로 있던 잡음 두 쌍을 학습·검증 분할에 섞는다 (이슈 8)."""
    rng, pairs = random.Random(7), []
    nouns = [("dog", "Hund"), ("cat", "Katze"), ("house", "Haus"), ("tree", "Baum"), ("car", "Auto")]
    for _ in range(120):
        (e1, d1), (e2, d2), k = rng.choice(nouns), rng.choice(nouns), rng.randint(1, 99)
        pairs.append((f"the {e1} sees {k} {e2}s .", f"der {d1} sieht {k} {d2} ."))
    noise = [("".join(chr(0x2500 + k % 100) for k in range(4000)), "der Hund sieht 5 Katze ."),   # 4,000 글자 한 단어
             ("the dog sees 5 cats .", "".join(chr(0x3400 + k) for k in range(171)))]         # 드문 한자: 1,027 토큰
    splits = {"train": pairs[:50] + noise[:1] + pairs[50:] + noise[1:], "valid": pairs[:5] + noise[1:]} if junk else \
        {"train": pairs, "valid": pairs[:5]}
    for split, rows in dict(splits, test=pairs[5:9]).items():
        _data_write(f"{root}/{split}.en", "\n".join(e for e, _ in rows) + "\n")
        _data_write(f"{root}/{split}.de", "\n".join(d for _, d in rows) + "\n")
    return pairs, noise


def test_data_any_corpus_layout_both_directions_and_refusals(tmp_path, capsys):
    root = str(tmp_path / "c")                      # train/valid/test.<언어> 디렉터리는 무엇이든 코퍼스 (이슈 9)
    pairs, _ = _data_small_corpus(root)
    assert data.check_corpus(root) == {"train": 120, "valid": 5, "test": 4}
    assert data.load_pairs(root, "test", "de", "en") == [(d, e) for e, d in pairs[5:9]]
    args = ["--vocab", "150", "--min-char-count", "50"]
    assert data.main(["prepare", root, "--src", "de", "--tgt", "en", *args]) == 0
    cache = data.find_prepared(root, 150, "de", "en")
    assert cache is not None and data.find_prepared(root, 150, "en", "de") is None   # 방향마다 따로
    bpe, first = data.BPE.load(os.path.join(cache, "bpe.txt")), data.load_prepared(cache, "train")[0]
    assert (bpe.decode(first[0]), bpe.decode(first[1])) == (pairs[0][1], pairs[0][0])  # 원문이 독일어
    assert data.main(["prepare", root, *args]) == 0 and data.find_prepared(root, 150, "en", "de") not in (None, cache)
    capsys.readouterr()
    _data_write(f"{root}/valid.en", "one\ntwo\nthree\nfour\n")              # valid.de 는 5줄
    for argv, needle in [([str(tmp_path / "nope")], "nope"), ([root, "--src", "fr"], f"{root}/train.fr"),
                         ([root], f"'{root}/valid.en' 4줄, '{root}/valid.de' 5줄"),
                         ([root, "--src", "de", "--tgt", "de"], "같습니다"),
                         (["wmt14", "--dir", str(tmp_path / "w")], "download")]:
        assert data.main(["prepare", *argv, *args]) == 2, argv                # 한 줄, 종료 코드 2, 파일 이름
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], (argv, err)
    out = subprocess.run([sys.executable, os.path.join(_DATA_ROOT, "data.py"), "prepare", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "nope" in out.stderr
    os.remove(f"{root}/train.de")
    with pytest.raises(FileNotFoundError, match=f"{root}/train.de' 가 없습니다"):
        data.check_corpus(root)


def test_data_prepare_cache_reuse_interruption_and_find_prepared(tmp_path, monkeypatch):
    root, quiet = str(tmp_path / "w"), dict(min_char_count=1, log=lambda *a: None)
    pairs, _ = _data_small_corpus(root)
    assert data.find_prepared(root) is None
    cache = data.prepare_corpus(root, vocab_size=150, **quiet)
    bpe, train = data.BPE.load(os.path.join(cache, "bpe.txt")), data.load_prepared(cache, "train")
    assert data.find_prepared(root) == cache and len(train) == len(pairs) and len(bpe) <= 150
    assert [(bpe.decode(s), bpe.decode(t)) for s, t in train[::17]] == pairs[::17] and train[-1] == train[119]
    assert train.src_lengths.tolist() == [len(bpe.encode(e)) for e, _ in pairs]
    assert train.tgt_lengths.tolist() == [len(bpe.encode(d)) for _, d in pairs]
    assert np.load(os.path.join(cache, "train.src.ids.npy"), mmap_mode="r").dtype == np.uint16
    assert len(data.load_prepared(cache, "test")) == 4
    monkeypatch.setattr(data, "train_bpe_from_counts", lambda *a, **k: pytest.fail("다시 학습함"))
    assert data.prepare_corpus(root, vocab_size=150, **quiet) == cache      # 같은 설정: 재사용
    monkeypatch.undo()
    real = data._encode_split                                             # 도중에 끊긴 prepare 는 캐시를 남기지 않는다

    def boom(bpe, pairs, out_dir, split, log, **options):
        if split == "test":
            raise KeyboardInterrupt
        return real(bpe, pairs, out_dir, split, log, **options)

    monkeypatch.setattr(data, "_encode_split", boom)
    with pytest.raises(KeyboardInterrupt):
        data.prepare_corpus(root, vocab_size=140, **quiet)
    monkeypatch.undo()
    assert data.find_prepared(root) == cache and data.find_prepared(root, vocab_size=140) is None
    assert not [n for n in os.listdir(os.path.join(root, "prepared")) if ".tmp-" in n]   # 임시 디렉터리도 치움
    other = data.prepare_corpus(root, vocab_size=140, **quiet)            # 설정이 바뀌면 새 캐시
    os.utime(os.path.join(cache, "meta.json"), (1, 1))                    # 어휘 150 캐시가 더 오래되었다 (이슈 8)
    assert data.find_prepared(root) == other and data.find_prepared(root, 150) == cache
    assert data.find_prepared(root, 140) == other and data.find_prepared(root, 37000) is None
    renamed = os.path.join(root, "prepared", "bpe150-renamed")           # 디렉터리 이름이 아니라 meta.json 을 믿는다
    os.rename(other, renamed)
    assert data.find_prepared(root, 150) == cache and data.find_prepared(root, 140) == renamed
    with pytest.raises(FileNotFoundError, match="prepare"):
        data.load_prepared(str(tmp_path), "train")


def test_data_prepare_drops_train_pairs_too_long_in_bpe_tokens(tmp_path):
    # 이슈 8: 단어 수 필터는 BPE 길이를 막지 못한다 (드문 글자는 글자마다 니블 토큰 2개 이상)
    root, logged = str(tmp_path / "w"), []
    pairs, noise = _data_small_corpus(root, junk=True)
    cache = data.prepare_corpus(root, vocab_size=150, min_char_count=50, log=logged.append)
    bpe = data.BPE.load(os.path.join(cache, "bpe.txt"))
    assert len(bpe.encode(noise[0][0])) > 1024 and len(bpe.encode(noise[1][1])) == 1027   # 잡음은 정말 길다
    train, valid = data.load_prepared(cache, "train"), data.load_prepared(cache, "valid")
    assert [(bpe.decode(s), bpe.decode(t)) for s, t in train] == pairs                  # 잡음 두 쌍만 빠졌다
    with open(os.path.join(cache, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["settings"]["max_bpe_tokens"] == 250 and train.max_length <= 250          # 기본 한계, 설정 해시에
    assert meta["dropped_long_pairs"] == 2 and meta["pairs"]["train"] == len(pairs)
    assert any("2개를 뺐습니다" in line for line in logged)
    assert meta["max_lengths"]["train"] == {"src": int(train.src_lengths.max()), "tgt": int(train.tgt_lengths.max())}
    assert train.max_length == max(meta["max_lengths"]["train"].values())
    assert len(valid) == 6 and meta["max_lengths"]["valid"] == {"src": int(valid.src_lengths.max()), "tgt": 1027}
    assert len(data.load_prepared(cache, "train", max_len=train.max_length)) == len(pairs)
    with pytest.raises(ValueError) as refused:                           # 읽을 때 확인: 캐시 경로와 한계를 밝힌다
        data.load_prepared(cache, "train", max_len=train.max_length - 1)
    assert cache in str(refused.value) and f"{train.max_length - 1}" in str(refused.value)
    with pytest.raises(ValueError, match="1,027.*1,023"):
        data.load_prepared(cache, "valid", max_len=1023)
    wide = data.prepare_corpus(root, vocab_size=150, min_char_count=50, max_bpe_tokens=2000, log=logged.append)
    assert wide != cache and len(data.load_prepared(wide, "train")) == len(pairs) + 1     # 한계를 바꾸면 새 캐시
    with pytest.raises(ValueError, match="1 이상"):
        data.prepare_corpus(root, vocab_size=150, max_bpe_tokens=0, log=logged.append)


# --- 배치, collate, MLM ---------------------------------------------------------
def test_data_token_batches_budget_coverage_and_ranks():
    rng = np.random.default_rng(0)
    src = rng.integers(1, 60, size=1500)
    tgt = np.clip(src + rng.integers(-3, 4, size=1500), 1, None)       # 번역 길이는 원문 길이와 비슷하다
    for world, epoch in ((1, 0), (1, 1), (3, 0), (3, 1)):
        shards = [data.token_batches(src, tgt, 400, seed=5, epoch=epoch, rank=r, world_size=world)
                  for r in range(world)]
        assert len({len(s) for s in shards}) == 1                      # 랭크마다 같은 배치 수
        batches = [b for shard in shards for b in shard]
        assert sorted(i for b in batches for i in b) == list(range(1500))   # 정확히 한 번, 랭크끼리 서로소
        assert all(len(b) * max(max(src[i], tgt[i]) + 1 for i in b) <= 400 for b in batches)  # 원문+EOS, BOS+번역
    a = data.token_batches(src, tgt, 400, seed=5, epoch=0)             # 결정적, 에폭마다 다시 섞는다
    assert a == data.token_batches(src, tgt, 400, seed=5, epoch=0) != data.token_batches(src, tgt, 400, seed=5, epoch=1)
    unsorted = data.token_batches(src, tgt, 400, by_length=False)
    assert plots.padding_ratio(a, src, tgt) < 0.1 < plots.padding_ratio(unsorted, src, tgt)
    with pytest.raises(ValueError, match="max_tokens"):
        data.token_batches([500], [3], 400)


def test_data_collate_and_padding_ratio_match_tensors():
    pairs = [([11, 12, 13], [21]), ([14], [22, 23, 24, 25]), (np.array([15, 16]), np.array([26, 27]))]
    src, tgt_in, tgt_out = data.collate(pairs)
    assert src.dtype == torch.long and src.shape == (3, 4) and tgt_in.shape == tgt_out.shape == (3, 5)
    for row, (s, t) in enumerate(pairs):
        s, t = list(s), list(t)
        assert src[row].tolist() == s + [data.EOS_ID] + [data.PAD_ID] * (3 - len(s))
        assert tgt_in[row].tolist() == [data.BOS_ID] + t + [data.PAD_ID] * (4 - len(t))
        assert tgt_out[row].tolist() == t + [data.EOS_ID] + [data.PAD_ID] * (4 - len(t))
    pads = int((src == data.PAD_ID).sum() + (tgt_in == data.PAD_ID).sum())
    ratio = plots.padding_ratio([[0, 1, 2]], [3, 1, 2], [1, 4, 2])
    assert ratio == pytest.approx(pads / (src.numel() + tgt_in.numel()))


def test_data_mlm_proportions_on_100k_tokens():
    vocab, gen = 1000, torch.Generator().manual_seed(0)
    tokens = torch.randint(7, vocab, (100, 1200), generator=gen)
    tokens[:, 0], tokens[:, -1], tokens[:, -50:-1] = data.CLS_ID, data.SEP_ID, data.PAD_ID
    inputs, labels = data.mlm_mask(tokens, vocab, seed=1)
    special, chosen = tokens < 7, labels != -100
    assert not (chosen & special).any() and torch.equal(labels[chosen], tokens[chosen])
    assert torch.equal(inputs[~chosen], tokens[~chosen])                 # 특수 토큰 포함, 고르지 않은 자리는 그대로
    k = int(chosen.sum())
    masked, same = int((inputs[chosen] == data.MASK_ID).sum()), int((inputs[chosen] == tokens[chosen]).sum())
    assert abs(k / int((~special).sum()) - 0.15) < 0.01
    assert abs(masked / k - 0.8) < 0.01 and abs((k - masked - same) / k - 0.1) < 0.01 and abs(same / k - 0.1) < 0.01
    rand = chosen & (inputs != data.MASK_ID) & (inputs != tokens)
    assert (inputs[rand] >= 7).all() and (inputs[rand] < vocab).all()
    again, other = data.mlm_mask(tokens, vocab, seed=1)[0], data.mlm_mask(tokens, vocab, seed=2)[0]
    assert torch.equal(again, inputs) and not torch.equal(other, inputs)


# ══════ section: demo ══════
# 참조: 손으로 쓴 독일어 (tests/demo_pairs.json: 생성기 출력에서 베끼지 않은 쌍과 각 쌍이 그리는 문장 구조,
# 규칙마다 그 규칙을 보이는 쌍의 목록 "rules"). 코드 검사는 코드만 할 수 있는 것: 큰 표본의 영어 하나 → 독일어 하나,
# 분할 크기·결정성, 어순을 바꾸는 문장의 비율, 그리고 생성된 표본 전체에서 테스트 자신의 표(명사의 성, 정관사)로
# 다시 확인하는 일치·어순·부정 (손으로 쓴 쌍에 나오지 않는 낱말 행의 실수도 잡는다).
_DEMO_FIXTURE = _fixture("demo_pairs")


def test_data_demo_hand_written_pairs_reordering_and_kinds():
    for pair in _DEMO_FIXTURE["pairs"]:
        assert data._demo_render(pair["sentence"]) == (pair["english"], pair["german"]), pair["english"]
    english = {pair["english"] for pair in _DEMO_FIXTURE["pairs"]}             # 규칙마다 손으로 쓴 쌍이 있다
    assert all(examples and set(examples) <= english for examples in _DEMO_FIXTURE["rules"].values())
    for english, expected in _DEMO_FIXTURE["reordering"]:
        assert needs_reordering(english) is expected, english
    for english, kind in _DEMO_FIXTURE["kinds"]:
        assert demo_kind(english) == kind, english


def test_data_demo_rejects_bad_input():
    for call in (lambda: demo_corpus(-1), lambda: demo_corpus(5, max_words=3),
                 lambda: demo_splits(num_train=10, num_valid=2, num_test=1.5)):
        with pytest.raises(ValueError):
            call()


def test_data_demo_copied_data_py_keeps_bpe_and_names_the_missing_lexicon(tmp_path):
    # 과제에 data.py 한 파일만 옮겨도 BPE 는 돌고, 데모만 낱말 표 파일을 밝힌 한 줄 오류로 멈춘다.
    shutil.copy(os.path.join(_DATA_ROOT, "data.py"), tmp_path)
    code = ("import data\nbpe = data.train_bpe(['the cat sat', 'the dog sat'] * 5, 40)\n"
            "assert bpe.decode(bpe.encode('the cat sat')) == 'the cat sat'\n"
            "try:\n    data.demo_corpus(3)\nexcept FileNotFoundError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "demo_lexicon.json" in proc.stdout and str(tmp_path) in proc.stdout


@functools.lru_cache(maxsize=None)
def _demo_big_splits():
    """50,000 + 500 + 500 쌍 (한 번만 만든다)."""
    return demo_splits(num_train=50_000, num_valid=500, num_test=500, seed=0)


def test_data_demo_size_determinism_and_disjoint_splits():
    splits = _demo_big_splits()
    english = {k: {en for en, _ in splits[k]} for k in ("train", "valid", "test")}
    assert [len(splits[k]) for k in english] == [len(english[k]) for k in english] == [50_000, 500, 500]  # 서로 다름
    assert len(set().union(*english.values())) == 51_000                                  # 분할끼리 서로소
    assert demo_splits(num_train=100, num_valid=500, num_test=500)["test"] == splits["test"]  # 학습 크기와 무관
    a, b, c = demo_corpus(300, seed=7), demo_corpus(300, seed=7), demo_corpus(300, seed=8)
    assert a == b and a != c and demo_corpus(100, seed=7) == a[:100]


def test_data_demo_one_german_per_english():
    # 중복을 거르기 전의 표본: 같은 영어가 여러 번 뽑혀도 독일어는 하나다 (모호한 영어가 없다)
    rng, seen, repeats = random.Random(0), {}, 0
    for _ in range(20_000):
        en, de = data._demo_render(data._demo_sample_sentence(rng))
        repeats += en in seen
        assert seen.setdefault(en, de) == de, en
    assert repeats > 100


def test_data_demo_lengths_kinds_and_reordering_share():
    test = _demo_big_splits()["test"]
    assert all(2 <= len(en.split()) <= 16 for en, _ in test)
    kinds = {demo_kind(en) for en, _ in test}
    assert {"simple", "negation", "fronted", "subordinate", "plural", "number", "genitive"} <= kinds
    assert 0.4 < sum(needs_reordering(en) for en, _ in test) / len(test) < 0.95



def test_data_demo_lexicon_genders_and_noun_phrase_agreement_on_samples():
    gender = {n: g for g, nouns in _DEMO_FIXTURE["genders"].items() for n in nouns.split()}
    assert {row[3]: row[2] for row in data._DEMO_NOUNS} == gender
    for row in data._DEMO_NOUNS:                                    # 2격: 남·중성 -(e)s, 여성은 단수 그대로
        assert row[4] == row[3] if row[2] == "f" else row[4] in (row[3] + "s", row[3] + "es"), row
    english_nouns = {form: (row[3], form == row[1]) for row in data._DEMO_NOUNS for form in row[:2]}
    verbs = {f for v in data._DEMO_VERBS for f in v[7].split()}
    past_forms = {v[6].split()[2] for v in data._DEMO_VERBS if v[6]} | {"did", "was", "were"}
    checked = agreed = 0
    for en, de in _demo_big_splits()["train"][:6000]:
        words, german = en.replace(",", "").split(), de.replace(",", "").split()
        if not {"because", "that"} & set(words):                          # 주어-동사 일치 (독일어 어미 규칙)
            head = next(w for w in words if w in english_nouns or w in ("I", "he", "she", "we", "they"))
            finite = next(w for w in german if w in verbs)
            if head in ("we", "they") or english_nouns.get(head, (0, False))[1]:
                assert finite.endswith("n") or finite == "sind", (en, de)    # 복수 → -n
            elif past_forms & set(words):
                assert not finite.endswith("n"), (en, de)                      # 단수 과거
            else:                                                              # ich → -e, er/sie/단수 명사 → -t
                assert finite.endswith("e" if head == "I" else "t") or finite in ("weiß", "bin")[:1 + (head == "I")]
            agreed += 1
        # 이 문법에서는 명사의 순서가 두 언어에서 같다: k 번째 영어 명사 ↔ k 번째 대문자 독일어 단어
        nouns = [i for i, w in enumerate(words) if w in english_nouns]
        caps = [j for j, w in enumerate(german) if w[0].isupper()]
        assert len(nouns) == len(caps), (en, de)
        for i, j in zip(nouns, caps):
            start = i - (i > 0) - (i > 1 and words[i - 1] in data._DEMO_ADJ)  # [the] [형용사] 명사
            case = {"with": "dat", "without": "acc", "of": "gen", None: "nom"}.get(words[start - 1] if start else None)
            if words[start] != "the" or case is None:
                continue
            lemma, plural = english_nouns[words[i]]
            slot = 3 if plural else "mfn".index(gender[lemma])
            assert german[j - 1 - (start < i - 1)] == _DEMO_FIXTURE["definite_articles"][case].split()[slot], (en, de)
            if start < i - 1:                                                  # 약변화: 단수 1격과 여/중 4격만 -e
                weak = "e" if (case == "nom" or (case == "acc" and slot in (1, 2))) and not plural else "en"
                assert german[j - 1].endswith(weak) and (weak == "en" or not german[j - 1].endswith("en")), (en, de)
            checked += 1
    assert checked > 1500 and agreed > 2000


def test_data_demo_word_order_and_negation_on_samples():
    verbs = {f for v in data._DEMO_VERBS for f in v[7].split()}
    adverbs = {a[1] for a in data._DEMO_ADVERBS}
    predicative = {a[1] for a in data._DEMO_ADJECTIVES}
    seen = dict.fromkeys(("sub", "nicht", "kein", "fronted", "weil_first", "main"), 0)
    for en, de in _demo_big_splits()["train"][:3000]:
        segments = [part.split() for part in de.split(",")]
        clauses = en.replace("because ", ",").replace(" that ", ",").split(",")    # 절 순서는 두 언어가 같다
        for seg, clause in zip(segments, [c for c in clauses if c.strip()], strict=True):
            assert sum(w in verbs for w in seg) == 1, de                   # 절마다 정동사 하나
            if seg[0] in ("weil", "dass"):                                 # 부문장: 정동사가 맨 끝
                assert seg[-1] in verbs, de
                seen["sub"] += 1
            kein = any(w.startswith("kein") for w in seg)
            assert ("not" in clause.split()) == ("nicht" in seg or kein) and not ("nicht" in seg and kein), de
            seen["kein"] += kein
            if "nicht" in seg:        # nicht 뒤: 전치사구, 서술 형용사, 부문장이면 정동사뿐 (한정 목적어는 앞)
                assert not {"mit", "ohne", "auf"} & set(seg[:seg.index("nicht")]), de
                rest = seg[seg.index("nicht") + 1:-1 if seg[0] in ("weil", "dass") else None]
                assert rest == [] or rest[0] in ("mit", "ohne", "auf") or \
                    (len(rest) == 1 and rest[0] in predicative), de
                seen["nicht"] += 1
        if segments[0][0] in adverbs:                                       # 부사 + 정동사 (V2), 곧 주어
            assert segments[0][1] in verbs and segments[0][2] not in verbs | {"nicht"}, de
            seen["fronted"] += 1
        elif de.startswith("weil"):                                         # 앞세운 weil 절 뒤: 정동사 먼저
            assert segments[1][0] in verbs, de
            seen["weil_first"] += 1
        else:                                                               # 주어(명사구) 뒤 둘째 자리
            pos = next(i for i, w in enumerate(segments[0]) if w in verbs)
            assert pos >= 1 and "nicht" not in segments[0][:pos], de
            seen["main"] += 1
    assert min(seen.values()) > 50, seen


# ══════ section: train ══════
# train.py. 기준: 논문의 값(§5.1, §5.3, §6.1), 같은 학습을 끊김 없이 돌린 결과(재개), 모두를 담은 한 배치의
# 기울기(누적), 다른 랭크의 가중치(torchrun), 손으로 센 평균(체크포인트 평균), sacreBLEU 2.6.0 (--score).
_TRAIN_ROOT = os.path.dirname(os.path.abspath(train.__file__))


def _train_tiny(tmp_path, name, *extra):
    """tiny 프리셋을 tmp_path/name 런 디렉터리로 학습한다. 반환: (report, run_dir)."""
    run_dir = str(tmp_path / name)
    return train.main(["--preset", "tiny", "--run-dir", run_dir, "--threads", "1", *extra]), run_dir


def _last_metric(run_dir, column):
    """metrics.csv 에서 그 열의 마지막 값 (문자열)."""
    with open(os.path.join(run_dir, "metrics.csv"), encoding="utf-8") as f:
        return [r[column] for r in csv.DictReader(f) if r[column]][-1]


def _train_losses(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), encoding="utf-8") as f:
        return [(r["step"], r["train_loss"]) for r in csv.DictReader(f) if r["train_loss"]]


def test_train_tiny_memorises_64_pairs_and_prints_the_figure_command(tmp_path, capsys):
    report, run_dir = _train_tiny(tmp_path, "mem", "--eval-every", "300", "--save-every", "300", "--log-every", "100")
    run = train.load_run(run_dir)                    # 스텝 체크포인트가 하나뿐이라 평균이 없다: checkpoint_last.pt
    corpus = train.load_corpus(run.cfg, os.path.join(run_dir, "bpe.txt"), log=lambda *a: None)
    loss, acc = train.evaluate_loss(run.model, corpus.train, run.cfg, torch.device("cpu"), "off")
    assert len(corpus.train) == 64 and loss < 0.1 and acc > 0.98, (loss, acc)   # 라벨 스무딩 없는 교차 엔트로피
    assert run.checkpoint == os.path.join(run_dir, "checkpoint_last.pt") and os.path.exists(run_dir + "/metrics.csv")
    status = (tmp_path / "mem" / "status.md").read_text(encoding="utf-8")
    assert "학습 상태" in status and "완료" in status and "300 / 300" in status and "배율 0.5 (noam)" in status
    assert 0 <= report["bleu"] <= 100 and f"python plots.py --run {run_dir}" in capsys.readouterr().out
    # 테스트 BLEU 는 "검증" 줄이 아니라 자기 줄에 (검증 줄은 마지막 검증의 그리디 BLEU 그대로), test_result.json 에도 남는다
    valid_bleu = float(_last_metric(run_dir, "bleu"))
    assert f"BLEU {valid_bleu:.2f}\n" in status.split("**검증**")[1].split("\n")[0] + "\n"
    assert f"**테스트** (빔 2, 16 문장): BLEU {report['bleu']:.2f} (대소문자 구분), {report['bleu_lc']:.2f} (소문자)" \
        in status
    with open(os.path.join(run_dir, "test_result.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert (saved["bleu"], saved["bleu_lc"], saved["beam_size"], saved["sentences"]) == (report["bleu"],
                                                                                        report["bleu_lc"], 2, 16)
    assert 0 < saved["seconds"] < 600


def test_train_resume_gives_identical_losses(tmp_path):
    # 기준: 끊지 않고 같은 설정으로 끝까지 학습한 런 (metrics.csv 의 손실과 마지막 가중치가 비트까지 같다)
    args = ("--max-steps", "40", "--log-every", "5", "--eval-every", "20", "--save-every", "20", "--dropout", "0.1")
    _, full = _train_tiny(tmp_path, "full", *args)
    for i, how in enumerate(["--resume DIR", "--run-dir DIR --resume"]):
        _, cut = _train_tiny(tmp_path, f"cut{i}", *args, "--stop-after", "15")
        assert _train_losses(cut)[-1][0] == "15"
        train.main(["--preset", "tiny", "--threads", "1", *args, *how.replace("DIR", cut).split()])
        assert _train_losses(cut) == _train_losses(full), how
        a, b = (train.load_checkpoint(os.path.join(d, "checkpoint_last.pt"))["model"] for d in (full, cut))
        assert all(torch.equal(a[k], b[k]) for k in a), how


def test_train_cosine_schedule_keeps_the_paper_warmup_and_peak_and_reaches_zero_at_max_steps():
    def lrs(cfg):                                 # 스텝 1..max_steps 의 학습률 (옵티마이저가 실제로 쓰는 값)
        optimizer, scheduler = train.build_optimizer(cfg, torch.nn.Linear(2, 2))
        values = []
        for _ in range(cfg.max_steps):
            values.append(optimizer.param_groups[0]["lr"])
            optimizer.step(), scheduler.step()
        return values
    cfg = train.preset_config("tiny")                                   # 워밍업 30, 300 스텝
    noam, cosine = lrs(cfg), lrs(cfg.replace(lr_schedule="cosine"))
    assert cfg.lr_schedule == "noam" and noam[-1] > 0.3 * max(noam)    # 기본은 논문 그대로: 끝에도 크다
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(cosine[:cfg.warmup], noam[:cfg.warmup]))
    assert max(cosine) == cosine[cfg.warmup - 1] and math.isclose(max(cosine), max(noam), rel_tol=1e-12)
    assert all(a > b for a, b in zip(cosine[cfg.warmup:], cosine[cfg.warmup + 1:-1])) and cosine[-1] < 1e-3 * max(noam)


def test_train_bf16_autocast_on_cpu_stays_finite(tmp_path):
    _, run_dir = _train_tiny(tmp_path, "bf16", "--amp", "bf16", "--max-steps", "60", "--eval-every", "60",
                             "--save-every", "60", "--log-every", "20")
    losses = [float(l) for _, l in _train_losses(run_dir)]
    assert len(losses) == 3 and all(math.isfinite(l) for l in losses) and losses[-1] < losses[0]


def test_train_translate_file_average_checkpoints_load_run_and_translate(tmp_path, capsys, monkeypatch):
    _, run_dir = _train_tiny(tmp_path, "tr", "--max-steps", "40", "--warmup", "5", "--save-every", "10",
                             "--eval-every", "40", "--max-len", "128")     # 작은 위치 표: 긴 줄도 빨리 끝난다
    # --translate-file: 입력 한 줄 → 출력 한 줄 (빈 줄, 공백뿐, 구두점뿐, 한자·이모지, 3,000 글자 단어, 줄바꿈 없는 공백)
    awkward = ["the man sees the dog", "", "   ", "?!...", "漢字 😀 ñandú", "x" * 3000 + " dog", "the small child",
               "\u00a0"]
    (tmp_path / "in.txt").write_text("\n".join(awkward) + "\n", encoding="utf-8")
    capsys.readouterr()
    out = train.main(["--translate-file", str(tmp_path / "in.txt"), "--checkpoint", run_dir])
    captured = capsys.readouterr()
    assert captured.out == "".join(o + "\n" for o in out) and len(out) == len(awkward)   # 입력과 같은 줄 수
    assert [bool(o) for o in out] == [True, False, False, True, True, True, True, False]  # 빈 줄 → 빈 줄
    assert "127 토큰보다 길어" in captured.err and "번역 5/5 줄" in captured.err     # 긴 줄 경고, 진행은 stderr
    target = tmp_path / "out.txt"
    monkeypatch.setattr(sys, "stdin", io.StringIO("the man sees the dog\n\nthe small child"))
    again = train.main(["--translate-file", "-", "--checkpoint", run_dir, "--output", str(target)])
    assert capsys.readouterr().out == ""                                        # --output 이면 표준 출력은 비어 있다
    assert target.read_text(encoding="utf-8") == "".join(o + "\n" for o in again)
    assert again == [out[0], "", out[6]]                                        # 같은 문장은 같은 번역
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    # --average-checkpoints: 마지막 스텝 체크포인트 3개의 평균
    out = train.main(["--average-checkpoints", "3", "--checkpoint", run_dir])
    steps = [os.path.basename(p) for p in train.step_checkpoints(run_dir)]
    assert steps == ["checkpoint_step20.pt", "checkpoint_step30.pt", "checkpoint_step40.pt"]
    states = [train.load_checkpoint(os.path.join(run_dir, s))["model"] for s in steps]
    avg, last = train.load_checkpoint(out)["model"], os.path.join(run_dir, "checkpoint_last.pt")
    key = next(k for k in avg if avg[k].is_floating_point())
    assert torch.allclose(avg[key], (states[0][key] + states[1][key] + states[2][key]) / 3, atol=1e-6)
    # load_run: root 의 가장 최근 런, 평균 체크포인트가 checkpoint_last.pt 보다 먼저, 파일을 주면 그 파일
    run, from_last = train.load_run(None, root=str(tmp_path)), train.load_run(last)
    assert (run.run_dir, run.checkpoint, run.cfg.preset) == (run_dir, out, "tiny") and isinstance(run.bpe, data.BPE)
    assert not run.model.training and run.model.src_embed.weight.device.type == "cpu"
    assert torch.equal(run.model.state_dict()[key], avg[key])
    assert from_last.checkpoint == last and torch.equal(from_last.model.state_dict()[key], states[-1][key])
    capsys.readouterr()
    text = train.main(["--translate", "the man sees the dog", "--checkpoint", run_dir])
    assert isinstance(text, str) and capsys.readouterr().out.strip() == text
    # 이슈 22: --beam-size, --length-penalty 를 주면 런에 저장된 값(tiny: 빔 2, α 0.6) 대신 쓴다 — 다시 학습하지
    # 않고 검증 분할에서 α 를 고르는 길. 주지 않으면 저장된 값 그대로.
    seen, real = [], train.translate_ids
    monkeypatch.setattr(train, "translate_ids", lambda *a, **k: seen.append(a[3:5]) or real(*a, **k))
    train.main(["--translate", "the man", "--checkpoint", run_dir, "--beam-size", "3", "--length-penalty", "1.5"])
    train.main(["--translate-file", str(tmp_path / "in.txt"), "--checkpoint", run_dir, "--beam-size", "1",
                "--output", str(target)])
    train.main(["--translate", "the man", "--checkpoint", run_dir])
    assert seen[0] == (3, 1.5) and set(seen[1:-1]) == {(1, 0.6)} and seen[-1] == (2, 0.6), seen


def test_train_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, capsys):
    # tests/train_cases.json: 잘못된 명령줄 → 오류 줄에 있어야 할 조각 ({tmp} = tmp_path), valid.de 만 한 줄 모자란 코퍼스
    cases = _fixture("train_cases")
    (tmp_path / "empty").mkdir(), (tmp_path / "uneven").mkdir()
    for name, text in cases["uneven_corpus"].items():
        (tmp_path / "uneven" / name).write_text(text)
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    before = sorted(os.listdir(tmp_path))
    for argv, needle in cases["bad_input"].items():
        with pytest.raises(SystemExit) as info:
            train.main(argv.replace("{tmp}", str(tmp_path)).split())
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and needle.replace("{tmp}", str(tmp_path)) in err[-1], (argv, err)
        assert "Traceback" not in "\n".join(err) and sorted(os.listdir(tmp_path)) == before, argv   # 디스크는 그대로
    assert (tmp_path / "broken.pt").read_bytes() == b"PK\x03\x04 not a checkpoint"
    proc = subprocess.run([sys.executable, os.path.join(_TRAIN_ROOT, "train.py"), "--preset", "tiny", "--amp", "fp16",
                           "--device", "cpu"], capture_output=True, text=True, cwd=tmp_path, timeout=120)  # 진짜 프로세스
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "fp16" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc 만의 동작")
def test_train_cpu_device_keeps_freed_buffers_instead_of_refaulting_them():
    # 이슈 9: glibc malloc 은 큰 텐서를 mmap 으로 받아 해제하자마자 OS 에 돌려준다. 학습은 스텝마다 같은 크기를
    # 다시 받으므로 매번 새 페이지 폴트가 난다 (52분 de→en 런에서 6.6억 번, 시스템 시간 19%).
    # keep_freed_memory() (명령줄의 CPU 학습이 부른다) 뒤에는 한 스텝(51 MB 로짓의 순전파·역전파)의 폴트가 기본
    # malloc 의 1/4 미만이어야 한다.
    code = ("import resource, sys, torch, train\n"
            "if sys.argv[1] == 'setup': assert train.keep_freed_memory()\n"
            "lin, x = torch.nn.Linear(64, 50000), torch.randn(256, 64)\n"
            "def step():\n"
            "    lin(x).log_softmax(-1).sum().backward()\n"
            "    lin.zero_grad(set_to_none=True)\n"
            "for _ in range(3): step()\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(5): step()\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)\n")
    faults = {}
    for mode in ("plain", "setup"):
        proc = subprocess.run([sys.executable, "-c", code, mode], cwd=_TRAIN_ROOT, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        faults[mode] = int(proc.stdout)
    assert faults["plain"] > 12_500, faults            # 51 MB = 12,500 쪽: 기본 malloc 은 스텝마다 다시 폴트
    assert faults["setup"] * 4 < faults["plain"], faults


def test_train_epoch_batches_are_rank_disjoint_and_equal_length():
    pairs = [([5] * (1 + i % 9), [6] * (1 + i % 7)) for i in range(200)]
    cfg = train.preset_config("tiny").replace(max_tokens=64)
    shards = [train.epoch_batches(pairs, cfg, epoch=0, rank=r, world_size=2) for r in range(2)]
    seen = [set(i for b in s for i in b) for s in shards]
    assert len(shards[0]) == len(shards[1]) > 0 and not seen[0] & seen[1]
    assert train.epoch_batches(pairs, cfg, 1) != train.epoch_batches(pairs, cfg, 0)   # 에폭마다 섞임
    assert train.epoch_batches(pairs, cfg, 1) == train.epoch_batches(pairs, cfg, 1)   # 시드로 결정


def test_train_nonfinite_losses_are_skipped_then_training_stops_with_a_checkpoint(tmp_path, capsys, monkeypatch):
    real_loss, calls = train.label_smoothed_cross_entropy, {"n": 0}

    def flaky_loss(logits, targets, **kwargs):   # 2번째 업데이트는 한 번 NaN (건너뛰고 계속), 10번째부터 계속 NaN
        calls["n"] += 1
        return real_loss(logits, targets, **kwargs) * (float("nan") if calls["n"] == 2 or calls["n"] >= 10 else 1)

    monkeypatch.setattr(train, "label_smoothed_cross_entropy", flaky_loss)
    with pytest.raises(SystemExit) as info:
        train.main(["--preset", "tiny", "--run-dir", str(tmp_path / "nan"), "--max-steps", "60", "--log-every", "1",
                    "--max-nonfinite", "3", "--threads", "1"])
    captured = capsys.readouterr()
    assert info.value.code == 1 and "NaN/inf" in captured.err and "Traceback" not in captured.err
    assert captured.out.count("건너뜁니다") == 4                 # 1번 + 연속 3번
    state = train.load_checkpoint(str(tmp_path / "nan" / "checkpoint_last.pt"))
    assert state["step"] == 8 and state["nonfinite_total"] == 4   # 업데이트 1~8 (NaN 은 세지 않음)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def _train_trainer(tmp_path, **changes):
    """tiny 설정의 Trainer (드롭아웃 0, 한 스레드). 학습은 하지 않는다."""
    cfg = train.preset_config("tiny").replace(run_dir=str(tmp_path / "run"), threads=1, **changes)
    return train.Trainer(cfg, log=lambda *a, **k: None)


def test_train_nan_weight_skips_updates_counts_them_and_leaves_weights_unchanged(tmp_path):
    # NaN 을 손실 뒤에 넣으면 놓친다: 가중치 하나를 NaN 으로 만들어 손실 계산까지 그대로 흘려보낸다.
    trainer = _train_trainer(tmp_path, max_steps=50, warmup=10, max_nonfinite=3)
    with torch.no_grad():
        trainer.model.encoder.layers[0].ffn.w_1.weight[0, 0] = float("nan")
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    with pytest.raises(train.TrainingDiverged):
        trainer.train()
    assert trainer.step == 0 and trainer.nonfinite_total == 3
    assert not trainer.optimizer.state                        # Adam 은 한 번도 움직이지 않았다
    assert all(torch.allclose(before[k], v, equal_nan=True, rtol=0, atol=0)
               for k, v in trainer.model.named_parameters())


def test_train_gradient_accumulation_weights_micro_batches_by_tokens(tmp_path):
    # 600 토큰 + 24 토큰 마이크로배치의 누적 기울기 = 두 배치를 합친 한 배치의 기울기 (토큰 평균).
    trainer = _train_trainer(tmp_path)
    tokens = [len(t) + 1 for _, t in trainer.corpus.train]   # 목표 토큰 = 번역 + [EOS]
    k = int(np.searchsorted(np.cumsum(tokens), 600)) + 1      # 앞 k 쌍: 600 토큰 이상
    j = k + int(np.searchsorted(np.cumsum(tokens[k:]), 24)) + 1   # 그다음 쌍들: 24 토큰 이상
    big, small = list(range(k)), list(range(k, j))
    assert sum(tokens[i] for i in big) >= 600 and 24 <= sum(tokens[i] for i in small) < 40

    def grads(batches):
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.accumulate_gradients(batches)
        return torch.cat([p.grad.flatten() for p in trainer.model.parameters()])

    accumulated, single = grads([big, small]), grads([big + small])
    assert torch.allclose(accumulated, single, atol=1e-6, rtol=1e-4)
    assert ((accumulated - single).norm() / single.norm()).item() < 1e-5    # 전체 기울기의 상대 오차


def test_train_fp16_overflow_skips_are_not_counted_as_updates(tmp_path):
    # GradScaler 가 inf 기울기로 업데이트를 건너뛰면 스텝·스케줄러가 나아가면 안 된다.
    trainer = _train_trainer(tmp_path, max_steps=5, warmup=2, log_every=1000, eval_every=1000, save_every=1000)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    param, calls = trainer.model.encoder.layers[0].ffn.w_1.weight, {"n": 0}

    def overflow_twice(grad):
        calls["n"] += 1
        return grad * float("inf") if calls["n"] <= 2 else grad

    param.register_hook(overflow_twice)
    trainer.train()
    assert trainer.step == 5 and trainer.overflow_total == 2 and trainer.scaler.get_scale() == 2.0 ** 14
    assert trainer.scheduler.last_epoch == 5 and int(trainer.optimizer.state[param]["step"]) == 5


@pytest.mark.parametrize("name, vocab", [("demo", 2000), ("rtx3090", 37000)])
def test_train_embeddings_have_rms_one_after_scaling(name, vocab):
    # §3.4 ×√d_model 이 위치 인코딩(RMS 0.707)과 같은 크기가 되려면 임베딩이 N(0, d_model^-0.5) 이어야 한다.
    cfg = train.preset_config(name).replace(num_layers=1)          # 임베딩 크기만 중요하다: 층은 하나로
    m = train.build_model(cfg, vocab)
    rms = (m.src_embed.weight[len(data.SPECIAL_TOKENS):].pow(2).mean().sqrt() * math.sqrt(cfg.d_model)).item()
    assert 0.9 <= rms <= 1.1 and m.generator.weight is m.src_embed.weight, rms   # 묶인 출력층도 같은 행렬


def test_train_every_option_has_a_korean_help_with_its_default():
    parser = train.build_parser()
    fields = {f.name for f in dataclasses.fields(train.Config)} - {"preset", "resume"}
    for action in parser._actions[1:]:                        # [0] 은 argparse 의 --help
        assert action.help and any("가" <= c <= "힣" for c in action.help), action.dest
        assert action.dest not in fields or "기본" in action.help, action.dest
    text = parser.format_help()
    assert "논문" in text and "--lr-factor" in text and "--max-tokens" in text


def test_train_corpus_with_junk_lines_prepares_trains_and_translates_a_1100_token_source(tmp_path, capsys):
    # 이슈 8: 4,000 글자 잡음 단어와 드문 한자 171 글자(1,027 토큰)가 든 코퍼스. 예전에는 학습이
    # 같은 배치에서 죽고, 1,000 토큰 원문의 번역은 위치 표(1,024)를 넘어 죽었다.
    root, run_dir = str(tmp_path / "junk"), str(tmp_path / "run")
    _, junk = _data_small_corpus(root, junk=True)
    assert data.main(["prepare", "wmt14", "--dir", root, "--vocab", "150", "--min-char-count", "50"]) == 0
    report = train.main(["--preset", "tiny", "--data-dir", root, "--vocab-size", "150", "--max-steps", "6",
                         "--warmup", "3", "--eval-every", "6", "--save-every", "3", "--log-every", "3",
                         "--run-dir", run_dir, "--threads", "1"])
    assert report is not None and train.load_checkpoint(os.path.join(run_dir, "checkpoint_last.pt"))["step"] == 6
    capsys.readouterr()
    source = "the dog sees " + junk[0][0][:600]                       # BPE 로 1,100 토큰이 넘는 원문
    assert len(data.BPE.load(os.path.join(run_dir, "bpe.txt")).encode(source)) > 1100
    text = train.main(["--translate", source, "--checkpoint", run_dir])
    err = capsys.readouterr().err.strip().splitlines()
    assert isinstance(text, str) and len(err) == 1 and "1023 토큰" in err[0] and "경고" in err[0]


def test_train_de_en_on_a_tiny_corpus_prepares_itself_and_translates_german_to_english(tmp_path, capsys):
    # 이슈 9: 독일어→영어. 캐시가 없으면 train.py 가 먼저 준비하고, metrics.csv 에 경과 시간이 남는다.
    root, run_dir, pairs = str(tmp_path / "deen"), str(tmp_path / "run"), data.demo_corpus(48, seed=3)
    for split, rows in (("train", pairs), ("valid", pairs[:8]), ("test", pairs[8:16])):
        _data_write(f"{root}/{split}.en", "".join(e + "\n" for e, _ in rows))
        _data_write(f"{root}/{split}.de", "".join(d + "\n" for _, d in rows))
    report = train.main(["--preset", "tiny", "--data-dir", root, "--src", "de", "--tgt", "en", "--run-dir", run_dir,
                         "--threads", "1", "--eval-every", "300"])
    out = capsys.readouterr().out
    assert "먼저 준비합니다" in out and "de→en 학습 48 쌍" in out and "\n  DE  " in out
    assert report["bleu"] > 60                            # 외운 학습 문장: 독일어를 넣으면 영어가 나온다
    outputs = [train.main(["--translate", de, "--checkpoint", run_dir]) for _, de in pairs[8:16]]
    assert sum(o == en for o, (en, _) in zip(outputs, pairs[8:16])) >= 4
    assert train.bleu(outputs, [de for _, de in pairs[8:16]]) < 5   # 독일어를 베끼지 않는다
    with open(os.path.join(run_dir, "metrics.csv"), encoding="utf-8") as f:
        elapsed = [float(r["elapsed_s"]) for r in csv.DictReader(f)]
    assert len(elapsed) >= 2 and elapsed[0] > 0 and elapsed == sorted(elapsed)


def test_train_score_equals_sacrebleu_and_refuses_different_lengths(tmp_path, capsys):
    # 기준: sacreBLEU 2.6.0 의 출력 (str(BLEU(lowercase=…).corpus_score(hyp, [ref]))), tests/bleu_cases.json 의 문장.
    def score(hyps, refs, *extra):
        (tmp_path / "hyp").write_text("".join(h.replace("\n", " ") + "\n" for h in hyps), encoding="utf-8")
        (tmp_path / "ref").write_text("".join(r + "\n" for r in refs), encoding="utf-8")
        return train.main(["--score", str(tmp_path / "hyp"), str(tmp_path / "ref"), *extra])

    case = _BLEU_CASES["bleu"]["case_differences"]
    assert abs(score(case["hypotheses"], case["references"], "--lowercase") - 100.00000000000004) < 1e-9
    assert "case:lc" in capsys.readouterr().out
    case = _BLEU_CASES["bleu"]["several_lines"]                  # 다섯 줄: 아래 "short" 는 한 줄
    assert abs(score(case["hypotheses"], case["references"]) - 71.79054277564752) < 1e-9
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "BLEU = 71.79 88.1/73.0/65.6/63.0 (BP = 1.000 ratio = 1.000 hyp_len = 42 ref_len = 42)"
    assert out[1].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|")
    (tmp_path / "short").write_text("one line\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        train.main(["--score", str(tmp_path / "short"), str(tmp_path / "ref")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and str(tmp_path / "short") in err and str(tmp_path / "ref") in err


def test_train_two_rank_gloo_under_torchrun_and_nan_on_one_rank_skips_on_both(tmp_path):
    # torchrun --standalone, gloo 2 랭크. 랭크 1 의 마이크로배치 하나만 NaN: all-reduce 가 NaN 기울기를
    # 모든 랭크에 퍼뜨리므로 두 랭크가 함께 건너뛰어야 한다 (예전: 랭크 0 은 적용, 랭크 1 은 건너뜀).
    # 진행 줄·metrics.csv 의 손실과 토큰/s 는 두 랭크를 합친 업데이트의 값이다 (예전: 랭크 0 의 몫만, 토큰/s 는 절반).
    run_dir, driver = tmp_path / "ddp", tmp_path / "driver.py"
    driver.write_text(f"""
import os, sys, torch
sys.path.insert(0, {_TRAIN_ROOT!r})
import train
real_loss, real_train, real_progress = train.label_smoothed_cross_entropy, train.Trainer.train, train.progress_line
calls, windows = [], []
def flaky(logits, targets, **kwargs):
    loss = real_loss(logits, targets, **kwargs)
    if len(calls) == 2 and os.environ["RANK"] == "1":
        loss = loss * float("nan")
    calls.append((loss.item(), int((targets != kwargs["ignore_index"]).sum())))   # (손실 합, 목표 토큰 수)
    return loss
def spy(trainer):
    windows.append(trainer.window["tokens"])
    return real_progress(trainer)
def train_and_dump(self):
    finished = real_train(self)
    torch.save({{"step": self.step, "skipped": self.nonfinite_total, "params": self.model.state_dict(),
                 "calls": calls, "windows": windows}},
               os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"] + ".pt"))
    return finished
train.label_smoothed_cross_entropy, train.Trainer.train, train.progress_line = flaky, train_and_dump, spy
train.main(sys.argv[1:])
""")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(driver), "--preset", "tiny", "--max-steps", "40", "--eval-every", "40",
                           "--save-every", "40", "--log-every", "10", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=180,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [s for s, _ in _train_losses(str(run_dir))] == ["10", "20", "30", "40"]      # 랭크 0 만 기록
    assert proc.stdout.count("테스트 BLEU") == 1
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["step"] for r in ranks] == [40, 40] and [r["skipped"] for r in ranks] == [1, 1]
    for key, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][key]), key
        assert not value.is_floating_point() or torch.isfinite(value).all(), key
    # 업데이트 u (학습 중 손실 호출 u, 3번째는 건너뜀) 의 손실 = 두 랭크의 손실 합 ÷ 두 랭크의 목표 토큰 합
    updates = [(l0 + l1, t0 + t1) for (l0, t0), (l1, t1) in zip(ranks[0]["calls"][:41], ranks[1]["calls"][:41])]
    windows = [updates[0:11], updates[11:21], updates[21:31], updates[31:41]]       # 로그 10·20·30·40
    assert ranks[0]["windows"] == [sum(t for _, t in w) for w in windows]            # 토큰/s 의 토큰: 두 랭크 합
    expected = [np.mean([l / t for l, t in w if np.isfinite(l)]) for w in windows]
    logged = [float(loss) for _, loss in _train_losses(str(run_dir))]
    assert np.allclose(logged, expected, rtol=1e-5), (logged, expected)


# ---- 이어 가기와 다시 쓰기를 믿을 수 있는가 (이슈 20): 런은 자기 설정·자기 캐시로만 이어 간다 ----
def _train_deen_cut(root, run_dir, *extra):
    """작은 코퍼스(120 쌍)로 de→en tiny 런을 3 스텝에서 멈춘다. 반환: 그 런의 checkpoint_last.pt 상태."""
    args = ["--preset", "tiny", "--data-dir", root, "--src", "de", "--tgt", "en", "--vocab-size", "150",
            "--max-steps", "6", "--warmup", "2", "--log-every", "3", "--eval-every", "6", "--save-every", "3",
            "--eval-bleu-sentences", "4", "--stop-after", "3", "--run-dir", run_dir, "--threads", "1", *extra]
    assert train.main(args) is None                       # stop_after: 평가 없이 멈춤
    return train.load_checkpoint(os.path.join(run_dir, "checkpoint_last.pt"))


def test_train_resume_restores_the_runs_own_config_and_refuses_changes(tmp_path, capsys):
    # 결함 1: `python train.py --resume RUN` (학습이 Ctrl-C 뒤에 알려 주는 바로 그 명령) 이 demo 프리셋으로 돌아가
    # 거절됐고, --src/--tgt 를 빠뜨린 재개는 de→en 가중치로 en→de 를 학습했다.
    root, run = str(tmp_path / "c"), str(tmp_path / "run")
    _data_small_corpus(root)
    _train_deen_cut(root, run)
    capsys.readouterr()
    for argv, field, values in ((["--src", "en", "--tgt", "de"], "src", ("'de'", "'en'")),
                                (["--d-model", "128"], "d_model", ("64", "128")),
                                (["--preset", "demo"], "preset", ("'tiny'", "'demo'")),
                                (["--vocab-size", "300"], "vocab_size", ("150", "300"))):
        with pytest.raises(SystemExit) as info:
            train.main(["--resume", run, *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and len(err) == 1 and field in err[0] and run in err[0], (argv, err)
        assert all(v in err[0] for v in values), (argv, err)
    assert train.load_checkpoint(os.path.join(run, "checkpoint_last.pt"))["step"] == 3    # 거절은 아무것도 안 바꾼다
    report = train.main(["--resume", run, "--max-steps", "7", "--threads", "1"])   # 바뀌어도 되는 필드만
    state = train.load_checkpoint(os.path.join(run, "checkpoint_last.pt"))
    assert report is not None and state["step"] == 7
    assert (state["config"]["src"], state["config"]["tgt"], state["config"]["preset"]) == ("de", "en", "tiny")
    assert "\n  DE  " in capsys.readouterr().out                                     # 여전히 독일어 → 영어


def test_train_resume_of_a_cosine_run_refuses_a_new_max_steps(tmp_path, capsys):
    # 결함: 코사인 스케줄은 max_steps 에서 0 이 되게 짜이므로, --max-steps 를 늘려 이어 가면 학습률이 말없이 다시 커졌다.
    root, run = str(tmp_path / "c"), str(tmp_path / "run")
    _data_small_corpus(root)
    _train_deen_cut(root, run, "--lr-schedule", "cosine")
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        train.main(["--resume", run, "--max-steps", "9", "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "코사인" in err[0] and run in err[0], err
    assert "max_steps=6" in err[0] and "--max-steps 9" in err[0], err
    assert train.main(["--resume", run, "--max-steps", "6", "--threads", "1"]) is not None    # 같은 값이면 이어 간다
    assert train.load_checkpoint(os.path.join(run, "checkpoint_last.pt"))["step"] == 6


def test_train_resume_latest_picks_the_run_that_matches_the_command_line(tmp_path, monkeypatch, capsys):
    # 결함 1: `--preset tiny --resume` 은 방향을 보지 않고 가장 최근 tiny 런을 집었다.
    monkeypatch.chdir(tmp_path)
    root = str(tmp_path / "c")
    _data_small_corpus(root)
    _train_deen_cut(root, "outputs/training/tiny_a")
    _train_deen_cut(root, "outputs/training/tiny_b", "--src", "en", "--tgt", "de")   # 더 최근, en→de
    capsys.readouterr()
    train.main(["--preset", "tiny", "--data-dir", root, "--src", "de", "--tgt", "en", "--resume", "--threads", "1"])
    steps = {name: train.load_checkpoint(f"outputs/training/{name}/checkpoint_last.pt")["step"]
             for name in ("tiny_a", "tiny_b")}
    assert steps == {"tiny_a": 6, "tiny_b": 3}, steps
    with pytest.raises(SystemExit) as info:                    # 맞는 런이 없으면 한 줄 오류
        train.main(["--preset", "tiny", "--data-dir", root, "--src", "de", "--tgt", "en", "--d-model", "32",
                    "--resume"])
    assert info.value.code == 2 and "d_model=32" in capsys.readouterr().err


def test_train_resume_keeps_the_cache_and_bpe_it_started_with(tmp_path, capsys):
    # 결함 2: 같은 어휘 크기의 더 새 캐시(--max-train-pairs 50)가 있으면 재개가 그 캐시로 바꿔 타고 bpe.txt 를 덮어썼다.
    root, run = str(tmp_path / "c"), str(tmp_path / "run")
    _data_small_corpus(root)
    _train_deen_cut(root, run)
    bpe_before = (tmp_path / "run" / "bpe.txt").read_bytes()
    assert data.main(["prepare", root, "--src", "de", "--tgt", "en", "--vocab", "150", "--max-train-pairs", "50",
                      "--min-char-count", "1"]) == 0
    capsys.readouterr()
    train.main(["--resume", run, "--threads", "1"])
    assert "학습 120 쌍" in capsys.readouterr().out                # 처음 캐시 (50 쌍짜리가 아니라)
    assert (tmp_path / "run" / "bpe.txt").read_bytes() == bpe_before
    cache = train.load_checkpoint(os.path.join(run, "checkpoint_last.pt"))["cache"]
    shutil.rmtree(cache)                                         # 런이 쓰던 캐시가 사라지면: 바꿔 타지 않고 멈춘다
    with pytest.raises(SystemExit) as info:
        train.main(["--resume", run, "--max-steps", "9"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and cache in err and (tmp_path / "run" / "bpe.txt").read_bytes() == bpe_before


def test_data_cache_is_not_reused_after_the_corpus_files_change(tmp_path, capsys):
    # 결함 3: prepare 의 해시는 파일 크기·시각을 담지만 find_prepared 는 보지 않았다: test 파일을 바꿔도 옛 캐시를
    # 집어 옛 번역을 새 참조와 견주었다.
    root = str(tmp_path / "c")
    pairs, _ = _data_small_corpus(root)
    old = data.prepare_corpus(root, 150, min_char_count=1, log=lambda *a: None)
    assert data.find_prepared(root, 150, "en", "de") == old
    new_rows = [(e.replace("sees", "meets"), d.replace("sieht", "trifft")) for e, d in pairs[5:9]]   # 줄 수는 같다
    for lang, k in (("en", 0), ("de", 1)):
        _data_write(f"{root}/test.{lang}", "".join(row[k] + "\n" for row in new_rows))
    assert data.find_prepared(root, 150, "en", "de") is None
    capsys.readouterr()
    cfg = train.preset_config("tiny").replace(corpus="parallel", data_dir=root, vocab_size=150)
    corpus = train.load_prepared_corpus(cfg, log=print)
    assert "바뀌" in capsys.readouterr().out                          # 다시 준비한다고 한 줄로 말한다
    assert [corpus.bpe.decode(t) for _, t in corpus.test] == [d for _, d in new_rows]


def test_train_fp16_loss_scale_underflow_stops_instead_of_faking_updates(tmp_path):
    # 결함 4: 넘침이 계속되어 스케일이 0.0 이 되면 "스케일이 줄었다" 는 검사가 꺼져 가중치가 그대로인 스텝이
    # 업데이트로 세어졌다 (train() 이 True). fairseq 처럼 min_loss_scale 에서 멈추고, 건너뜀을 기록에 보인다.
    trainer = _train_trainer(tmp_path, max_steps=50, warmup=10, log_every=1, eval_every=1000, save_every=1000)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** -10)
    trainer.model.encoder.layers[0].ffn.w_1.weight.register_hook(lambda grad: grad * float("inf"))
    with pytest.raises(train.TrainingDiverged, match="손실 스케일"):
        trainer.train()
    assert trainer.step == 0 and not trainer.optimizer.state and trainer.overflow_total == 4   # 2^-14 < 1e-4
    status = (tmp_path / "run" / "status.md").read_text(encoding="utf-8")
    assert "넘침 건너뜀 4" in status and os.path.exists(tmp_path / "run" / "checkpoint_last.pt")


def test_train_overflow_skips_appear_in_the_progress_line_and_metrics(tmp_path):
    lines = []
    trainer = _train_trainer(tmp_path, max_steps=4, warmup=2, log_every=2, eval_every=1000, save_every=1000)
    trainer.log = lines.append
    trainer.scaler, calls = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16), {"n": 0}

    def overflow_once(grad):
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 2 else grad

    trainer.model.encoder.layers[0].ffn.w_1.weight.register_hook(overflow_once)
    assert trainer.train()
    progress = [line for line in lines if line.startswith("스텝")]
    assert "넘침 건너뜀 1" in progress[0], progress
    with open(tmp_path / "run" / "metrics.csv", encoding="utf-8") as f:
        assert [r["overflow_skips"] for r in csv.DictReader(f)] == ["1", "1"]


def test_train_only_rank_0_prepares_a_missing_cache_under_torchrun(tmp_path):
    # 결함 5: torchrun 아래 모든 랭크가 동시에 prepare_corpus 를 돌렸다 (N 배 시간·메모리, rmtree/replace 경쟁).
    root, driver = str(tmp_path / "c"), tmp_path / "driver.py"
    _data_small_corpus(root)
    driver.write_text(f"""
import os, sys
sys.path.insert(0, {_TRAIN_ROOT!r})
import data, train
real = data.prepare_corpus
def counted(*args, **kwargs):
    with open(os.path.join({str(tmp_path)!r}, "calls"), "a") as f:
        f.write(os.environ["RANK"] + "\\n")
    return real(*args, **kwargs)
data.prepare_corpus = counted
cfg = train.preset_config("tiny").replace(corpus="parallel", data_dir={root!r}, vocab_size=150)
rank, world = train.init_distributed()
corpus = train.load_corpus(cfg, log=lambda *a: None, rank=rank, world_size=world)
with open(os.path.join({str(tmp_path)!r}, "pairs" + os.environ["RANK"]), "w") as f:
    f.write(str(len(corpus.train)))
""")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(driver)], capture_output=True, text=True, cwd=tmp_path, timeout=180,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "calls").read_text().split() == ["0"]
    assert [(tmp_path / f"pairs{r}").read_text() for r in range(2)] == ["120", "120"]


def test_train_every_split_must_fit_a_batch_before_the_first_step(tmp_path, capsys):
    # 결함 6: check_batch_fits 는 학습 쌍만 봤다: 긴 검증 줄 하나가 첫 평가(스텝 40)에서 런을 멈췄다.
    root, run = str(tmp_path / "c"), str(tmp_path / "run")
    _data_small_corpus(root)
    _data_write(f"{root}/valid.en", "".join("the dog sees a cat .\n" for _ in range(4)) + "the dog " * 60 + "\n")
    with pytest.raises(SystemExit) as info:
        train.main(["--preset", "tiny", "--data-dir", root, "--vocab-size", "150", "--max-tokens", "64",
                    "--run-dir", run, "--threads", "1"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "검증" in err and "--max-tokens" in err
    assert not any(os.path.exists(os.path.join(run, name)) for name in ("metrics.csv", "checkpoint_last.pt"))


def test_train_library_trainer_leaves_malloc_alone_and_the_command_line_says_when_it_tunes_it(tmp_path, monkeypatch,
                                                                                                capsys):
    # 결함 7: CPU Trainer 를 만들기만 해도 (노트북, plots.py, doctest) 프로세스 전체의 malloc 설정이 바뀌었다.
    calls = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: calls.append(1) or True)
    _train_trainer(tmp_path)
    assert calls == []
    args = ["--preset", "tiny", "--max-steps", "2", "--warmup", "1", "--eval-every", "2", "--save-every", "2",
            "--threads", "1"]
    train.main([*args, "--run-dir", str(tmp_path / "a")])
    assert calls == [1] and "malloc" in capsys.readouterr().out
    train.main([*args, "--run-dir", str(tmp_path / "b"), "--no-malloc-tuning"])
    assert calls == [1] and "--no-malloc-tuning" in train.build_parser().format_help()


def test_train_fast_cpu_dropout_is_dropout_and_the_command_line_swaps_it_in_on_a_cpu(tmp_path, capsys):
    # 이슈 22: CPU 의 bernoulli_ 드롭아웃이 multi30k 스텝의 약 20% 를 썼다. 빠른 드롭아웃도 같은 드롭아웃이어야 한다.
    for p, dtype in ((0.1, torch.float32), (0.3, torch.bfloat16)):
        x = torch.ones(400_000, dtype=dtype, requires_grad=True)
        y = train.FastCpuDropout(p).train()(x)
        dropped = (y == 0).float()
        assert y.dtype == dtype and abs(dropped.mean().item() - p) < 0.005
        assert all(abs(lane.mean().item() - p) < 0.01 for lane in dropped.view(-1, 4).T)  # 64비트 난수의 16비트 넷 모두
        assert torch.equal(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))          # 남은 값 × 1/(1−p)
        y.sum().backward()
        assert torch.equal(x.grad, y.detach())                                         # 기울기도 같은 마스크 × 1/(1−p)
    drop, x = train.FastCpuDropout(0.5), torch.randn(3, 5)
    assert torch.equal(drop.eval()(x), x) and torch.equal(train.FastCpuDropout(0.0).train()(x), x)
    masks = [torch.manual_seed(7) and drop.train()(x) for _ in range(2)]
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], drop(x))      # 시드가 같으면 같은 마스크
    model = train.build_model(train.preset_config("demo"), 50)
    before = sum(isinstance(m, torch.nn.Dropout) for m in model.modules())
    keys = list(model.state_dict())
    assert before > 0 and train.use_fast_cpu_dropout(model) == before and list(model.state_dict()) == keys
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    assert train.use_fast_cpu_dropout(train.build_model(train.preset_config("tiny"), 50)) == 0     # 드롭아웃 0 이면 그대로
    args = ["--preset", "tiny", "--dropout", "0.1", "--max-steps", "2", "--warmup", "1", "--eval-every", "2",
            "--save-every", "2", "--threads", "1", "--no-malloc-tuning"]
    train.main([*args, "--run-dir", str(tmp_path / "a")])
    assert "--no-fast-dropout" in capsys.readouterr().out                         # 바꿨다고, 끄는 법과 함께 한 줄
    train.main([*args, "--run-dir", str(tmp_path / "b"), "--no-fast-dropout"])
    assert "--no-fast-dropout" not in capsys.readouterr().out
    assert "--no-fast-dropout" in train.build_parser().format_help()


def test_train_amp_auto_on_cpu_is_bf16_only_where_the_cpu_computes_bf16_natively(tmp_path, monkeypatch, capsys):
    # 이슈 22: 데모도 bf16 의 덕을 보되 (AVX512-BF16 에서 1.27배), bf16 을 흉내 내는 CPU 에서는 fp32 로 남는다.
    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, "off")):
        monkeypatch.setattr(train, "cpu_has_native_bf16", lambda native=native: native)
        assert train.setup_device(train.Config(device="cpu", amp="auto"), 1) == (cpu, expected)
        assert [train.setup_device(train.Config(device="cpu", amp=amp), 1)[1] for amp in ("off", "bf16")] == ["off",
                                                                                                             "bf16"]
    assert train.preset_config("demo").amp == "auto" and train.preset_config("tiny").amp == "off"
    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda: True)
    args = ["--preset", "tiny", "--max-steps", "2", "--warmup", "1", "--eval-every", "2", "--save-every", "2",
            "--threads", "1", "--no-malloc-tuning"]
    train.main([*args, "--run-dir", str(tmp_path / "a"), "--amp", "auto"])
    out = capsys.readouterr().out
    assert "AMP bf16" in out and "--amp off" in out                  # 왜 bf16 인지, 끄는 법을 한 줄로
    train.main([*args, "--run-dir", str(tmp_path / "b")])
    assert "AMP off" in capsys.readouterr().out


def test_train_final_report_and_score_print_cased_and_lowercased_bleu(tmp_path, capsys):
    # 이슈 22: 앵커마다 잣대가 다르다 (bentrevett·Wu et al. 은 소문자). 학습 끝의 보고와 --score 는 두 점수를 서명 줄과 함께.
    report, run_dir = _train_tiny(tmp_path, "both", "--max-steps", "4", "--warmup", "2", "--eval-every", "4",
                                  "--save-every", "4")
    lines = capsys.readouterr().out.splitlines()
    signatures = [line for line in lines if line.startswith("nrefs:1|")]
    assert [s.split("|")[1] for s in signatures] == ["case:mixed", "case:lc"], signatures
    assert report["bleu_lc"] == train.bleu(report["hypotheses"], report["references"], lowercase=True)
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("Ein Hund läuft .\nZwei Männer\n", encoding="utf-8")
    ref.write_text("ein Hund läuft .\nZwei Frauen\n", encoding="utf-8")
    cased = train.main(["--score", str(hyp), str(ref)])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[1].startswith("nrefs:1|case:mixed") and out[3].startswith("nrefs:1|case:lc")
    assert out[0].startswith(f"BLEU = {cased:.2f} ") and cased < train.bleu(["Ein Hund läuft .", "Zwei Männer"],
                                                                             ["ein Hund läuft .", "Zwei Frauen"], True)
    assert train.main(["--score", str(hyp), str(ref), "--lowercase"]) > cased
    assert len(capsys.readouterr().out.splitlines()) == 2


# ══════ section: bleu ══════
# 기준: sacreBLEU 2.6.0. tests/bleu_cases.json 의 숫자와 토큰은 sacreBLEU 2.6.0 (scratch venv,
# /work/main/.scratch/venv-sacrebleu) 으로 한 번 계산해 적은 값이다: sacrebleu.corpus_bleu(hypotheses,
# [references]).score (기본값: 13a, exp 스무딩, 대소문자 구분, n = 1..4) 와 Tokenizer13a 의 출력.
_BLEU_CASES = _fixture("bleu_cases")


@pytest.mark.parametrize("name", sorted(_BLEU_CASES["bleu"]))
def test_train_bleu_equals_sacrebleu_on_hard_cases(name):
    case = _BLEU_CASES["bleu"][name]
    assert abs(bleu(case["hypotheses"], case["references"]) - case["sacrebleu"]) < 1e-6


@pytest.mark.parametrize("text", sorted(_BLEU_CASES["tokenize_13a"]))
def test_train_bleu_tokenizer_equals_sacrebleu_13a(text):
    assert _bleu_tokenize_13a(text) == _BLEU_CASES["tokenize_13a"][text]


@pytest.mark.parametrize("hyps, refs, message", [(["a b c d"], ["a b c d", "e"], "same number of lines"),
                                                 ([], [], "empty"), ([["a", "b"]], ["a b"], "str")])
def test_train_bleu_bad_input(hyps, refs, message):
    with pytest.raises(ValueError, match=message):
        bleu(hyps, refs)


def test_train_token_accuracy_ignores_padding():
    # 기준: 파이썬 반복문으로 하나씩 센 정확도
    gen = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(3, 9, 6, generator=gen), torch.randint(1, 6, (3, 9), generator=gen)
    targets[0, 5:], targets[2, 1:] = 0, 0
    real = [(b, t) for b in range(3) for t in range(9) if targets[b, t].item() != 0]
    hits = sum(logits[b, t].tolist().index(max(logits[b, t].tolist())) == targets[b, t].item() for b, t in real)
    assert token_accuracy(logits, targets, pad_id=0) == hits / len(real)
    perfect = torch.nn.functional.one_hot(targets, 6).float()
    perfect[targets == 0] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # 패딩 위치는 틀려도 상관없다
    assert token_accuracy(perfect, targets, pad_id=0) == 1.0
    assert token_accuracy(logits, torch.zeros(3, 9, dtype=torch.long), pad_id=0) == 0.0
    with pytest.raises(ValueError, match="logits 는 "):
        token_accuracy(logits, targets[:, :4], pad_id=0)


# ══════ section: plots ══════
# References: each figure's numbers against an independent computation — the sinusoidal PE's closed form
# (Σ sin² + cos² = d/2, Σ cos ω_i), label smoothing's optimum 1 − ε + ε/V, the focal weight (1 − p)^γ, the
# paper's peak d_model^-0.5·warmup^-0.5, BERT's 15% / 80-10-10, LayerNorm's unit std, DropPath's survival 1 − p;
# glyphs against DejaVu Sans' own glyph table; the dataset statistics (moved from data.py) against counts by hand.
_PLOTS_FIXTURE = _fixture("figure_inputs")   # figure inputs, made-up metrics, a short-run config, two metrics.csv


@pytest.fixture
def _plots_threads():
    """Figures use small tensors: one torch thread (as `python plots.py` does), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _plots_missing_glyphs(fig):
    """Characters of the figure's texts that DejaVu Sans (shipped with matplotlib) cannot draw."""
    font = matplotlib.font_manager.get_font(matplotlib.font_manager.findfont("DejaVu Sans"))
    chars = {c for t in fig.findobj(matplotlib.text.Text) for c in t.get_text() if not c.isspace()}
    return {c for c in chars if font.get_char_index(ord(c)) == 0}


@pytest.fixture(scope="module")
def _plots_inputs():
    """Tiny inputs for every figure (name -> kwargs; the literal ones in tests/figure_inputs.json). An untrained tiny
    model on real demo sentences is enough to exercise every trained-model figure."""
    pairs, fixture = data.demo_corpus(40, seed=0), _PLOTS_FIXTURE
    metrics = fixture["metrics"]
    bpe = data.train_bpe([s for pair in pairs for s in pair], 150)
    torch.manual_seed(0)
    net = model.Transformer(len(bpe), len(bpe), d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0,
                            share_embeddings=True, tie_output=True).eval()
    trained = plots.TrainedRun(net, bpe, plots._encode_pairs(bpe, pairs), pairs, metrics, "")
    cfg = plots.short_run_config().replace(**fixture["short_run"])
    kwargs = {name: {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
              for name, kw in fixture["figures"].items()}
    for name in ("tokenizer_length_distribution", "dataset_statistics", "mlm_masking_distribution"):
        kwargs[name]["pairs"] = pairs
    kwargs["training_simulation"]["cfg"] = kwargs["warmup_comparison"]["cfg"] = cfg
    kwargs["metric_comparison"] = dict(metrics=metrics)
    kwargs["multi30k_training"] = dict(runs=[dict(label="run", test=None, metrics=dict(metrics, elapsed_s=[30.0, 60.0,
                                                                                                      90.0]))])
    kwargs.update({name: dict(trained=trained) for name, _, kind in plots.FIGURES if kind == "trained"})
    return kwargs


def test_plots_figure_list_reading_order_and_names(_plots_inputs):
    names, kinds = [e[0] for e in plots.FIGURES], [e[2] for e in plots.FIGURES]
    assert len(names) == 31 and len(set(names)) == 31 and set(_plots_inputs) == set(names)
    assert set(kinds[kinds.index("trained"):]) == {"trained", "metrics", "multi30k"}   # trained-model figures last
    assert all(make.__name__ == f"fig_{name}" for name, make, _ in plots.FIGURES)
    def own(m):               # functions and classes a module defines itself (main() is every file's entry point)
        return {n for n, v in vars(m).items() if callable(v) and getattr(v, "__module__", None) == m.__name__
                and n != "main"}
    others = (embeddings, attention, layers, model, schedules, losses, data, train)
    assert not own(plots) & set().union(*map(own, others))        # no plots.look_ahead_mask next to attention's


def test_plots_docstring_says_run_me_and_maps_every_figure_to_its_function():
    # plots.py 는 읽는 파일이 아니라 실행하는 파일이라고 먼저 말하고, 그림 → 함수 표에 FIGURES 가 모두 있다
    first = plots.__doc__.strip().splitlines()[0]
    assert "실행하는 파일이지 읽는 파일이 아닙니다" in first and "python plots.py" in first
    table = re.findall(r"^\s+(\w+)\.png\s+(fig_\w+)\s", plots.__doc__, re.M)
    assert table == [(name, make.__name__) for name, make, _ in plots.FIGURES]      # 같은 순서, 빠짐 없이
    assert all(f"``{name}.png`` (``{make.__name__}``)" in plots.__doc__ for name, make in
               [("loss_curves", plots.fig_loss_curves), ("learning_rate", plots.fig_learning_rate),
                ("training_dashboard", plots.fig_training_dashboard)])                   # --run 의 세 장


@pytest.mark.parametrize("name", [entry[0] for entry in plots.FIGURES])
def test_plots_every_figure_returns_a_labelled_figure(name, _plots_inputs, _plots_threads):
    fig = {n: make for n, make, _ in plots.FIGURES}[name](**_plots_inputs[name])
    try:
        assert isinstance(fig, matplotlib.figure.Figure) and isinstance(fig.numbers, dict) and fig.numbers
        assert fig._suptitle is not None and fig._suptitle.get_text()
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()]
        assert panels and all(ax.get_xlabel() and ax.get_ylabel() for ax in panels)   # every panel names its axes
        json.dumps(plots._round(fig.numbers))          # the numbers can be written to figure_numbers.json
        assert _plots_missing_glyphs(fig) == set()
    finally:
        plots.plt.close(fig)


def test_plots_measured_numbers_match_independent_computations(_plots_threads):
    n = plots.fig_look_ahead_mask(size=6, d_k=4).numbers
    assert n["future_weight_with_mask"] == 0.0 < n["future_weight_without_mask"]
    assert abs(n["row_sums_with_mask"] - 1) < 1e-6
    n = plots.fig_positional_encoding_analysis(max_len=40, d_model=16, starts=(0, 7)).numbers
    assert n["dot_at_k0"] == pytest.approx(8.0) and n["max_spread_over_start"] < 1e-4   # Σ sin² + cos² over 8 pairs
    assert n["dot_at_k1"] == pytest.approx(sum(math.cos(10000 ** (-2 * i / 16)) for i in range(8)), abs=1e-4)
    n = plots.fig_label_smoothing_effect(vocab_size=10, steps=20).numbers
    assert all(n[f"eps_{e}"]["loss_minimum_at_p"] == pytest.approx(1 - e + e / 10, abs=0.01) for e in (0.0, 0.1, 0.2))
    assert plots.fig_focal_loss_weights(gammas=(2.0,)).numbers["gamma_2"]["weight_at_0.9"] == pytest.approx(0.1 ** 2)
    n = plots.fig_transformer_schedule_analysis(d_models=(512,), warmup_steps=400, total_steps=2000,
                                                warmups=(100,)).numbers
    assert n["peak_by_d_model"][512] == {"step": 400, "lr": pytest.approx(512 ** -0.5 * 400 ** -0.5)}
    n = plots.fig_residual_effects(depths=(1, 4), d_model=16, seeds=(0,), drop_layers=4, drop_samples=4000).numbers
    assert n["ratio_with_over_without_none"][1] > n["ratio_with_over_without_none"][0] > 1  # no LN: vanishing
    assert n["token_cosine_post_without_residual"][1] > n["token_cosine_post_with_residual"][1]
    assert abs(n["drop_path_measured_survival_last"] - 0.7) < 0.03
    n = plots.fig_layer_norm_effects(num_layers=4, d_model=16).numbers
    assert n["post"]["token_std_median_last"] == pytest.approx(1.0, abs=1e-3)   # LN output: std 1
    assert n["none"]["activation_std_last"] > n["pre"]["activation_std_last"] > 1.0
    n = plots.fig_mlm_masking_distribution(pairs=data.demo_corpus(200, seed=0), vocab_size=150, seeds=range(3)).numbers
    assert n["special_tokens_selected"] == 0 and n["selected_fraction"] == pytest.approx(0.15, abs=0.005)
    assert n["mask_fraction"] == pytest.approx(0.8, abs=0.02) and n["random_fraction"] == pytest.approx(0.1, abs=0.02)
    plots.plt.close("all")


def test_plots_glyph_check_catches_hangul():
    fig = plots.plt.figure()
    fig.suptitle("loss 손실 ε √")
    assert _plots_missing_glyphs(fig) == {"손", "실"}
    plots.plt.close(fig)


def test_plots_deterministic_by_seed(_plots_threads):
    def png(fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=30)
        return buf.getvalue()
    special = functools.partial(plots.fig_special_token_embeddings, vocab_size=30, d_model=8, num_ordinary=3)
    a, b, c = special(seed=3), special(seed=3), special(seed=4)
    assert a.numbers == b.numbers != c.numbers and png(a) == png(b)
    flow = functools.partial(plots.fig_gradient_flow_initialization, d_model=16, num_heads=2, num_layers=1, d_ff=32,
                             vocab_size=30, batch=2, length=4)
    assert flow().numbers == flow().numbers
    plots.plt.close("all")


def test_plots_dataset_statistics_functions():
    lines = [s for pair in data.demo_corpus(20, seed=0) for s in pair]
    bpe = data.train_bpe(lines, vocab_size=200)
    texts = ["der Hund schläft .", "", "the fox runs ."]
    assert plots._sentence_lengths(texts).tolist() == [4, 0, 4]
    assert plots._sentence_lengths(texts, bpe).tolist() == [len(bpe.encode(t)) for t in texts]
    tpw = plots._tokens_per_word(bpe, texts)
    assert len(tpw) == 2 and (tpw >= 1).all()
    seqs = [bpe.encode(t) for t in lines]
    freq = plots._token_frequencies(seqs, len(bpe))
    assert freq.sum() == sum(len(s) for s in seqs) and freq[:7].sum() == 0
    stats = plots._dataset_statistics(list(zip(seqs[::2], seqs[1::2])), max_tokens=128)
    assert stats["pairs"] == 20 and 0 <= stats["padding_sorted"] <= stats["padding_random"] < 1
    s = plots._dataset_statistics([([5] * n, [6] * (n + 1)) for n in (1, 2, 9, 10, 1, 9)], max_tokens=24)
    assert (s["pairs"], s["src_max"], round(s["padding_sorted"], 3)) == (6, 10, 0.047)   # (3,3,4)(11,11)(12): 4/86
    assert s["padding_sorted"] < s["padding_random"]
    assert plots._sentence_lengths(["a b c", "", "d"]).tolist() == [3, 0, 1]
    ab = data.train_bpe(["ab ab ab"], vocab_size=30)
    assert plots._tokens_per_word(ab, ["ab ab", "abab", ""]).tolist() == [1.0, 3.0]
    assert plots._token_frequencies([[7, 8, 8], [8]], vocab_size=10).tolist() == [0] * 7 + [1, 3, 0]


def test_plots_multi30k_figure_uses_wall_clock_minutes_and_skips_without_a_run(tmp_path, capsys):
    # 이슈 9: 검증 BLEU·손실 대 벽시계 분. Multi30k 런이 없으면 한 줄만 말하고 커밋된 그림을 건드리지 않는다.
    root, out = tmp_path / "training", tmp_path / "figs"
    out.mkdir()
    (out / "multi30k_training.png").write_bytes(b"committed")
    argv = ["--only", "multi30k_training", "--out", str(out), "--training-root", str(root)]
    assert plots.main(argv) == {} and (out / "multi30k_training.png").read_bytes() == b"committed"
    lines = capsys.readouterr().out.strip().splitlines()
    assert "Multi30k 런이 없어" in lines[0] and len(lines) == 2          # 건너뜀 한 줄 + 요약 한 줄
    # 이슈 22: 런 여럿을 한 그림에 (가장 최근 = 기준 곡선), 범례는 지금 프리셋과 다른 설정, 별표는 테스트 BLEU
    old, new = root / "multi30k_20261126-120000", root / "multi30k_20261207-120000"
    for run in (old, new):
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text(_PLOTS_FIXTURE["multi30k_metrics_csv"])     # 경과 100, 230, 330 초
    config = dataclasses.asdict(train.preset_config("multi30k").replace(threads=1, run_dir=str(new)))
    result = {"bleu": 30.5, "bleu_lc": 31.0, "beam_size": 4, "length_penalty": 0.6, "sentences": 1000, "seconds": 360.0}
    before = {k: v for k, v in config.items() if k != "length_penalty"}    # 그 필드가 생기기 전의 런 = Config 기본값
    (old / "test_result.json").write_text(json.dumps(dict(result, config=dict(before, dropout=0.3))))
    (new / "test_result.json").write_text(json.dumps(dict(result, config=config)))
    cut = root / "multi30k_20261201-120000"                  # 끝나지 않은 런: 테스트 결과 없이 마지막 체크포인트만
    cut.mkdir()
    (cut / "metrics.csv").write_text(_PLOTS_FIXTURE["multi30k_metrics_csv"])
    torch.save({"model": {}, "config": dict(config, max_steps=config["max_steps"] + 1)}, cut / "checkpoint_last.pt")
    os.utime(old / "metrics.csv", (1, 1)), os.utime(cut / "metrics.csv", (2, 2))
    runs = plots.main(argv)["multi30k_training"]["runs"]
    assert [r["label"] for r in runs] == ["multi30k_20261207-120000: preset",
                                          f"multi30k_20261201-120000: max_steps {config['max_steps'] + 1}",
                                          "multi30k_20261126-120000: dropout 0.3, length_penalty 0.6"]
    assert runs[0]["evals"] == [[230 / 60, 100, 4.5, 12.5], [5.5, 150, 3.9, 20.0]]   # [분, 스텝, 검증 손실, BLEU]
    assert (runs[0]["test_bleu"], runs[0]["test_bleu_lc"], runs[0]["minutes"]) == (30.5, 31.0, 6.0)
    assert (out / "multi30k_training.png").read_bytes()[:4] == b"\x89PNG"


def test_plots_cli_list_only_run_and_errors(tmp_path, capsys):
    names = plots.main(["--list"])
    assert capsys.readouterr().out.split() == names and len(names) == 31
    out = tmp_path / "figs"
    numbers = plots.main(["--only", "focal_loss_weights,onecycle_lr", "--only", "cyclic_lr_warmup", "--out", str(out)])
    assert sorted(numbers) == ["cyclic_lr_warmup", "focal_loss_weights", "onecycle_lr"]
    assert sorted(os.listdir(out)) == sorted([f"{n}.png" for n in numbers] + ["figure_numbers.json"])
    saved = json.loads((out / "figure_numbers.json").read_text())
    assert saved["focal_loss_weights"]["gamma_2"]["weight_at_0.9"] == pytest.approx(0.01)
    printed = capsys.readouterr().out
    assert all(printed.count(name) >= 1 for name in numbers)   # one line per figure with its numbers
    for argv in (["--only", "no_such_figure"], ["--run", str(tmp_path / "missing")]):
        with pytest.raises(SystemExit) as exc:
            plots.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and os.path.basename(argv[1]) in err and len(err.strip().splitlines()) == 1
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(_PLOTS_FIXTURE["run_metrics_csv"])          # 두 줄짜리 런
    paths = plots.main(["--run", str(run)])
    assert sorted(map(os.path.basename, paths)) == ["learning_rate.png", "loss_curves.png", "training_dashboard.png"]
    assert all(os.path.getsize(p) > 1000 for p in paths)


def test_plots_trained_demo_reuses_a_finished_run(tmp_path, _plots_threads):
    cfg = train.preset_config("tiny").replace(**_PLOTS_FIXTURE["short_run"], max_steps=2, log_every=1, eval_every=2,
                                              eval_bleu_sentences=4, save_every=2, run_dir=str(tmp_path / "plots_demo"))
    logs = []
    first = plots.trained_demo(str(tmp_path), cfg=cfg, log=logs.append)     # trains (no demo_* run there)
    assert all(os.path.isfile(tmp_path / "plots_demo" / f) for f in ("checkpoint_last.pt", "loss_curves.png"))
    again = plots.trained_demo(str(tmp_path), cfg=cfg, log=logs.append)     # reuses it, no training
    assert any("재사용" in line for line in logs) and again.metrics["step"][-1] == 2.0
    assert not again.model.training and len(again.valid) == len(again.valid_text) == 8
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))


# ══════ section: all (this file itself and README's exercise table) ══════
# 테스트 이름은 test_<파일 이름>_… 이다: `pytest test_all.py -k test_attention_` 가 attention.py 의 테스트만 돌린다.
# test_all_… 은 이 파일 자신과 README 의 `## 과제로 쓰기` 표를 확인한다. 표의 행마다: 그 함수의 몸통만
# `raise NotImplementedError` 로 바꾼 사본에서 확인 명령이 NotImplementedError 로 실패하고 (종료 코드 1),
# 고치지 않은 프로젝트에서 명령이 고르는 테스트가 하나 이상이며 모두 이 pytest 실행 안에서도 돈다 (그래서 이 실행의
# 통과가 곧 "그대로는 통과" 다; 이 실행에 없는 테스트를 고르면 그 명령을 그대로 한 번 돌려 본다).
_ROOT = os.path.dirname(os.path.abspath(__file__))
_STEMS = ("embeddings", "attention", "layers", "model", "schedules", "losses", "data", "train", "plots")
_EXERCISE_COLUMNS = ["과제", "파일", "함수", "확인 명령"]
_EXERCISE_COPY = "TEST_ALL_EXERCISE_COPY"     # 함수를 고장 낸 사본 안의 실행이라는 표시 (되부름을 막는다)


@dataclasses.dataclass(frozen=True)
class _Exercise:
    title: str
    file: str         # "attention.py"
    function: str     # "scaled_dot_product_attention" 또는 "MultiHeadAttention.forward"
    command: str      # "pytest test_all.py -k test_attention_"

    @property
    def stem(self):
        return self.file[:-3] if self.file.endswith(".py") else self.file


def _readme_exercises(path):
    """README.md 의 `## 과제로 쓰기` 표 → [_Exercise]. 절이나 열이 없으면 무엇이 없는지 말하는 ValueError."""
    if not os.path.exists(path):
        raise ValueError(f"{path} 가 없습니다: 과제 표는 README.md 의 `## 과제로 쓰기` 절에 있습니다.")
    with open(path, encoding="utf-8") as f:
        found = re.search(r"^## 과제로 쓰기[ \t]*\n(.*?)(?=^## |\Z)", f.read(), re.M | re.S)
    if found is None:
        raise ValueError(f"{path} 에 `## 과제로 쓰기` 절이 없습니다 (`## 빠른 시작` 다음에 두세요).")
    lines = [line.strip() for line in found.group(1).splitlines() if line.strip().startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    if not cells or cells[0] != _EXERCISE_COLUMNS:
        raise ValueError(f"{path} 의 `## 과제로 쓰기` 표의 열은 정확히 {' | '.join(_EXERCISE_COLUMNS)} 이어야 합니다 "
                         f"(받은 열: {cells[0] if cells else '표 없음'}).")
    rows = [row for row in cells[1:] if not all(set(cell) <= set("-: ") for cell in row)]   # |---| 줄은 빼고
    if any(len(row) != 4 or not re.fullmatch(r"`pytest [^`]+`", row[3]) for row in rows):
        raise ValueError(f"{path} 의 과제 표: 행마다 칸이 넷이고 확인 명령은 `pytest …` 처럼 백틱 안이어야 합니다.")
    return [_Exercise(title, file.strip("`"), function.strip("`"), command.strip("`"))
            for title, file, function, command in rows]


try:                                # 표가 잘못되었어도 다른 테스트는 돌고, 아래 테스트가 그 문장으로 실패한다
    _EXERCISES, _EXERCISE_PROBLEM = _readme_exercises(os.path.join(_ROOT, "README.md")), None
except ValueError as problem:
    _EXERCISES, _EXERCISE_PROBLEM = [], str(problem)


def test_all_readme_exercise_table_has_six_rows_over_five_files_of_this_project():
    assert _EXERCISE_PROBLEM is None, _EXERCISE_PROBLEM
    assert len(_EXERCISES) >= 6 and len({row.file for row in _EXERCISES}) >= 5, _EXERCISES
    assert all(row.stem in _STEMS and row.file == row.stem + ".py" for row in _EXERCISES), _EXERCISES
    assert len({(row.file, row.function) for row in _EXERCISES}) == len(_EXERCISES)       # 같은 행 두 번 없음
    assert all(re.search(r"§\d|et al\.", row.title) for row in _EXERCISES)               # 논문(의 절)을 밝힌다


def _without_body(source, function):
    """source 에서 function ("f" 또는 "Class.method") 의 몸통을 docstring 만 남기고 `raise NotImplementedError` 로."""
    *owners, name = function.split(".")
    scope = ast.parse(source).body
    for owner in owners:
        classes = [node for node in scope if isinstance(node, ast.ClassDef) and node.name == owner]
        assert classes, f"클래스 {owner} 가 없습니다 ({function})"
        scope = classes[0].body
    defs = [node for node in scope if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name]
    assert defs, f"함수 {function} 가 없습니다"
    body = defs[0].body[1:] if ast.get_docstring(defs[0]) is not None else defs[0].body
    assert body, f"{function} 에는 docstring 말고 바꿀 몸통이 없습니다"
    first = min([body[0].lineno] + [d.lineno for d in getattr(body[0], "decorator_list", [])])
    lines = source.splitlines(keepends=True)
    indent = " " * body[0].col_offset
    return "".join(lines[:first - 1] + [indent + "raise NotImplementedError\n"] + lines[body[-1].end_lineno:])


def _exercise_copy(row, where):
    """프로젝트(최상위 *.py, pytest.ini, demo_lexicon.json, README.md, tests/)를 where 에 복사하고 row 의 함수를 고장 낸다."""
    for name in os.listdir(_ROOT):
        if name.endswith(".py") or name in ("pytest.ini", "demo_lexicon.json", "README.md"):
            shutil.copy(os.path.join(_ROOT, name), where)
    shutil.copytree(os.path.join(_ROOT, "tests"), os.path.join(where, "tests"))
    path = os.path.join(where, row.file)
    with open(path, encoding="utf-8") as f:
        broken = _without_body(f.read(), row.function)
    compile(broken, path, "exec")
    with open(path, "w", encoding="utf-8") as f:
        f.write(broken)


def _exercise_argv(command, *extra):
    """README 의 `pytest …` → [이 파이썬, -m, pytest, …, *extra]."""
    return [sys.executable, "-m", *shlex.split(command), *extra]


def _exercise_run(argv, cwd, **env):
    """제한 시간 60 초, 그림은 Agg, torch 는 한 스레드 (두 개씩 동시에 돌리므로)."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", **env})


def _exercise_broken_run(row, where):
    # --assert=plain: 실패 메시지만 짧아지고 고르는 테스트와 결과는 같다 (사본마다 test_all.py 를 다시 고쳐 쓰는
    # 1.4 초를 아낀다: PYTHONDONTWRITEBYTECODE 면 pytest 가 고쳐 쓴 것을 저장하지 않는다)
    _exercise_copy(row, where)
    return _exercise_run(_exercise_argv(row.command, "-x", "-q", "-p", "no:cacheprovider", "--assert=plain"), where,
                         **{_EXERCISE_COPY: row.function})


_EXERCISE_COLLECT = """import json, sys, pytest
for argv in json.loads(sys.argv[1]):
    print("=== " + " ".join(argv), flush=True)
    pytest.main(argv + ["--collect-only", "-q", "-p", "no:cacheprovider", "--assert=plain"])
"""


def _exercise_selections(rows):
    """고치지 않은 프로젝트에서 행마다 명령이 고르는 테스트 id (한 프로세스에서 명령마다 pytest --collect-only)."""
    commands = list(dict.fromkeys(row.command for row in rows))
    argvs = [shlex.split(command)[1:] for command in commands]
    proc = _exercise_run([sys.executable, "-c", _EXERCISE_COLLECT, json.dumps(argvs)], _ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = proc.stdout.split("=== ")[1:]
    assert len(parts) == len(commands), proc.stdout[-3000:]
    return {command: [line for line in part.splitlines() if "::" in line] for command, part in zip(commands, parts)}


@pytest.fixture(scope="module")
def _exercise_runs(request, tmp_path_factory):
    """이 실행이 고른 과제 행들을 두 개씩 동시에: 행마다 고장 낸 사본에서 확인 명령, 그리고 행마다 고르는 테스트 목록."""
    assert not os.environ.get(_EXERCISE_COPY), \
        f"확인 명령이 {os.environ.get(_EXERCISE_COPY)} 를 고장 낸 사본에서 다른 테스트로 실패하지 않고 이 테스트까지 왔습니다"
    rows = [item.callspec.params["row"] for item in request.session.items
            if isinstance(getattr(item, "callspec", None) and item.callspec.params.get("row"), _Exercise)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        selections = pool.submit(_exercise_selections, rows)
        runs = {row: pool.submit(_exercise_broken_run, row, tmp_path_factory.mktemp("exercise")) for row in rows}
        yield selections, runs


@pytest.mark.parametrize("row", _EXERCISES, ids=[f"{row.stem}.{row.function}" for row in _EXERCISES])
def test_all_readme_exercise_fails_without_its_function(row, request, _exercise_runs):
    selections, runs = _exercise_runs
    broken = runs[row].result()
    output = broken.stdout + broken.stderr
    crashes = re.findall(r"^\S+\.py:\d+: (\w+)$", output, re.M)           # 실패마다 "파일:줄: 예외" 한 줄
    assert broken.returncode == 1 and crashes == ["NotImplementedError"], \
        f"{row.file} 의 {row.function} 몸통을 비운 사본에서 `{row.command}` 가 NotImplementedError 로 실패해야 " \
        f"합니다 (종료 코드 {broken.returncode}):\n{output[-3000:]}"
    selected = selections.result()[row.command]
    assert selected, f"`{row.command}` 가 테스트를 하나도 고르지 않습니다"
    assert not [nodeid for nodeid in selected if "::test_all_" in nodeid], selected   # 이 확인 자신은 고르지 않는다
    if not set(selected) <= {item.nodeid for item in request.session.items}:
        # 고른 테스트가 이 실행에 다 있지는 않다 (예: -k exercise): 고치지 않은 프로젝트에서 명령을 그대로
        proc = _exercise_run(_exercise_argv(row.command, "-q", "-p", "no:cacheprovider"), _ROOT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_all_names_start_with_the_stem_of_the_file_they_test():
    # test_all_… 은 이 파일 자신(과 README 의 과제 표)을 확인하는 테스트
    names = [name for name, value in globals().items() if name.startswith("test") and callable(value)]
    prefixes = tuple(f"test_{stem}_" for stem in (*_STEMS, "all"))
    assert len(names) > 80 and [name for name in names if not name.startswith(prefixes)] == []
