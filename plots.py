"""plots.py — 이 파일은 실행하는 파일이지 읽는 파일이 아닙니다: ``python plots.py``

Transformer 는 embeddings.py … train.py 에서 배웁니다. 이 파일은 그 함수들로 숫자를 재어 리포트의 그림 31장을
``outputs/<그림>.png`` 로 다시 그리는 도구입니다. 그림 하나가 어떻게 나오는지 궁금할 때만 아래 표에서 그 그림의
함수를 찾아 그 함수만 읽으면 됩니다.

    그림 (outputs/)                    그리는 함수                        보여 주는 것
    token_embedding_analysis.png       fig_token_embedding_analysis       embeddings.py
    special_token_embeddings.png       fig_special_token_embeddings       embeddings.py
    positional_encoding_analysis.png   fig_positional_encoding_analysis   embeddings.py
    masking_visualization.png          fig_masking_visualization          attention.py
    look_ahead_mask.png                fig_look_ahead_mask                attention.py
    layer_norm_effects.png             fig_layer_norm_effects             layers.py
    ffn_behavior.png                   fig_ffn_behavior                   layers.py
    residual_effects.png               fig_residual_effects               layers.py
    initialization_distributions.png   fig_initialization_distributions   model.py (초기화)
    gradient_flow_initialization.png   fig_gradient_flow_initialization   model.py (초기화)
    lr_scheduler_curves.png            fig_lr_scheduler_curves            schedules.py
    transformer_schedule_analysis.png  fig_transformer_schedule_analysis  schedules.py
    onecycle_lr.png                    fig_onecycle_lr                    schedules.py
    cyclic_lr_warmup.png               fig_cyclic_lr_warmup               schedules.py
    label_smoothing_effect.png         fig_label_smoothing_effect         losses.py
    focal_loss_weights.png             fig_focal_loss_weights             losses.py
    tokenizer_length_distribution.png  fig_tokenizer_length_distribution  data.py
    dataset_statistics.png             fig_dataset_statistics             data.py
    mlm_masking_distribution.png       fig_mlm_masking_distribution       data.py
    training_simulation.png            fig_training_simulation            train.py (짧은 학습)
    warmup_comparison.png              fig_warmup_comparison              train.py (짧은 학습)
    attention_patterns.png             fig_attention_patterns             학습된 데모 모델
    encoder_attention_patterns.png     fig_encoder_attention_patterns     학습된 데모 모델
    encoder_layer_contributions.png    fig_encoder_layer_contributions    학습된 데모 모델
    decoder_attention_patterns.png     fig_decoder_attention_patterns     학습된 데모 모델
    decoder_layer_contributions.png    fig_decoder_layer_contributions    학습된 데모 모델
    generation_attention.png           fig_generation_attention           학습된 데모 모델
    transformer_attention_all.png      fig_transformer_attention_all      학습된 데모 모델
    metric_comparison.png              fig_metric_comparison              데모 런의 metrics.csv
    confusion_matrix.png               fig_confusion_matrix               학습된 데모 모델
    multi30k_training.png              fig_multi30k_training              Multi30k 런 (있을 때만)

``python plots.py --run outputs/training/<런>`` 은 그 런 디렉터리에 ``loss_curves.png`` (``fig_loss_curves``),
``learning_rate.png`` (``fig_learning_rate``), ``training_dashboard.png`` (``fig_training_dashboard``) 세 장만 그립니다.

``python plots.py`` 는 그림마다 잰 숫자를 한 줄씩 출력하고 ``outputs/figure_numbers.json`` 에 모읍니다 (README 가
인용하는 값). ``--list`` 는 이름 목록, ``--only 이름`` 은 그 그림만 (여러 번 또는 쉼표로), ``--out 디렉터리`` 는
저장 위치입니다.

원칙: 모든 값은 실행할 때 embeddings.py … train.py 의 함수로 잰다. 꾸며 낸 곡선은 없다. 학습된 모델이 필요한
그림은 가장 최근의 데모 런(``python train.py``)을, 없으면 짧은 데모 학습(``outputs/training/plots_demo``,
다음부터 재사용)을 쓴다. 그림 X 의 함수는 ``fig_X``: 입력은 인자(기본값 있음), 반환은 matplotlib ``Figure``,
잰 숫자는 ``fig.numbers`` (dict). 파일과 FIGURES 는 읽는 순서를 따른다 (임베딩 → 어텐션 → 층 → 초기화 →
스케줄 → 손실 → 데이터 → 학습 → 학습된 모델). Agg 백엔드, 글자는 영어(matplotlib 의 DejaVu Sans 로 어디서나
깨지지 않게), 한국어 설명은 README 에.

>>> fig = fig_loss_curves({"step": [1.0, 2.0], "train_loss": [2.0, 1.0], "valid_loss": [None, 1.5]})
>>> type(fig).__name__, [line.get_label() for line in fig.axes[0].lines]
('Figure', ['train (label-smoothed)', 'valid (cross-entropy)'])
>>> len(FIGURES), FIGURES[0][0], FIGURES[-1][0]
(31, 'token_embedding_analysis', 'multi30k_training')
"""
import argparse
import csv
import dataclasses
import glob
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (백엔드를 먼저 정해야 한다)

import embeddings  # noqa: E402
import attention  # noqa: E402
import layers  # noqa: E402
import model as tfm  # noqa: E402  (model 은 흔한 변수 이름이라 tfm 으로 부른다)
import schedules  # noqa: E402
import losses  # noqa: E402
import data  # noqa: E402
import train  # noqa: E402


# ══════ 0. 공통 도우미 ══════
def _finish(fig, numbers, title=None, tidy=None, legend=True, fontsize=8):
    """패널들(tidy)에 옅은 격자와 작은 범례(legend: True 면 모든 패널, 번호 목록이면 그 패널에만)를 달고,
    제목을 달고 여백을 맞춘 뒤, 잰 숫자 dict 를 ``fig.numbers`` 로 붙여 돌려준다."""
    for i, ax in enumerate(np.ravel(tidy if tidy is not None else [])):
        ax.grid(alpha=0.3)
        if legend is True or (legend and i in legend):
            ax.legend(fontsize=fontsize)
    if title:
        fig.suptitle(title, fontsize=13)
    if fig.get_layout_engine() is None:                  # constrained 배치(색 막대 공유)면 그대로 둔다
        fig.tight_layout()
    fig.numbers = numbers
    return fig


def _grad_norm(parameters):
    """기울기들의 전체 L2 노름 (기울기가 없는 파라미터는 건너뛴다)."""
    return math.sqrt(sum(p.grad.detach().float().pow(2).sum().item() for p in parameters if p.grad is not None))


def _heatmap(ax, matrix, title, xlabels=None, ylabels=None, cmap="viridis", vmin=None, vmax=None,
             xlabel="key position", ylabel="query position", fontsize=11, tick_fontsize=8):
    """행렬 하나를 칸 그림으로. 라벨이 있으면 눈금에 토큰을 적는다."""
    image = ax.imshow(np.asarray(matrix), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if xlabels is not None:
        ax.set_xticks(range(len(xlabels)), xlabels, rotation=90, fontsize=tick_fontsize)
    if ylabels is not None:
        ax.set_yticks(range(len(ylabels)), ylabels, fontsize=tick_fontsize)
    return image


def _log_ticks(ax, values):
    """로그 축에 값 그대로의 눈금 (보조 눈금 없이)."""
    ax.set_xticks(values, [str(v) for v in values])
    ax.minorticks_off()


def display_tokens(bpe, ids):
    """토큰 id → 그림 눈금용 문자열. 단어 끝 조각은 그대로, 단어 중간 조각은 뒤에 '@@'
    (subword-nmt 표기), 특수 토큰·니블(<xA>)·단독 단어 끝(</w>)은 이름 그대로.

    >>> bpe = data.train_bpe(["low low lower lower"], vocab_size=40)
    >>> display_tokens(bpe, bpe.encode("lower lowe") + [data.EOS_ID])    # 'e' 는 끝형을 못 배웠다
    ['lower', 'lo@@', 'w@@', 'e@@', '</w>', '[EOS]']
    """
    end, shown = data.END_OF_WORD, []
    for i, text in zip(ids, bpe.token_strings(ids)):
        if int(i) >= data.FIRST_CHAR_ID:                  # 보통 토큰: 끝형은 </w> 를 떼고, 중간 조각은 @@
            text = text[:-len(end)] if text.endswith(end) else text + "@@"
        shown.append(text)
    return shown


def _round(value, digits=4):
    """숫자(와 그 목록·dict)를 유효숫자 digits 자리로 (JSON·출력용)."""
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v, digits) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(f"{float(value):.{digits}g}") if math.isfinite(value) else None
    return int(value) if isinstance(value, np.integer) else value


# ══════ 1. 임베딩 (embeddings.py, 논문 §3.4, §3.5) ══════
# §3.4 "In the embedding layers, we multiply those weights by √d_model."
# 초기화 직후의 임베딩 행렬을 잰다: 행 노름의 분포, 토큰 사이 코사인 유사도, √d_model 배의 효과.
# 마지막 패널: d_model 을 바꿔 가며 성분의 RMS 를 위치 인코딩(RMS = 1/√2)과 비교한다.
def fig_token_embedding_analysis(vocab_size=1000, d_model=256, seed=0):
    """토큰 임베딩: 행 노름 분포, 코사인 유사도, √d_model 스케일링의 효과."""
    torch.manual_seed(seed)
    first = len(embeddings.SPECIAL_TOKENS)
    rows = {init: embeddings.TokenEmbedding(vocab_size, d_model, init=init).weight.detach()[first:]
            for init in ("normal", "xavier")}                               # 각 (V-7, d) 보통 토큰
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    norms = {k: w.norm(dim=1).numpy() for k, w in rows.items()}
    for n, label in zip(norms.values(), ("normal N(0, σ² = 1/d_model)", "Xavier uniform")):
        axes[0].hist(n, bins=40, alpha=0.7, label=f"{label}: mean {n.mean():.3f}")
    axes[0].set(xlabel="L2 norm of an embedding row (before ×√d_model)", ylabel="tokens",
                title=f"Row norms at init (V={vocab_size}, d_model={d_model})")
    unit = F.normalize(rows["normal"], dim=1)
    cos = (unit @ unit.T)[torch.triu(torch.ones(len(unit), len(unit), dtype=torch.bool), 1)].numpy()
    axes[1].hist(cos, bins=60, color="tab:purple", density=True)
    for s in (-1, 1):
        axes[1].axvline(s / math.sqrt(d_model), color="k", ls="--", lw=1)
    axes[1].set(xlabel="cosine similarity between two different tokens", ylabel="density",
                title=f"Pairwise cosine (std {cos.std():.3f}; dashed: ±1/√d_model)")
    dims, raw, scaled = [64, 128, 256, 512, 1024], [], []
    for d in dims:                          # d_model 마다 새 임베딩의 성분 RMS (보통 토큰), ×√d_model 전과 후
        emb = embeddings.TokenEmbedding(vocab_size, d)
        raw.append(emb.weight.detach()[first:].pow(2).mean().sqrt().item())
        scaled.append(emb(torch.arange(first, vocab_size)).detach().pow(2).mean().sqrt().item())
    pe_rms = embeddings.sinusoidal_encoding(512, 64).pow(2).mean().sqrt().item()
    axes[2].plot(dims, raw, "o-", label="embedding E[id] (RMS per component)")
    axes[2].plot(dims, scaled, "s-", label="E[id]·√d_model (what the model adds)")
    axes[2].axhline(pe_rms, color="tab:red", ls="--", label=f"positional encoding RMS {pe_rms:.3f}")
    axes[2].set(xscale="log", yscale="log", xlabel="d_model", ylabel="RMS of one component",
                title="Effect of the √d_model scaling")
    axes[2].set_xticks(dims, [str(d) for d in dims])
    for ax in (axes[0], axes[2]):
        ax.legend(fontsize=8)
    numbers = {f"mean_row_norm_{k}": float(n.mean()) for k, n in norms.items()}
    numbers.update(cosine_std=float(cos.std()), cosine_max_abs=float(np.abs(cos).max()),
                   rms_unscaled_d256=raw[dims.index(256)], rms_scaled_d256=scaled[dims.index(256)], pe_rms=pe_rms)
    return _finish(fig, numbers, "Token embeddings at initialization (embeddings.TokenEmbedding)")


def fig_special_token_embeddings(vocab_size=200, d_model=64, seed=0, num_ordinary=7):
    """특수 토큰 7개의 벡터(직교 코사인 기저)를 보통 토큰과 나란히: 값, 코사인 유사도, 노름."""
    torch.manual_seed(seed)
    n_special = len(embeddings.SPECIAL_TOKENS)
    ids = list(range(n_special + num_ordinary))
    w = embeddings.TokenEmbedding(vocab_size, d_model, special_init=True).weight.detach()[ids]   # (14, d)
    names = list(embeddings.SPECIAL_TOKENS) + [f"tok {i}" for i in ids[n_special:]]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [2.2, 1.2, 1]})
    limit = w.abs().max().item()
    image = _heatmap(axes[0], w, "Embedding rows (special tokens on top)", ylabels=names,
                     cmap="RdBu_r", vmin=-limit, vmax=limit, xlabel="dimension", ylabel="token")
    axes[0].axhline(n_special - 0.5, color="k", lw=1)
    fig.colorbar(image, ax=axes[0], fraction=0.03)
    unit = F.normalize(w, dim=1)                                         # [PAD] 은 0 벡터 → 0
    cos = unit @ unit.T                                                  # (14, 14)
    image = _heatmap(axes[1], cos, "Cosine similarity", xlabels=names, ylabels=names, cmap="RdBu_r",
                     vmin=-1, vmax=1, xlabel="token", ylabel="token")
    fig.colorbar(image, ax=axes[1], fraction=0.05)
    norms = w.norm(dim=1).numpy()
    axes[2].barh(range(len(ids)), norms, color=["tab:orange"] * n_special + ["tab:blue"] * num_ordinary)
    axes[2].set_yticks(range(len(ids)), names, fontsize=8)
    axes[2].invert_yaxis()
    axes[2].set(xlabel="L2 norm of the row", ylabel="token", title="Row norms ([PAD] = 0)")
    special = cos[1:n_special, 1:n_special] - torch.eye(n_special - 1)
    numbers = {"max_abs_cos_between_specials": special.abs().max().item(),
               "mean_abs_cos_special_vs_ordinary": cos[1:n_special, n_special:].abs().mean().item(),
               "pad_norm": float(norms[0]), "mean_special_norm": float(norms[1:n_special].mean()),
               "mean_ordinary_norm": float(norms[n_special:].mean())}
    return _finish(fig, numbers, f"Special-token embeddings vs ordinary tokens (d_model={d_model})")


# §3.5 "PE(pos,2i) = sin(pos/10000^(2i/d_model)), PE(pos,2i+1) = cos(pos/10000^(2i/d_model))"
# "for any fixed offset k, PE_pos+k can be represented as a linear function of PE_pos."
# 세 번째 패널: PE[p]·PE[p+k] 는 시작 위치 p 와 상관없이 거리 k 만의 함수다(곡선이 겹친다).
def fig_positional_encoding_analysis(max_len=100, d_model=128, starts=(0, 20, 50), dims=(0, 2, 10, 40)):
    """사인파 위치 인코딩: 열지도, 몇 차원의 파형, 거리별 내적."""
    pe = embeddings.sinusoidal_encoding(max_len, d_model)                # (L, d)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    image = _heatmap(axes[0], pe, f"PE matrix ({max_len} positions × {d_model} dims)", cmap="RdBu_r",
                     vmin=-1, vmax=1, xlabel="dimension", ylabel="position")
    fig.colorbar(image, ax=axes[0], fraction=0.04)
    for dim in [d for d in dims if d < d_model]:
        period = 2 * math.pi * 10000 ** (dim / d_model)
        axes[1].plot(pe[:, dim].numpy(), label=f"dim {dim} (sin, period {period:.1f})")
    axes[1].set(ylim=(-1.15, 2.0), xlabel="position", ylabel="PE value", title="A few dimensions as waves")
    axes[1].legend(fontsize=8, loc="upper center", ncol=2)
    span = max_len - max(starts)
    curves = [(pe[p:p + span] @ pe[p]).numpy() for p in starts]          # 각 (span,)
    for p, dots in zip(starts, curves):
        first = p == starts[0]
        axes[2].plot(range(span), dots, label=f"start p = {p}", lw=2.5 if first else 1.2, ls="-" if first else "--")
    spread = float(np.max(np.ptp(np.stack(curves), axis=0)))
    axes[2].set(xlabel="distance k", ylabel="PE[p]·PE[p+k]", title=f"Depends only on k (spread over p: {spread:.0e})")
    axes[2].legend(fontsize=8)
    numbers = {"dot_at_k0": float(curves[0][0]), "dot_at_k1": float(curves[0][1]),
               "dot_at_k10": float(curves[0][min(10, span - 1)]), "max_spread_over_start": spread}
    return _finish(fig, numbers, "Sinusoidal positional encoding (embeddings.sinusoidal_encoding)")


# ══════ 2. 마스크 (attention.py, 논문 §3.2.3) ══════
# 패딩이 붙은 작은 배치로 세 마스크를 만든다. 칸 = (쿼리 i, 키 j), 밝은 칸 = 볼 수 있음(True).
def fig_masking_visualization(lengths=(7, 5, 3), pad_id=0):
    """패딩 마스크, look-ahead 마스크, 둘을 합친 마스크를 문장마다."""
    width = max(lengths)
    tokens = torch.where(torch.arange(width) < torch.tensor(lengths)[:, None], torch.arange(10, 10 + width),
                         pad_id)                                         # (B, T): 10, 11, … 뒤에 [PAD]
    pad = attention.padding_mask(tokens, pad_id)                         # (B, 1, 1, T)
    causal = attention.look_ahead_mask(width)                            # (1, 1, T, T)
    both = attention.combine_masks(pad, causal)                          # (B, 1, T, T)
    pad_full = pad.expand(-1, -1, width, -1)                             # (B, 1, T, T)
    fig, axes = plt.subplots(len(lengths), 3, figsize=(11, 3.4 * len(lengths)), squeeze=False)
    columns = ("padding_mask  (B, 1, 1, T)", "look_ahead_mask  (1, 1, T, T)", "combine_masks  (B, 1, T, T)")
    for row, n in enumerate(lengths):
        labels = [f"w{i + 1}" if i < n else "[PAD]" for i in range(width)]
        for col, mask in enumerate((pad_full[row, 0], causal[0, 0], both[row, 0])):
            _heatmap(axes[row, col], mask.int(), columns[col] if row == 0 else "", labels, labels,
                     cmap="Greys_r", vmin=0, vmax=1, xlabel="key",
                     ylabel=f"sentence {row + 1}: {n} tokens + {width - n} [PAD]\nquery")
    numbers = {f"allowed_fraction_{k}": m.float().mean().item()
               for k, m in (("padding", pad_full), ("look_ahead", causal), ("combined", both))}
    numbers["mask_shapes"] = [list(pad.shape), list(causal.shape), list(both.shape)]
    return _finish(fig, numbers, "Masks of a padded batch (white = True = may attend)")


def fig_look_ahead_mask(size=8, d_k=16, seed=0):
    """look-ahead 마스크와, 같은 Q·K 에 마스크가 없을 때/있을 때의 어텐션 가중치."""
    torch.manual_seed(seed)
    q, k, v = torch.randn(3, size, d_k).unbind(0)                        # 각 (T, d_k)
    mask = attention.look_ahead_mask(size)[0, 0]                         # (T, T)
    _, free = attention.scaled_dot_product_attention(q, k, v)            # (T, T)
    _, causal = attention.scaled_dot_product_attention(q, k, v, mask=mask)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    _heatmap(axes[0], mask.int(), "look_ahead_mask (white = allowed)", cmap="Greys_r", vmin=0, vmax=1)
    top = max(free.max().item(), causal.max().item())
    for ax, w, name in ((axes[1], free, "weights without mask"), (axes[2], causal, "weights with mask")):
        image = _heatmap(ax, w, name, cmap="magma", vmin=0, vmax=top)
        for (i, j), value in np.ndenumerate(w.numpy()):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="w" if value < 0.6 * top else "k")
    fig.colorbar(image, ax=axes[2], fraction=0.04)
    future = torch.ones(size, size, dtype=torch.bool).triu(1)
    numbers = {"future_weight_without_mask": free[future].sum().item() / size,
               "future_weight_with_mask": causal[future].sum().item() / size,
               "row_sums_with_mask": causal.sum(dim=1).mean().item()}
    return _finish(fig, numbers, "Causal (look-ahead) mask and its effect on softmax(QK^T/√d_k)")


# ══════ 3. 층 정규화, FFN, 잔차 연결 (layers.py, 논문 §3.1, §3.3) ══════
# 실험 도구: EncoderLayer 스택에 무작위 입력 (B, T, d_model) 을 흘리고 고정한 무작위 분류 머리(d_model → 32 클래스)의
# 교차 엔트로피로 역전파해, 층마다 출력의 표준편차와 파라미터의 기울기 노름을 잰다. 드롭아웃 0, init_weights 의 Xavier.
_NORMS = {"post": "Post-LN (paper)", "pre": "Pre-LN", "none": "no LayerNorm"}   # 정규화 방식 → 그림 라벨


def _probe_stack(num_layers, d_model, norm="post", residual=True, seed=0, batch=8, length=16, classes=32):
    """EncoderLayer num_layers 개 스택(norm: "post"(논문) | "pre" | "none"; Pre-LN 은 끝에 LayerNorm 하나 더)에
    무작위 입력을 흘리고 역전파한다. 반환: (층별 출력 목록, 층별 기울기 노름 목록)."""
    torch.manual_seed(seed)
    stack = nn.ModuleList(layers.EncoderLayer(d_model, 4, 4 * d_model, dropout=0.0, norm_first=norm == "pre",
                                              residual=residual, use_norm=norm != "none") for _ in range(num_layers))
    tfm.init_weights(stack, "xavier")
    final = layers.LayerNorm(d_model) if norm == "pre" else nn.Identity()
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, length, d_model, generator=gen)               # (B, T, d_model)
    head = torch.randn(d_model, classes, generator=gen) / math.sqrt(d_model)
    labels = torch.randint(0, classes, (batch, length), generator=gen)   # (B, T)
    outputs = []
    for layer in stack:
        h = layer(h)                                                     # (B, T, d_model)
        outputs.append(h.detach())
    logits = final(h) @ head                                             # (B, T, classes)
    F.cross_entropy(logits.reshape(-1, classes), labels.reshape(-1)).backward()
    return outputs, [_grad_norm(layer.parameters()) for layer in stack]


# §3.1 "the output of each sub-layer is LayerNorm(x + Sublayer(x))" (Post-LN).
# 논문과 다른 점: Pre-LN (x + Sublayer(LayerNorm(x))) 과 정규화 없음(잔차만)도 나란히 잰다.
def fig_layer_norm_effects(num_layers=12, d_model=64, seed=0):
    """Post-LN vs Pre-LN vs 정규화 없음: 층별 활성값 표준편차, 층별 기울기 노름, 마지막 출력 분포."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    depth = np.arange(1, num_layers + 1)
    numbers = {}
    for norm, label in _NORMS.items():
        outputs, grads = _probe_stack(num_layers, d_model, norm, seed=seed)
        stds = [o.std().item() for o in outputs]
        axes[0].plot(depth, stds, "o-", label=label)
        axes[1].plot(depth, grads, "o-", label=label)
        token_std = outputs[-1].std(dim=-1, unbiased=False).flatten().numpy()     # 토큰마다 d_model 축 표준편차
        axes[2].hist(token_std, bins=np.logspace(-1, 3, 81), histtype="step", lw=1.5,
                     label=f"{label}: median {np.median(token_std):.2f}")
        numbers[norm] = {"activation_std_first": stds[0], "activation_std_last": stds[-1],
                         "token_std_median_last": float(np.median(token_std)), "grad_norm_first": grads[0],
                         "grad_norm_last": grads[-1], "grad_ratio_last_over_first": grads[-1] / grads[0]}
    axes[0].set(yscale="log", xlabel="layer", ylabel="std of the layer output", title="Activation scale per layer")
    axes[1].set(yscale="log", xlabel="layer", ylabel="gradient norm of the layer's parameters",
                title="Gradient norm per layer (at init)")
    axes[2].set(xscale="log", xlabel=f"std over d_model of one token's layer-{num_layers} output",
                ylabel="tokens", title="Per-token scale of the last layer's output")
    return _finish(fig, numbers, f"Layer normalization: {num_layers} encoder layers, d_model={d_model}, "
                                 "random input, one backward pass", tidy=axes)


# §3.3 "FFN(x) = max(0, xW1 + b1)W2 + b2". 논문과 다른 점: GELU 와 게이트 변형(GLU, GEGLU, SwiGLU)도 잰다.
# 희소성 = 은닉값이 정확히 0 인 비율 (ReLU 는 약 절반), 0 근처(|h| < 0.01)인 비율.
def fig_ffn_behavior(d_model=64, d_ff=256, seed=0, num_tokens=2048):
    """FFN 의 활성 함수 곡선, 은닉값 분포, 희소성 (layers.PositionwiseFeedForward)."""
    torch.manual_seed(seed)
    x = torch.randn(num_tokens, d_model)                                 # (N, d_model), LayerNorm 출력 크기
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    grid = torch.linspace(-4, 4, 401)
    for name, fn in (("ReLU", F.relu), ("GELU", F.gelu), ("SiLU (Swish)", F.silu),
                     ("sigmoid (GLU gate)", torch.sigmoid)):
        axes[0].plot(grid.numpy(), fn(grid).numpy(), label=name)
    axes[0].set(xlabel="pre-activation", ylabel="activation", title="Activation functions")
    numbers = {}
    for act in ("relu", "gelu", "glu", "geglu", "swiglu"):
        torch.manual_seed(seed)
        ffn = tfm.init_weights(layers.PositionwiseFeedForward(d_model, d_ff, dropout=0.0, activation=act))
        with torch.no_grad():
            h = ffn.hidden(x)                                            # (N, d_ff)
        axes[1].hist(h.flatten().numpy(), bins=120, range=(-2, 3), histtype="step", lw=1.4, density=True, label=act)
        numbers[act] = {"zero_fraction": (h == 0).float().mean().item(),
                        "near_zero_fraction": (h.abs() < 0.01).float().mean().item(),
                        "parameters": sum(p.numel() for p in ffn.parameters())}
    axes[1].set(yscale="log", xlabel="hidden activation value", ylabel="density (log)",
                title=f"Hidden activations (d_ff={d_ff}, N(0,1) input)")
    pos = np.arange(len(numbers))
    axes[2].bar(pos - 0.2, [n["zero_fraction"] for n in numbers.values()], 0.4, label="exactly 0")
    axes[2].bar(pos + 0.2, [n["near_zero_fraction"] for n in numbers.values()], 0.4, label="|h| < 0.01")
    for i, n in enumerate(numbers.values()):
        axes[2].text(i, n["near_zero_fraction"] + 0.02, f"{n['parameters'] / 1000:.0f}k params",
                     ha="center", fontsize=7)
    axes[2].set_xticks(pos, list(numbers))
    axes[2].set(ylim=(0, 1), xlabel="FFN variant (activation=...)", ylabel="fraction of hidden units",
                title="Sparsity of the hidden layer")
    return _finish(fig, numbers, "Position-wise feed-forward network: ReLU (paper) vs GELU and gated variants",
                   tidy=axes)


# §3.1 "We employ a residual connection around each of the two sub-layers". 깊이마다 잔차 연결이 있을 때와
# 없을 때(layers.SublayerConnection(residual=False)) 첫 층 파라미터의 기울기 노름을 재어(시드 평균) 비율 = 있음 / 없음
# 을 정규화 방식(Post-LN 논문, Pre-LN, 없음)마다 따로 구한다. 잔차가 없으면 토큰 표현들이 서로 같아진다
# (마지막 층에서 같은 문장 토큰 쌍의 평균 코사인 → 1, Dong et al. 2021 의 rank collapse).
# 확률적 깊이(논문에 없음): 층 l 은 drop_path·l/N 의 확률로 가지를 버린다(model.py 의 선형 규칙).
# layers.DropPath 를 많은 샘플에 돌려 살아남은 비율과 출력 평균(기대값 보존)을 잰다.
def _token_cosine(h):
    """(B, T, d) 에서 같은 문장 안 서로 다른 토큰 쌍의 평균 코사인 유사도."""
    u = F.normalize(h, dim=-1)
    sim = u @ u.transpose(1, 2)                                          # (B, T, T)
    B, T, _ = h.shape
    return ((sim.sum() - sim.diagonal(dim1=1, dim2=2).sum()) / (B * T * (T - 1))).item()


def _residual_sweep(depths, d_model, seeds):
    """(정규화 방식, 잔차 유무) 마다 깊이별 첫 층 기울기 노름과 마지막 층 토큰 코사인의 시드 평균.
    반환: grad, cos — 각 {(norm, residual): 깊이별 목록}, 발산한 값은 NaN."""
    grad, cos = {}, {}
    with np.errstate(all="ignore"):
        for norm in _NORMS:
            for residual in (True, False):
                runs = [[_probe_stack(depth, d_model, norm, residual, seed=s) for s in seeds] for depth in depths]
                g = np.array([np.mean([r[1][0] for r in by_seed]) for by_seed in runs])
                c = np.array([np.mean([_token_cosine(r[0][-1]) for r in by_seed]) for by_seed in runs])
                grad[norm, residual] = np.where(np.isfinite(g), g, np.nan).tolist()
                cos[norm, residual] = np.where(np.isfinite(c), c, np.nan).tolist()
    return grad, cos


def _drop_path_panel(ax, drop_path, num_layers, samples, seed):
    """model.py 의 선형 규칙 p_l = drop_path·l/N 으로 layers.DropPath 를 돌려 살아남은 비율과 출력 평균을
    기대값 1 − p_l 과 나란히 그린다. 반환: 마지막 층의 잰 숫자."""
    rates = [drop_path * (i + 1) / num_layers for i in range(num_layers)]
    torch.manual_seed(seed)
    outs = [layers.DropPath(rate).train()(torch.ones(samples, 1, 1)) for rate in rates]
    kept, means = [(out != 0).float().mean().item() for out in outs], [out.mean().item() for out in outs]
    layer_ids = np.arange(1, num_layers + 1)
    ax.bar(layer_ids - 0.2, [1 - r for r in rates], 0.4, label="expected survival 1 − p_l")
    ax.bar(layer_ids + 0.2, kept, 0.4, label=f"measured survival ({samples} samples)")
    ax.plot(layer_ids, means, "k.-", label="mean output (kept × 1/survival)")
    ax.set(ylim=(0, 1.3), xlabel="layer l", ylabel="fraction / mean",
           title=f"Stochastic depth: layers.DropPath, p_l = {drop_path}·l/{num_layers}")
    return {"drop_path_measured_survival_last": kept[-1], "drop_path_expected_survival_last": 1 - rates[-1],
            "drop_path_mean_output_last": means[-1]}


def fig_residual_effects(depths=(1, 2, 4, 8, 16, 32), d_model=32, seeds=(0, 1, 2), drop_path=0.3, drop_layers=12,
                         drop_samples=20000):
    """잔차 연결 유무에 따른 깊이별 기울기 노름(잰 비율), 토큰 표현의 붕괴, 확률적 깊이의 생존율."""
    grad, cos = _residual_sweep(depths, d_model, seeds)
    ratios = {norm: [w / wo for w, wo in zip(grad[norm, True], grad[norm, False])] for norm in _NORMS}
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    (ax_grad, ax_ratio), (ax_cos, ax_drop) = axes
    colors = {"post": "tab:blue", "pre": "tab:orange", "none": "tab:green"}
    for (norm, residual), values in grad.items():
        style = dict(color=colors[norm], ls="-" if residual else "--", marker="o" if residual else "x",
                     label=f"{_NORMS[norm]}, {'with' if residual else 'without'} residual")
        ax_grad.plot(depths, values, **style)
        ax_cos.plot(depths, cos[norm, residual], **style)
    for norm, label in _NORMS.items():
        ax_ratio.plot(depths, ratios[norm], "o-", color=colors[norm], label=label)
    ax_ratio.axhline(1.0, color="k", lw=1)
    ax_grad.set(yscale="log", ylabel="gradient norm of the FIRST layer", title="Gradient reaching the first layer")
    ax_ratio.set(yscale="log", ylabel="with residual / without residual",
                 title="Measured ratio of first-layer gradient norms")
    ax_cos.set(ylim=(0, 1.05), ylabel="mean cosine between tokens of a sentence",
               title="Token representations collapse without residuals")
    for ax in (ax_grad, ax_ratio, ax_cos):
        ax.set(xscale="log", xlabel=f"number of encoder layers (d_model={d_model}, mean of {len(seeds)} seeds)")
        _log_ticks(ax, depths)
    drop_numbers = _drop_path_panel(ax_drop, drop_path, drop_layers, drop_samples, seeds[0])
    numbers = {"depths": list(depths)}
    for norm in _NORMS:
        numbers[f"ratio_with_over_without_{norm}"] = ratios[norm]
        numbers[f"token_cosine_{norm}_with_residual"] = cos[norm, True]
        numbers[f"token_cosine_{norm}_without_residual"] = cos[norm, False]
    numbers.update(drop_numbers)
    return _finish(fig, numbers, "Residual connections: measured gradient ratio, representation collapse, "
                                 "stochastic depth", tidy=axes, fontsize=7)


# ══════ 4. 가중치 초기화 (model.init_weights) ══════
# 논문은 초기화를 말하지 않는다. model.init_weights 의 세 방식을 같은 모델에 적용해 가중치 분포와
# 층별 기울기 노름을 비교한다. 이론값: Xavier std = √(2/(fan_in+fan_out)), He = √(2/fan_in), normal = 0.02.
_INIT_SCHEMES = ("xavier", "he", "normal")


def fig_initialization_distributions(d_model=128, d_ff=512, num_layers=2, vocab_size=1000, seed=0):
    """Xavier / He / normal 초기화의 가중치 분포 (어텐션 투영, FFN 두 행렬)."""
    kinds = (("attention", "attention W_q/W_k/W_v/W_o", ("w_q", "w_k", "w_v", "w_o"), d_model, d_model),
             ("ffn_w1", "FFN W_1", ("w_1",), d_model, d_ff), ("ffn_w2", "FFN W_2", ("w_2",), d_ff, d_model))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    numbers = {}
    for scheme in _INIT_SCHEMES:
        torch.manual_seed(seed)
        net = tfm.init_weights(tfm.Transformer(vocab_size, vocab_size, d_model, 4, num_layers, d_ff), scheme)
        numbers[scheme] = {}
        for ax, (key, _, names, fan_in, fan_out) in zip(axes, kinds):
            w = torch.cat([m.weight.detach().flatten() for n, m in net.named_modules()
                           if isinstance(m, nn.Linear) and n.split(".")[-1] in names])
            theory = {"xavier": math.sqrt(2.0 / (fan_in + fan_out)), "he": math.sqrt(2.0 / fan_in)}.get(scheme, 0.02)
            ax.hist(w.numpy(), bins=100, range=(-0.45, 0.45), histtype="step", lw=1.5, density=True,
                    label=f"{scheme}: std {w.std():.4f} (theory {theory:.4f})")
            numbers[scheme][key] = w.std().item()
    for ax, (_, title, _, fan_in, fan_out) in zip(axes, kinds):
        ax.set(xlabel="weight value", ylabel="density", title=f"{title} (fan_in {fan_in}, fan_out {fan_out})")
    return _finish(fig, numbers, f"Weight distributions under model.init_weights (d_model={d_model}, d_ff={d_ff})",
                   tidy=axes)


def fig_gradient_flow_initialization(d_model=64, num_heads=4, num_layers=6, d_ff=256, vocab_size=200, seed=0,
                                     batch=16, length=20):
    """초기화 방식마다 층별 기울기 노름: 같은 무작위 배치, 라벨 스무딩 손실, 역전파 한 번."""
    gen = torch.Generator().manual_seed(seed)
    first = len(embeddings.SPECIAL_TOKENS)
    src = torch.randint(first, vocab_size, (batch, length), generator=gen)      # (B, S)
    tgt = torch.randint(first, vocab_size, (batch, length + 1), generator=gen)  # (B, T+1)
    names = [f"enc {i + 1}" for i in range(num_layers)] + [f"dec {i + 1}" for i in range(num_layers)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    numbers = {}
    for scheme in _INIT_SCHEMES:
        torch.manual_seed(seed)
        net = tfm.Transformer(vocab_size, vocab_size, d_model, num_heads, num_layers, d_ff, dropout=0.0, init=scheme)
        loss = losses.label_smoothed_cross_entropy(net(src, tgt[:, :-1]), tgt[:, 1:])
        loss.backward()
        grads = [_grad_norm(l.parameters()) for l in list(net.encoder.layers) + list(net.decoder.layers)]
        axes[0].plot(range(len(names)), grads, "o-", label=scheme)
        numbers[scheme] = {"initial_loss": loss.item(), "grad_norm_min": min(grads), "grad_norm_max": max(grads),
                           "max_over_min": max(grads) / min(grads), "total_grad_norm": _grad_norm(net.parameters())}
    axes[0].set_xticks(range(len(names)), names)
    axes[0].set(yscale="log", xlabel="layer", ylabel="gradient norm of the layer's parameters",
                title=f"Per-layer gradient norm at init ({num_layers}+{num_layers} layers, d_model={d_model})")
    axes[1].bar(range(3), [numbers[s]["initial_loss"] for s in _INIT_SCHEMES], color=["C0", "C1", "C2"])
    axes[1].axhline(math.log(vocab_size), color="k", ls="--", label=f"ln V = {math.log(vocab_size):.2f}")
    axes[1].set_xticks(range(3), _INIT_SCHEMES)
    axes[1].set(xlabel="init scheme", ylabel="label-smoothed loss", title="Initial loss")
    return _finish(fig, numbers, "Gradient flow under each initialization (random batch, one backward pass)", tidy=axes)


# ══════ 5. 학습률 스케줄 (schedules.py, 논문 §5.3) ══════
# 모든 곡선은 schedules.py 의 순수 함수 f(step) 를 step = 1..total 에 그대로 적용한 값이다.
def _curve(fn, total_steps):
    """스텝 1..total 의 값 (numpy)."""
    return np.array([fn(s) for s in range(1, total_steps + 1)])


def _peak(values):
    """(최대값이 처음 나온 스텝(1부터), 최대값)."""
    i = int(np.argmax(values))
    return i + 1, float(values[i])


def fig_lr_scheduler_curves(total_steps=20000, warmup_steps=2000, peak_lr=1e-3, d_model=512):
    """schedules.py 의 여섯 스케줄을 한 스텝 축에."""
    w, total, top = warmup_steps, total_steps, peak_lr
    curves = {
        f"paper: d_model^-0.5 min(s^-0.5, s w^-1.5) (d={d_model})": lambda s: schedules.transformer_lr(s, d_model, w),
        "linear warmup + linear decay": lambda s: schedules.linear_lr(s, top, w, total),
        "linear warmup + cosine decay": lambda s: schedules.cosine_lr(s, top, w, total),
        "linear warmup + polynomial (power 2)": lambda s: schedules.polynomial_lr(s, top, w, total, power=2.0),
        "OneCycle (cos)": lambda s: schedules.one_cycle_lr(s, top, total, pct_start=w / total),
        "cyclic (triangular) after warmup": lambda s: schedules.cyclic_lr(s, top / 10, top, 2000, warmup_steps=w)}
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.8))
    steps = np.arange(1, total_steps + 1)
    numbers = {}
    for name, fn in curves.items():
        values = _curve(fn, total_steps)
        for ax in axes:
            ax.plot(steps, values, label=name, lw=1.4)
        peak_step, peak_value = _peak(values)
        numbers[name.split(":")[0].split(" (")[0]] = {"peak_step": peak_step, "peak_lr": peak_value,
                                                       "final_lr": float(values[-1])}
    axes[0].set(xlabel="update step", ylabel="learning rate", title="Linear axes")
    axes[1].set(xscale="log", yscale="log", ylim=(1e-7, 3 * peak_lr), xlabel="update step (log)",
                ylabel="learning rate (log)", title="Log axes (warmup slope and decay exponent)")
    for ax in axes:
        ax.axvline(warmup_steps, color="gray", ls=":", lw=1)
    return _finish(fig, numbers, f"Learning-rate schedules from schedules.py (warmup {warmup_steps}, "
                                 f"{total_steps} steps, peak {peak_lr:g})", tidy=axes, legend=(0,))


# §5.3 "This corresponds to increasing the learning rate linearly for the first warmup_steps training
# steps, and decreasing it thereafter proportionally to the inverse square root of the step number."
# 최고점은 step = warmup 에서 d_model^-0.5 · warmup^-0.5 이다. 그림은 곡선에서 잰 최고점을 이 식과 비교한다.
def fig_transformer_schedule_analysis(d_models=(128, 256, 512, 1024), warmup_steps=4000, total_steps=40000,
                                      warmups=(1000, 2000, 4000, 8000, 16000)):
    """논문의 스케줄: d_model 별 곡선과 최고점, warmup 길이별 곡선, 잰 최고점 대 공식."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    steps = np.arange(1, total_steps + 1)
    numbers = {"peak_by_d_model": {}, "peak_by_warmup": {}}
    for d in d_models:
        values = _curve(lambda s: schedules.transformer_lr(s, d, warmup_steps), total_steps)
        peak_step, peak_value = _peak(values)
        line, = axes[0].plot(steps, values, label=f"d_model={d}")
        axes[0].plot(peak_step, peak_value, "o", color=line.get_color())
        axes[0].annotate(f"{peak_value:.2e} @ {peak_step}", (peak_step, peak_value), fontsize=7,
                         textcoords="offset points", xytext=(6, 2))
        numbers["peak_by_d_model"][d] = {"step": peak_step, "lr": peak_value}
    for w in warmups:
        values = _curve(lambda s: schedules.transformer_lr(s, 512, w), total_steps)
        axes[1].plot(steps, values, label=f"warmup={w}")
        numbers["peak_by_warmup"][w] = dict(zip(("step", "lr"), _peak(values)))
    axes[0].set(xlabel="update step", ylabel="learning rate", title=f"warmup_steps={warmup_steps}")
    axes[1].set(xlabel="update step", ylabel="learning rate", title="d_model=512, several warmups")
    axes[2].plot(warmups, [numbers["peak_by_warmup"][w]["lr"] for w in warmups], "o", ms=9,
                 label="measured peak of the curve")
    axes[2].plot(warmups, [512 ** -0.5 * w ** -0.5 for w in warmups], "k--", label="d_model^-0.5 warmup^-0.5")
    axes[2].set(xscale="log", yscale="log", xlabel="warmup_steps", ylabel="peak learning rate",
                title="Peak vs warmup (d_model=512)")
    numbers["lr_at_100k_d512"] = schedules.transformer_lr(100000, 512, 4000)
    return _finish(fig, numbers, "The paper's schedule: lrate = d_model^-0.5 min(step^-0.5, step warmup^-1.5)",
                   tidy=axes)


# OneCycle (Smith & Topin): 학습률이 오르는 동안 모멘텀은 내려가고, 그 반대도 같다.
def fig_onecycle_lr(total_steps=10000, max_lr=1e-3, pct_start=0.3):
    """OneCycle 학습률과 모멘텀: 코사인, 선형, 세 구간 변형."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    steps = np.arange(1, total_steps + 1)
    numbers = {}
    for anneal, three in (("cos", False), ("linear", False), ("cos", True)):
        label, kw = f"{anneal}{', three-phase' if three else ''}", dict(anneal=anneal, three_phase=three)
        lr = _curve(lambda s: schedules.one_cycle_lr(s, max_lr, total_steps, pct_start, **kw), total_steps)
        mom = _curve(lambda s: schedules.one_cycle_momentum(s, total_steps, pct_start, **kw), total_steps)
        axes[0].plot(steps, lr, label=label)
        axes[1].plot(steps, mom, label=label)
        peak_step, peak_value = _peak(lr)
        numbers[label] = {"peak_step": peak_step, "peak_lr": peak_value, "first_lr": float(lr[0]),
                          "final_lr": float(lr[-1]), "momentum_at_peak": float(mom[peak_step - 1])}
    axes[0].set(xlabel="update step", ylabel="learning rate", title=f"Learning rate (max {max_lr:g})")
    axes[1].set(xlabel="update step", ylabel="momentum (Adam beta1)", title="Momentum (mirror image)")
    for ax in axes:
        ax.axvline(pct_start * total_steps, color="gray", ls=":", lw=1)
    return _finish(fig, numbers, f"OneCycle schedule (pct_start={pct_start}, {total_steps} steps)", tidy=axes)


def fig_cyclic_lr_warmup(total_steps=6000, base_lr=1e-4, max_lr=1e-3, step_size_up=500, warmup_steps=1000):
    """워밍업 뒤 삼각형 주기 학습률: 대칭 주기와 비대칭(천천히 내려감) 주기."""
    fig, ax = plt.subplots(figsize=(12, 4.5))
    numbers = {}
    for down, style in ((step_size_up, "-"), (3 * step_size_up, "--")):
        values = _curve(lambda s: schedules.cyclic_lr(s, base_lr, max_lr, step_size_up, down, warmup_steps),
                        total_steps)
        ax.plot(np.arange(1, total_steps + 1), values, style, label=f"up {step_size_up}, down {down} steps")
        after = values[warmup_steps:]
        peaks = [warmup_steps + 1 + i for i in range(1, len(after) - 1)
                 if after[i] >= after[i - 1] and after[i] > after[i + 1]]
        numbers[f"down_{down}"] = {"first_peaks": peaks[:3], "lr_at_warmup_end": float(values[warmup_steps]),
                                   "cycle_length": step_size_up + down}
    ax.axvspan(0, warmup_steps, color="gold", alpha=0.2, label=f"linear warmup ({warmup_steps} steps)")
    for level in (base_lr, max_lr):
        ax.axhline(level, color="gray", ls=":", lw=1)
    ax.set(xlabel="update step", ylabel="learning rate", title=f"base_lr {base_lr:g}, max_lr {max_lr:g} (dotted)")
    return _finish(fig, numbers, "Cyclic (triangular) learning rate with warmup", tidy=ax)


# ══════ 6. 손실 (losses.py, 논문 §5.4) ══════
# §5.4 "we employed label smoothing of value ε_ls = 0.1. This hurts perplexity, as the model learns
# to be more unsure, but improves accuracy and BLEU score."
# 가운데 패널: 정답 확률이 p, 나머지 V−1 칸이 (1−p)/(V−1) 인 예측의 손실. ε > 0 이면 최소점이 p = 1 이
# 아니라 q_y = 1 − ε + ε/V 에 있다. 오른쪽: 자유 로짓을 그 손실로 최적화했을 때 확신도가 어디로 가나.
def _optimize_free_logits(target, vocab_size, eps, steps, lr):
    """0 에서 시작한 로짓 (1, V) 를 라벨 스무딩 손실로 SGD. 반환: (스텝별 정답 확률, 마지막 로짓)."""
    logits = torch.zeros(1, vocab_size, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=lr)
    confidence = []
    for _ in range(steps):
        optimizer.zero_grad()
        losses.label_smoothed_cross_entropy(logits, target, epsilon=eps, ignore_index=-1).backward()
        optimizer.step()
        confidence.append(torch.softmax(logits.detach(), -1)[0, target[0]].item())
    return confidence, logits.detach()[0]


def fig_label_smoothing_effect(vocab_size=10, epsilons=(0.0, 0.1, 0.2), steps=300, lr=0.5):
    """라벨 스무딩: 목표 분포, 확신도에 따른 손실, 최적화했을 때의 확신도."""
    target = torch.tensor([3])
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    ids = np.arange(vocab_size)
    for k, (eps, spread) in enumerate(((0.0, "all"), (0.1, "all"), (0.1, "others"))):
        q = losses.smoothed_targets(target, vocab_size, eps, spread)[0].numpy()
        axes[0].bar(ids + (k - 1) * 0.27, q, 0.27,
                    label=f"ε={eps}" + ("" if eps == 0 else f", spread='{spread}'") + f": q_y={q[3]:.3f}")
    axes[0].set(yscale="log", xlabel="token id (gold = 3)", ylabel="target probability q (log)",
                title=f"Smoothed target distribution (V={vocab_size})")
    axes[0].set_xticks(ids)
    grid = np.linspace(0.3, 0.999, 300)                  # 로짓 = 정답 확률 p, 나머지는 고르게 나눈 분포의 로그
    predictions = [torch.full((1, vocab_size), (1 - p) / (vocab_size - 1)).index_fill(1, target, p).log() for p in grid]
    numbers = {}
    for eps in epsilons:
        values = [losses.label_smoothed_cross_entropy(z, target, epsilon=eps, ignore_index=-1).item()
                  for z in predictions]
        best = float(grid[int(np.argmin(values))])
        line, = axes[1].plot(grid, values, label=f"ε={eps}: minimum at p={best:.3f}")
        axes[1].axvline(best, color=line.get_color(), ls=":", lw=1)
        confidence, logits = _optimize_free_logits(target, vocab_size, eps, steps, lr)
        axes[2].plot(range(1, steps + 1), confidence, label=f"ε={eps}: p_y → {confidence[-1]:.3f}")
        numbers[f"eps_{eps}"] = {"loss_minimum_at_p": best, "theory_1_minus_eps_plus_eps_over_V":
                                 1 - eps + eps / vocab_size, "optimized_confidence": confidence[-1],
                                 "optimized_logit_gap": (logits[3] - logits[ids != 3].mean()).item(),
                                 "loss_at_p_0.999": values[-1]}
    axes[1].set(xlabel="predicted probability of the gold token p_y", ylabel="loss",
                title="Loss vs confidence (rest spread uniformly)")
    axes[2].set(xlabel=f"SGD step (lr {lr})", ylabel="p_y", title="Free logits trained on one target")
    return _finish(fig, numbers, "Label smoothing (losses.label_smoothed_cross_entropy, paper ε = 0.1)", tidy=axes)


# Focal loss (Lin et al., 2017), 논문에 없음: FL(p_t) = −(1 − p_t)^γ log p_t. 쉬운 토큰(p_t → 1)의 무게를 줄인다.
def fig_focal_loss_weights(gammas=(0.0, 0.5, 1.0, 2.0, 5.0)):
    """focal 가중치 (1 − p_t)^γ 와 토큰 하나의 focal loss 를 p_t 에 대해."""
    p = torch.linspace(0.01, 0.99, 99)
    logits = torch.stack([p.log(), (1 - p).log()], dim=1)                # (99, 2), 정답은 0번
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    numbers = {}
    for gamma in gammas:
        values = [losses.focal_loss(logits[i:i + 1], torch.tensor([0]), gamma, ignore_index=-1).item()
                  for i in range(len(p))]
        axes[0].plot(p.numpy(), losses.focal_weight(p, gamma).numpy(), label=f"γ={gamma:g}")
        axes[1].plot(p.numpy(), values, label=f"γ={gamma:g}")
        w_easy, w_hard = (losses.focal_weight(torch.tensor(p_t), gamma).item() for p_t in (0.9, 0.1))
        numbers[f"gamma_{gamma:g}"] = {"weight_at_0.9": w_easy, "weight_at_0.1": w_hard,
                                       "hard_over_easy": w_hard / w_easy}
    axes[0].set(xlabel="p_t (probability of the gold token)", ylabel="(1 − p_t)^γ", title="Focal weight")
    axes[1].set(yscale="log", xlabel="p_t", ylabel="loss of one token (log)",
                title="Focal loss −(1−p_t)^γ log p_t (γ=0: cross-entropy)")
    return _finish(fig, numbers, "Focal loss (losses.focal_weight, losses.focal_loss)", tidy=axes)


# ══════ 7. 데이터 (data.py): BPE 길이, 데이터셋 통계, MLM 마스킹 — 모두 내장 데모 코퍼스로 ══════
def demo_pairs(num_pairs=4000, seed=0):
    """데모 코퍼스의 (영어, 독일어) 쌍 num_pairs 개 (data.demo_corpus, 시드로 결정)."""
    return data.demo_corpus(num_pairs, seed=seed)


def _encode_pairs(bpe, pairs):
    """(영어, 독일어) 텍스트 쌍 → (원문 id, 번역 id) 쌍."""
    return [(bpe.encode(en), bpe.encode(de)) for en, de in pairs]


def _sentence_lengths(texts, bpe=None):
    """문장마다 길이: ``bpe`` 가 없으면 단어 수, 있으면 BPE 토큰 수 (numpy 정수 배열)."""
    return np.array([len(data.normalize(t).split()) if bpe is None else len(bpe.encode(t)) for t in texts],
                    dtype=np.int64)


def _tokens_per_word(bpe, texts):
    """문장마다 (BPE 토큰 수 / 단어 수). 빈 문장은 뺀다. 1 에 가까울수록 단어가 통째로 어휘에 있다."""
    words, tokens = _sentence_lengths(texts), _sentence_lengths(texts, bpe)
    return tokens[words > 0] / words[words > 0]


def _token_frequencies(sequences, vocab_size):
    """토큰 id 별 출현 횟수 (길이 vocab_size 의 numpy 배열). 지프 법칙 그림에 쓴다."""
    ids = np.concatenate([np.zeros(0, dtype=np.int64)] + [np.asarray(s, dtype=np.int64) for s in sequences])
    return np.bincount(ids, minlength=vocab_size)[:vocab_size]


def padding_ratio(batches, src_lengths, tgt_lengths, specials=1):
    """배치들을 collate 했을 때 패딩 토큰의 비율 (원문과 번역을 합쳐서).

    >>> padding_ratio([[0, 1]], [1, 3], [2, 2])      # 원문 폭 4: 2+4 중 패딩 2, 번역 폭 3: 패딩 0
    0.142857...
    """
    src = np.asarray(src_lengths, dtype=np.int64) + specials
    tgt = np.asarray(tgt_lengths, dtype=np.int64) + specials
    real = padded = 0
    for batch in batches:
        idx = np.asarray(batch, dtype=np.int64)
        real += int(src[idx].sum() + tgt[idx].sum())
        padded += len(idx) * int(src[idx].max() + tgt[idx].max())
    return 1.0 - real / padded if padded else 0.0


def _dataset_statistics(pairs, max_tokens, seed=0):
    """토큰 id 쌍들의 요약: 길이 분포와, 길이별 배치(data.token_batches) 대 무작위 배치의 패딩 비율."""
    src = np.array([len(s) for s, _ in pairs], dtype=np.int64)
    tgt = np.array([len(t) for _, t in pairs], dtype=np.int64)
    sorted_batches = data.token_batches(src, tgt, max_tokens, seed=seed)
    random_batches = data.token_batches(src, tgt, max_tokens, seed=seed, by_length=False)
    return {"pairs": len(pairs), "src_mean": float(src.mean()), "tgt_mean": float(tgt.mean()),
            "src_p95": float(np.percentile(src, 95)), "tgt_p95": float(np.percentile(tgt, 95)),
            "src_max": int(src.max()), "tgt_max": int(tgt.max()), "batches": len(sorted_batches),
            "padding_sorted": padding_ratio(sorted_batches, src, tgt),
            "padding_random": padding_ratio(random_batches, src, tgt)}


# §5.1 "Sentences were encoded using byte-pair encoding, which has a shared source-target vocabulary".
# 어휘 크기마다 공동 BPE 를 새로 배워, 문장당 토큰 수와 단어당 토큰 수(1 = 단어가 통째로 어휘에 있음)를 잰다.
# 어휘를 크게 해도 더 병합할 쌍(빈도 2 이상)이 없으면 BPE 는 일찍 멈춘다: 실제 크기를 함께 적는다.
def fig_tokenizer_length_distribution(pairs=None, vocab_sizes=(150, 300, 1000, 3000)):
    """어휘 크기별 문장당 토큰 수와 단어당 토큰 수 (data.train_bpe)."""
    pairs = demo_pairs() if pairs is None else pairs
    lines = [s for pair in pairs for s in pair]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    numbers = {}
    for vocab in vocab_sizes:
        bpe = data.train_bpe(lines, vocab)
        lengths = _sentence_lengths(lines, bpe)
        en_tpw, de_tpw = (_tokens_per_word(bpe, side) for side in zip(*pairs))
        label = f"vocab {vocab} (actual {len(bpe)})"
        top = int(np.percentile(lengths, 99.5)) + 2
        axes[0].hist(lengths, bins=np.arange(0, top + 1) - 0.5, histtype="step", lw=1.5, label=label)
        axes[1].hist(np.concatenate([en_tpw, de_tpw]), bins=np.linspace(1, 4, 31), histtype="step", lw=1.5, label=label)
        numbers[f"vocab_{vocab}"] = {"actual_vocab": len(bpe), "tokens_per_sentence_mean": float(lengths.mean()),
                                     "tokens_per_word_en": float(en_tpw.mean()),
                                     "tokens_per_word_de": float(de_tpw.mean())}
    words = _sentence_lengths(lines)
    axes[0].axvline(words.mean(), color="k", ls="--", lw=1, label=f"words per sentence (mean {words.mean():.1f})")
    axes[0].set(xlabel="BPE tokens per sentence (EN and DE)", ylabel="sentences",
                title=f"Tokens per sentence ({len(pairs)} pairs)")
    axes[1].set(xlabel="BPE tokens per word (per sentence mean)", ylabel="sentences",
                title="Tokens per word (1 = whole words)")
    sizes = [n["actual_vocab"] for n in numbers.values()]
    for lang, marker, name in (("en", "o-", "English"), ("de", "s-", "German")):
        axes[2].plot(sizes, [n[f"tokens_per_word_{lang}"] for n in numbers.values()], marker, label=name)
    axes[2].set(xscale="log", xlabel="actual BPE vocabulary size", ylabel="mean tokens per word",
                title="Longer merges with a larger vocabulary")
    _log_ticks(axes[2], sizes)
    numbers["words_per_sentence_mean"] = float(words.mean())
    return _finish(fig, numbers, "Our BPE on the demo corpus at several vocabulary sizes", tidy=axes)


# §5.1 "Sentence pairs were batched together by approximate sequence length."
# 패딩 비율 = collate 가 넣는 [PAD] 의 비율. 길이로 정렬한 배치(data.token_batches) 대 정렬하지 않은 배치.
def fig_dataset_statistics(pairs=None, vocab_size=1000, max_tokens=4096, seed=0,
                           budgets=(256, 512, 1024, 2048, 4096, 8192)):
    """문장 길이 분포, 배치 방식별 패딩 비율, 토큰 빈도(순위-빈도)."""
    pairs = demo_pairs() if pairs is None else pairs
    bpe = data.train_bpe([s for pair in pairs for s in pair], vocab_size)
    ids = _encode_pairs(bpe, pairs)
    stats = _dataset_statistics(ids, max_tokens, seed=seed)
    src, tgt = np.array([len(s) for s, _ in ids]), np.array([len(t) for _, t in ids])
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    bins = np.arange(0, max(src.max(), tgt.max()) + 2) - 0.5
    axes[0].hist(src, bins=bins, alpha=0.6, label=f"English (mean {src.mean():.1f})")
    axes[0].hist(tgt, bins=bins, alpha=0.6, label=f"German (mean {tgt.mean():.1f})")
    axes[0].set(xlabel="BPE tokens per sentence", ylabel="sentences",
                title=f"Sentence lengths ({len(pairs)} pairs, vocab {len(bpe)})")
    budgets = [b for b in budgets if b > max(src.max(), tgt.max()) + 1]
    by_budget = [_dataset_statistics(ids, b, seed=seed) for b in budgets]
    sorted_ratio, random_ratio = ([s[f"padding_{k}"] for s in by_budget] for k in ("sorted", "random"))
    axes[1].plot(budgets, sorted_ratio, "o-", label="sorted by length (token_batches)")
    axes[1].plot(budgets, random_ratio, "s-", label="random order (by_length=False)")
    axes[1].set(xscale="log", ylim=(0, max(random_ratio + [0.1]) * 1.15), xlabel="max_tokens per batch",
                ylabel="fraction of [PAD] tokens", title="Padding ratio after collate")
    _log_ticks(axes[1], budgets)
    counts = _token_frequencies([s for pair in ids for s in pair], len(bpe))
    counts = np.sort(counts[counts > 0])[::-1]
    ranks = np.arange(1, len(counts) + 1)
    axes[2].loglog(ranks, counts, ".", ms=3, label="BPE tokens")
    axes[2].loglog(ranks, counts[0] / ranks, "k--", lw=1, label="Zipf: count ~ 1/rank")
    axes[2].set(xlabel="frequency rank", ylabel="count", title="Token frequencies")
    numbers = dict(stats, padding_sorted_by_budget=dict(zip(budgets, sorted_ratio)),
                   padding_random_by_budget=dict(zip(budgets, random_ratio)), vocab=len(bpe),
                   top_token_share=float(counts[0] / counts.sum()))
    return _finish(fig, numbers, "Demo corpus statistics (data.token_batches, padding_ratio)", tidy=axes)


# BERT §3.1 "chooses 15% of the token positions at random for prediction ... (1) the [MASK] token 80% of
# the time (2) a random token 10% of the time (3) the unchanged i-th token 10% of the time."
# data.mlm_mask 를 여러 시드로 돌려 실제 비율을 센다. 특수 토큰([BOS], [EOS], [PAD])은 한 번도 고르면 안 된다.
def _mlm_counts(tokens, vocab_size, seeds):
    """data.mlm_mask 를 시드마다 돌려 센다. 반환: (시드별 [고른 비율, [MASK], 무작위, 그대로] 배열 (seeds, 4),
    문장별 고른 비율 목록, 위치별 고른 비율 목록, 특수 토큰을 고른 횟수)."""
    special = tokens < len(data.SPECIAL_TOKENS)                               # (N, T)
    ordinary = (~special).sum()
    rows, per_sentence, per_position, selected_special = [], [], [], 0
    for seed in seeds:
        inputs, labels = data.mlm_mask(tokens, vocab_size, seed=seed)
        chosen = labels != -100                                               # (N, T)
        selected_special += int((chosen & special).sum())
        n = int(chosen.sum())
        masked = int((chosen & (inputs == data.MASK_ID)).sum())
        same = int((chosen & (inputs == tokens)).sum())
        rows.append([n / int(ordinary), masked / n, (n - masked - same) / n, same / n])
        per_sentence.append((chosen.sum(1).float() / (~special).sum(1).clamp_min(1).float()).numpy())
        per_position.append((chosen.sum(0).float() / (~special).sum(0).clamp_min(1).float()).numpy())
    return np.array(rows), per_sentence, per_position, selected_special


def fig_mlm_masking_distribution(pairs=None, vocab_size=1000, seeds=range(10), num_sentences=2000):
    """MLM 마스킹의 측정값: 고른 비율, [MASK]/무작위/그대로 비율, 문장별·위치별 비율."""
    pairs = (demo_pairs() if pairs is None else pairs)[:num_sentences]
    bpe = data.train_bpe([s for pair in pairs for s in pair], vocab_size)
    _, tgt_in, tgt_out = data.collate([([], bpe.encode(en)) for en, _ in pairs])   # [BOS] 문장 / 문장 [EOS]
    tokens = torch.cat([tgt_in[:, :1], tgt_out], dim=1)                       # (N, T) [BOS] 문장 [EOS] [PAD]…
    rows, per_sentence, per_position, selected_special = _mlm_counts(tokens, len(bpe), seeds)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    names = ["selected\n(of ordinary tokens)", "[MASK]\n(of selected)", "random token\n(of selected)",
             "unchanged\n(of selected)"]
    pos = np.arange(4)
    axes[0].bar(pos - 0.2, [0.15, 0.8, 0.1, 0.1], 0.4, label="BERT recipe", color="lightgray")
    axes[0].bar(pos + 0.2, rows.mean(0), 0.4, yerr=rows.std(0), label=f"measured ({len(rows)} seeds)")
    for i, v in enumerate(rows.mean(0)):
        axes[0].text(i + 0.2, v + 0.02, f"{v:.1%}", ha="center", fontsize=8)
    axes[0].set_xticks(pos, names, fontsize=8)
    axes[0].set(ylim=(0, 1), xlabel="what is counted", ylabel="fraction", title="15% selected, then 80/10/10")
    axes[1].hist(np.concatenate(per_sentence), bins=np.linspace(0, 0.6, 31), color="tab:green")
    axes[1].axvline(0.15, color="k", ls="--", label="15%")
    axes[1].set(xlabel="fraction of a sentence's tokens selected", ylabel="sentences × seeds",
                title="Per-sentence masking rate")
    keep = (tokens >= len(data.SPECIAL_TOKENS)).sum(0).numpy() >= 50       # 보통 토큰이 50개 이상인 위치
    axes[2].plot(np.arange(tokens.size(1))[keep], np.mean(per_position, 0)[keep], "o-")
    axes[2].axhline(0.15, color="k", ls="--", label="15%")
    axes[2].set(ylim=(0, 0.3), xlabel="position in the sequence ([BOS] = 0)", ylabel="selected fraction",
                title="Selection rate by position (positions with >= 50 tokens)")
    length = int((tokens[0] != data.PAD_ID).sum())
    shown = [" ".join(display_tokens(bpe, t[0, :length].tolist()))
             for t in (tokens, data.mlm_mask(tokens[:1], len(bpe), seed=0)[0])]
    fig.text(0.01, 0.005, f"example  original: {shown[0]}\n              masked:  {shown[1]}", fontsize=8,
             family="monospace", va="bottom")
    numbers = {f"{k}_fraction": float(rows[:, i].mean())
               for i, k in enumerate(("selected", "mask", "random", "unchanged"))}
    numbers.update(special_tokens_selected=selected_special, sentences=len(pairs), seeds=len(rows))
    fig = _finish(fig, numbers, "BERT-style MLM masking measured (data.mlm_mask on demo English sentences)", tidy=axes)
    fig.subplots_adjust(bottom=0.27)
    return fig


# ══════ 8. 짧은 실제 학습 (train.Trainer): 학습 곡선과 워밍업 비교 ══════
# 옛 리포트의 "학습 시뮬레이션"은 꾸며 낸 곡선이었다. 여기서는 train.Trainer 로 데모 코퍼스에서 작은 모델을 실제로
# 몇십~몇백 업데이트 학습하며 업데이트마다 손실(라벨 스무딩), 기울기 노름(클리핑 전), 학습률을 잰다 (임시 런 디렉터리).
def short_run_config(seed=0):
    """짧은 실제 학습의 기본 설정: tiny 프리셋을 조금 키운 것 (데모 코퍼스 2,000 쌍, CPU 에서 몇 초).

    >>> cfg = short_run_config()
    >>> cfg.corpus, cfg.d_model, cfg.num_layers, cfg.warmup
    ('demo', 64, 2, 50)
    """
    return train.preset_config("tiny").replace(
        train_pairs=2000, valid_pairs=16, test_pairs=16, vocab_size=300, d_model=64, num_heads=4,
        num_layers=2, d_ff=128, dropout=0.0, max_tokens=1024, warmup=50, lr_factor=0.35, seed=seed,
        device="cpu", amp="off")


def short_run(cfg, steps):
    """train.Trainer 로 업데이트를 steps 번 하고, 업데이트마다 잰 값을 돌려준다 (로그는 버린다).

    반환 dict: loss, grad_norm, lr, tokens (업데이트마다 하나씩), seconds. 손실이 유한하지 않은
    업데이트는 train.py 처럼 건너뛰고(파라미터를 바꾸지 않음) NaN 으로 적는다.
    """
    record = {"loss": [], "grad_norm": [], "lr": [], "tokens": [], "seconds": 0.0}
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = train.Trainer(cfg.replace(max_steps=steps, run_dir=run_dir), log=lambda *args, **kwargs: None)
        start = time.time()
        for _ in range(steps):
            record["lr"].append(trainer.optimizer.param_groups[0]["lr"])
            loss, tokens, result = trainer.train_step(trainer.next_update_batches())
            applied = result == "applied"
            record["loss"].append(loss if applied else float("nan"))
            record["grad_norm"].append(_grad_norm(trainer.model.parameters()) if applied else float("nan"))
            record["tokens"].append(tokens)
        record["seconds"] = time.time() - start
    return record


def _moving_average(values, window):
    """앞쪽 window 개의 평균 (NaN 은 건너뜀)."""
    values = np.asarray(values, dtype=float)
    chunks = [values[max(0, i - window + 1):i + 1] for i in range(len(values))]
    return np.array([c[np.isfinite(c)].mean() if np.isfinite(c).any() else np.nan for c in chunks])


def fig_training_simulation(cfg=None, steps=200):
    """실제 짧은 학습: 업데이트마다 손실, 기울기 노름, 학습률."""
    cfg = short_run_config() if cfg is None else cfg
    record = short_run(cfg, steps)
    x, loss = np.arange(1, steps + 1), np.asarray(record["loss"])
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    axes[0].plot(x, loss, alpha=0.4, label="per update")
    axes[0].plot(x, _moving_average(loss, 10), lw=2, label="moving average (10)")
    axes[0].set(xlabel="update step", ylabel=f"label-smoothed loss (ε={cfg.label_smoothing})", title="Training loss")
    axes[1].plot(x, record["grad_norm"], color="tab:red")
    axes[1].set(yscale="log", xlabel="update step", ylabel="global gradient norm (before clipping)",
                title="Gradient norm")
    axes[2].plot(x, record["lr"], color="tab:green")
    axes[2].axvline(cfg.warmup, color="gray", ls=":", label=f"warmup = {cfg.warmup}")
    axes[2].set(xlabel="update step", ylabel="learning rate", title="Learning rate (paper schedule)")
    peak_step, peak_lr = _peak(np.asarray(record["lr"]))
    numbers = {"steps": steps, "loss_first": float(loss[0]), "loss_last10_mean": float(np.nanmean(loss[-10:])),
               "grad_norm_median": float(np.nanmedian(record["grad_norm"])),
               "grad_norm_max": float(np.nanmax(record["grad_norm"])), "peak_lr": peak_lr, "peak_lr_step": peak_step,
               "seconds": record["seconds"], "tokens_per_s": sum(record["tokens"]) / max(record["seconds"], 1e-9),
               "skipped_updates": int(np.isnan(loss).sum())}
    return _finish(fig, numbers, f"A real short run with train.Trainer (demo corpus, d_model={cfg.d_model}, "
                                 f"{cfg.num_layers}+{cfg.num_layers} layers, {steps} updates)", tidy=axes,
                   legend=(0, 2))                                    # 가운데 패널(기울기 노름)에는 범례가 없다


# §5.3 "We used warmup_steps = 4000." 워밍업 길이만 바꿔 같은 짧은 학습을 여러 번 한다.
# 기본(peak_lr=None)은 train.py 그대로의 논문 식이라, 워밍업이 짧을수록 최고 학습률도 커진다
# (peak = lr_factor · d_model^-0.5 · warmup^-0.5; `python train.py --warmup N` 과 같은 일).
# peak_lr 를 주면 lr_factor 를 조절해 모든 런의 최고 학습률을 같게 둔다 (워밍업 길이만의 효과).
def fig_warmup_comparison(cfg=None, warmups=(1, 10, 40, 120), steps=150, peak_lr=None):
    """워밍업 길이별 학습률(논문 식)과 실제 짧은 학습의 손실."""
    base = short_run_config() if cfg is None else cfg
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5), gridspec_kw={"width_ratios": [1.2, 1.6, 1]})
    x = np.arange(1, steps + 1)
    numbers = {}
    for warmup in warmups:
        factor = base.lr_factor if peak_lr is None else peak_lr * math.sqrt(base.d_model) * math.sqrt(warmup)
        record = short_run(base.replace(warmup=warmup, lr_factor=factor), steps)
        loss = np.asarray(record["loss"])
        axes[0].plot(x, record["lr"], label=f"warmup {warmup}")
        axes[1].plot(x, _moving_average(loss, 5), label=f"warmup {warmup}")
        numbers[f"warmup_{warmup}"] = {"loss_last10_mean": float(np.nanmean(loss[-10:])),
                                       "loss_max": float(np.nanmax(loss)), "skipped_updates": int(np.isnan(loss).sum()),
                                       "peak_lr": float(max(record["lr"]))}
    axes[2].bar(range(len(numbers)), [n["loss_last10_mean"] for n in numbers.values()],
                color=[f"C{i}" for i in range(len(numbers))])
    axes[2].set_xticks(range(len(numbers)), [n.replace("_", " ") for n in numbers])
    setting = f"lr_factor {base.lr_factor:g}" if peak_lr is None else f"same peak {peak_lr:g}"
    axes[0].set(yscale="log", xlabel="update step", ylabel="learning rate (log)", title=f"Paper schedule ({setting})")
    axes[1].set(xlabel="update step", ylabel="label-smoothed loss (moving average 5)", title="Loss of real short runs")
    axes[2].set(xlabel="run", ylabel="mean loss over the last 10 updates", title=f"Loss after {steps} updates")
    return _finish(fig, numbers, f"Warmup length compared on real runs (train.Trainer, d_model={base.d_model}, "
                                 f"{base.num_layers}+{base.num_layers} layers, Post-LN)", tidy=axes, legend=(0, 1))


# ══════ 9. 학습 런의 그림: metrics.csv 의 열들 (``python plots.py --run 런디렉터리``) ══════
def read_run_metrics(run_dir):
    """런 디렉터리의 metrics.csv → 열 이름별 목록 (빈 칸은 None)."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"'{path}' 가 없습니다: 학습 런 디렉터리를 주세요.")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r[k] not in ("", None) else None for r in rows] for k in (rows[0] if rows else ())}


def _points(metrics, key):
    """metrics 의 (step, 값) 중 값이 있는 것만: (x 목록, y 목록)."""
    pairs = [(s, v) for s, v in zip(metrics["step"], metrics.get(key, [])) if v is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _plot_columns(ax, metrics, labels, xlabel="update step", ylabel=None, title=None, marker_below=30):
    """metrics 의 열들(labels: {열: 범례 이름})을 선으로 (점이 적으면 표시도). 반환: {그린 열: y 목록}."""
    drawn = {}
    for key, label in labels.items():
        x, y = _points(metrics, key)
        if x:
            ax.plot(x, y, marker="o" if len(x) < marker_below else None, label=label)
            drawn[key] = y
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    return drawn


def _metric_panels(metrics, panels, figsize, xlabel="update step", best=False):
    """패널마다 (열 {이름: 범례}, y 축 이름, 제목) 을 나란히 그리고, 열마다 마지막 값(best 면 가장 좋은 값도)을 잰다.
    반환: (fig, 잰 숫자, train_loss 가 있는 마지막 x (없으면 0))."""
    fig, axes = plt.subplots(1, len(panels), figsize=figsize)
    numbers = {}
    for ax, (labels, ylabel, title) in zip(axes, panels):
        for key, y in _plot_columns(ax, metrics, labels, xlabel, ylabel, title, marker_below=40).items():
            numbers[f"{key}_final"] = y[-1]
            if best:
                numbers[f"{key}_best"] = min(y) if "loss" in key else max(y)
        ax.legend(fontsize=8)
    x, _ = _points(metrics, "train_loss")
    return fig, numbers, x[-1] if x else 0


_LOSS_LABELS = {"train_loss": "train (label-smoothed)", "valid_loss": "valid (cross-entropy)"}


def fig_loss_curves(metrics):
    """학습 손실(라벨 스무딩 포함)과 검증 손실(스무딩 없는 교차 엔트로피)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    _plot_columns(ax, metrics, _LOSS_LABELS, ylabel="loss per token", title="Loss curves")
    ax.legend()
    return _finish(fig, {})


def fig_learning_rate(metrics):
    """스텝별 학습률 (워밍업 뒤 역제곱근 감소가 보여야 한다)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    _plot_columns(ax, metrics, {"lr": "lr"}, ylabel="learning rate", title="Learning rate schedule", marker_below=0)
    x, y = _points(metrics, "lr")
    if y:
        peak = int(np.argmax(y))                                          # 처음 나온 최고점
        ax.annotate(f"peak {y[peak]:.2e} @ step {x[peak]:.0f}", (x[peak], y[peak]), textcoords="offset points",
                    xytext=(10, -15))
    return _finish(fig, {})


def fig_training_dashboard(metrics):
    """손실, 학습률, 토큰 정확도, BLEU, 처리량을 한 장에."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, keys, title in ((axes[0, 0], ("train_loss", "valid_loss"), "loss"), (axes[0, 1], ("lr",), "learning rate"),
                            (axes[1, 0], ("token_accuracy",), "valid token accuracy"),
                            (axes[1, 1], ("bleu",), "valid greedy BLEU")):
        _plot_columns(ax, metrics, {k: k for k in keys}, title=title)
    axes[0, 0].legend()
    _, y = _points(metrics, "tokens_per_s")
    if y:
        axes[0, 1].text(0.98, 0.95, f"median {sorted(y)[len(y) // 2]:,.0f} tokens/s", transform=axes[0, 1].transAxes,
                        ha="right", va="top")
    return _finish(fig, {}, "Training dashboard")


def save_run_figures(run_dir):
    """학습 런의 그림 세 장(loss_curves, learning_rate, training_dashboard)을 그 디렉터리에 쓴다."""
    metrics, paths = read_run_metrics(run_dir), []
    for make in (fig_loss_curves, fig_learning_rate, fig_training_dashboard):
        fig = make(metrics)
        paths.append(os.path.join(run_dir, make.__name__[len("fig_"):] + ".png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


# ══════ 10. 학습된 모델의 그림 (model.record_attention / record_contributions) ══════
# 학습된 데모 모델: ``python train.py`` 가 남긴 가장 최근의 데모 런(train.find_latest_run). 없으면 plots.py 가
# 짧은 데모 학습(plots_demo_config)을 ``outputs/training/plots_demo`` 에 돌리고 다음부터 같은 설정이면 재사용한다
# (이름이 ``demo_`` 로 시작하지 않아 train.py 의 런으로 오인되지 않는다). 체크포인트 읽기는 train.load_run.
@dataclasses.dataclass
class TrainedRun:
    """학습된 모델과 그림에 필요한 것: 검증 문장(id 와 텍스트), metrics.csv 의 열, 런 디렉터리."""
    model: nn.Module
    bpe: object
    valid: list
    valid_text: list
    metrics: dict
    run_dir: str = ""


def plots_demo_config(run_dir=os.path.join("outputs", "training", "plots_demo"), seed=0):
    """데모 런이 없을 때 plots.py 가 직접 돌리는 짧은 데모 학습의 설정 (2코어 CPU 에서 1분 남짓).

    >>> cfg = plots_demo_config()
    >>> cfg.preset, cfg.corpus, cfg.max_steps > cfg.warmup
    ('demo', 'demo', True)
    """
    return train.preset_config("demo").replace(
        run_dir=run_dir, seed=seed, train_pairs=20000, valid_pairs=200, test_pairs=50, vocab_size=500,
        d_model=128, num_heads=4, num_layers=2, d_ff=256, warmup=100, max_steps=400, lr_factor=0.5,
        max_tokens=2048, log_every=25, eval_every=100, eval_bleu_sentences=50, save_every=400,
        keep_checkpoints=1, average_last=1, device="cpu", amp="off")


def load_trained_run(run_dir, num_valid=200):
    """데모 런 디렉터리 → TrainedRun (모델은 train.load_run 으로: 평균 체크포인트가 있으면 그것)."""
    run = train.load_run(run_dir)
    cfg = run.cfg
    if cfg.corpus != "demo":
        raise ValueError(f"'{run_dir}' 는 데모 코퍼스 런이 아닙니다 (corpus={cfg.corpus}): 데모 런을 주세요.")
    valid_text = list(data.demo_splits(num_train=cfg.train_pairs, num_valid=cfg.valid_pairs, num_test=cfg.test_pairs,
                                       seed=cfg.seed)["valid"][:num_valid])
    return TrainedRun(run.model, run.bpe, _encode_pairs(run.bpe, valid_text), valid_text,
                      read_run_metrics(run_dir), run_dir)


def _finished(cfg):
    """cfg.run_dir 에 같은 설정으로 끝까지 학습한 체크포인트가 있나."""
    path = os.path.join(cfg.run_dir, "checkpoint_last.pt")
    if not os.path.isfile(path):
        return False
    try:
        state = train.load_checkpoint(path)
    except ValueError:                                   # 손상된 체크포인트: 다시 학습한다
        return False
    saved, wanted = ({k: v for k, v in c.items() if k not in ("run_dir", "resume")}
                     for c in (state["config"], dataclasses.asdict(cfg)))
    return state["step"] == cfg.max_steps and saved == wanted


def trained_demo(root=os.path.join("outputs", "training"), cfg=None, log=print):
    """학습된 데모 모델: 가장 최근의 데모 런, 없으면 plots.py 자신의 짧은 데모 학습."""
    run = train.find_latest_run(root, preset="demo")
    if run is not None:
        log(f"학습된 모델: {run} (가장 최근의 데모 런)")
        return load_trained_run(run)
    cfg = plots_demo_config(os.path.join(root, "plots_demo")) if cfg is None else cfg
    if _finished(cfg):
        log(f"학습된 모델: {cfg.run_dir} (plots.py 의 짧은 데모 학습, 재사용)")
        return load_trained_run(cfg.run_dir)
    log(f"데모 런이 없어 짧은 데모 학습을 합니다: {cfg.run_dir} ({cfg.max_steps} 업데이트)")
    # 설정이 다르거나 끝나지 않은 예전 시도의 파일을 지운다 (bpe.txt 가 남으면 Trainer 가 다시 쓴다)
    stale = [os.path.join(cfg.run_dir, n) for n in ("metrics.csv", "checkpoint_last.pt", "bpe.txt")]
    for path in stale + train.step_checkpoints(cfg.run_dir):
        if os.path.exists(path):
            os.remove(path)
    train.Trainer(cfg, log=log).train()
    save_run_figures(cfg.run_dir)
    return load_trained_run(cfg.run_dir)


# ---- 문장 고르기, 어텐션 지도, 어텐션 칸 그림 -------------------------------------------
def _pick_example(trained, max_len=14):
    """그림에 쓸 검증 문장 번호: 어순이 바뀌는(data.needs_reordering) 짧은 문장을 먼저 고른다."""
    short = [i for i, (s, t) in enumerate(trained.valid) if len(s) < max_len and len(t) < max_len + 2]
    return next((i for i in short if data.needs_reordering(trained.valid_text[i][0])), short[0] if short else 0)


@torch.no_grad()
def _attention_maps(trained, indices):
    """교사 강요(정답 번역을 디코더 입력으로)로 한 번 순전파하며 모든 어텐션 가중치를 모은다."""
    src, tgt_in, _ = data.collate([trained.valid[i] for i in indices])   # 각 (B, T), 오른쪽 패딩
    trained.model.eval()
    with tfm.record_attention(trained.model) as maps:
        trained.model(src, tgt_in)
    return src, tgt_in, {name: found[0] for name, found in maps.items()}   # 각 (B, h, T_q, T_k)


def _sentence_maps(trained, index):
    """검증 문장 하나(index 가 없으면 _pick_example)의 번호, 어텐션 지도, 눈금 라벨 {"source", "target input"}."""
    i = _pick_example(trained) if index is None else index
    src, tgt_in, maps = _attention_maps(trained, [i])
    labels = {"source": display_tokens(trained.bpe, src[0].tolist()),
              "target input": display_tokens(trained.bpe, tgt_in[0].tolist())}
    return i, {name: w[0] for name, w in maps.items()}, labels             # 각 (h, T_q, T_k)


def _entropy(weights):
    """어텐션 분포의 평균 엔트로피 (nats), 가려져 0 인 칸은 빼고."""
    return float(-(weights * weights.clamp_min(1e-12).log()).sum(-1).mean())


def _panel(weights, title, labels, query, key="source"):
    """어텐션 칸 그림 한 칸: (가중치 (T_q, T_k), 제목, 키 눈금, 쿼리 눈금, x 축 이름, y 축 이름)."""
    return weights, title, labels[key], labels[query], f"key ({key})", f"query ({query})"


def _attention_grid(panels, figsize, numbers, title, fontsize=10):
    """어텐션 그림 다섯 장의 틀: panels[행][열] = _panel(...) 의 칸 그림 격자, 함께 쓰는 색 막대 (0..1), 제목."""
    fig, axes = plt.subplots(len(panels), len(panels[0]), figsize=figsize, squeeze=False, layout="constrained")
    for r, row in enumerate(panels):
        for c, (weights, name, xlabels, ylabels, xlabel, ylabel) in enumerate(row):
            image = _heatmap(axes[r, c], weights, name, xlabels, ylabels, vmin=0, vmax=1, xlabel=xlabel,
                             ylabel=ylabel, fontsize=fontsize)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    return _finish(fig, numbers, title)


def _trained_title(trained, what):
    """그림 제목: 무엇을 그렸나 + 어느 학습된 모델(크기, 층 수, 런 이름)인가."""
    net = trained.model
    return (f"{what}\ntrained demo model: d_model={net.encoder.layers[0].self_attn.w_q.in_features}, "
            f"{len(net.encoder.layers)}+{len(net.decoder.layers)} layers, "
            f"run {os.path.basename(trained.run_dir) or '(in memory)'}")


# ---- 어텐션 그림 다섯 장 --------------------------------------------------------------
def fig_attention_patterns(trained=None, index=None):
    """학습된 모델의 헤드별 어텐션: 첫·마지막 인코더 층 셀프 어텐션, 마지막 디코더 층 교차 어텐션."""
    trained = trained_demo() if trained is None else trained
    i, maps, labels = _sentence_maps(trained, index)
    last = len(trained.model.encoder.layers) - 1
    rows = (("encoder.layers.0.self_attn", "encoder layer 1 self", "source"),
            (f"encoder.layers.{last}.self_attn", f"encoder layer {last + 1} self", "source"),
            (f"decoder.layers.{last}.cross_attn", f"decoder layer {last + 1} cross", "target input"))
    numbers, panels = {"sentence": trained.valid_text[i][0]}, []
    for name, label, query in rows:
        entropies = [_entropy(w) for w in maps[name]]                       # 헤드마다
        numbers[label.replace(" ", "_") + "_entropy_per_head"] = entropies
        panels.append([_panel(w, f"{label}, head {h + 1} (H={e:.2f})", labels, query)
                       for h, (w, e) in enumerate(zip(maps[name], entropies))])
    return _attention_grid(panels, (3.6 * len(panels[0]) + 1, 3.5 * len(rows)), numbers,
                           _trained_title(trained, "Attention per head on a validation sentence"), fontsize=9)


def fig_encoder_attention_patterns(trained=None, indices=None):
    """인코더 셀프 어텐션(헤드 평균)을 층마다, 짧은 문장이 패딩된 배치에서: [PAD] 열은 0."""
    trained = trained_demo() if trained is None else trained
    if indices is None:          # 앞 100 문장에서 긴 문장(14 토큰 이하 중 가장 긴 것)과, 그 60% 쯤 되어 패딩이 붙는 문장
        lengths = [len(s) for s, _ in trained.valid[:100]]
        long_i = max(range(len(lengths)), key=lambda j: (lengths[j] <= 14, lengths[j]))
        indices = [long_i, min(range(len(lengths)), key=lambda j: abs(lengths[j] - 0.6 * lengths[long_i]))]
    src, _, maps = _attention_maps(trained, indices)
    pad = src == data.PAD_ID                                                 # (B, S)
    labels = [display_tokens(trained.bpe, row.tolist()) for row in src]
    numbers = {"pad_column_weight_max": 0.0, "entropy_per_layer": [], "self_weight_per_layer": []}
    panels = [[] for _ in indices]
    for layer in range(len(trained.model.encoder.layers)):
        w = maps[f"encoder.layers.{layer}.self_attn"].mean(1)                # (B, S, S) 헤드 평균
        if pad.any():
            numbers["pad_column_weight_max"] = max(numbers["pad_column_weight_max"],
                                                   float(w.masked_select(pad[:, None, :].expand_as(w)).max()))
        numbers["entropy_per_layer"].append(_entropy(w[~pad]))
        numbers["self_weight_per_layer"].append(float(w.diagonal(dim1=1, dim2=2)[~pad].mean()))
        for row, panel_row in enumerate(panels):
            panel_row.append((w[row], f"layer {layer + 1}, sentence {row + 1} ({int(pad[row].sum())} [PAD])",
                              labels[row], labels[row], "key position", "query position"))
    return _attention_grid(panels, (4.6 * len(panels[0]) + 1, 4.2 * len(indices)), numbers,
                           _trained_title(trained, "Encoder self-attention per layer (head average)"))


def fig_decoder_attention_patterns(trained=None, index=None):
    """디코더 층마다 셀프 어텐션(가려진 미래 = 0)과 교차 어텐션(인코더 출력), 헤드 평균."""
    trained = trained_demo() if trained is None else trained
    i, maps, labels = _sentence_maps(trained, index)
    n = len(trained.model.decoder.layers)
    future = torch.ones(len(labels["target input"]), len(labels["target input"]), dtype=torch.bool).triu(1)
    numbers = {"sentence": trained.valid_text[i][0], "reference": trained.valid_text[i][1],
               "future_weight_max": 0.0, "cross_argmax_source_per_layer": []}
    panels = [[], []]
    for layer in range(n):
        self_w = maps[f"decoder.layers.{layer}.self_attn"].mean(0)          # (T, T)
        cross_w = maps[f"decoder.layers.{layer}.cross_attn"].mean(0)        # (T, S)
        numbers["future_weight_max"] = max(numbers["future_weight_max"], float(self_w[future].max()))
        numbers["cross_argmax_source_per_layer"].append(cross_w.argmax(-1).tolist())
        panels[0].append(_panel(self_w, f"layer {layer + 1} self-attention (masked)", labels, "target input",
                                "target input"))
        panels[1].append(_panel(cross_w, f"layer {layer + 1} cross-attention", labels, "target input"))
    return _attention_grid(panels, (4.8 * n + 1, 8.4), numbers,
                           _trained_title(trained, "Decoder attention per layer (head average, teacher forcing)"))


def fig_generation_attention(trained=None, index=None):
    """실제 그리디 번역의 단계마다 교차 어텐션 (층마다, 헤드 평균): 어느 원문 토큰을 보며 무엇을 냈나."""
    trained = trained_demo() if trained is None else trained
    i = _pick_example(trained) if index is None else index
    src, _, _ = data.collate([trained.valid[i]])                           # (1, S)
    trained.model.eval()
    with tfm.record_attention(trained.model) as maps:
        hyp = tfm.greedy_decode(trained.model, src, data.BOS_ID, data.EOS_ID)[0]
    n = len(trained.model.decoder.layers)
    # 캐시 디코딩: 층마다 단계별 (1, h, 1, S) 가 쌓인다 → (steps, S), 헤드 평균
    steps = [torch.cat(maps[f"decoder.layers.{layer}.cross_attn"], dim=2)[0].mean(0) for layer in range(n)]
    produced = (hyp + [data.EOS_ID])[:steps[0].size(0)]
    src_labels = display_tokens(trained.bpe, src[0].tolist())
    out_labels = [f"{t + 1}: {tok}" for t, tok in enumerate(display_tokens(trained.bpe, produced))]
    panels = [[(steps[layer], f"decoder layer {layer + 1}", src_labels, out_labels, "source token (encoder output)",
                "generation step: token produced") for layer in range(n)]]
    translation = trained.bpe.decode(hyp)
    en, de = trained.valid_text[i]
    numbers = {"source": en, "reference": de, "translation": translation, "exact_match": translation == de,
               "steps": len(produced), "argmax_source_last_layer": steps[-1].argmax(-1).tolist()}
    fig = _attention_grid(panels, (5.2 * n + 1, 0.32 * len(produced) + 4.2), numbers,
                          _trained_title(trained, "Cross-attention at each step of a greedy translation"), fontsize=11)
    fig.supxlabel(f"EN: {en}\nREF: {de}\nOUT: {translation}", fontsize=10, x=0.02, ha="left")
    return fig


def fig_transformer_attention_all(trained=None, index=None):
    """인코더 셀프, 디코더 셀프, 교차 어텐션을 나란히 (첫 층과 마지막 층, 헤드 평균)."""
    trained = trained_demo() if trained is None else trained
    i, maps, labels = _sentence_maps(trained, index)
    kinds = (("encoder", "self_attn", "encoder self-attention (both directions)", "source", "source"),
             ("decoder", "self_attn", "decoder self-attention (causal)", "target input", "target input"),
             ("decoder", "cross_attn", "cross-attention (source-target alignment)", "target input", "source"))
    numbers, panels = {"sentence": trained.valid_text[i][0]}, []
    for layer in sorted({0, len(trained.model.encoder.layers) - 1}):
        panels.append([])
        for stack, kind, title, query, key in kinds:
            w = maps[f"{stack}.layers.{layer}.{kind}"].mean(0)               # (T_q, T_k) 헤드 평균
            panels[-1].append(_panel(w, f"layer {layer + 1}: {title}", labels, query, key))
            numbers[f"layer{layer + 1}_{stack}_{kind}_entropy"] = _entropy(w)
    return _attention_grid(panels, (16, 4.8 * len(panels)), numbers,
                           _trained_title(trained, "All three attentions of the Transformer"))


# ---- 층의 기여도, 런의 지표, 혼동 행렬 ------------------------------------------------------
def _contribution_bars(trained, num_sentences, stack, parts, figsize, note=""):
    """검증 문장 num_sentences 개로 층·부분층 기여도(model.record_contributions)를 재어 층마다 나란한 막대로.
    parts = {이름 끝 ("" = 층 전체, ".sub_attn" 등 부분층): 라벨}. 반환: (fig, {라벨: 층별 값})."""
    count = min(num_sentences, len(trained.valid))
    src, tgt_in, _ = data.collate(trained.valid[:count])                 # 각 (B, T)
    trained.model.eval()
    with torch.no_grad(), tfm.record_contributions(trained.model) as found:
        trained.model(src, tgt_in)
    n = len(getattr(trained.model, stack).layers)
    series = {label: [found[f"{stack}.layers.{i}{part}"][0] for i in range(n)] for part, label in parts.items()}
    fig, ax = plt.subplots(figsize=figsize)
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):                 # 층마다 나란한 막대, 값은 막대 위에
        pos = np.arange(n) + (k - (len(series) - 1) / 2) * width
        ax.bar(pos, values, width, label=label)
        for p, v in zip(pos, values):
            ax.text(p, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(n), [f"layer {i + 1}" for i in range(n)])
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, ncol=2, loc="upper center")
    ax.set(ylim=(0, 1.3 * max(max(v) for v in series.values())),     # 범례 자리를 위에 남긴다
           xlabel=f"{stack} layer", ylabel="relative size (Frobenius norms over the batch)",
           title=f"{count} validation sentences{note}")
    return fig, series


_WHOLE_LAYER = "whole layer: ‖out − in‖ / ‖in‖"


def fig_encoder_layer_contributions(trained=None, num_sentences=100):
    """인코더 층마다 ‖출력 − 입력‖/‖입력‖ 과 두 부분층 가지의 상대 크기 (model.record_contributions)."""
    trained = trained_demo() if trained is None else trained
    parts = {"": _WHOLE_LAYER, ".sub_attn": "self-attention branch / residual input",
             ".sub_ffn": "FFN branch / residual input"}
    fig, series = _contribution_bars(trained, num_sentences, "encoder", parts, (9, 4.6))
    numbers = dict(zip(("layer_change", "self_attention_branch", "ffn_branch"), series.values()))
    return _finish(fig, numbers, _trained_title(trained, "How much each encoder layer changes the representation"))


def fig_decoder_layer_contributions(trained=None, num_sentences=100):
    """디코더 층마다 세 부분층(셀프, 교차, FFN) 가지의 상대 크기와 층 전체의 변화."""
    trained = trained_demo() if trained is None else trained
    names = {".sub_self": "self-attention", ".sub_cross": "cross-attention", ".sub_ffn": "FFN"}
    parts = {**{part: f"{label} branch / residual input" for part, label in names.items()}, "": _WHOLE_LAYER}
    fig, series = _contribution_bars(trained, num_sentences, "decoder", parts, (10, 4.6), ", teacher forcing")
    per_layer = {label: series[parts[part]] for part, label in names.items()}
    means = {label: float(np.mean(values)) for label, values in per_layer.items()}
    numbers = {f"{label}_per_layer": values for label, values in per_layer.items()}
    numbers.update(layer_change=series[_WHOLE_LAYER], mean_by_sublayer=means,
                   order=" > ".join(sorted(means, key=means.get, reverse=True)))
    return _finish(fig, numbers, _trained_title(trained, "Decoder sublayer contributions"))


def fig_metric_comparison(metrics=None, source=""):
    """실제 학습 런의 metrics.csv: 학습·검증 손실, 검증 토큰 정확도, 검증 그리디 BLEU. source = 런 이름."""
    if metrics is None:
        trained = trained_demo()
        metrics, source = trained.metrics, os.path.basename(trained.run_dir)
    fig, numbers, steps = _metric_panels(metrics, (
        (_LOSS_LABELS, "loss per token", "Loss"),
        ({"token_accuracy": "valid token accuracy"}, "accuracy", "Token accuracy (teacher forcing)"),
        ({"bleu": "valid greedy BLEU"}, "BLEU (0-100, sacreBLEU definition)", "BLEU")), (17, 4.5), best=True)
    numbers["steps"] = steps
    return _finish(fig, numbers, f"Metrics of a real demo training run ({source or 'metrics.csv'})")


@torch.no_grad()
def _teacher_forced_tokens(trained, indices, batch_size=64):
    """검증 문장들을 교사 강요로 예측: (정답 토큰, argmax 토큰), 각 (N,) [PAD] 제외."""
    trained.model.eval()
    gold, pred = [], []
    for start in range(0, len(indices), batch_size):
        src, tgt_in, tgt_out = data.collate([trained.valid[i] for i in indices[start:start + batch_size]])
        real = tgt_out != data.PAD_ID
        gold.append(tgt_out[real])
        pred.append(trained.model(src, tgt_in).argmax(-1)[real])
    return torch.cat(gold), torch.cat(pred)


def fig_confusion_matrix(trained=None, top_k=15, num_sentences=200):
    """검증 문장에서 교사 강요로 예측한 토큰 대 정답 토큰 (가장 잦은 정답 top_k 개, 행 정규화)."""
    trained = trained_demo() if trained is None else trained
    indices = list(range(min(num_sentences, len(trained.valid))))
    gold, pred = _teacher_forced_tokens(trained, indices)
    ids, counts = gold.unique(return_counts=True)
    top = ids[counts.argsort(descending=True)[:top_k]]                      # 잦은 순
    index = {int(t): k for k, t in enumerate(top)}
    matrix = np.zeros((len(top), len(top) + 1))                             # 마지막 열 = 그 밖의 토큰
    for g, p in zip(gold.tolist(), pred.tolist()):
        if g in index:
            matrix[index[g], index.get(p, len(top))] += 1
    rows = matrix / matrix.sum(1, keepdims=True)
    labels = display_tokens(trained.bpe, top.tolist())
    fig, ax = plt.subplots(figsize=(10, 8.5))
    image = _heatmap(ax, rows, f"{len(gold)} target tokens from {len(indices)} validation sentences",
                     labels + ["(other)"], labels, cmap="Blues", vmin=0, vmax=1,
                     xlabel="predicted token (argmax)", ylabel="gold token", tick_fontsize=9)
    for (r, c), value in np.ndenumerate(rows):
        if value >= 0.01:
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w" if value > 0.6 else "k")
    fig.colorbar(image, ax=ax, fraction=0.04, label="fraction of the gold token's occurrences")
    off = rows[:, :-1] - np.diag(np.diag(rows[:, :-1]))
    r, c = np.unravel_index(int(np.argmax(off)), off.shape)
    numbers = {"token_accuracy": float((gold == pred).float().mean()),
               "accuracy_on_top_k": float(np.trace(matrix[:, :-1]) / matrix.sum()),
               "most_confused": f"{labels[r]} -> {labels[c]} ({off[r, c]:.2f})" if off[r, c] > 0 else None,
               "to_other_max": float(rows[:, -1].max()), "tokens": len(gold)}
    return _finish(fig, numbers, _trained_title(trained, "Confusion matrix of the most frequent target tokens"))


# 범례에 쓰지 않는 필드: 학습된 모델을 바꾸지 않는 것 (경로, 기록·평가 간격, 스레드 …). save_every 는 평균 창을
# 바꾸므로 범례에 남는다.
_QUIET_FIELDS = ("run_dir", "resume", "threads", "stop_after", "log_every", "eval_every", "device",
                 "eval_bleu_sentences", "keep_checkpoints")


def multi30k_run(run_dir):
    """Multi30k 런 하나 → {"name", "label", "metrics", "test"}. test: 학습 끝의 test_result.json (없으면 None).
    label: 런 이름과, 지금의 multi30k 프리셋과 다른 설정 (같으면 "preset"; 끝나지 않은 런은 checkpoint_last.pt 의 설정)."""
    name, test = os.path.basename(os.path.normpath(run_dir)), None
    path = os.path.join(run_dir, "test_result.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            test = json.load(f)
    label, saved = name, (test or {}).get("config")
    last = os.path.join(run_dir, "checkpoint_last.pt")
    if saved is None and os.path.isfile(last):             # 끝나지 않은 런: 마지막 체크포인트의 설정
        saved = train.load_checkpoint(last)["config"]
    if saved is not None:
        preset = dataclasses.asdict(train.preset_config("multi30k"))
        config = dict(dataclasses.asdict(train.Config()), **saved)    # 옛 런에 없는 필드 = 그때의 기본값
        diff = [f"{k} {config[k]}" for k in preset if k not in _QUIET_FIELDS and config[k] != preset[k]]
        label = f"{name}: {', '.join(diff) if diff else 'preset'}"
    return {"name": name, "label": label, "metrics": read_run_metrics(run_dir), "test": test}


def fig_multi30k_training(runs):
    """실제 문장(Multi30k) 런들: 검증 BLEU(그리디)와 검증 손실을 벽시계 분(metrics.csv 의 elapsed_s)에 대해, 학습 끝의
    테스트 BLEU(빔, 평균 체크포인트)는 별표로. runs: multi30k_run 의 목록 (첫째 = 기준 곡선, 가장 최근 런).
    잰 숫자 "reference": 첫째 런의 평가마다 [분, 스텝, 검증 손실, 검증 BLEU] ("내 런은 정상인가?" 에 쓰는 표)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6))
    numbers = {"runs": []}
    for i, run in enumerate(runs):
        m = run["metrics"]
        rows = [(e / 60, s, loss, b) for s, e, loss, b in zip(m["step"], m.get("elapsed_s", []), m.get("valid_loss", []),
                                                               m.get("bleu", [])) if loss is not None and e is not None]
        color = f"C{i}"
        left.plot([r[0] for r in rows], [r[3] for r in rows], "o-", color=color, label=run["label"])
        right.plot([r[0] for r in rows], [r[2] for r in rows], "o-", color=color, label=run["label"])
        entry = {"label": run["label"], "evals": [list(r) for r in rows]}
        if run["test"] is not None:
            t = run["test"]
            left.plot([t["seconds"] / 60], [t["bleu"]], "*", ms=14, color=color,
                      label=f"test BLEU {t['bleu']:.2f} (lc {t['bleu_lc']:.2f}), beam {t['beam_size']}")
            entry.update(test_bleu=t["bleu"], test_bleu_lc=t["bleu_lc"], minutes=t["seconds"] / 60)
        numbers["runs"].append(entry)
        if i == 0:
            numbers["reference"] = entry["evals"]
    left.set(xlabel="wall-clock minutes (prepare + training + evaluation)", ylabel="BLEU",
             title="Validation BLEU (greedy, eval sentences); star = final test BLEU")
    right.set(xlabel="wall-clock minutes", ylabel="cross-entropy per token",
              title="Validation loss (colours as on the left)")
    return _finish(fig, numbers, "Real text: Multi30k runs on a CPU", tidy=[left, right], legend=[0],
                   fontsize=7)


# ══════ 11. 명령줄: 그림 목록과 main() ══════
# (이름, 함수 fig_<이름>, 입력) — 파일을 읽는 순서. 입력: None = 기본값 그대로, "pairs" = 데모 코퍼스 문장쌍,
# "trained" = 학습된 데모 모델(TrainedRun), "metrics" = 그 런의 metrics.csv,
# "multi30k" = ``python train.py --preset multi30k`` 런들 (가장 최근 4개; 없으면 그 그림은 건너뛴다).
FIGURES = (
    ("token_embedding_analysis", fig_token_embedding_analysis, None),            # 1. embeddings.py
    ("special_token_embeddings", fig_special_token_embeddings, None),
    ("positional_encoding_analysis", fig_positional_encoding_analysis, None),
    ("masking_visualization", fig_masking_visualization, None),                  # 2. attention.py
    ("look_ahead_mask", fig_look_ahead_mask, None),
    ("layer_norm_effects", fig_layer_norm_effects, None),                        # 3. layers.py
    ("ffn_behavior", fig_ffn_behavior, None),
    ("residual_effects", fig_residual_effects, None),
    ("initialization_distributions", fig_initialization_distributions, None),    # 4. model.py 초기화
    ("gradient_flow_initialization", fig_gradient_flow_initialization, None),
    ("lr_scheduler_curves", fig_lr_scheduler_curves, None),                      # 5. schedules.py
    ("transformer_schedule_analysis", fig_transformer_schedule_analysis, None),
    ("onecycle_lr", fig_onecycle_lr, None),
    ("cyclic_lr_warmup", fig_cyclic_lr_warmup, None),
    ("label_smoothing_effect", fig_label_smoothing_effect, None),                # 6. losses.py
    ("focal_loss_weights", fig_focal_loss_weights, None),
    ("tokenizer_length_distribution", fig_tokenizer_length_distribution, "pairs"),   # 7. data.py
    ("dataset_statistics", fig_dataset_statistics, "pairs"),
    ("mlm_masking_distribution", fig_mlm_masking_distribution, "pairs"),
    ("training_simulation", fig_training_simulation, None),                      # 8. train.py: 짧은 학습
    ("warmup_comparison", fig_warmup_comparison, None),
    ("attention_patterns", fig_attention_patterns, "trained"),                   # 9. 학습된 모델
    ("encoder_attention_patterns", fig_encoder_attention_patterns, "trained"),
    ("encoder_layer_contributions", fig_encoder_layer_contributions, "trained"),
    ("decoder_attention_patterns", fig_decoder_attention_patterns, "trained"),
    ("decoder_layer_contributions", fig_decoder_layer_contributions, "trained"),
    ("generation_attention", fig_generation_attention, "trained"),
    ("transformer_attention_all", fig_transformer_attention_all, "trained"),
    ("metric_comparison", fig_metric_comparison, "metrics"),
    ("confusion_matrix", fig_confusion_matrix, "trained"),
    ("multi30k_training", fig_multi30k_training, "multi30k"),
)


def select_figures(only=None):
    """--only 값들(여러 번, 쉼표 구분 가능) → FIGURES 의 항목들 (목록 순서). 모르는 이름은 ValueError.

    >>> [name for name, _, _ in select_figures(["onecycle_lr,look_ahead_mask", "attention_patterns"])]
    ['look_ahead_mask', 'onecycle_lr', 'attention_patterns']
    >>> select_figures(["nope"])
    Traceback (most recent call last):
    ...
    ValueError: 알 수 없는 그림 'nope' 입니다: `python plots.py --list` 로 31개의 이름을 보세요.
    """
    if not only:
        return list(FIGURES)
    wanted = [n.strip() for item in only for n in item.split(",") if n.strip()]
    known = {name for name, _, _ in FIGURES}
    for name in wanted:
        if name not in known:
            raise ValueError(f"알 수 없는 그림 '{name}' 입니다: `python plots.py --list` 로 {len(FIGURES)}개의 이름을 보세요.")
    return [entry for entry in FIGURES if entry[0] in wanted]


def multi30k_runs(training_root, limit=4):
    """training_root 의 Multi30k 런들 (metrics.csv 가 있는 multi30k_* 디렉터리), 가장 최근 것부터 limit 개."""
    found = [os.path.dirname(p) for p in glob.glob(os.path.join(training_root, "multi30k_*", "metrics.csv"))]
    return [multi30k_run(d) for d in sorted(found, key=lambda d: os.path.getmtime(os.path.join(d, "metrics.csv")),
                                            reverse=True)[:limit]]


def _figure_inputs(kinds, training_root, log):
    """그림 입력의 종류마다 넘길 인자 {종류: kwargs}. Multi30k 런이 없으면 "multi30k" 는 빠진다."""
    trained = trained_demo(training_root, log=log) if kinds & {"trained", "metrics"} else None
    inputs = {None: {}, "pairs": {"pairs": demo_pairs() if "pairs" in kinds else None}, "trained": {"trained": trained}}
    if trained is not None:
        inputs["metrics"] = {"metrics": trained.metrics, "source": os.path.basename(trained.run_dir)}
    real = multi30k_runs(training_root) if "multi30k" in kinds else []
    if real:
        inputs["multi30k"] = {"runs": real}
    elif "multi30k" in kinds:
        log(f"{training_root} 에 Multi30k 런이 없어 multi30k_training 그림을 건너뜁니다 (커밋된 그림을 그대로 "
            "둡니다; 다시 그리려면 먼저 `python train.py --preset multi30k`).")
    return inputs


def make_figures(entries, out_dir="outputs", training_root=os.path.join("outputs", "training"), log=print):
    """그림들을 out_dir/<이름>.png 로 쓰고, 그림마다 잰 숫자를 한 줄씩 출력한다. 반환: {이름: 숫자}."""
    os.makedirs(out_dir, exist_ok=True)
    inputs = _figure_inputs({kind for _, _, kind in entries}, training_root, log)
    numbers = {}
    for name, make, kind in entries:
        if kind not in inputs:
            continue
        start = time.time()
        fig = make(**inputs[kind])
        fig.savefig(os.path.join(out_dir, f"{name}.png"), dpi=100)
        plt.close(fig)
        numbers[name] = fig.numbers
        log(f"{name} ({time.time() - start:.1f}s): {json.dumps(_round(fig.numbers), ensure_ascii=False)}")
    path, merged = os.path.join(out_dir, "figure_numbers.json"), {}   # 있던 값에 그림별로 덮어써 합치고,
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            merged = json.load(f)
    merged.update(_round(numbers))
    tmp = f"{path}.tmp-{os.getpid()}"                                   # 임시 파일에 쓴 뒤 이름을 바꾼다
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(merged, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)
    return numbers


def main(argv=None):
    """``python plots.py [--list | --only 이름 … | --run 런디렉터리] [--out 디렉터리]``.

    반환: 그림 모드면 {이름: 잰 숫자}, --list 면 이름 목록, --run 이면 쓴 파일 경로들.
    잘못된 입력은 한 줄 오류와 종료 코드 2.
    """
    parser = argparse.ArgumentParser(description="리포트 그림을 이 프로젝트의 코드로 다시 계산해 그린다.")
    parser.add_argument("--list", action="store_true", help="그림 이름 31개를 출력한다")
    parser.add_argument("--only", action="append", metavar="NAME", help="이 그림만 (여러 번, 쉼표로 구분 가능)")
    parser.add_argument("--run", metavar="RUN_DIR", help="학습 런의 그림 세 장만 다시 그린다")
    parser.add_argument("--out", default="outputs", help="그림을 쓸 디렉터리 (기본 outputs)")
    parser.add_argument("--training-root", default=os.path.join("outputs", "training"),
                        help="학습된 데모 런을 찾을 곳 (기본 outputs/training)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch 스레드 수 (기본 1: 작은 텐서뿐이라 1 이 가장 빠르고, 바쁜 CPU 에서 안전)")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    try:
        if args.list or args.run:
            lines = [name for name, _, _ in FIGURES] if args.list else save_run_figures(args.run)
            print("\n".join(lines))
            return lines
        entries = select_figures(args.only)
        torch.set_num_threads(max(args.threads, 1))
        start = time.time()
        numbers = make_figures(entries, args.out, args.training_root)
        print(f"그림 {len(numbers)}장을 {args.out}/ 에 썼습니다 ({time.time() - start:.1f}초). "
              f"잰 숫자: {os.path.join(args.out, 'figure_numbers.json')}")
        return numbers
    except (ValueError, FileNotFoundError) as exc:
        print(f"오류: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
