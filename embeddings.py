"""embeddings.py — 토큰 임베딩과 위치 인코딩 (논문 §3.4, §3.5).

Transformer 의 입력 쪽 전부: 토큰 id 를 d_model 차원 벡터로 바꾸고(§3.4),
순서 정보를 더한다(§3.5). 읽는 순서: 토큰 임베딩(§3.4) → 이 프로젝트의 특수 토큰
초기 벡터 → 사인파 위치 인코딩(§3.5) → 학습형 위치 임베딩(비교용).

>>> import torch
>>> emb = TokenEmbedding(vocab_size=20, d_model=8)
>>> pos = PositionalEncoding(d_model=8, dropout=0.0)
>>> tokens = torch.tensor([[2, 9, 11, 3, 0]])        # [BOS] . . [EOS] [PAD]
>>> pos(emb(tokens)).shape                             # (B, T, d_model)
torch.Size([1, 5, 8])
"""
import math

import torch
from torch import nn

# ══════ 토큰 임베딩 (§3.4) ══════
# §3.4 "we use learned embeddings to convert the input tokens and output tokens
#  to vectors of dimension d_model ... In the embedding layers, we multiply
#  those weights by √d_model."
# 임베딩 행렬 E (vocab, d_model) 에서 토큰 id 의 행을 꺼내 √d_model 을 곱한다.
# 왜 곱하나: 초기 행의 크기(표준편차 ≈ d_model^-0.5)가 위치 인코딩(값 ±1)보다
# 훨씬 작으면 합에서 토큰 정보가 묻힌다. √d_model 을 곱하면 성분이 약 ±1 로 맞춰진다.
# 출력층과 가중치를 묶을 수 있도록(§3.4 weight tying) 행렬을 `.weight` 로 드러낸다.

class TokenEmbedding(nn.Module):
    """토큰 id (B, T) → 벡터 (B, T, d_model), 값 = E[id] · √d_model.

    init: "normal" = N(0, d_model^-0.5), "xavier" = Xavier 균등분포.
    special_init=True 면 특수 토큰 행을 special_token_vectors(아래)로 덮어쓴다
    (보통 토큰 행과 같은 평균 크기로 맞춤; 직교 벡터가 모자라는 d_model < 7 이면 건너뜀).
    [PAD] 행은 0 이고 학습 중에도 0 으로 남는다: nn.Embedding(padding_idx) 가 이 행의
    기울기를 막는다(출력층과 묶을 때 그쪽 기울기는 model.py 가 막는다).

    >>> _ = torch.manual_seed(0)
    >>> emb = TokenEmbedding(10, 4, special_init=False)
    >>> out = emb(torch.tensor([[5, 0]]))
    >>> out.shape
    torch.Size([1, 2, 4])
    >>> bool(torch.allclose(out[0, 0], emb.weight[5] * 2.0))    # √4 = 2 배
    True
    >>> out[0, 1].tolist()                                          # [PAD] → 0
    [0.0, 0.0, 0.0, 0.0]
    """

    def __init__(self, vocab_size, d_model, pad_id=0, init="normal", special_init=True):
        super().__init__()
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"TokenEmbedding: pad_id {pad_id} 가 어휘 범위 0..{vocab_size - 1} 밖입니다; "
                             "어휘 안의 pad_id 를 주세요.")
        self.d_model, self.pad_id, self.special_init = d_model, pad_id, special_init
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.reset_parameters(init)

    @property
    def weight(self):
        """임베딩 행렬 (vocab, d_model) — 출력층과 묶을 때 쓴다."""
        return self.embedding.weight

    @torch.no_grad()
    def reset_parameters(self, init="normal"):
        """init 방식으로 다시 초기화하고, 특수 토큰 행과 [PAD] 행(0)을 맞춘다."""
        w = self.embedding.weight                                        # (V, d)
        if init == "normal":
            nn.init.normal_(w, mean=0.0, std=self.d_model ** -0.5)
        elif init == "xavier":
            nn.init.xavier_uniform_(w)
        else:
            raise ValueError(f"TokenEmbedding: 모르는 init {init!r} 입니다; 'normal' 또는 'xavier' 를 쓰세요.")
        n = min(len(SPECIAL_TOKENS), w.size(0))
        if self.special_init and n <= self.d_model:
            # 특수 토큰 벡터의 크기를 보통 행의 평균 RMS 에 맞춘다.
            rms = w[n:].pow(2).mean().sqrt() if w.size(0) > n else w.pow(2).mean().sqrt()
            w[:n] = special_token_vectors(n, self.d_model) * rms
        w[self.pad_id] = 0.0

    def forward(self, tokens):
        return self.embedding(tokens) * math.sqrt(self.d_model)          # (B, T, d_model)


# ══════ 특수 토큰 (special tokens) ══════
# 논문과 다른 점: 논문은 특수 토큰을 따로 다루지 않는다. 이 프로젝트는 특수 토큰 행을
# 무작위 대신 서로 직교하는 결정적 벡터로 시작해, 처음부터 확실히 구별되게 한다.
# 어휘의 앞 7개 id 는 항상 이 순서다(data.py 도 같은 약속을 쓴다).
#   0 [PAD] 길이 맞춤용 빈칸, 1 [UNK] 모르는 조각, 2 [BOS] 문장 시작,
#   3 [EOS] 문장 끝, 4 [CLS] 문장 전체 요약(BERT), 5 [SEP] 문장 구분,
#   6 [MASK] 가려진 토큰(MLM).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[CLS]", "[SEP]", "[MASK]")


def special_token_vectors(num_tokens, d_model):
    """특수 토큰의 결정적(무작위 아님) 사인파 초기 벡터, (num_tokens, d_model).

    0번([PAD])은 0 벡터다. k번(k ≥ 1)은 이산 코사인 기저
    v_k[j] = √2 · cos(π · k · (j + ½) / d_model) 이다. 이 기저는 서로 직교하므로
    특수 토큰끼리 확실히 구별되고, 각 행의 RMS 는 1 이다(크기 조절은 호출자가 한다).
    직교 벡터는 d_model 개까지만 있으므로 num_tokens ≤ d_model 이어야 한다.

    >>> v = special_token_vectors(7, 8)
    >>> v.shape
    torch.Size([7, 8])
    >>> bool((v[0] == 0).all())                        # [PAD] 는 0
    True
    >>> gram = v[1:] @ v[1:].T                         # 서로 직교, 제곱노름 = d_model
    >>> bool(torch.allclose(gram, 8 * torch.eye(6), atol=1e-5))
    True
    """
    if num_tokens > d_model:
        raise ValueError(f"special_token_vectors: 특수 토큰 {num_tokens}개에는 d_model >= {num_tokens} 이 "
                         f"필요합니다(받은 값 {d_model}); 더 큰 d_model 을 쓰거나 special_init=False 로 두세요.")
    k = torch.arange(num_tokens, dtype=torch.float32)[:, None]       # (N, 1)
    j = torch.arange(d_model, dtype=torch.float32)[None, :]          # (1, d)
    vectors = math.sqrt(2.0) * torch.cos(math.pi * k * (j + 0.5) / d_model)  # (N, d)
    vectors[0] = 0.0                                                 # [PAD] 은 0 벡터
    return vectors


# ══════ 사인파 위치 인코딩 (§3.5) ══════
# §3.5 "PE(pos,2i) = sin(pos/10000^(2i/d_model)), PE(pos,2i+1) = cos(pos/10000^(2i/d_model))"
# 어텐션은 순서를 모르므로(집합 연산) 위치마다 고유한 무늬를 더한다.
# 짝수 차원 2i 는 sin, 홀수 차원 2i+1 은 cos, 둘은 같은 주파수 1/10000^(2i/d) 를 쓴다.
# 주기는 2π(i=0)부터 10000·2π 까지 기하급수로 늘어난다. PE(pos+k) 는 PE(pos) 의
# 선형변환(회전)이라, 모델이 상대 위치를 쉽게 읽을 수 있다는 것이 논문의 논리다.

def sinusoidal_encoding(max_len, d_model):
    """§3.5 의 표 PE, (max_len, d_model). d_model 은 짝수여야 한다.

    >>> pe = sinusoidal_encoding(50, 8)
    >>> pe.shape
    torch.Size([50, 8])
    >>> pe[0].tolist()                                   # pos 0: sin 0 = 0, cos 0 = 1
    [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    >>> round(pe[1, 0].item(), 4) == round(math.sin(1.0), 4)   # sin(1 / 10000^0)
    True
    """
    if d_model % 2:
        raise ValueError(f"sinusoidal_encoding: d_model 은 짝수여야 합니다(받은 값 {d_model}); "
                         "sin 과 cos 이 차원을 둘씩 채웁니다.")
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]          # (L, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)           # (d/2,)
    angle = pos / torch.pow(10000.0, two_i / d_model)                  # (L, d/2)
    pe = torch.zeros(max_len, d_model)                                 # (L, d)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


def _check_length(offset, length, max_len):
    """위치 범위를 넘으면 해결 방법을 알려 주는 ValueError."""
    if offset + length > max_len:
        raise ValueError(f"위치 {offset}..{offset + length - 1} 이 위치 표 크기 max_len={max_len} 을 넘습니다; "
                         "더 큰 max_len 으로 모델을 만들거나 더 짧은 문장을 쓰세요.")


class PositionalEncoding(nn.Module):
    """x (B, T, d_model) + PE[offset : offset+T] 뒤 드롭아웃.

    §5.4 "we apply dropout to the sums of the embeddings and the positional encodings".
    PE 표는 한 번 계산해 버퍼로 둔다(학습하지 않음, state_dict 에도 넣지 않음).
    offset 은 캐시를 쓰는 점진적 디코딩에서 새 토큰의 절대 위치를 알려 준다.

    >>> pos = PositionalEncoding(4, dropout=0.0, max_len=10)
    >>> x = torch.zeros(1, 3, 4)
    >>> bool(torch.equal(pos(x)[0], sinusoidal_encoding(10, 4)[:3]))
    True
    >>> bool(torch.equal(pos(x[:, :1], offset=2)[0, 0], sinusoidal_encoding(10, 4)[2]))
    True
    """

    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model)[None], persistent=False)  # (1, L, d)

    def forward(self, x, offset=0):
        _check_length(offset, x.size(1), self.max_len)
        return self.dropout(x + self.pe[:, offset:offset + x.size(1)])  # (B, T, d_model)


# §3.5 "We also experimented with using learned positional embeddings instead,
#  and found that the two versions produced nearly identical results."
# 비교용: 위치마다 학습되는 벡터. 학습에서 본 길이(max_len)를 넘어설 수 없다는 것이
# 사인파 방식과의 차이다(논문이 사인파를 고른 이유).
class LearnedPositionalEncoding(nn.Module):
    """x (B, T, d_model) + P[offset : offset+T] (P 는 학습되는 (max_len, d_model)) 뒤 드롭아웃.

    >>> _ = torch.manual_seed(0)
    >>> pos = LearnedPositionalEncoding(4, dropout=0.0, max_len=10)
    >>> pos(torch.zeros(2, 3, 4)).shape
    torch.Size([2, 3, 4])
    >>> sum(p.numel() for p in pos.parameters())          # 10 위치 × 4 차원
    40
    """

    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # (L, d), GPT 관례 std 0.02

    def forward(self, x, offset=0):
        _check_length(offset, x.size(1), self.max_len)
        return self.dropout(x + self.weight[offset:offset + x.size(1)])  # (B, T, d_model)
