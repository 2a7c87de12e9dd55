"""attention.py — 마스크, scaled dot-product attention, multi-head attention (논문 §3.2).

읽는 순서: 마스크(어디를 볼 수 있나) → 한 헤드의 어텐션 공식 → 여러 헤드를
나란히 돌리는 MultiHeadAttention(빠른 경로, 디코딩용 키/값 캐시 포함).

마스크 약속(프로젝트 전체 공통): bool 텐서, True = 그 키를 볼 수 있음.
모양은 (B, heads, T_q, T_k) 로 브로드캐스트된다.

>>> import torch
>>> tokens = torch.tensor([[5, 6, 0]])               # 마지막은 [PAD](id 0)
>>> mask = combine_masks(padding_mask(tokens, 0), look_ahead_mask(3))
>>> mask.shape                                       # (B, 1, T_q, T_k)
torch.Size([1, 1, 3, 3])
>>> mask[0, 0].int().tolist()
[[1, 0, 0], [1, 1, 0], [1, 1, 0]]
"""
import math

import torch
from torch import nn
import torch.nn.functional as F


# ══════ 마스크 (mask) ══════
def padding_mask(tokens, pad_id):
    """[PAD] 가 아닌 키만 True, (B, T) → (B, 1, 1, T).

    패딩은 길이를 맞추려고 넣은 빈칸이므로 어떤 쿼리도 그것을 보면 안 된다.
    가운데 두 축(heads, T_q)은 1 이라 모든 헤드·모든 쿼리에 그대로 퍼진다.

    >>> padding_mask(torch.tensor([[7, 8, 0, 0]]), pad_id=0).int().tolist()
    [[[[1, 1, 0, 0]]]]
    >>> m = padding_mask(torch.tensor([[7, 0]]), pad_id=0)
    >>> m.shape, m.dtype
    (torch.Size([1, 1, 1, 2]), torch.bool)
    """
    return (tokens != pad_id)[:, None, None, :]                      # (B, 1, 1, T)


# §3.2.3 "We need to prevent leftward information flow in the decoder to preserve the
#  auto-regressive property ... masking out (setting to −∞) all values in the input of
#  the softmax which correspond to illegal connections."
def look_ahead_mask(size, device=None):
    """위치 i 는 0..i 만 볼 수 있다(아래삼각), (1, 1, T, T).

    >>> look_ahead_mask(3)[0, 0].int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()[None, None]  # (1, 1, T, T)


def combine_masks(*masks):
    """여러 마스크의 AND(둘 다 허용해야 허용). None 은 '제한 없음'이라 건너뛴다.

    >>> combine_masks(None, None) is None
    True
    >>> m = combine_masks(padding_mask(torch.tensor([[4, 0], [4, 5]]), 0), None, look_ahead_mask(2))
    >>> m.shape, m[0, 0].int().tolist(), m[1, 0].int().tolist()     # 문장마다 패딩 AND 아래삼각
    (torch.Size([2, 1, 2, 2]), [[1, 0], [1, 0]], [[1, 0], [1, 1]])
    """
    result = None
    for mask in masks:
        if mask is not None:
            result = mask if result is None else result & mask      # 브로드캐스트 AND
    return result


# ══════ 스케일드 닷-프로덕트 어텐션 (§3.2.1) ══════
# §3.2.1 "Attention(Q, K, V) = softmax(QKᵀ / √d_k) V"
# 쿼리와 키의 내적 = 얼마나 관련 있나. √d_k 로 나누는 이유(논문): d_k 가 크면 내적의
# 분산이 d_k 배로 커져 softmax 가 한 칸에 몰리고 기울기가 거의 0 이 된다.
# 마스크가 False 인 칸은 softmax 전에 아주 작은 수로 채워 가중치가 정확히 0 이 되게 한다.
# 논문과 다른 점: −∞ 대신 dtype 의 최솟값을 쓴다. 키가 전부 가려진 행(예: 전부 [PAD]
# 인 문장)에서 −∞ 는 0/0 = NaN 을 만들기 때문이다. 그런 행은 마지막에 가중치를 0 으로
# 만들어 출력이 0 벡터가 되고, 순전파·역전파 모두 유한하다.

def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    """softmax(QKᵀ/√d_k)V 를 그대로 계산해 (출력, 가중치) 를 돌려준다.

    q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v), mask 는 (..., T_q, T_k) 로
    브로드캐스트되는 bool. 반환: 출력 (..., T_q, d_v), 가중치 (..., T_q, T_k)
    (드롭아웃 전의 확률 분포; 드롭아웃은 출력 계산에만 쓴다).

    >>> q = k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> v = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    >>> out, w = scaled_dot_product_attention(q, k, v, mask=torch.tensor([[True, False], [False, False]]))
    >>> w.tolist()                                     # 2번 행은 키가 모두 가려짐 → 0
    [[1.0, 0.0], [0.0, 0.0]]
    >>> out.tolist()
    [[10.0, 0.0], [0.0, 0.0]]
    >>> _, w = scaled_dot_product_attention(q, k, v)
    >>> [round(x, 4) for x in w[0].tolist()]           # softmax([1, 0] / √2)
    [0.6698, 0.3302]
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))        # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)                          # (..., T_q, T_k)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)                    # 전부 가려진 행 → 0
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights                                      # (..., T_q, d_v)


# ══════ 멀티-헤드 어텐션 (§3.2.2) ══════
# §3.2.2 "MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
#  where head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)", d_k = d_v = d_model / h.
# 한 번의 큰 어텐션 대신 h 개의 작은 어텐션을 나란히 돌려, 헤드마다 다른 관계
# (바로 앞 단어, 짝이 되는 단어 …)를 보게 한다. 계산량은 한 헤드와 거의 같다.
# 구현: d_model → d_model 선형변환 하나(w_q)로 모든 헤드의 Q 를 한꺼번에 만들고,
# 마지막 축을 (h, d_k) 로 쪼갠다. K, V 도 같다. 헤드 출력을 이어 붙여 w_o 를 곱한다.
#
# 빠른 경로: 가중치를 보관할 필요가 없으면 torch.nn.functional.scaled_dot_product_attention
# (같은 공식을 융합한 커널)을 쓴다. 셀프 어텐션(query is key is value)에서는
# w_q, w_k, w_v 를 이어 붙인 (3·d_model, d_model) 행렬로 한 번에 투영한다(같은 값, 더 빠름).
# 교차 어텐션(key is value)에서는 w_k, w_v 를 같은 방법으로 한 번에 투영한다.
# 논문과 다른 점: 어텐션 가중치에도 드롭아웃(dropout 인자)을 건다. 논문 본문에는 없고
# 원저자의 tensor2tensor 구현과 nn.MultiheadAttention 이 쓰는 방식이다.
#
# 키/값 캐시(점진적 디코딩): 디코더는 한 번에 토큰 하나씩 만든다. 매 단계 과거 전체를
# 다시 투영하지 않도록, 층마다 dict 하나에 지금까지의 k, v (B, h, T_past, d_k) 를 둔다.
#   - 셀프 어텐션 캐시 {}: 새 토큰의 k, v 를 뒤에 이어 붙인다(단계마다 길어짐).
#   - 교차 어텐션 캐시 {"static": True}: 인코더 출력(memory)의 k, v 를 첫 호출에서
#     한 번 계산해 두고 이후엔 그대로 쓴다.

def _fused_linear(x, *linears):
    """같은 입력 x 에 여러 nn.Linear 를 적용한 결과들 — 가중치를 이어 붙여 행렬곱 한 번으로."""
    weight = torch.cat([linear.weight for linear in linears])           # (n·d_out, d_in)
    bias = torch.cat([linear.bias for linear in linears])               # (n·d_out,)
    return F.linear(x, weight, bias).chunk(len(linears), dim=-1)        # n 개의 (B, T, d_out)


class MultiHeadAttention(nn.Module):
    """mha(query, key, value, mask=None, cache=None) → (B, T_q, d_model).

    keep_weights=True 로 두면 마지막 어텐션 가중치 (B, h, T_q, T_k) 를 last_weights 에
    보관한다(그림용; 이때는 공식을 그대로 쓰는 느린 경로). use_fast_path=False 면 항상
    느린 경로를 쓴다(두 경로가 같음을 보이는 테스트용).

    >>> _ = torch.manual_seed(0)
    >>> mha = MultiHeadAttention(d_model=8, num_heads=2, dropout=0.0)
    >>> x = torch.randn(2, 5, 8)                       # (B, T, d_model)
    >>> mha(x, x, x).shape
    torch.Size([2, 5, 8])
    >>> mha.keep_weights = True
    >>> _ = mha(x, x, x, mask=look_ahead_mask(5))
    >>> mha.last_weights.shape                         # (B, h, T_q, T_k)
    torch.Size([2, 2, 5, 5])
    >>> bool((mha.last_weights[0, 0].triu(1) == 0).all())   # 미래는 가중치 0
    True
    """

    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"MultiHeadAttention: d_model={d_model} 이 num_heads={num_heads} 로 나누어떨어지지 "
                             "않습니다; d_model 의 약수를 num_heads 로 고르세요.")
        self.num_heads, self.d_k = num_heads, d_model // num_heads
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)
        self.dropout_p = dropout            # 어텐션 가중치에 거는 드롭아웃 확률
        self.keep_weights = False           # True → last_weights 보관
        self.last_weights = None            # (B, h, T_q, T_k), 그림용
        self.use_fast_path = True

    def _split_heads(self, x):
        """(B, T, d_model) → (B, h, T, d_k)."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.d_k).transpose(1, 2)  # (B, h, T, d_k)

    def _project(self, query, key, value, cache):
        """Q, K, V 를 투영해 헤드로 나눈다. 캐시가 있으면 읽고 갱신한다."""
        static = cache is not None and cache.get("static", False)
        if static and "k" in cache:                         # 교차 어텐션: memory 의 k, v 재사용
            return self._split_heads(self.w_q(query)), cache["k"], cache["v"]
        if query is key and key is value:                   # 셀프 어텐션: 투영 세 개를 한 번에
            q, k, v = _fused_linear(query, self.w_q, self.w_k, self.w_v)            # 각 (B, T, d)
        elif key is value:                                  # 교차 어텐션: K, V 투영을 한 번에
            q = self.w_q(query)
            k, v = _fused_linear(key, self.w_k, self.w_v)
        else:
            q, k, v = self.w_q(query), self.w_k(key), self.w_v(value)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)  # (B, h, T, d_k)
        if cache is not None:
            if "k" in cache:                                # 셀프 어텐션: 과거 뒤에 이어 붙임
                k = torch.cat([cache["k"], k], dim=2)       # (B, h, T_past + T, d_k)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        return q, k, v

    def forward(self, query, key, value, mask=None, cache=None):
        q, k, v = self._project(query, key, value, cache)  # (B, h, T_q, d_k), (B, h, T_k, d_k)
        p = self.dropout_p if self.training else 0.0
        if self.keep_weights or not self.use_fast_path:
            out, weights = scaled_dot_product_attention(q, k, v, mask, p)  # (B, h, T_q, d_k)
            if self.keep_weights:
                self.last_weights = weights.detach()
        else:
            # PyTorch 2.5 이후의 SDPA 는 키가 전부 가려진 행에 NaN 대신 0 을 돌려준다
            # (느린 경로와 같은 약속; 테스트가 순전파·역전파 모두 확인한다).
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, h, T_q, d_k)
        B, _, T_q, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T_q, -1)                      # (B, T_q, d_model)
        return self.w_o(out)
