"""losses.py — 번역 모델의 손실: 라벨 스무딩 교차 엔트로피 (ε = 0.1), 논문 시대의 KL 형태, focal, MLM.

§5.4 "During training, we employed label smoothing of value ε_ls = 0.1. This hurts perplexity,
as the model learns to be more unsure, but improves accuracy and BLEU score."

공통 규약:
- ``logits`` 는 (N, V) 또는 (B, T, V), ``targets`` 는 (N,) 또는 (B, T) 정수. V = 어휘 크기.
- ``ignore_index`` 인 위치(패딩)는 손실에서 빠지고, 평균은 실제 토큰 수로 나눈다.
  실제 토큰이 하나도 없으면 0 을 돌려준다 (PyTorch 는 0/0 = nan).
- 계산은 항상 float32 로 한다 (fp16/bf16 logits 도 받는다).
- 확률이 정확히 0 인 칸 (logit = −inf) 의 log p = −inf 만 ``LOG_PROB_FLOOR`` 로 바꿔서,
  손실과 기울기가 유한하다. 유한한 log p 는 그대로 쓰므로 보통 입력에서는 값이 똑같다.
- NaN 이나 +inf logit 은 그대로 NaN 손실이 된다: 가중치가 망가진 모델이 작은 유한 손실을
  보고하면 학습 루프가 발산을 알아챌 수 없다.

>>> _ = torch.manual_seed(0); logits = torch.randn(2, 3, 5); targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
>>> loss = label_smoothed_cross_entropy(logits, targets, epsilon=0.1, ignore_index=0)
>>> ref = F.cross_entropy(logits.view(-1, 5), targets.view(-1), label_smoothing=0.1, ignore_index=0)
>>> bool(torch.allclose(loss, ref, atol=1e-6)), loss.shape
(True, torch.Size([]))
"""
import math

import torch
import torch.nn.functional as F

LOG_PROB_FLOOR = -100.0  # log p = −inf (확률 정확히 0) 을 대신하는 값. e^-100 ≈ 3.7e-44


def _real_tokens(logits, targets, ignore_index):
    """(…, V) logits 와 (…) targets 에서 실제 토큰만 골라 (n, V) float32, (n,) 로 편다."""
    if logits.dim() < 2 or logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits 는 (..., V), targets 는 (...) 로 앞쪽 모양이 같아야 합니다(받은 모양 "
                         f"{tuple(logits.shape)}, {tuple(targets.shape)}).")
    vocab = logits.size(-1)
    flat_logits = logits.reshape(-1, vocab).float()  # (N, V)
    flat_targets = targets.reshape(-1)               # (N,)
    rows = (flat_targets != ignore_index).nonzero().squeeze(1)   # (n,) 실제 토큰의 행 번호
    real_targets = flat_targets.index_select(0, rows)            # (n,)
    if real_targets.numel() and (real_targets.min() < 0 or real_targets.max() >= vocab):
        raise ValueError(f"targets 는 ignore_index={ignore_index} 말고는 [0, {vocab}) 안이어야 합니다; "
                         "어휘 크기와 패딩 id 를 확인하세요.")
    # flat_logits[mask] 와 같은 값이다. 다만 불리언 마스크로 고르면 역전파(index_put, 누적)가 CPU 에서 느려
    # (multi30k 스텝의 약 4%), 행 번호로 고른다: index_select 의 역전파는 행을 더하기만 한다 (index_add).
    return flat_logits.index_select(0, rows), real_targets       # (n, V), (n,)


def _safe_log_softmax(logits):
    """log p = logits − logsumexp. −inf (확률 0) 만 LOG_PROB_FLOOR 로 바꾼다 (그 칸의 기울기는 0).

    NaN 과 +inf 는 바꾸지 않는다 (torch.nan_to_num 은 NaN 까지 0 으로 만들어 발산을 숨긴다).

    >>> _safe_log_softmax(torch.tensor([[0.0, float("-inf")], [float("nan"), 0.0]]))
    tensor([[   0., -100.],
            [   nan,    nan]])
    """
    log_p = F.log_softmax(logits, dim=-1)                               # (n, V)
    return torch.where(log_p == float("-inf"), LOG_PROB_FLOOR, log_p)  # (n, V)


def _mean_over(values, reduction="mean"):
    """실제 토큰 평균 ("mean") 또는 합 ("sum"). 토큰이 없으면 0 (기울기 그래프는 유지)."""
    if reduction == "sum":
        return values.sum()
    if reduction != "mean":
        raise ValueError(f"reduction 은 'mean' 또는 'sum' 이어야 합니다(받은 값 {reduction!r}).")
    return values.sum() / max(values.numel(), 1)


# ---------------------------------------------------------------------------
# 1. 라벨 스무딩 교차 엔트로피 (PyTorch 의 label_smoothing 과 같은 정의)
# ---------------------------------------------------------------------------

def smoothed_targets(targets, vocab_size, epsilon=0.1, spread="all"):
    """스무딩된 목표 분포 q 를 만든다 (그림과 설명용). 반환 (…, V), 각 행의 합 = 1.

    spread="all"   : q = (1−ε)·one_hot + ε/V  (정답 칸 포함 V 개에 ε 를 고르게; PyTorch 방식)
    spread="others": 정답 칸 1−ε, 나머지 V−1 칸에 ε/(V−1)  (논문 시대/Annotated Transformer 방식)

    >>> smoothed_targets(torch.tensor([2]), 5, epsilon=0.1)
    tensor([[0.0200, 0.0200, 0.9200, 0.0200, 0.0200]])
    >>> smoothed_targets(torch.tensor([2]), 5, epsilon=0.1, spread="others")
    tensor([[0.0250, 0.0250, 0.9000, 0.0250, 0.0250]])
    """
    one_hot = F.one_hot(targets, vocab_size).float()  # (…, V)
    if spread == "all":
        return (1.0 - epsilon) * one_hot + epsilon / vocab_size
    if spread == "others":
        return (1.0 - epsilon) * one_hot + epsilon / (vocab_size - 1) * (1.0 - one_hot)
    raise ValueError(f"spread 는 'all' 또는 'others' 여야 합니다(받은 값 {spread!r}).")


def label_smoothed_cross_entropy(logits, targets, epsilon=0.1, ignore_index=0, reduction="mean"):
    """§5.4 라벨 스무딩 교차 엔트로피 H(q, p) = −Σ_i q_i log p_i, q = (1−ε)·one_hot + ε/V.

    전개하면 토큰 하나의 손실은
        (1−ε) · (−log p_y)  +  ε · (−(1/V) Σ_i log p_i)
    즉 보통의 NLL 과 "모든 단어에 고르게" 의 평균. 정답에 100% 확신하면 둘째 항이 커져서
    모델이 지나치게 확신하지 않게 된다. ε = 0 이면 보통의 교차 엔트로피.
    F.cross_entropy(..., label_smoothing=ε, ignore_index=pad) 와 같은 값 (테스트가 1e-6 으로 비교).
    reduction="sum" 은 토큰 손실의 합: 그래디언트 누적에서 업데이트 전체의 토큰 수로 나눌 때 쓴다.

    >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]); targets = torch.tensor([0, 0])
    >>> round(label_smoothed_cross_entropy(logits, targets, epsilon=0.0, ignore_index=-100).item(), 4)
    0.6691
    >>> round(label_smoothed_cross_entropy(logits, targets, epsilon=0.0, ignore_index=0).item(), 4)  # 모두 패딩
    0.0
    """
    logits, targets = _real_tokens(logits, targets, ignore_index)      # (n, V), (n,)
    log_p = _safe_log_softmax(logits)                                   # (n, V)
    nll = -log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)          # (n,) −log p_y
    uniform = -log_p.mean(dim=-1)                                       # (n,) −(1/V) Σ log p_i
    return _mean_over((1.0 - epsilon) * nll + epsilon * uniform, reduction)


# ---------------------------------------------------------------------------
# 2. 논문 시대의 변형: ε 를 정답이 아닌 V−1 칸에만, KL 발산 형태
# ---------------------------------------------------------------------------
# 논문과 다른 점 (정확히는 "구현마다 다른 점"): 논문은 ε 를 어디에 나누는지 적지 않았다.
# - PyTorch (label_smoothing=ε, 위 함수): V 칸 모두에 ε/V → 정답 칸 1 − ε + ε/V.
# - tensor2tensor 시절 / Annotated Transformer 설명: 정답 칸 1 − ε, 나머지에 ε/(V−1), 손실은
#   KL(q ‖ p) = Σ q_i (log q_i − log p_i). Annotated Transformer 는 패딩 칸에도 0 을 주어 V−2 칸에
#   나눈다. 여기서는 과제 정의대로 패딩 칸도 포함한 V−1 칸에 나눈다.
# KL 과 교차 엔트로피는 상수 H(q) 만큼 다르다: KL = H(q, p) − H(q). 그래서 기울기는 같고, KL 은
# 모델이 q 를 정확히 맞히면 0 이 된다 (교차 엔트로피의 최솟값은 H(q) > 0).

def label_smoothed_kl_div(logits, targets, epsilon=0.1, ignore_index=0):
    """KL(q ‖ p), q = 정답 1−ε, 나머지 V−1 칸 ε/(V−1). 실제 토큰 평균.

    q 를 (n, V) 로 만들지 않고 닫힌 식으로 계산한다:
        Σ q log q = (1−ε) log(1−ε) + ε log(ε/(V−1))
        Σ q log p = (1−ε) log p_y + ε/(V−1) (Σ_i log p_i − log p_y)

    >>> v = 4; logits = torch.log(smoothed_targets(torch.tensor([1]), v, 0.1, spread="others"))
    >>> abs(label_smoothed_kl_div(logits, torch.tensor([1]), epsilon=0.1, ignore_index=-100).item()) < 1e-6  # p = q
    True
    >>> round(label_smoothed_kl_div(torch.zeros(1, v), torch.tensor([1]), 0.1, ignore_index=-100).item(), 3)
    0.951
    """
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"KL 형태는 epsilon 이 (0, 1) 안이어야 합니다(log q 에 q > 0 필요, 받은 값 {epsilon}).")
    logits, targets = _real_tokens(logits, targets, ignore_index)      # (n, V), (n,)
    vocab = logits.size(-1)
    log_p = _safe_log_softmax(logits)                                   # (n, V)
    log_p_y = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)       # (n,)
    other = epsilon / (vocab - 1)
    q_log_q = (1.0 - epsilon) * math.log(1.0 - epsilon) + epsilon * math.log(other)  # 상수 −H(q)
    q_log_p = (1.0 - epsilon) * log_p_y + other * (log_p.sum(dim=-1) - log_p_y)  # (n,)
    return _mean_over(q_log_q - q_log_p)


# ---------------------------------------------------------------------------
# 3. Focal loss (Lin et al., 2017) — 논문에 없는 추가 손실
# ---------------------------------------------------------------------------
# "FL(p_t) = −(1 − p_t)^γ log(p_t)": 이미 잘 맞힌 토큰 (p_t → 1) 의 손실을 (1−p_t)^γ 만큼 줄여
# 어려운 토큰에 집중한다. γ = 0 이면 보통의 교차 엔트로피. 논문과 다른 점: Transformer 논문은 쓰지 않는다.

def focal_weight(p_t, gamma=2.0):
    """focal 가중치 (1 − p_t)^γ. 그림(γ 별 가중치 곡선)과 focal_loss 가 함께 쓴다.

    >>> focal_weight(torch.tensor([0.1, 0.5, 0.9]), gamma=2.0)
    tensor([0.8100, 0.2500, 0.0100])
    """
    if gamma < 0:
        raise ValueError(f"gamma 는 0 이상이어야 합니다(받은 값 {gamma}).")
    return (1.0 - p_t).clamp(min=1e-12) ** gamma  # 1−p_t = 0 에서도 기울기 유한 (γ < 1)


def focal_loss(logits, targets, gamma=2.0, ignore_index=0):
    """−(1 − p_t)^γ log p_t 의 실제 토큰 평균. p_t = 정답 토큰의 확률.

    >>> logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]); targets = torch.tensor([0, 0])
    >>> ce = label_smoothed_cross_entropy(logits, targets, epsilon=0.0, ignore_index=-100)
    >>> bool(torch.isclose(focal_loss(logits, targets, gamma=0.0, ignore_index=-100), ce))
    True
    >>> round(focal_loss(logits, targets, gamma=2.0, ignore_index=-100).item(), 4)  # 쉬운 토큰이 줄어든다
    0.2445
    """
    logits, targets = _real_tokens(logits, targets, ignore_index)      # (n, V), (n,)
    log_p_t = _safe_log_softmax(logits).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (n,)
    p_t = log_p_t.exp()                                                 # (n,)
    return _mean_over(-focal_weight(p_t, gamma) * log_p_t)


# ---------------------------------------------------------------------------
# 4. Masked-LM 손실 (BERT, Devlin et al., 2019) — 가려진 위치에서만
# ---------------------------------------------------------------------------
# "the final hidden vectors corresponding to the mask tokens are fed into an output softmax":
# data.py 의 MLM 마스킹은 가린 위치에만 원래 토큰을, 나머지에는 −100 을 labels 에 넣는다.
# 그러니 손실은 labels ≠ −100 인 위치의 교차 엔트로피 평균 (스무딩 없음). 논문과 다른 점: Transformer
# 논문은 번역만 다룬다. 이 손실은 인코더를 사전학습할 때 쓰는 추가 도구다.

def masked_lm_loss(logits, labels, ignore_index=-100):
    """가려진 위치(labels ≠ ignore_index)만의 교차 엔트로피 평균. F.cross_entropy(ignore_index=-100) 와 같다.

    >>> logits = torch.zeros(1, 3, 4); labels = torch.tensor([[-100, 2, -100]])
    >>> round(masked_lm_loss(logits, labels).item(), 4)   # 가려진 1곳: log 4
    1.3863
    """
    return label_smoothed_cross_entropy(logits, labels, epsilon=0.0, ignore_index=ignore_index)
