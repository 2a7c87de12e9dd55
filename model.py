"""model.py — 인코더, 디코더, Transformer 전체, 가중치 초기화, 디코딩, 관찰 도구 (논문 §3, §3.4, §6.1).

읽는 순서: Encoder/Decoder(층 쌓기) → Transformer(임베딩 + 스택 + 출력층) →
init_weights → greedy_decode / beam_search → record_attention / record_contributions.

>>> import torch
>>> _ = torch.manual_seed(0)
>>> model = Transformer(20, 20, d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0)
>>> src = torch.tensor([[2, 9, 8, 7, 3], [2, 10, 3, 0, 0]])     # (B, S), 0 = [PAD]
>>> tgt_in = torch.tensor([[2, 7, 8], [2, 10, 0]])              # (B, T), [BOS] 로 시작
>>> model(src, tgt_in).shape                                    # (B, T, tgt_vocab)
torch.Size([2, 3, 20])
>>> [len(h) <= 5 + 50 for h in greedy_decode(model, src, bos_id=2, eos_id=3)]
[True, True]
"""
import contextlib

import torch
from torch import nn
import torch.nn.functional as F

from embeddings import TokenEmbedding, PositionalEncoding, LearnedPositionalEncoding, SPECIAL_TOKENS
from attention import MultiHeadAttention, padding_mask, look_ahead_mask
from layers import LayerNorm, EncoderLayer, DecoderLayer, SublayerConnection


# ══════ 인코더와 디코더: 같은 층을 N 번 쌓는다 (§3.1) ══════
# §3.1 "The encoder is composed of a stack of N = 6 identical layers."
#      "The decoder is also composed of a stack of N = 6 identical layers."
# Post-LN(논문): 층마다 LayerNorm 으로 끝나므로 스택 끝에 정규화를 더하지 않는다.
# Pre-LN: 마지막 층의 출력은 아직 정규화되지 않았으므로 스택 끝에 LayerNorm 을 하나 둔다.
# (nn.Transformer 는 Post-LN 에서도 끝 정규화를 두는데, 논문에는 없다. 그래서 nn.Transformer
#  와 비교하는 테스트는 Post-LN 이면 그쪽 encoder.norm, decoder.norm 을 None 으로 두고,
#  Pre-LN 이면 우리 끝 정규화의 값을 복사한다.)
# drop_path 는 Huang et al. 의 선형 감소 규칙: l 번째 층(1..N)은 drop_path · l / N.

class _LayerStack(nn.Module):
    """Encoder 와 Decoder 의 공통 뼈대: layer_class 층 num_layers 개 + (Pre-LN 이면) 끝 LayerNorm."""

    layer_class = None                  # EncoderLayer 또는 DecoderLayer (하위 클래스가 정한다)

    def __init__(self, d_model, num_heads, d_ff, num_layers, dropout=0.1, norm_first=False,
                 activation="relu", drop_path=0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            self.layer_class(d_model, num_heads, d_ff, dropout, norm_first, activation,
                             drop_path * (i + 1) / num_layers)                # i+1 번째 층의 drop_path
            for i in range(num_layers))
        self.norm = LayerNorm(d_model) if norm_first else None


class Encoder(_LayerStack):
    """encoder(x, mask=None) → (B, S, d_model). x 는 임베딩 + 위치 인코딩이 끝난 (B, S, d_model).

    >>> _ = torch.manual_seed(0)
    >>> enc = Encoder(8, 2, 16, num_layers=3, dropout=0.0)
    >>> len(enc.layers), enc.norm is None                       # Post-LN: 끝 정규화 없음
    (3, True)
    >>> enc(torch.randn(2, 4, 8)).shape
    torch.Size([2, 4, 8])
    """

    layer_class = EncoderLayer

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)                                           # (B, S, d_model)
        return x if self.norm is None else self.norm(x)


class Decoder(_LayerStack):
    """decoder(x, memory, self_mask=None, cross_mask=None, cache=None) → (B, T, d_model).

    cache: 점진적 디코딩용 dict. 처음엔 {} 를 넘기면 층마다 {"self": …, "cross": …}
    를 cache["layers"] 에 만들어 채운다.

    >>> _ = torch.manual_seed(0)
    >>> dec = Decoder(8, 2, 16, num_layers=2, dropout=0.0, norm_first=True)
    >>> dec.norm is not None                                    # Pre-LN: 끝 정규화 있음
    True
    >>> dec(torch.randn(2, 3, 8), torch.randn(2, 5, 8)).shape
    torch.Size([2, 3, 8])
    """

    layer_class = DecoderLayer

    def forward(self, x, memory, self_mask=None, cross_mask=None, cache=None):
        layer_caches = [None] * len(self.layers)
        if cache is not None:
            layer_caches = cache.setdefault("layers", [{} for _ in self.layers])
        for layer, layer_cache in zip(self.layers, layer_caches):
            x = layer(x, memory, self_mask, cross_mask, layer_cache)     # (B, T, d_model)
        return x if self.norm is None else self.norm(x)


# ══════ Transformer 전체 (§3) ══════
# §3 "the encoder maps an input sequence of symbol representations (x1, ..., xn) to a
#  sequence of continuous representations z ... Given z, the decoder then generates an
#  output sequence (y1, ..., ym) of symbols one element at a time."
# §3.4 "we share the same weight matrix between the two embedding layers and the
#  pre-softmax linear transformation".
#   share_embeddings=True: 원문·번역문이 같은 어휘(공동 BPE)일 때 임베딩 하나를 함께 쓴다.
#   tie_output=True: 출력층 가중치 = 목표 쪽 임베딩 행렬(파라미터 수가 크게 준다).
#   묶으면 출력층의 기울기가 [PAD] 행에도 흘러들므로, 출력층은 [PAD] 행을 0 으로 가린
#   행렬을 쓴다 → [PAD] 임베딩은 학습 중에도 0 으로 남는다.
# 마스크: 원문은 패딩 마스크, 번역문 셀프 어텐션은 look-ahead 마스크만 쓴다.
#   번역문은 오른쪽에만 패딩이 붙으므로, 진짜 토큰은 look-ahead 마스크만으로도 뒤쪽
#   [PAD] 를 볼 수 없다(패딩 위치의 출력은 손실에서 빠진다). 덕분에 전체 디코딩과
#   캐시 디코딩이 정확히 같은 마스크를 쓴다.

class Transformer(nn.Module):
    """model(src, tgt_in) → logits (B, T, tgt_vocab_size).

    src (B, S), tgt_in (B, T): 토큰 id, pad_id 로 오른쪽 패딩. tgt_in 은 [BOS] 로 시작한다.
    encode(src, src_mask=None) → memory (B, S, d_model).
    decode(tgt, memory, src_mask=None, cache=None) → logits (B, T, tgt_vocab_size);
      cache 를 주면(처음엔 {}) tgt 는 새 토큰만 (B, T_new) 이고, 위치는 cache["length"]
      부터 이어진다.

    >>> _ = torch.manual_seed(0)
    >>> m = Transformer(30, 30, d_model=8, num_heads=2, num_layers=1, d_ff=16,
    ...                 share_embeddings=True, tie_output=True)
    >>> m.src_embed is m.tgt_embed, m.generator.weight is m.tgt_embed.weight
    (True, True)
    >>> m.pad_id, m(torch.tensor([[5, 6, 0]]), torch.tensor([[2, 5]])).shape
    (0, torch.Size([1, 2, 30]))
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_heads=8, num_layers=6,
                 d_ff=2048, dropout=0.1, pad_id=0, share_embeddings=False, tie_output=False,
                 norm_first=False, activation="relu", max_len=1024, init="xavier",
                 num_decoder_layers=None, drop_path=0.0, positional="sinusoidal"):
        super().__init__()
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"share_embeddings 는 공동 어휘 하나가 필요한데 src_vocab_size={src_vocab_size} "
                             f"!= tgt_vocab_size={tgt_vocab_size} 입니다; 공동 어휘를 쓰거나 share_embeddings=False 로 두세요.")
        if positional not in ("sinusoidal", "learned"):
            raise ValueError(f"positional 은 'sinusoidal' 또는 'learned' 여야 합니다(받은 값 {positional!r}).")
        self.pad_id, self.tie_output = pad_id, tie_output
        self.src_embed = TokenEmbedding(src_vocab_size, d_model, pad_id)
        self.tgt_embed = self.src_embed if share_embeddings else TokenEmbedding(tgt_vocab_size, d_model, pad_id)
        pos_class = PositionalEncoding if positional == "sinusoidal" else LearnedPositionalEncoding
        self.pos_enc = pos_class(d_model, dropout, max_len)              # 원문·번역문이 함께 쓴다
        self.encoder = Encoder(d_model, num_heads, d_ff, num_layers, dropout, norm_first, activation, drop_path)
        self.decoder = Decoder(d_model, num_heads, d_ff, num_decoder_layers or num_layers, dropout,
                               norm_first, activation, drop_path)
        self.generator = nn.Linear(d_model, tgt_vocab_size)             # §3.4 pre-softmax linear
        if tie_output:
            self.generator.weight = self.tgt_embed.weight                # 같은 Parameter 객체
        self.register_buffer("pad_row", (torch.arange(tgt_vocab_size) == pad_id)[:, None], persistent=False)
        init_weights(self, init)

    def encode(self, src, src_mask=None):
        if src.size(1) > self.pos_enc.max_len:
            raise ValueError(f"원문 길이 {src.size(1)} 가 위치 표 크기 max_len={self.pos_enc.max_len} 를 "
                             "넘습니다: 원문을 잘라 넣거나 더 큰 max_len 으로 모델을 만드세요.")
        if src_mask is None:
            src_mask = padding_mask(src, self.pad_id)                    # (B, 1, 1, S)
        return self.encoder(self.pos_enc(self.src_embed(src)), src_mask)  # (B, S, d_model)

    def decode(self, tgt, memory, src_mask=None, cache=None):
        offset = 0 if cache is None else cache.get("length", 0)         # 이미 처리한 토큰 수
        T = tgt.size(1)
        self_mask = look_ahead_mask(offset + T, tgt.device)[:, :, offset:]  # (1, 1, T, offset + T)
        x = self.pos_enc(self.tgt_embed(tgt), offset)                    # (B, T, d_model)
        h = self.decoder(x, memory, self_mask, src_mask, cache)         # (B, T, d_model)
        if cache is not None:
            cache["length"] = offset + T
        return self.project(h)                                           # (B, T, V)

    def project(self, h):
        """출력층: (B, T, d_model) → logits (B, T, V). softmax 는 손실 함수가 한다."""
        weight = self.generator.weight                                   # (V, d_model)
        if self.tie_output:
            weight = weight.masked_fill(self.pad_row, 0.0)               # [PAD] 행 기울기 차단
        return F.linear(h, weight, self.generator.bias)                 # (B, T, V)

    def forward(self, src, tgt_in):
        src_mask = padding_mask(src, self.pad_id)                        # (B, 1, 1, S)
        memory = self.encode(src, src_mask)                              # (B, S, d_model)
        return self.decode(tgt_in, memory, src_mask)                     # (B, T, V)


# ══════ 가중치 초기화 ══════
# 논문은 초기화를 말하지 않는다. 흔한 세 가지를 고를 수 있게 한다:
#   "xavier": Glorot 균등분포 U(±√(6/(fan_in+fan_out))) — 분산을 입·출력 양쪽에서 보존.
#   "he":     Kaiming 정규분포 N(0, 2/fan_in) — ReLU 가 절반을 0 으로 만드는 것을 보정.
#   "normal": N(0, 0.02²) — BERT/GPT 관례.
# 모든 bias 는 0, LayerNorm 은 γ=1, β=0. scheme 은 선형층에만 쓴다.
# 임베딩은 scheme 과 상관없이 tensor2tensor·fairseq 처럼 N(0, d_model^-1) (표준편차 d_model^-0.5):
# §3.4 의 ×√d_model 뒤 RMS 가 1 이 되어 위치 인코딩(RMS 0.707)과 같은 크기가 된다.
# (Xavier 로 두면 ×√d_model 뒤 RMS 가 d_model 512·어휘 37k 에서 0.165, 128·2k 에서 0.35 로
#  위치 인코딩보다 몇 배 약해, 실제 텍스트(Multi30k)에서 같은 300 업데이트의 BLEU 가 0.7 대 8.8 이었다.)
# 특수 토큰 행과 [PAD] 행(0)은 TokenEmbedding 이 다시 맞춘다.

def _init_matrix(weight, scheme):
    if scheme == "xavier":
        nn.init.xavier_uniform_(weight)
    elif scheme == "he":
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
    else:
        nn.init.normal_(weight, mean=0.0, std=0.02)


@torch.no_grad()
def init_weights(model, scheme="xavier"):
    """model 의 모든 층을 scheme("xavier" | "he" | "normal")으로 다시 초기화하고 model 을 돌려준다.

    >>> _ = torch.manual_seed(0)
    >>> m = init_weights(Transformer(50, 50, d_model=64, num_heads=4, num_layers=1, d_ff=256), "he")
    >>> w = m.encoder.layers[0].ffn.w_1.weight                  # fan_in 64 → std √(2/64) ≈ 0.18
    >>> round(w.std().item(), 2)
    0.18
    >>> m.src_embed.weight[0].abs().sum().item()                # [PAD] 행은 0
    0.0
    """
    if scheme not in ("xavier", "he", "normal"):
        raise ValueError(f"init_weights: 모르는 scheme {scheme!r} 입니다; 'xavier', 'he', 'normal' 중 하나를 쓰세요.")
    embeddings = [m for m in model.modules() if isinstance(m, TokenEmbedding)]
    tied = {id(m.weight) for m in embeddings}                           # 묶인 출력층은 임베딩이 맡는다
    for module in model.modules():
        if isinstance(module, nn.Linear) and id(module.weight) not in tied:
            _init_matrix(module.weight, scheme)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
    for module in embeddings:
        module.reset_parameters("normal")                              # 어느 scheme 이든 N(0, d_model^-1)
    return model


# ══════ 디코딩: greedy 와 beam search (§6.1) ══════
# §6.1 "We used beam search with a beam size of 4 and length penalty α = 0.6 ...
#  We set the maximum output length during inference to input length + 50, but
#  terminate early when possible."
# 두 함수 모두 문장 묶음(B 개)을 한꺼번에 디코딩하고, 문장마다 토큰 id 리스트
# ([BOS]·[EOS] 제외)를 돌려준다. max_len 은 만들 수 있는 최대 토큰 수([EOS] 포함);
# None 이면 문장마다 (원문의 [PAD] 아닌 토큰 수) + 50. 어느 쪽이든 위치 표 크기
# model.pos_enc.max_len 을 넘지 않게 자른다: t 번째 토큰(0부터)은 위치 t 의 입력([BOS] 또는
# t-1 번째 토큰)에서 나오므로, 토큰 L 개를 만드는 데는 위치 0..L-1 만 쓰인다.
# [PAD]·[UNK]·[BOS] 는 만들지 않는다: fairseq 처럼 그 log 확률을 −∞ 로 둔다(softmax 뒤에
# 지우므로 나머지 토큰의 확률은 그대로이고, score_hypotheses 의 점수와 어긋나지 않는다).
# 캐시를 쓰면 매 단계 새 토큰 하나만 디코더에 넣는다(과거 k, v 는 캐시에서).

UNK_ID = SPECIAL_TOKENS.index("[UNK]")      # 1: data.py 어휘는 embeddings.SPECIAL_TOKENS 순서를 따른다


def _length_limits(model, src, max_len):
    """문장마다 최대 생성 길이 (B,), 위치 표 크기 이하."""
    if max_len is None:
        limits = (src != model.pad_id).sum(dim=1) + 50                   # §6.1 입력 길이 + 50
    else:
        limits = torch.full((src.size(0),), max_len, dtype=torch.long, device=src.device)
    return limits.clamp(max=model.pos_enc.max_len)


def _banned_ids(model, bos_id, eos_id):
    """디코더가 내면 안 되는 토큰 id 들: [PAD], [UNK], [BOS]."""
    vocab = model.generator.out_features
    return sorted(i for i in {model.pad_id, UNK_ID, bos_id} - {eos_id} if i < vocab)


def length_penalty(length, alpha=0.6):
    """GNMT(Wu et al., 2016) 길이 벌점 lp = ((5 + |Y|) / 6)^α. 점수 = log P / lp.

    >>> length_penalty(1, 0.6), length_penalty(7, 0.6) == 2 ** 0.6, length_penalty(7, 0.0)   # α = 0: 벌점 없음
    (1.0, True, 1.0)
    """
    return ((5.0 + length) / 6.0) ** alpha


def _to_lists(tokens, lengths, eos_id):
    """(B, L) 토큰과 길이 → [BOS]·[EOS] 를 뺀 리스트들."""
    out = []
    for row, n in zip(tokens.tolist(), lengths.tolist()):
        row = row[:n]
        out.append(row[:-1] if row and row[-1] == eos_id else row)
    return out


@torch.no_grad()
def greedy_decode(model, src, bos_id, eos_id, max_len=None, use_cache=True):
    """매 단계 가장 확률 높은 토큰을 고른다. 반환: list[list[int]] (문장마다 하나).

    >>> _ = torch.manual_seed(0)
    >>> m = Transformer(12, 12, d_model=8, num_heads=2, num_layers=1, d_ff=16)
    >>> src = torch.tensor([[5, 6, 7], [8, 9, 0]])
    >>> greedy_decode(m, src, 2, 3, max_len=4) == greedy_decode(m, src, 2, 3, max_len=4, use_cache=False)
    True
    """
    was_training = model.training
    model.eval()
    try:
        src_mask = padding_mask(src, model.pad_id)                       # (B, 1, 1, S)
        memory = model.encode(src, src_mask)                             # (B, S, d_model)
        limits = _length_limits(model, src, max_len)                     # (B,)
        banned = _banned_ids(model, bos_id, eos_id)
        ys = src.new_full((src.size(0), 1), bos_id)                      # (B, 1)
        lengths = torch.zeros_like(limits)
        done = torch.zeros_like(limits, dtype=torch.bool)
        cache = {} if use_cache else None
        for step in range(int(limits.max())):
            inp = ys[:, -1:] if use_cache else ys                        # (B, 1) 또는 (B, t)
            logits = model.decode(inp, memory, src_mask, cache)[:, -1]  # (B, V)
            logits[:, banned] = float("-inf")                            # [PAD]·[UNK]·[BOS] 금지
            token = logits.argmax(dim=-1)                                # (B,)
            token = token.masked_fill(done, model.pad_id)                # 끝난 문장은 [PAD]
            ys = torch.cat([ys, token[:, None]], dim=1)                  # (B, t + 1)
            lengths += (~done).long()
            done |= (token == eos_id) | (step + 1 >= limits)
            if done.all():
                break
    finally:
        model.train(was_training)
    return _to_lists(ys[:, 1:], lengths, eos_id)


def _reorder_cache(cache, index):
    """빔 재배열: 셀프 어텐션 캐시의 행을 index (B·K,) 순서로 고른다.
    교차 어텐션 캐시는 같은 문장의 빔끼리 동일하므로(문장 안에서만 섞임) 그대로 둔다."""
    for layer_cache in cache.get("layers", []):
        self_cache = layer_cache["self"]
        self_cache["k"] = self_cache["k"].index_select(0, index)
        self_cache["v"] = self_cache["v"].index_select(0, index)


@torch.no_grad()
def beam_search(model, src, bos_id, eos_id, beam_size=4, alpha=0.6, max_len=None, return_scores=False):
    """문장마다 살아 있는 가설 K(= beam_size) 개로 찾는 빔 서치. 반환: list[list[int]]
    (return_scores=True 면 (hyps, scores), score = log P(y|x) / lp(|y|), |y| 는 [EOS] 포함 길이).

    fairseq·tensor2tensor 의 표준 방식이다. 단계마다
      1. 살아 있는 K 개를 한 토큰씩 늘린 K·V 후보 중 누적 log P 가 큰 2K 개를 본다. 한 단계의
         후보는 길이가 모두 같으므로 log P 순서가 곧 점수 log P / lp(길이) 순서다.
      2. 그중 상위 K 등 안에서 [EOS] 를 낸 후보는 그 문장의 '끝난 가설'이 된다(점수 log P / lp).
         끝난 가설은 빔 자리를 차지하지 않으므로 더 긴 가설에 밀려 사라지지 않는다.
      3. [EOS] 가 아닌 앞쪽 K 개가 다음 단계의 살아 있는 가설이다([EOS] 는 빔마다 하나뿐이라
         2K 개 안에 [EOS] 아닌 후보가 늘 K 개 이상 있다).
    문장은 (a) 끝난 가설이 K 개가 되거나, (b) 살아 있는 가설 누구도 가장 좋은 끝난 가설을 더는
    이길 수 없거나 — log P 는 줄기만 하므로 닿을 수 있는 최고 점수는 지금 log P / (남은 길이에서
    가장 큰 lp) — (c) 최대 길이에 이르면 끝난다. (c) 에서 살아 있는 후보는 [EOS] 없이 끝난 가설이 된다.
    마지막에 끝난 가설 중 점수가 가장 높은 것을 고른다. 과거 키·값 캐시는 고른 빔 순서로 재배열한다.
    (a) 는 fairseq 의 규칙으로, beam_size=1 을 greedy_decode 와 똑같게 만든다.

    >>> _ = torch.manual_seed(0)
    >>> m = Transformer(12, 12, d_model=8, num_heads=2, num_layers=1, d_ff=16)
    >>> src = torch.tensor([[5, 6, 7], [8, 9, 0]])
    >>> beam_search(m, src, 2, 3, beam_size=1, max_len=6) == greedy_decode(m, src, 2, 3, max_len=6)
    True
    >>> hyps, scores = beam_search(m, src, 2, 3, beam_size=3, max_len=6, return_scores=True)
    >>> len(hyps), all(s <= 0 for s in scores)
    (2, True)
    """
    # 논문과 다른 점: 논문은 멈춤 규칙과 특수 토큰을 말하지 않는다. 멈춤 (a)·(b)·(c) 와
    #  [PAD]·[UNK]·[BOS] 금지는 fairseq·tensor2tensor 를 따랐다. (a) 때문에 K 개가 끝난 뒤에
    #  나올 더 긴 가설은 보지 않는다(빔 서치가 원래 근사이듯 이것도 근사다).
    B, K = src.size(0), beam_size
    V = model.generator.out_features
    if K < 1:
        raise ValueError(f"beam_search: beam_size 는 1 이상이어야 합니다 (받은 값 {K}).")
    was_training = model.training
    model.eval()
    try:
        src_mask = padding_mask(src, model.pad_id)                       # (B, 1, 1, S)
        memory = model.encode(src, src_mask).repeat_interleave(K, dim=0)  # (B·K, S, d_model)
        src_mask = src_mask.repeat_interleave(K, dim=0)                  # (B·K, 1, 1, S)
        limits = _length_limits(model, src, max_len)                     # (B,)
        banned = _banned_ids(model, bos_id, eos_id)
        live = torch.full((B, K), float("-inf"), device=src.device)     # 살아 있는 가설의 누적 log P
        live[:, 0] = 0.0                                                 # 처음엔 [BOS] 하나뿐
        ys = src.new_full((B * K, 1), bos_id)                            # (B·K, 1)
        best = torch.full((B,), float("-inf"), device=src.device)       # 끝난 가설 중 최고 점수
        best_ys = src.new_full((B, int(limits.max())), model.pad_id)    # (B, L) 그 가설의 토큰
        best_len = torch.zeros_like(limits)
        num_ended = torch.zeros_like(limits)                             # 끝난 가설 수
        finished = torch.zeros_like(limits, dtype=torch.bool)            # 문장의 탐색이 끝났나
        base = torch.arange(B, device=src.device)[:, None] * K           # (B, 1) 문장별 행 시작
        rank = torch.arange(2 * K, device=src.device)                    # (2K,) 후보의 등수
        cache = {}
        for step in range(int(limits.max())):
            logits = model.decode(ys[:, -1:], memory, src_mask, cache)[:, -1]        # (B·K, V)
            logp = F.log_softmax(logits.float(), dim=-1)                             # (B·K, V)
            logp[:, banned] = float("-inf")                                          # 특수 토큰 금지
            cand = (live.view(-1, 1) + logp).view(B, K * V)                          # (B, K·V) 누적 log P
            top, index = cand.topk(min(2 * K, K * V), dim=-1)                        # (B, 2K) 큰 순서
            beam, token = index // V, index % V                                      # (B, 2K)
            # 끝난 가설로: 상위 K 등 안의 [EOS], 최대 길이에선 모든 후보 (살아 있는 문장만)
            ends = ((token == eos_id) & (rank[:top.size(1)] < K)) | (step + 1 >= limits)[:, None]
            ends &= torch.isfinite(top) & ~finished[:, None]                         # (B, 2K)
            score = (top / length_penalty(step + 1, alpha)).masked_fill(~ends, float("-inf"))
            new_best, j = score.max(dim=-1)                                          # (B,)
            better = new_best > best
            rows = base.squeeze(1) + beam.gather(1, j[:, None]).squeeze(1)           # (B,)
            seq = torch.cat([ys[rows, 1:], token.gather(1, j[:, None])], dim=1)      # (B, step + 1)
            best_ys[:, :step + 1] = torch.where(better[:, None], seq, best_ys[:, :step + 1])
            best_len = torch.where(better, step + 1, best_len)
            best = torch.maximum(best, new_best)
            num_ended += ends.sum(dim=-1)
            # 살아 있는 가설로: [EOS] 아닌 앞쪽 K 개 (안정 정렬이라 점수 순서가 유지된다)
            keep = (token == eos_id).int().argsort(dim=-1, stable=True)[:, :K]       # (B, K)
            live = top.gather(1, keep)                                               # (B, K)
            rows = (base + beam.gather(1, keep)).view(-1)                            # (B·K,)
            ys = torch.cat([ys[rows], token.gather(1, keep).view(-1, 1)], dim=1)    # (B·K, step + 2)
            _reorder_cache(cache, rows)
            # 멈춤 (b): lp 는 길이에 단조이므로 남은 길이 step+2..limit 에서 가장 큰 lp 는 양 끝 중 하나
            most_lp = length_penalty(limits, alpha).clamp(min=length_penalty(step + 2, alpha))  # (B,)
            hopeless = best >= live.max(dim=-1).values / most_lp
            finished |= (step + 1 >= limits) | (num_ended >= K) | hopeless
            if finished.all():
                break
    finally:
        model.train(was_training)
    hyps = _to_lists(best_ys, best_len, eos_id)
    if return_scores:
        return hyps, best.tolist()
    return hyps


@torch.no_grad()
def score_hypotheses(model, src, hyps, bos_id, eos_id, alpha=0.6, ended=None):
    """가설마다 log P(y|x) / lp(|y|) (beam_search 의 점수와 같은 정의). list[float].

    ended[i] 가 True(기본)면 가설 뒤에 [EOS] 를 붙여 함께 점수를 매긴다
    (최대 길이에 걸려 [EOS] 없이 끝난 가설은 False).

    >>> _ = torch.manual_seed(0)
    >>> m = Transformer(12, 12, d_model=8, num_heads=2, num_layers=1, d_ff=16)
    >>> src = torch.tensor([[5, 6, 7]])
    >>> hyps, scores = beam_search(m, src, 2, 3, beam_size=2, max_len=6, return_scores=True)
    >>> again = score_hypotheses(m, src, hyps, 2, 3, ended=[len(h) < 6 for h in hyps])
    >>> abs(again[0] - scores[0]) < 1e-4
    True
    """
    ended = [True] * len(hyps) if ended is None else ended
    seqs = [[bos_id] + list(h) + ([eos_id] if e else []) for h, e in zip(hyps, ended)]
    width = max(len(s) for s in seqs)
    tgt = torch.tensor([s + [model.pad_id] * (width - len(s)) for s in seqs], device=src.device)  # (B, L)
    was_training = model.training
    model.eval()
    try:
        logp = F.log_softmax(model(src, tgt[:, :-1]).float(), dim=-1)    # (B, L-1, V)
    finally:
        model.train(was_training)
    token_logp = logp.gather(-1, tgt[:, 1:, None]).squeeze(-1)          # (B, L-1)
    lengths = torch.tensor([len(s) - 1 for s in seqs], device=src.device)
    keep = torch.arange(width - 1, device=src.device)[None, :] < lengths[:, None]  # (B, L-1)
    total = (token_logp * keep).sum(dim=1)
    return (total / length_penalty(lengths, alpha)).tolist()


# ══════ 관찰 도구: 어텐션 지도와 층별 기여도 (그림용) ══════
# 모델 코드를 바꾸지 않고 forward hook 으로 값을 모은다. with 블록 안에서만 켜지고,
# 나가면 원래대로 돌아온다. 어텐션을 기록하는 동안은 공식 그대로의 느린 경로를 쓰므로
# 결과는 빠른 경로와 부동소수 반올림(≈1e-6) 수준까지 같다.

@contextlib.contextmanager
def _collect(model, module_types, read, flag=None):
    """module_types 인 모듈마다 forward hook 을 걸어 {이름: [read(mod, args, out), …]} 를 모은다.
    flag(예: "keep_weights")를 주면 그동안 그 속성을 True 로 켰다가 나갈 때 원래대로 돌린다."""
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, module_types)]
    before = [getattr(m, flag) for _, m in modules] if flag else []
    found, handles = {}, []
    for name, module in modules:
        if flag:
            setattr(module, flag, True)
        found[name] = []
        handles.append(module.register_forward_hook(
            lambda mod, args, out, store=found[name]: store.append(read(mod, args, out))))
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()
        for (_, module), keep in zip(modules, before):
            setattr(module, flag, keep)


@contextlib.contextmanager
def record_attention(model):
    """with record_attention(model) as maps: … → maps[이름] = [가중치, …] (forward 호출마다 하나).

    이름은 모듈 경로: "encoder.layers.0.self_attn", "decoder.layers.0.self_attn",
    "decoder.layers.0.cross_attn". 가중치는 (B, h, T_q, T_k) (분리된 텐서).
    캐시 디코딩이면 단계마다 (B, h, 1, T_k) 가 하나씩 쌓인다.

    >>> _ = torch.manual_seed(0)
    >>> m = Transformer(12, 12, d_model=8, num_heads=2, num_layers=2, d_ff=16, dropout=0.0)
    >>> with record_attention(m) as maps:
    ...     _ = m(torch.tensor([[5, 6, 7, 0]]), torch.tensor([[2, 5]]))
    >>> maps["decoder.layers.1.cross_attn"][0].shape             # (B, h, T_q, T_k)
    torch.Size([1, 2, 2, 4])
    >>> maps["encoder.layers.0.self_attn"][0][0, 0, :, 3].tolist()   # [PAD] 열은 0
    [0.0, 0.0, 0.0, 0.0]
    """
    with _collect(model, MultiHeadAttention, lambda mod, args, out: mod.last_weights, "keep_weights") as maps:
        yield maps


def _branch_ratio(module, args, out):
    """부분층 기여도: SublayerConnection 이 keep_contribution 으로 보관한 ‖가지‖ / ‖잔차 입력‖."""
    return module.last_contribution


def _relative_change(module, args, out):
    """층 기여도: ‖층 출력 − 층 입력‖ / ‖층 입력‖."""
    x = args[0].detach()
    return ((out.detach() - x).norm() / x.norm().clamp_min(1e-12)).item()


@contextlib.contextmanager
def record_contributions(model):
    """with record_contributions(model) as c: … → c[이름] = [float, …] (forward 호출마다 하나).

    부분층 "encoder.layers.0.sub_attn" 등: ‖Dropout(Sublayer(x))‖ / ‖x‖ (잔차 가지 / 잔차 입력,
    배치 전체의 Frobenius 노름). 디코더는 sub_self, sub_cross, sub_ffn.
    층 "encoder.layers.0" 등: ‖층 출력 − 층 입력‖ / ‖층 입력‖ (층이 표현을 얼마나 바꾸나).

    >>> _ = torch.manual_seed(0)
    >>> m = Transformer(12, 12, d_model=8, num_heads=2, num_layers=2, d_ff=16, dropout=0.0)
    >>> with record_contributions(m) as c:
    ...     _ = m(torch.tensor([[5, 6, 7]]), torch.tensor([[2, 5]]))
    >>> sorted(k for k in c if k.startswith("decoder.layers.0"))
    ['decoder.layers.0', 'decoder.layers.0.sub_cross', 'decoder.layers.0.sub_ffn', 'decoder.layers.0.sub_self']
    >>> all(v[0] > 0 for v in c.values())
    True
    """
    with _collect(model, SublayerConnection, _branch_ratio, "keep_contribution") as subs:
        with _collect(model, (EncoderLayer, DecoderLayer), _relative_change) as whole:
            yield {**subs, **whole}                 # 같은 리스트 객체라 블록 안의 호출이 그대로 쌓인다
