"""layers.py — 층 정규화, FFN, 잔차 연결, 확률적 깊이, 인코더/디코더 층 (논문 §3.1, §3.3, §5.4).

읽는 순서: LayerNorm(식, 그다음 선택 사항인 빠른 역전파) → PositionwiseFeedForward → DropPath
→ SublayerConnection(잔차 + 정규화) → EncoderLayer → DecoderLayer. 모든 활성값은 (B, T, d_model).

>>> import torch
>>> from attention import look_ahead_mask
>>> _ = torch.manual_seed(0)
>>> enc = EncoderLayer(d_model=8, num_heads=2, d_ff=32, dropout=0.0)
>>> dec = DecoderLayer(d_model=8, num_heads=2, d_ff=32, dropout=0.0)
>>> src, tgt = torch.randn(2, 6, 8), torch.randn(2, 4, 8)
>>> memory = enc(src)
>>> dec(tgt, memory, self_mask=look_ahead_mask(4)).shape
torch.Size([2, 4, 8])
"""
import torch
from torch import nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from attention import MultiHeadAttention


# ══════ 층 정규화 (layer normalization) ══════
# §3.1 "The output of each sub-layer is LayerNorm(x + Sublayer(x))" (Ba et al., 2016).
# 토큰마다 d_model 개 성분의 평균 μ, 분산 σ² 를 구해 y = γ·(x − μ)/√(σ² + ε) + β.
# 분산은 편향(biased, N 으로 나눔) 분산이고 ε 는 제곱근 안에 있다 — nn.LayerNorm 과 같다.
# 참고: The Annotated Transformer 의 LayerNorm 은 불편(N−1) 표준편차를 쓰고 ε 를
# 제곱근 밖(σ + ε)에 더해, nn.LayerNorm 과 값이 조금 다르다.

class LayerNorm(nn.Module):
    """직접 쓴 층 정규화. weight(γ, 1 로 시작), bias(β, 0 으로 시작).

    forward 는 위 식 그대로다. fast_backward=True(기본)면 값은 같고 역전파만 손으로
    유도한 공식(아래 '선택: 빠른 역전파')을 써서 학습이 조금 빠르다.

    >>> ln = LayerNorm(4)
    >>> [round(v, 4) for v in ln(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist()]   # (x − 2.5) / √1.25
    [-1.3416, -0.4472, 0.4472, 1.3416]
    >>> bool(torch.allclose(ln(torch.ones(2, 4)), torch.zeros(2, 4)))   # 분산 0 → ε 덕분에 0
    True
    >>> x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    >>> ln(x)[0, 0].backward()                           # 평균을 빼므로 기울기 합은 0
    >>> abs(x.grad.sum().item()) < 1e-6
    True
    """

    def __init__(self, d_model, eps=1e-5, fast_backward=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))             # γ
        self.bias = nn.Parameter(torch.zeros(d_model))              # β
        self.fast_backward = fast_backward

    def forward(self, x):
        if not self.fast_backward:
            mu = x.mean(dim=-1, keepdim=True)                       # (B, T, 1) 평균 μ
            var = (x - mu).square().mean(dim=-1, keepdim=True)      # (B, T, 1) 편향 분산 σ²
            return self.weight * (x - mu) / torch.sqrt(var + self.eps) + self.bias  # (B, T, d_model)
        return _LayerNormFunction.apply(x, self.weight, self.bias, self.eps)       # 같은 식, 빠른 역전파


# ══════ 선택: 빠른 역전파 (속도용, 건너뛰어도 된다) ══════
# autograd 가 위 식을 연산마다 따로 미분하면 (B, T, d) 크기의 중간값을 열 개 넘게 만들어
# 학습 한 걸음이 몇 % 느려진다. 식을 한 번에 미분하면, x̂ = (x − μ)/σ, g = γ ⊙ ∂L/∂y 라 할 때
#   ∂L/∂x = (1/σ) · (g − mean(g) − x̂ · mean(g ⊙ x̂)),  ∂L/∂γ = Σ ∂L/∂y ⊙ x̂,  ∂L/∂β = Σ ∂L/∂y
# (mean 은 d_model 축 평균, Σ 는 토큰 전체 합). 새 텐서를 덜 만들려고 밑줄(_) 붙은
# 제자리(in-place) 연산을 쓴다. 아래 doctest 의 gradcheck 가 이 공식을 수치 미분과 비교하고,
# 테스트가 두 경로를 nn.LayerNorm 과 비교한다.

class _LayerNormFunction(torch.autograd.Function):
    """y = γ ⊙ x̂ + β 와 위 역전파 공식.

    >>> gen = torch.Generator().manual_seed(0)
    >>> x, w, b = (torch.randn(*s, generator=gen, dtype=torch.double, requires_grad=True)
    ...            for s in ((2, 3, 6), (6,), (6,)))
    >>> torch.autograd.gradcheck(lambda *a: _LayerNormFunction.apply(*a, 1e-5), (x, w, b))
    True
    >>> plain, fast = LayerNorm(6, fast_backward=False).double(), LayerNorm(6).double()
    >>> bool(torch.allclose(plain(x), fast(x)))           # 같은 값
    True
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        x_hat = x - x.mean(dim=-1, keepdim=True)                         # (B, T, d_model) x − μ
        rstd = torch.rsqrt(x_hat.square().mean(dim=-1, keepdim=True) + eps)  # (B, T, 1) 1/σ, 편향 분산
        x_hat.mul_(rstd)                                                 # x̂ = (x − μ)/σ
        ctx.save_for_backward(x_hat, rstd, weight)
        return torch.addcmul(bias, x_hat, weight)                        # γ ⊙ x̂ + β

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x_hat, rstd, weight = ctx.saved_tensors
        g = grad * weight                                                # (B, T, d_model)
        proj = (g * x_hat).mean(dim=-1, keepdim=True)                    # (B, T, 1) mean(g ⊙ x̂)
        dx = g.sub_(g.mean(dim=-1, keepdim=True)).addcmul_(x_hat, proj, value=-1).mul_(rstd)
        token_dims = tuple(range(grad.dim() - 1))                        # d_model 축을 뺀 모든 축
        return dx, (grad * x_hat).sum(token_dims), grad.sum(token_dims), None


# ══════ 위치별 피드포워드 신경망 (§3.3) ══════
# §3.3 "FFN(x) = max(0, xW₁ + b₁)W₂ + b₂ ... d_model = 512, and the inner-layer has
#  dimensionality d_ff = 2048."  위치(토큰)마다 따로, 같은 두 층 MLP 를 적용한다.
# 논문과 다른 점(선택): activation="gelu" 는 ReLU 대신 GELU(BERT, GPT).
# "glu"/"geglu"/"swiglu" 는 Shazeer(2020)의 게이트 변형: (act(xW_gate) ⊙ xW₁)W₂,
# act = sigmoid / GELU / SiLU. 행렬이 하나 더 있어 같은 d_ff 에서 파라미터가 1.5 배다
# (Shazeer 는 d_ff 를 2/3 로 줄여 맞춘다).
# 논문과 다른 점: 안쪽 층(활성화 뒤)에도 드롭아웃을 건다. 논문 본문은 잔차·임베딩 드롭아웃만 말하고,
# 이것은 tensor2tensor 의 relu_dropout 이다. Multi30k 에서 이것과 어텐션 가중치의 드롭아웃을 빼면
# test2016 BLEU 가 약 1 낮았다 (README "프리셋을 고른 실험").

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "glu": torch.sigmoid, "geglu": F.gelu, "swiglu": F.silu}


class PositionwiseFeedForward(nn.Module):
    """(B, T, d_model) → (B, T, d_model). w_1: d_model→d_ff, w_2: d_ff→d_model (게이트 변형은 w_gate 추가).

    >>> _ = torch.manual_seed(0)
    >>> ffn = PositionwiseFeedForward(4, 16, dropout=0.0)
    >>> x = torch.randn(3, 5, 4)
    >>> ffn(x).shape
    torch.Size([3, 5, 4])
    >>> bool((ffn.hidden(x) >= 0).all())               # ReLU 은닉값은 0 이상
    True
    >>> sum(p.numel() for p in PositionwiseFeedForward(4, 16, activation="swiglu").parameters())
    228
    """

    def __init__(self, d_model, d_ff, dropout=0.1, activation="relu"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"PositionwiseFeedForward: 모르는 activation {activation!r} 입니다; "
                             f"{sorted(_ACTIVATIONS)} 중 하나를 쓰세요.")
        self.activation = activation
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_gate = nn.Linear(d_model, d_ff) if activation in ("glu", "geglu", "swiglu") else None
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def hidden(self, x):
        """은닉 활성값 (B, T, d_ff) — 희소성 그림에 쓴다."""
        act = _ACTIVATIONS[self.activation]
        if self.w_gate is None:
            return act(self.w_1(x))                                  # (B, T, d_ff)
        return act(self.w_gate(x)) * self.w_1(x)                     # (B, T, d_ff) 게이트 ⊙ 값

    def forward(self, x):
        return self.w_2(self.dropout(self.hidden(x)))                # (B, T, d_model)


# ══════ 확률적 깊이 (stochastic depth) ══════
# 논문과 다른 점(선택): Huang et al.(2016) 의 확률적 깊이. 학습 중 문장(샘플)마다
# 확률 drop_prob 로 잔차 가지 전체를 버린다(살아남을 확률 survival = 1 − drop_prob).
# 살아남은 가지는 1/survival 배 해서 기댓값을 유지하고, 평가 때는 아무것도 하지 않는다.

class DropPath(nn.Module):
    """잔차 가지를 샘플 단위로 버린다. 평가 모드나 drop_prob=0 이면 항등 함수.

    >>> dp = DropPath(0.5)
    >>> x = torch.ones(4, 2, 3)
    >>> bool(torch.equal(dp.eval()(x), x))
    True
    >>> _ = torch.manual_seed(0)
    >>> sorted(set(dp.train()(x).flatten().tolist()))    # 0(버림) 또는 1/0.5 = 2
    [0.0, 2.0]
    >>> out = DropPath(0.25).train()(torch.ones(20000, 2, 3))
    >>> bool((out.amin(dim=(1, 2)) == out.amax(dim=(1, 2))).all())   # 샘플을 통째로 버리거나 남긴다
    True
    >>> abs(out.mean().item() - 1.0) < 0.03, abs((out[:, 0, 0] == 0).float().mean().item() - 0.25) < 0.02
    (True, True)
    """

    def __init__(self, drop_prob=0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"DropPath: drop_prob 는 [0, 1) 안이어야 합니다(받은 값 {drop_prob}).")
        self.drop_prob = drop_prob

    @property
    def survival(self):
        return 1.0 - self.drop_prob

    def forward(self, x):
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = torch.rand(x.size(0), *([1] * (x.dim() - 1)), device=x.device) < self.survival  # (B, 1, 1)
        return x * keep.to(x.dtype) / self.survival


# ══════ 잔차 연결 + 층 정규화 (§3.1, §5.4) ══════
# §3.1 "We employ a residual connection around each of the two sub-layers, followed by
#  layer normalization. That is, the output of each sub-layer is LayerNorm(x + Sublayer(x))"
# §5.4 "We apply dropout to the output of each sub-layer, before it is added to the
#  sub-layer input and normalized."
#   Post-LN(논문, 기본값): LayerNorm(x + Dropout(Sublayer(x)))
#   논문과 다른 점(선택) Pre-LN: x + Dropout(Sublayer(LayerNorm(x))). 잔차 길이 정규화를
#   거치지 않아 깊은 모델도 warmup 없이 안정적으로 학습된다(Xiong et al., 2020).
#   이 경우 스택 맨 끝에 LayerNorm 이 하나 더 필요하다(model.py 의 Encoder/Decoder).
# residual=False, use_norm=False 는 그림(잔차/정규화가 없으면 어떻게 되나)용 실험 스위치.
# keep_contribution=True 면 가지의 상대 크기 ‖Dropout(Sublayer)‖ / ‖x‖ 를 보관한다.

class SublayerConnection(nn.Module):
    """sublayer_connection(x, sublayer) — sublayer 는 (B, T, d) → (B, T, d) 인 함수.

    >>> _ = torch.manual_seed(0)
    >>> post = SublayerConnection(4, dropout=0.0)
    >>> x = torch.randn(2, 3, 4)
    >>> y = post(x, lambda h: 2 * h)                   # LayerNorm(x + 2x)
    >>> bool(torch.allclose(y, post.norm(3 * x), atol=1e-6))
    True
    >>> pre = SublayerConnection(4, dropout=0.0, norm_first=True)
    >>> bool(torch.allclose(pre(x, lambda h: 2 * h), x + 2 * pre.norm(x), atol=1e-6))
    True
    >>> plain = SublayerConnection(4, dropout=0.0, residual=False, use_norm=False)   # 잔차·정규화 없이 가지만
    >>> bool(torch.equal(plain(x, lambda h: 3 * h), 3 * x))
    True
    >>> pre.keep_contribution = True
    >>> _ = pre(x, lambda h: h)                           # 기여도 = ‖가지‖ / ‖x‖
    >>> abs(pre.last_contribution - pre.norm(x).norm().item() / x.norm().item()) < 1e-5
    True
    """

    def __init__(self, d_model, dropout=0.1, norm_first=False, drop_path=0.0,
                 residual=True, use_norm=True):
        super().__init__()
        self.norm = LayerNorm(d_model) if use_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)
        self.norm_first, self.residual = norm_first, residual
        self.keep_contribution = False
        self.last_contribution = None       # ‖가지 출력‖ / ‖잔차 입력‖ (float)

    def forward(self, x, sublayer):
        branch = self.dropout(sublayer(self.norm(x) if self.norm_first else x))  # (B, T, d_model)
        if self.keep_contribution:
            self.last_contribution = (branch.detach().norm() / x.detach().norm().clamp_min(1e-12)).item()
        branch = self.drop_path(branch)
        out = x + branch if self.residual else branch
        return out if self.norm_first else self.norm(out)                        # (B, T, d_model)


# ══════ 인코더 층, 디코더 층 (§3.1) ══════
# §3.1 "Each layer has two sub-layers. The first is a multi-head self-attention
#  mechanism, and the second is a simple, position-wise fully connected feed-forward network."
# 부분층 이름: sub_attn(셀프 어텐션), sub_ffn(FFN). mask 는 (B, 1, 1|T, T) bool.

class EncoderLayer(nn.Module):
    """encoder_layer(x, mask=None) → (B, T, d_model).

    >>> _ = torch.manual_seed(0)
    >>> layer = EncoderLayer(8, 2, 16, dropout=0.0)
    >>> layer(torch.randn(1, 3, 8)).shape
    torch.Size([1, 3, 8])
    """

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False,
                 activation="relu", drop_path=0.0, residual=True, use_norm=True):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, dropout, activation)
        self.sub_attn = SublayerConnection(d_model, dropout, norm_first, drop_path, residual, use_norm)
        self.sub_ffn = SublayerConnection(d_model, dropout, norm_first, drop_path, residual, use_norm)

    def forward(self, x, mask=None):
        x = self.sub_attn(x, lambda h: self.self_attn(h, h, h, mask))   # (B, T, d_model)
        return self.sub_ffn(x, self.ffn)                                 # (B, T, d_model)


# §3.1 "In addition to the two sub-layers in each encoder layer, the decoder inserts a
#  third sub-layer, which performs multi-head attention over the output of the encoder stack."
# 부분층: sub_self(가린 셀프 어텐션) → sub_cross(인코더 출력 memory 를 보는 교차 어텐션)
# → sub_ffn. 교차 어텐션에서 Q 는 디코더, K·V 는 memory 에서 온다(§3.2.3).
# cache: 점진적 디코딩용 {"self": {}, "cross": {"static": True}} (attention.py 설명 참고).

class DecoderLayer(nn.Module):
    """decoder_layer(x, memory, self_mask=None, cross_mask=None, cache=None) → (B, T, d_model).

    >>> _ = torch.manual_seed(0)
    >>> layer = DecoderLayer(8, 2, 16, dropout=0.0)
    >>> layer(torch.randn(1, 3, 8), torch.randn(1, 5, 8)).shape
    torch.Size([1, 3, 8])
    """

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False,
                 activation="relu", drop_path=0.0, residual=True, use_norm=True):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, dropout, activation)
        self.sub_self = SublayerConnection(d_model, dropout, norm_first, drop_path, residual, use_norm)
        self.sub_cross = SublayerConnection(d_model, dropout, norm_first, drop_path, residual, use_norm)
        self.sub_ffn = SublayerConnection(d_model, dropout, norm_first, drop_path, residual, use_norm)

    def forward(self, x, memory, self_mask=None, cross_mask=None, cache=None):
        self_cache = cross_cache = None
        if cache is not None:
            self_cache = cache.setdefault("self", {})
            cross_cache = cache.setdefault("cross", {"static": True})
        x = self.sub_self(x, lambda h: self.self_attn(h, h, h, self_mask, self_cache))
        x = self.sub_cross(x, lambda h: self.cross_attn(h, memory, memory, cross_mask, cross_cache))
        return self.sub_ffn(x, self.ffn)                                 # (B, T, d_model)
