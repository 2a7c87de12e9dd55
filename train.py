"""train.py — Transformer 를 학습하고, 평가하고, 번역한다 (부록: 기록·점검·장치·체크포인트·재개·명령줄).

"Sentence pairs were batched together by approximate sequence length. Each training batch contained a set of
sentence pairs containing approximately 25000 source tokens and 25000 target tokens." (§5.1)

``python train.py`` 는 WMT14 가 준비되어 있으면(``python data.py prepare wmt14``) 논문의 base 모델(``rtx3090``
프리셋)을, 아니면 내장 데모 코퍼스로 ``demo`` 프리셋을 학습하고 보지 않은 테스트 문장의 번역과 BLEU 를 출력한다.
``--resume`` 은 끊긴 학습을 그대로 이어 가고(같은 손실이 나온다), ``--translate "the old man saw the small dog"``
는 최근 런으로 번역한다 (``--translate-file``, ``--score``, ``--average-checkpoints`` 는 부록 G).

학습 루프의 뼈대 (``Trainer.train``)::

    while step < max_steps:
        loss = train_step(다음 업데이트의 배치들)    # 순전파 → 역전파 → Adam 한 걸음
        간격마다: 진행 줄, 검증, metrics.csv + status.md, 체크포인트

본문 읽는 순서 (``# ══════ 부록`` 배너 줄 위까지; 아래로 건너뛸 일 없음):
1 설정과 프리셋 → 2 데이터 (코퍼스, 토큰 수로 묶은 배치) → 3 모델·옵티마이저 → 4 학습 루프 (Trainer: 준비, train,
train_step, accumulate_gradients; 그 뒤의 기록·저장 메서드는 건너뛰어도 됨) → 5 평가와 번역 → 6 BLEU.
부록 (처음엔 건너뛴다): A. 기록 (metrics.csv, status.md) · B. 설정·배치·코퍼스 점검 · C. 장치·혼합 정밀도·분산·CPU
메모리와 드롭아웃 · D. 체크포인트 · E. 재개와 런 읽기 (load_run) · F. 캐시 · G. 명령줄 (--translate-file, --score, 평균).
본문이 부록을 부르는 곳에는 ``# 부록 X: …`` 주석이 있다. 그림은 plots.py 가 그린다: ``python plots.py --run <런>``.

>>> cfg = preset_config("rtx3090")               # 논문의 base 모델 (표 3, §5.3, §5.4, §6.1)
>>> cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.d_ff, cfg.dropout, cfg.warmup, cfg.max_steps
(512, 6, 8, 2048, 0.1, 4000, 100000)
>>> cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps, cfg.label_smoothing, cfg.beam_size, cfg.length_penalty
(0.9, 0.98, 1e-09, 0.1, 4, 0.6)
>>> cfg.max_tokens * cfg.accum_steps, cfg.vocab_size, cfg.average_last, cfg.share_embeddings   # 25k 토큰 (§5.1)
(25000, 37000, 5, True)
"""
import argparse
import collections
import contextlib
import csv
import ctypes
import dataclasses
import datetime
import functools
import glob
import json
import math
import os
import pathlib
import random
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import data
from losses import label_smoothed_cross_entropy
from model import Transformer, beam_search, greedy_decode
from schedules import as_lambda_lr, cosine_lr, transformer_lr


# ══════ 1. 설정: 하나의 dataclass 와 네 개의 프리셋 ══════
def _opt(default, help):
    """Config 필드 하나: 기본값과 ``--help`` 에 나올 한국어 설명."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Config:
    """학습 설정 전부. 모든 필드는 명령줄 ``--필드-이름`` 으로 바꿀 수 있다.
    >>> Config().replace(d_model=64).d_model
    64
    """
    preset: str = _opt("demo", "프리셋 이름")
    corpus: str = _opt("demo", "코퍼스: demo (내장 문법) 또는 parallel (= data_dir 의 평행 코퍼스: WMT14, "
                               "Multi30k, 아무 train/valid/test.<언어> 디렉터리; 옛 이름 wmt14 도 됨)")
    data_dir: str = _opt("data/wmt14", "평행 코퍼스 디렉터리 (주면 그 코퍼스로 학습; 캐시가 없으면 먼저 준비)")
    src: str = _opt("en", "원문 언어 = 코퍼스 파일의 확장자 (train.en 이면 en)")
    tgt: str = _opt("de", "번역문 언어 = 코퍼스 파일의 확장자")
    # --- 데모 코퍼스 크기와 BPE ---
    train_pairs: int = _opt(60000, "데모 학습 쌍 수")
    valid_pairs: int = _opt(500, "데모 검증 쌍 수")
    test_pairs: int = _opt(500, "데모 테스트 쌍 수")
    vocab_size: int = _opt(1000, "공동 BPE 어휘 크기 (논문 약 37000)")
    # --- 모델 (§3, 표 3의 base: 512/6/8/2048/0.1) ---
    d_model: int = _opt(256, "모델 차원 d_model (논문 base 512)")
    num_heads: int = _opt(4, "어텐션 헤드 수 h (논문 8)")
    num_layers: int = _opt(3, "인코더·디코더 층 수 N (논문 6)")
    d_ff: int = _opt(1024, "FFN 안쪽 차원 d_ff (논문 2048)")
    dropout: float = _opt(0.1, "드롭아웃 P_drop (논문 0.1)")
    max_len: int = _opt(1024, "위치 표 크기: 원문·번역문이 넘을 수 없는 토큰 수 (논문 언급 없음)")
    norm_first: bool = _opt(False, "Pre-LN 을 쓴다 (논문은 Post-LN = --no-norm-first)")
    share_embeddings: bool = _opt(True, "임베딩 공유 + 출력층 묶기 (논문 §3.4 처럼 켬)")
    # --- 최적화 (§5.3: Adam β1=0.9, β2=0.98, ε=1e-9, 워밍업 후 역제곱근 감소) ---
    lr_factor: float = _opt(1.0, "논문 학습률 스케줄에 곱할 배율 (논문 1.0)")
    lr_schedule: str = _opt("noam", "학습률 스케줄: noam (논문 §5.3) | cosine (같은 최고점, max_steps 에서 0)")
    warmup: int = _opt(4000, "워밍업 업데이트 수, 1 이상 (논문 4000)")
    max_steps: int = _opt(100000, "총 업데이트 수 (논문 base 100000)")
    adam_beta1: float = _opt(0.9, "Adam β1 (논문 0.9)")
    adam_beta2: float = _opt(0.98, "Adam β2 (논문 0.98)")
    adam_eps: float = _opt(1e-9, "Adam ε (논문 1e-9)")
    clip_norm: float = _opt(0.0, "기울기 노름 자르기, 0 = 끔 (논문 언급 없음)")
    label_smoothing: float = _opt(0.1, "라벨 스무딩 ε_ls (논문 0.1)")
    # --- 배치 (§5.1: 업데이트당 약 25k 토큰) ---
    max_tokens: int = _opt(4096, "배치 하나의 토큰 상한, 문장 수 × 긴 쪽 폭 (논문: 업데이트당 원문·번역 각 약 25000)")
    accum_steps: int = _opt(1, "그래디언트 누적 배치 수: 업데이트당 max_tokens × accum_steps")
    # --- 장치, 정밀도, 평가와 기록 ---
    device: str = _opt("auto", "장치: auto | cpu | cuda")
    amp: str = _opt("auto", "혼합 정밀도: auto (GPU bf16/fp16, CPU 는 bf16 을 직접 계산하면 bf16) | fp16 | bf16 | off")
    threads: int = _opt(0, "CPU 스레드 수, 0 = torch 기본값")
    log_every: int = _opt(100, "진행 줄을 찍는 업데이트 간격")
    eval_every: int = _opt(1000, "검증(손실, 정확도, 그리디 BLEU) 간격")
    eval_bleu_sentences: int = _opt(200, "중간 평가에서 그리디 BLEU 를 잴 검증 문장 수")
    save_every: int = _opt(1000, "체크포인트 간격 (논문: 10분마다)")
    keep_checkpoints: int = _opt(5, "남겨 둘 스텝 체크포인트 수")
    average_last: int = _opt(5, "끝에서 평균할 체크포인트 수, 1 = 평균하지 않음 (논문 5)")
    beam_size: int = _opt(4, "빔 크기 (논문 4; --translate·--translate-file 에 주면 런의 값 대신)")
    length_penalty: float = _opt(0.6, "길이 벌점 α, 0 이상 (논문 0.6; 번역에 주면 런의 값 대신)")
    max_nonfinite: int = _opt(5, "연속으로 이만큼 손실이 NaN/inf 면 멈춘다")
    min_loss_scale: float = _opt(1e-4, "fp16 손실 스케일이 이보다 작아지면 멈춘다 (fairseq 와 같은 1e-4)")
    stop_after: int = _opt(0, "0 보다 크면 이 스텝에서 체크포인트를 쓰고 멈춘다 (재개 시험용)")
    seed: int = _opt(0, "난수 시드")
    run_dir: str = _opt("", "런 디렉터리, 비우면 outputs/training/<프리셋>_<시각>/")
    resume: str = _opt("", "이어 갈 런 디렉터리나 체크포인트")

    def replace(self, **changes):
        """몇 필드만 바꾼 새 설정."""
        return dataclasses.replace(self, **changes)


PRESETS = ("tiny", "demo", "multi30k", "rtx3090")


def preset_config(name):
    """프리셋 이름 → Config. tiny: 테스트용 몇 초, demo: CPU 몇 분, multi30k: CPU 에서 진짜 문장
    (Multi30k 2.9만 쌍), rtx3090: 논문 base 를 24 GB GPU 하나에서 (AMP, 그래디언트 누적)."""
    presets = {
        # 논문과 다른 점: tiny 는 "64 쌍을 외울 수 있는가" 를 몇 초 만에 보이는 테스트용이라 라벨 스무딩과
        # 드롭아웃을 끈다 (ε=0.1 이면 교차 엔트로피가 약 0.1 아래로 내려갈 수 없다).
        "tiny": dict(train_pairs=64, valid_pairs=16, test_pairs=16, vocab_size=300, d_model=64, num_heads=2,
                     num_layers=1, d_ff=128, dropout=0.0, label_smoothing=0.0, lr_factor=0.5, warmup=30,
                     max_steps=300, max_tokens=1024, log_every=50, eval_every=100, eval_bleu_sentences=16,
                     save_every=100, keep_checkpoints=3, average_last=2, beam_size=2, amp="off"),
        # 논문과 다른 점: demo 는 CPU 몇 분 안에 끝나도록 base 보다 훨씬 작은 모델(128/2층/4헤드/512)과
        # 2,048 토큰 배치, bf16 을 직접 계산하는 CPU 면 bf16 autocast 를 쓴다 (auto). 나머지는 논문 그대로.
        "demo": dict(vocab_size=2000, d_model=128, num_heads=4, num_layers=2, d_ff=512, warmup=400, max_steps=1600,
                     lr_factor=1.0, max_tokens=2048, log_every=100, eval_every=400, save_every=200, amp="auto"),
        # 논문과 다른 점: multi30k 는 CPU 두 코어에서 40분 안에 끝나도록 base 의 1/4 쯤 되는 모델(256/3층/4헤드/512),
        # 2,048 토큰 배치, 4,400 업데이트(약 19 에폭), bf16 autocast(AVX512-BF16 CPU 에서 1.4배 빠름; 아니면 --amp off),
        # 학습률 배율 0.7 (최고 1.5e-3; 코사인·배율 1.0 은 독일어→영어에서 1 BLEU 낮았다), 길이 벌점 α 2.0 (α 0.6 이면 9% 짧다).
        # 드롭아웃 0.1 등 나머지는 논문 그대로. 값은 README "프리셋을 고른 실험" 의 비교(검증·test2016)로 골랐다.
        "multi30k": dict(corpus="parallel", data_dir="data/multi30k", vocab_size=8000, d_model=256, num_heads=4,
                         num_layers=3, d_ff=512, dropout=0.1, warmup=800, lr_factor=0.7,
                         max_steps=4400, max_tokens=2048, amp="bf16", eval_every=800, eval_bleu_sentences=100,
                         save_every=150, length_penalty=2.0),
        # 논문과 다른 점: 논문은 GPU 8장에서 배치당 25k 토큰을 한 번에 처리했다. rtx3090 은 GPU 한 장에서
        # 6,250 토큰 배치 4개의 그래디언트를 누적해 업데이트 크기 ≈25k 를 만든다. 예산은 "문장 수 × 긴 쪽
        # 폭(패딩 포함)" 이라 실제 토큰은 더 적다: WMT 표본 1만 쌍(BPE 8k·37k)에서 잰 업데이트당 원문 약
        # 21.2-21.9k, 번역문 약 22.6-23.3k (논문의 85-93%; 같게 하려면 max_tokens ≈ 7,000-7,500 인데 24 GB 에서
        # 메모리를 재 보지 못해 그대로 둔다). 논문은 10분마다 쓴 체크포인트의 마지막 5개를 평균했다: 12시간에
        # 10만 스텝이면 10분 ≈ 1,400 스텝 (평균 창 = 마지막 약 5,600 스텝).
        "rtx3090": dict(corpus="parallel", vocab_size=37000, d_model=512, num_heads=8, num_layers=6, d_ff=2048,
                        dropout=0.1, warmup=4000, max_steps=100000, max_tokens=6250, accum_steps=4, amp="auto",
                        log_every=100, eval_every=2800, save_every=1400, eval_bleu_sentences=500),
    }
    if name not in presets:
        raise ValueError(f"알 수 없는 프리셋 '{name}' 입니다: {', '.join(PRESETS)} 중에서 고르세요.")
    return Config(preset=name, **presets[name])


# ══════ 2. 데이터: 데모 코퍼스 또는 평행 코퍼스, 토큰 수로 묶은 배치 ══════
# 학습에 필요한 것: BPE, 분할별 (원문 id, 번역 id) 목록, 검증·테스트의 (원문, 참조) 문장.
# cache: 평행 코퍼스의 캐시 디렉터리 (데모는 None) — 런이 기록해 두었다가 재개할 때 같은 캐시를 쓴다.
Corpus = collections.namedtuple("Corpus", "bpe train valid test valid_text test_text cache")


def load_corpus(cfg, bpe_path=None, log=print, cache=None, rank=0, world_size=1):
    """데모: 문법으로 문장을 만들고 학습 문장으로 공동 BPE 를 배워(bpe_path 가 있으면 읽어) 인코딩한다.
    평행 코퍼스(corpus="parallel"): ``data.py prepare`` 의 캐시를 쓴다 (load_prepared_corpus; cache = 재개하는
    런이 쓰던 캐시, rank/world_size = torchrun 의 랭크)."""
    if cfg.corpus == "parallel":
        return load_prepared_corpus(cfg, log, cache, rank, world_size)   # 부록 F: 캐시 읽기 (없으면 먼저 준비)
    splits = data.demo_splits(cfg.train_pairs, cfg.valid_pairs, cfg.test_pairs, seed=cfg.seed)
    bpe = (data.BPE.load(bpe_path) if bpe_path and os.path.exists(bpe_path)
           else data.train_bpe([s for pair in splits["train"] for s in pair], cfg.vocab_size))
    enc = {name: [(bpe.encode(en), bpe.encode(de)) for en, de in pairs] for name, pairs in splits.items()}
    log(f"데모 코퍼스: 학습 {len(enc['train']):,} 쌍, 검증 {len(enc['valid']):,}, 테스트 {len(enc['test']):,}, "
        f"BPE 어휘 {len(bpe):,}")
    return Corpus(bpe, enc["train"], enc["valid"], enc["test"], splits["valid"], splits["test"], None)


def epoch_batches(pairs, cfg, epoch, rank=0, world_size=1):
    """한 에폭의 배치 목록(예제 번호 목록들): (특수 토큰 1개를 더한) 긴 쪽 길이 × 문장 수 ≤ max_tokens.
    시드와 에폭만으로 정해져 재개해도 같고, 분산 학습이면 랭크마다 겹치지 않는 같은 수의 배치를 준다."""
    return data.token_batches(*sequence_lengths(pairs), cfg.max_tokens, seed=cfg.seed, epoch=epoch, shuffle=True,
                              rank=rank, world_size=world_size)


def sequence_lengths(pairs):
    """(원문 길이들, 번역문 길이들). 준비된 캐시는 길이 배열을 이미 들고 있다."""
    if hasattr(pairs, "src_lengths"):
        return pairs.src_lengths, pairs.tgt_lengths
    return [len(s) for s, _ in pairs], [len(t) for _, t in pairs]


def make_batch(pairs, indices, device):
    """예제 번호 → (src, tgt_in, tgt_out) 텐서 = (원문+[EOS], [BOS]+번역, 번역+[EOS]), 장치로 옮김."""
    return tuple(t.to(device) for t in data.collate([pairs[i] for i in indices]))


# ══════ 3. 모델과 옵티마이저 ══════
# "We used the Adam optimizer with β1 = 0.9, β2 = 0.98 and ε = 10^-9. We varied the learning rate over the course of
# training, according to the formula: lrate = d_model^-0.5 · min(step_num^-0.5, step_num · warmup_steps^-1.5)" (§5.3)
def build_model(cfg, vocab_size):
    """설정대로 Transformer 를 만든다 (공동 어휘면 임베딩 공유 + 출력층 묶기, §3.4)."""
    return Transformer(vocab_size, vocab_size, d_model=cfg.d_model, num_heads=cfg.num_heads, num_layers=cfg.num_layers,
                       d_ff=cfg.d_ff, dropout=cfg.dropout, pad_id=data.PAD_ID, share_embeddings=cfg.share_embeddings,
                       tie_output=cfg.share_embeddings, norm_first=cfg.norm_first, max_len=cfg.max_len)


def build_optimizer(cfg, model):
    """논문의 학습률 스케줄 lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) (× lr_factor) 과
    Adam(β1=0.9, β2=0.98, ε=1e-9) (§5.3). lr=1.0: as_lambda_lr 의 LambdaLR 이 1.0 × 스케줄 값을 학습률로 쓴다."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps)
    noam = lambda s: cfg.lr_factor * transformer_lr(s, cfg.d_model, cfg.warmup)               # 논문 그대로 (§5.3)
    # 논문과 다른 점: cosine 은 워밍업·최고점이 같고 max_steps 에서 0 이 되게 내려간다 (몇천 스텝의 짧은 학습용).
    cosine = functools.partial(cosine_lr, peak_lr=noam(cfg.warmup), warmup_steps=cfg.warmup, total_steps=cfg.max_steps)
    return optimizer, as_lambda_lr(optimizer, cosine if cfg.lr_schedule == "cosine" else noam)


# ══════ 4. 학습 루프 ══════
class Trainer:
    """한 번의 학습 실행: 상태(모델, 옵티마이저, 스텝, 에폭 위치)와 그 상태를 바꾸는 메서드."""

    def __init__(self, cfg, log=print):
        # 준비: 설정·프로세스·장치 → 런 디렉터리와 시드 → 코퍼스 → 모델·옵티마이저 → 카운터 → (재개면) 상태 복원
        self.cfg = check_config(cfg)                     # 부록 B: 학습이 될 수 없는 설정은 여기서 거절
        self.rank, self.world_size = init_distributed()  # 부록 C: torchrun 이면 (랭크, 프로세스 수), 아니면 (0, 1)
        self.is_main = self.rank == 0                    # 기록·평가·저장은 랭크 0 만
        self.log = log if self.is_main else (lambda *a, **k: None)
        self.device, self.amp = setup_device(cfg, self.world_size)   # 부록 C: 장치와 혼합 정밀도 (off/bf16/fp16)
        resume = find_resume_state(cfg)                  # 부록 E: 재개면 체크포인트 (런이 저장한 설정과 같은지 확인)
        self.run_dir = make_run_dir(cfg, resume, self.is_main)       # 부록 E: 새 런이면 outputs/training/<프리셋>_<시각>
        for set_seed in (random.seed, np.random.seed, torch.manual_seed):   # python, numpy, torch 난수를 같은 시드로
            set_seed(cfg.seed)
        self.corpus = load_corpus(cfg, os.path.join(self.run_dir, "bpe.txt"), self.log,
                                  cache=resume.get("cache") if resume else None, rank=self.rank,
                                  world_size=self.world_size)
        if self.is_main:
            keep_run_bpe(self.run_dir, self.corpus.bpe)  # 부록 F: 새 런이면 bpe.txt 를 쓰고, 있으면 같은지 확인
        check_batch_fits(cfg, self.corpus, self.device)  # 부록 B: 가장 긴 쌍과 어림 메모리가 배치에 들어가는지
        self.train_tgt_lengths = np.asarray(sequence_lengths(self.corpus.train)[1])  # 업데이트의 토큰 수 세기용
        self.model = build_model(cfg, len(self.corpus.bpe)).to(self.device)
        self.optimizer, self.scheduler = build_optimizer(cfg, self.model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")   # fp16 손실 스케일링 (아니면 꺼짐)
        self.step, self.epoch, self.batch_pos, self._epoch_batches = 0, 0, 0, None
        self.nonfinite_in_row = self.nonfinite_total = self.overflow_total = 0   # overflow: fp16 이 건너뜀
        self.status = {"state": "학습 중", "amp": self.amp, "step": 0, "epoch": 0, "elapsed": 0.0}
        self.elapsed_before, self.start_time = 0.0, time.time()
        if resume is not None:
            self.restore(resume)                         # 아래 기록·저장 메서드: 가중치, 옵티마이저, 스텝, 난수 상태
        self.ddp_model = distributed_model(self.model, self.device, self.world_size)  # 부록 C: torchrun 이면 DDP 로 감쌈

    def train(self):
        """max_steps 까지 학습한다: 끝까지 가면 True, --stop-after 로 멈추면 False.
        Ctrl-C 면 체크포인트를 쓰고 KeyboardInterrupt 를 다시 올린다."""
        cfg = self.cfg
        self.log(f"런 디렉터리: {self.run_dir} | 장치 {self.device} | AMP {self.amp} | "
                 f"파라미터 {sum(p.numel() for p in self.model.parameters()):,}")
        self.start_time = time.time()
        self.window = {"losses": [], "tokens": 0, "start": time.time(), "first": (self.step, time.time())}
        try:
            while self.step < cfg.max_steps:
                loss, tokens, result = self.train_step(self.next_update_batches())
                self.window["tokens"] += tokens
                if result != "applied":                     # 건너뛴 업데이트: 스텝·스케줄은 그대로
                    self.count_skipped(result)
                    continue
                self.step, self.nonfinite_in_row = self.step + 1, 0
                self.window["losses"].append(loss)
                last, row = self.step == cfg.max_steps, {}
                if self.step % cfg.log_every == 0 or last:
                    row.update(self.log_progress())
                if self.step % cfg.eval_every == 0 or last:
                    row.update(self.evaluate())
                if row:
                    self.record(row)                        # metrics.csv 한 줄 + status.md
                if self.step % cfg.save_every == 0 or last:
                    self.save()
                if cfg.stop_after and cfg.stop_after <= self.step < cfg.max_steps:
                    self.stop("중단 (stop_after)")
                    self.log(f"스텝 {self.step} 에서 멈춤: `--resume {self.run_dir}` 로 이어 가세요.")
                    return False
        except KeyboardInterrupt:
            path = self.stop("중단 (Ctrl-C)")
            self.log(f"\n중단됨: 스텝 {self.step} 체크포인트를 {path} 에 저장했습니다. "
                     f"`python train.py --resume {self.run_dir}` 로 이어 가세요.")
            raise
        self.status["state"] = "완료"
        self.record()
        return True

    def train_step(self, batches):
        """한 업데이트: 기울기 지우기 → 순전파·손실·역전파 (accumulate_gradients) → Adam 한 걸음 → 학습률 한 걸음.
        반환: (토큰당 평균 손실, 목표 토큰 수, 결과; 모든 랭크를 합친 업데이트의 값). 결과는 "applied" 또는 건너뛴 까닭:
        "nonfinite" (어느 랭크든 손실이 NaN/inf) 나 "overflow" (fp16 GradScaler 가 inf 기울기를 보고 건너뜀)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, tokens = self.accumulate_gradients(batches)    # 순전파 → 손실 → 역전파 (기울기가 쌓인다)
        loss = all_reduce(loss_sum.item(), self.device, self.world_size) / max(tokens, 1)   # 부록 C: 모든 랭크의 합
        if not math.isfinite(loss):          # 한 랭크라도 NaN/inf 면 합도 그렇다 (교차 엔트로피 ≥ 0 이라 inf−inf 없음)
            discard_update(self.optimizer, self.scaler, self.amp)        # 부록 C: 모든 랭크가 함께 기울기를 버린다
            return loss, tokens, "nonfinite"
        if not optimizer_step(self.optimizer, self.scaler, self.model.parameters(), self.cfg.clip_norm):  # 부록 C
            return loss, tokens, "overflow"                      # ↑ 자르기 + Adam 한 걸음; fp16 넘침이면 건너뜀
        self.scheduler.step()                                    # 학습률 스케줄 한 걸음 (§5.3)
        return loss, tokens, "applied"

    def accumulate_gradients(self, batches):
        """마이크로배치들의 기울기를 쌓는다. 반환: (이 랭크의 토큰 손실 합 텐서, 모든 랭크의 목표 토큰 수).
        쌓인 기울기 = ∂(업데이트 전체의 토큰 손실 합)/∂θ ÷ (업데이트 전체의 목표 토큰 수, 모든 랭크 합):
        마이크로배치마다 토큰 수만큼 기여해 모두를 담은 한 배치의 기울기와 같다 (fairseq 방식; 길이 배열로 센다)."""
        tokens = sum(int(self.train_tgt_lengths[b].sum()) + len(b) for b in batches)  # 번역 + [EOS]
        # 역전파하는 값 = 손실 합 × world_size ÷ tokens. DDP 는 랭크들의 기울기를 평균(÷ world_size)하므로 × world_size
        # 로 되돌리고, ÷ (모든 랭크의 목표 토큰 합) 으로 업데이트 전체의 토큰당 평균을 만든다. 한 프로세스면 ÷ tokens.
        tokens = all_reduce(tokens, self.device, self.world_size)     # 부록 C: 모든 랭크의 합 (한 프로세스면 그대로)
        loss_sum = torch.zeros((), device=self.device)
        for i, indices in enumerate(batches):
            src, tgt_in, tgt_out = make_batch(self.corpus.train, indices, self.device)
            sync = i == len(batches) - 1 or self.world_size == 1     # 마지막 마이크로배치에서만 all-reduce
            with contextlib.nullcontext() if sync else self.ddp_model.no_sync():
                with autocast(self.amp, self.device):                               # 부록 C: 혼합 정밀도
                    logits = self.ddp_model(src, tgt_in)                                    # (B, T, V)
                loss = label_smoothed_cross_entropy(logits.float(), tgt_out, epsilon=self.cfg.label_smoothing,
                                                    ignore_index=data.PAD_ID, reduction="sum")
                self.scaler.scale(loss * (self.world_size / tokens)).backward()   # 위 주석의 배율
            loss_sum += loss.detach()
        return loss_sum, tokens

    def next_update_batches(self):
        """다음 업데이트에 쓸 배치 accum_steps 개. 에폭이 끝나면 다음 에폭의 순서로 넘어간다."""
        out = []
        while len(out) < self.cfg.accum_steps:
            if self._epoch_batches is None:
                self._epoch_batches = epoch_batches(self.corpus.train, self.cfg, self.epoch, self.rank, self.world_size)
            if self.batch_pos >= len(self._epoch_batches):
                self.epoch, self.batch_pos, self._epoch_batches = self.epoch + 1, 0, None
                continue
            out.append(self._epoch_batches[self.batch_pos])
            self.batch_pos += 1
        return out

    # ---- 루프가 부르는 기록·저장 (처음엔 건너뛰어도 됨): 건너뜀 세기, 진행 줄, 검증, 기록, 저장, 재개 ----
    def count_skipped(self, result):
        """건너뛴 업데이트를 센다: fp16 넘침은 세기만, NaN/inf 가 연속 max_nonfinite 번이면 멈춤 (부록 C: handle_skipped)."""
        return handle_skipped(self, result)

    def log_progress(self):
        """진행 줄 하나를 찍고 metrics.csv 의 칸을 돌려준다 (부록 A: progress_line)."""
        return progress_line(self)

    def evaluate(self):
        """검증 손실·정확도와 검증 문장 일부의 그리디 BLEU (랭크 0 만). metrics.csv 의 칸을 돌려준다."""
        if not self.is_main:
            return {}
        start, n = time.time(), self.cfg.eval_bleu_sentences
        valid_loss, acc = evaluate_loss(self.model, self.corpus.valid, self.cfg, self.device, self.amp)
        hyps = translate_ids(self.model, [s for s, _ in self.corpus.valid[:n]], self.device)
        score = bleu([self.corpus.bpe.decode(h) for h in hyps], [ref for _, ref in self.corpus.valid_text[:n]])  # 6절
        self.status.update(valid_loss=valid_loss, token_accuracy=acc, bleu=score,
                           best_valid_loss=min(self.status.get("best_valid_loss", valid_loss), valid_loss))
        self.log(f"  검증: 손실 {valid_loss:.4f} (퍼플렉서티 {perplexity(valid_loss):.2f}) | 토큰 정확도 {acc:.2%} | "
                 f"그리디 BLEU {score:.2f} ({len(hyps)} 문장) | 평가 {time.time() - start:.0f} 초")
        return {"valid_loss": f"{valid_loss:.6f}", "token_accuracy": f"{acc:.6f}", "bleu": f"{score:.4f}"}

    def record(self, row=None):
        """(랭크 0 만) row 가 있으면 metrics.csv 에 한 줄을 더하고, status.md 를 새로 쓴다."""
        if not self.is_main:
            return
        if row:
            append_metrics(os.path.join(self.run_dir, "metrics.csv"),        # 부록 A: 한 줄 (처음이면 머리줄도)
                           dict(row, step=self.step, elapsed_s=f"{self.elapsed():.1f}"))
        self.status.update(step=self.step, epoch=self.epoch, elapsed=self.elapsed(), overflow_skips=self.overflow_total,
                           nonfinite_skips=self.nonfinite_total)
        write_status(self.run_dir, self.cfg, self.status)                   # 부록 A: 사람이 읽는 status.md

    def elapsed(self):
        """이전 실행(재개 전)까지 포함한 학습 시간(초)."""
        return self.elapsed_before + time.time() - self.start_time

    def save(self, periodic=True):
        """checkpoint_last.pt 와 (주기 저장이면) checkpoint_step{N}.pt 를 쓰고 오래된 것은 지운다."""
        if not self.is_main:
            return None
        state, last = self.state_dict(), os.path.join(self.run_dir, "checkpoint_last.pt")
        atomic_save(last, state)                                            # 부록 D: 임시 파일 → 이름 바꾸기
        if periodic:
            atomic_save(os.path.join(self.run_dir, f"checkpoint_step{self.step}.pt"), state)
            for old in step_checkpoints(self.run_dir)[:-max(self.cfg.keep_checkpoints, self.cfg.average_last)]:  # 부록 D
                os.remove(old)
        return last

    def stop(self, state):
        """학습 상태를 적고 (status.md) checkpoint_last.pt 만 쓴다. 반환: 그 경로."""
        self.status["state"] = state
        self.record()
        return self.save(periodic=False)

    def state_dict(self):
        """재개에 필요한 모든 것: 가중치, 옵티마이저, 스텝, 에폭 위치, 난수 상태 … (부록 D: trainer_state)."""
        return trainer_state(self)

    def restore(self, state):
        """state_dict() 로 저장한 상태로 되돌린다 (--resume; 부록 D: restore_trainer)."""
        return restore_trainer(self, state)


class TrainingDiverged(RuntimeError):
    """손실이 연속으로 NaN/inf 이거나 fp16 손실 스케일이 바닥나 학습을 멈췄다 (체크포인트는 저장됨)."""


# ══════ 5. 평가와 번역: 검증 손실, 토큰 정확도, 디코딩, 학습 뒤의 테스트 BLEU ══════
@torch.no_grad()
def evaluate_loss(model, pairs, cfg, device, amp):
    """검증 손실(라벨 스무딩 없는 토큰당 교차 엔트로피)과 토큰 정확도."""
    was_training, total_loss, total_correct, total_tokens = model.training, 0.0, 0, 0
    model.eval()
    for indices in epoch_batches(pairs, cfg.replace(seed=0), epoch=0):
        src, tgt_in, tgt_out = make_batch(pairs, indices, device)
        with autocast(amp, device):                            # 부록 C: 혼합 정밀도
            logits = model(src, tgt_in).float()                # (B, T, V)
        real = tgt_out != data.PAD_ID                           # (B, T) True = 실제 토큰
        count = real.sum().item()
        total_loss += F.cross_entropy(logits[real], tgt_out[real], reduction="sum").item()
        total_correct += token_accuracy(logits, tgt_out, data.PAD_ID) * count
        total_tokens += count
    model.train(was_training)
    return total_loss / max(total_tokens, 1), total_correct / max(total_tokens, 1)


def token_accuracy(logits, targets, pad_id):
    """argmax 예측이 정답과 같은 비율: logits (…, V), targets (…). 패딩 위치는 세지 않는다 (없으면 0.0).
    >>> logits = torch.tensor([[[0.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])   # 예측 1, 0, 2
    >>> token_accuracy(logits, torch.tensor([[1, 2, 0]]), pad_id=0)   # 실제 토큰 2개 중 1개
    0.5
    """
    if logits.dim() != targets.dim() + 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits 는 (…, V), targets 는 (…) 모양이어야 합니다: {tuple(logits.shape)}, {tuple(targets.shape)}.")
    real = targets != pad_id                               # (…) True = 실제 토큰
    hits = (logits.argmax(dim=-1) == targets) & real       # (…)
    return hits.sum().item() / max(real.sum().item(), 1)


def perplexity(loss):
    """퍼플렉서티 = exp(토큰당 평균 교차 엔트로피), 너무 크면 inf. 라벨 스무딩 손실로 재면 높게 나온다 (§5.4).
    >>> round(perplexity(math.log(7.0)), 6), perplexity(0.0), perplexity(torch.tensor(0.0)), perplexity(1e6)
    (7.0, 1.0, 1.0, inf)
    """
    loss = float(loss)
    return math.exp(loss) if loss < 700.0 else float("inf")


@torch.no_grad()
def translate_ids(model, sources, device, beam_size=1, alpha=0.6, batch_size=64, warn=None):
    """토큰 id 목록들을 번역한다 (beam_size=1 이면 그리디). 위치 표보다 긴 원문은 앞부분만 ([EOS] 한 칸을
    남기고) 번역하고, 그랬으면 warn 에 경고 한 줄."""
    was_training, limit, out = model.training, model.pos_enc.max_len - 1, []
    longest = max((len(s) for s in sources), default=0)
    if longest > limit and warn is not None:
        warn(f"경고: 원문 {sum(len(s) > limit for s in sources)}줄이 {limit} 토큰보다 길어 앞 {limit} 토큰만 번역합니다 "
             f"(가장 긴 줄 {longest} 토큰).")
    sources = [s[:limit] for s in sources]
    model.eval()
    for start in range(0, len(sources), batch_size):
        src = data.collate([(s, []) for s in sources[start:start + batch_size]])[0].to(device)  # (B, S) 원문 + [EOS]
        if beam_size > 1:
            out += beam_search(model, src, data.BOS_ID, data.EOS_ID, beam_size=beam_size, alpha=alpha)
        else:
            out += greedy_decode(model, src, data.BOS_ID, data.EOS_ID)
    model.train(was_training)
    return out


def final_evaluation(trainer, log=print):
    """마지막 N 개 체크포인트를 평균하고(§6.1) 테스트 분할을 빔 서치로 번역해 BLEU 를 잰다."""
    cfg, corpus, model = trainer.cfg, trainer.corpus, trainer.model
    averaged = average_run(trainer.run_dir, cfg.average_last, log)   # 부록 D: 체크포인트 평균 파일, 없으면 None
    if averaged is not None:
        model.load_state_dict(load_checkpoint(averaged)["model"])   # 부록 D: weights_only 로 읽기
    sources, refs, start = [s for s, _ in corpus.test_text], [r for _, r in corpus.test_text], time.time()
    hyps = [corpus.bpe.decode(h) for h in translate_ids(model, [s for s, _ in corpus.test], trainer.device,
                                                        cfg.beam_size, cfg.length_penalty, warn=log)]
    log(f"테스트 {len(hyps):,} 문장을 빔 {cfg.beam_size} 로 번역했습니다 ({time.time() - start:.0f} 초).")
    exact = [h == r for h, r in zip(hyps, refs)]
    log("\n테스트 번역 예 (원문 / 참조 / 모델):")
    for i in range(min(5, len(hyps))):
        log(f"  {cfg.src.upper():<3} {sources[i]}\n  REF {refs[i]}\n  OUT {hyps[i]}\n")
    report = {"bleu": bleu(hyps, refs), "bleu_lc": bleu(hyps, refs, lowercase=True), "hypotheses": hyps,  # 소문자도
              "references": refs, "exact": sum(exact) / max(len(exact), 1), "sentences": len(hyps)}
    if cfg.corpus == "demo":
        reorder = [e for e, src in zip(exact, sources) if data.needs_reordering(src)]
        report.update(reordering_exact=sum(reorder) / max(len(reorder), 1), reordering_sentences=len(reorder))
        log(f"어순이 바뀌는 문장 {len(reorder)}개 중 정확히 맞힌 비율: {report['reordering_exact']:.1%}")
    log(f"문장 전체가 참조와 같은 비율: {report['exact']:.1%} ({len(hyps)} 문장)")
    trainer.status.update(test_bleu=report["bleu"], test_bleu_lc=report["bleu_lc"], test_sentences=len(hyps),
                          state="완료")
    trainer.record()
    return report


# ══════ 6. BLEU (Papineni et al., 2002) — 논문 Table 2 의 점수 (§6.1 "28.4 BLEU on EN-DE") ══════
# BLEU = BP · exp( Σ_{n=1..4} ¼ · log p_n ),   BP = 1 (c > r) 또는 exp(1 − r/c) (c ≤ r)
# p_n = (코퍼스 전체에서 참조와 겹친 n-gram 수, 참조 횟수까지만 셈) / (가설의 n-gram 수), c·r = 가설·참조 토큰
# 수 합. 문장마다가 아니라 코퍼스 전체 개수를 먼저 더한다. 점수가 토큰화에 따라 달라지므로 WMT 표준인
# sacreBLEU 의 기본값을 따른다: 13a 토큰화, 대소문자 구분, n = 1..4, 'exp' 스무딩, effective order 끔 (corpus_bleu 기본).
# 논문과 다른 점: 논문의 BLEU 는 토큰화한 텍스트 위에서 잰 값으로 알려져 있어 (sacreBLEU 이전), 이 함수의
# 값과 소수점까지 바로 비교할 수는 없다. 보통 sacreBLEU 쪽이 조금 낮다.
# 13a 토큰화 (mteval-v13a.pl): "<skipped>" 지우기, 줄 끝 "-\n" 잇기, 나머지 줄바꿈은 공백. 엔티티 &quot; &amp;
# &lt; &gt; 만 이 순서로 되돌린다 (&apos; 는 그대로, "&amp;lt;" 는 "<"). 앞뒤에 공백을 붙이고 네 규칙을 차례로:
# a) . , - ' 를 뺀 ASCII 구두점 양옆에 공백  b) 숫자 아닌 글자 뒤의 . , 를 떼기  c) 숫자 아닌 글자 앞의 . , 를
# 떼기  d) 숫자 뒤의 - 를 떼기 ("3.5" "1,000" 은 한 토큰, "2-3" → "2 - 3").
_BLEU_13A_RULES = [(re.compile(p), r) for p, r in (
    ("([" + re.escape(" !\"#$%&()*+/:;<=>?@[\\]^_`{|}~") + "])", r" \1 "),
    (r"([^0-9])([.,])", r"\1 \2 "), (r"([.,])([^0-9])", r" \1 \2"), (r"([0-9])(-)", r"\1 \2 "))]


def _bleu_tokenize_13a(line):
    """mteval-v13a 토큰화 (위의 규칙). 반환은 공백 하나로 이은 문자열.
    >>> _bleu_tokenize_13a("It costs $3.50, or 1,000 won.")
    'It costs $ 3.50 , or 1,000 won .'
    >>> _bleu_tokenize_13a("&quot;Don't&quot; -- pages 2-3, well-known")
    '" Don\\'t " -- pages 2 - 3 , well-known'
    >>> _bleu_tokenize_13a("a &amp;lt; b &apos;")
    'a < b & apos ;'
    """
    for old, new in (("<skipped>", ""), ("-\n", ""), ("\n", " "), ("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"),
                     ("&gt;", ">")):
        line = line.replace(old, new)
    line = f" {line} "
    for pattern, replacement in _BLEU_13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def bleu_stats(hypotheses, references, lowercase=False, max_order=4):
    """코퍼스 합계 [가설 길이, 참조 길이, 맞은 1..4그램 수, 가설 1..4그램 수]. sacreBLEU 처럼 문장마다 오른쪽
    공백을 지우고 토큰화하며, 맞은 개수는 참조에 나온 횟수까지만 센다 ("the the the" 는 1개).
    >>> bleu_stats(["the the the"], ["the cat"])
    [3, 2, 1, 0, 0, 0, 3, 2, 1, 0]
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references must have the same number of lines, "
                         f"got {len(hypotheses)} and {len(references)}.")
    if not hypotheses:
        raise ValueError("hypotheses is empty; pass at least one sentence to score.")
    if not all(isinstance(s, str) for s in list(hypotheses) + list(references)):
        raise ValueError("every hypothesis and reference must be a str (one detokenised sentence).")
    stats = [0] * (2 + 2 * max_order)
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = (_bleu_tokenize_13a((s.lower() if lowercase else s).rstrip()).split() for s in (hyp, ref))  # -lc
        counts = [collections.Counter(tuple(toks[i:i + n]) for n in range(1, max_order + 1)
                                      for i in range(len(toks) - n + 1)) for toks in (hyp, ref)]
        stats[0], stats[1] = stats[0] + len(hyp), stats[1] + len(ref)
        for gram, count in counts[0].items():
            stats[1 + len(gram)] += min(count, counts[1][gram])
            stats[1 + max_order + len(gram)] += count
    return stats


def _bleu_from_stats(stats, max_order=4):
    """코퍼스 합계 → (BLEU 0..100, 정밀도 p_1..p_4 (%), BP). sacreBLEU 의 'exp' 스무딩: 맞은 n-gram 이 하나도
    없거나 가설 n-gram 이 없는 차수가 있으면 BLEU 0, 맞은 개수가 0 인 차수마다 k 를 1씩 키워
    p_n = 1 / (2^k · 가설 n-gram 수).
    >>> round(_bleu_from_stats([4, 4, 4, 3, 2, 1, 4, 3, 2, 1])[0], 6)
    100.0
    >>> round(_bleu_from_stats([4, 5, 3, 1, 0, 0, 4, 3, 2, 1])[0], 4)   # BP = e^(1−5/4), p = 75, 33.3, 25, 25
    27.5348
    """
    (sys_len, ref_len), correct, total = stats[:2], stats[2:2 + max_order], stats[2 + max_order:2 + 2 * max_order]
    brevity = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len else 0.0)
    precisions, halvings = [0.0] * max_order, 1.0
    for n in range(max_order if any(correct) else 0):
        if total[n] == 0:
            break
        if correct[n]:
            precisions[n] = 100.0 * correct[n] / total[n]
        else:                                         # 'exp' 스무딩: 맞은 n-gram 이 없을 때마다 분자를 반으로
            halvings *= 2
            precisions[n] = 100.0 / (halvings * total[n])
    if not any(correct) or not all(total):
        return 0.0, precisions, brevity
    return brevity * math.exp(sum(math.log(p) for p in precisions) / max_order), precisions, brevity


def bleu(hypotheses, references, lowercase=False):
    """코퍼스 BLEU (0..100) = sacrebleu.corpus_bleu(hypotheses, [references]).score. 문장마다 참조 하나, 토큰화
    전 원문. lowercase=True 는 sacreBLEU 의 ``lowercase=True`` (-lc).
    >>> round(bleu(["the cat is on the mat"], ["the cat sat on the mat"]), 4)
    37.9918
    """
    return _bleu_from_stats(bleu_stats(hypotheses, references, lowercase))[0]


# ══════ 부록: 도구 — 처음 읽을 때는 건너뛰어도 됩니다 (A 기록 · B 점검 · C 장치·분산 · D 체크포인트 · E 재개 · F 캐시 · G 명령줄) ══════


# ══════ A. 런의 기록: metrics.csv (plots.py 가 이것으로 그린다) 와 사람이 읽는 status.md ══════
METRIC_COLUMNS = ("step", "train_loss", "lr", "valid_loss", "token_accuracy", "bleu", "tokens_per_s", "elapsed_s",
                  "overflow_skips")


def progress_line(trainer):
    """Trainer.log_progress: 진행 줄 하나 (스텝, 평균 손실, 학습률, 토큰/s, 경과, 남은 시간). metrics.csv 의 칸을
    돌려준다."""
    w, lr = trainer.window, trainer.optimizer.param_groups[0]["lr"]
    loss, speed = sum(w["losses"]) / len(w["losses"]), w["tokens"] / max(time.time() - w["start"], 1e-9)
    first_step, first_time = w["first"]
    eta = (time.time() - first_time) / max(trainer.step - first_step, 1) * (trainer.cfg.max_steps - trainer.step)
    skips = f" | 넘침 건너뜀 {trainer.overflow_total}" if trainer.amp == "fp16" or trainer.overflow_total else ""
    trainer.log(f"스텝 {trainer.step:>6}/{trainer.cfg.max_steps} | 손실 {loss:.4f} | 학습률 {lr:.2e} | "
                f"{speed:,.0f} 토큰/s | 경과 {format_duration(trainer.elapsed())} | 남은 시간 {format_duration(eta)}{skips}")
    best = min(trainer.status.get("best_train_loss", loss), loss)
    trainer.status.update(train_loss=loss, lr=lr, best_train_loss=best)
    w.update(losses=[], tokens=0, start=time.time())
    return {"train_loss": f"{loss:.6f}", "lr": f"{lr:.6e}", "tokens_per_s": f"{speed:.1f}",
            "overflow_skips": str(trainer.overflow_total)}


def append_metrics(path, row):
    """metrics.csv 에 한 줄 추가 (처음이면 머리줄도)."""
    new = not os.path.exists(path)
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in METRIC_COLUMNS})


def write_status(run_dir, cfg, status):
    """사람이 읽는 "학습 상태" 한 쪽 (학습 중에도 원자적으로 갱신)."""
    def fmt(key, spec=".4f"):
        return "-" if status.get(key) is None else format(status[key], spec)
    atomic_save(os.path.join(run_dir, "status.md"), (
        f"## {corpus_name(cfg)} 번역 모델 학습 ({cfg.preset}, {cfg.src}→{cfg.tgt})\n\n**학습 상태**: {status['state']} "
        f"({datetime.datetime.now():%Y-%m-%d %H:%M:%S} 갱신)\n\n"
        f"- **설정**: d_model {cfg.d_model}, 층 {cfg.num_layers}+{cfg.num_layers}, 헤드 {cfg.num_heads}, "
        f"d_ff {cfg.d_ff}, 드롭아웃 {cfg.dropout}, 업데이트당 토큰(상한) {cfg.max_tokens * cfg.accum_steps:,} "
        f"({cfg.max_tokens:,} × 누적 {cfg.accum_steps}), 워밍업 {cfg.warmup:,}, 배율 {cfg.lr_factor} ({cfg.lr_schedule}), "
        f"AMP {status['amp']}\n- **진행**: 스텝 {status['step']:,} / {cfg.max_steps:,}, 에폭 {status['epoch']}, "
        f"경과 {format_duration(status['elapsed'])}, 학습률 {fmt('lr', '.2e')}, "
        f"넘침 건너뜀 {status.get('overflow_skips', 0)}, NaN/inf 건너뜀 {status.get('nonfinite_skips', 0)}\n"
        f"- **학습 손실**: {fmt('train_loss')} (최소 {fmt('best_train_loss')})\n"
        f"- **검증**: 손실 {fmt('valid_loss')} (최소 {fmt('best_valid_loss')}), "
        f"토큰 정확도 {fmt('token_accuracy', '.2%')}, BLEU {fmt('bleu', '.2f')}\n" + (
            f"- **테스트** (빔 {cfg.beam_size}, {status['test_sentences']:,} 문장): BLEU {status['test_bleu']:.2f} "
            f"(대소문자 구분), {status['test_bleu_lc']:.2f} (소문자)\n" if "test_bleu" in status else "") +
        f"- **체크포인트**: `{run_dir}`\n"))


def write_test_result(run_dir, cfg, report, seconds):
    """학습 끝의 테스트 점수를 test_result.json 에 (plots.py 와 비교표가 읽는다): BLEU 두 가지, 디코딩 설정,
    문장 수, 런 전체의 벽시계 초 (준비·학습·평가·평균·빔 서치 모두), 그리고 런의 설정."""
    result = {"bleu": report["bleu"], "bleu_lc": report["bleu_lc"], "beam_size": cfg.beam_size,
              "length_penalty": cfg.length_penalty, "sentences": report["sentences"], "seconds": round(seconds, 1),
              "config": dataclasses.asdict(cfg)}
    atomic_save(os.path.join(run_dir, "test_result.json"), json.dumps(result, indent=1) + "\n")


def corpus_name(cfg):
    """status.md 제목의 코퍼스 이름: 데모, 아니면 코퍼스 디렉터리 이름 (예: MULTI30K).
    >>> corpus_name(preset_config("demo")), corpus_name(preset_config("multi30k"))
    ('데모', 'MULTI30K')
    """
    return "데모" if cfg.corpus == "demo" else os.path.basename(os.path.normpath(cfg.data_dir)).upper()


def format_duration(seconds):
    """초 → H:MM:SS.
    >>> format_duration(3725.4)
    '1:02:05'
    """
    return str(datetime.timedelta(seconds=int(seconds)))


# ══════ B. 점검: 학습이 될 수 없는 설정, 코퍼스 디렉터리, 배치와 메모리 ══════
def check_at_least(name, value, least):
    """설정 값 하나가 least 이상인지: 아니면 옵션 이름과 받은 값을 담은 ValueError."""
    if value < least:
        raise ValueError(f"--{name.replace('_', '-')} 은 {least} 이상이어야 합니다 (받은 값 {value}).")


def check_config(cfg):
    """학습이 될 수 없는 설정을 미리 거절한다 (옛 프로젝트는 워밍업도 끝내지 못했다).
    >>> check_config(preset_config("tiny").replace(max_steps=10, warmup=20))
    Traceback (most recent call last):
    ...
    ValueError: 총 업데이트 수(max_steps=10)가 워밍업(warmup=20)보다 커야 합니다: 학습률이 한 번도 최고점에 ...
    """
    if cfg.max_steps <= 0 or cfg.max_tokens <= 0 or cfg.accum_steps <= 0:
        raise ValueError("max_steps, max_tokens, accum_steps 는 양수여야 합니다.")
    for name in ("log_every", "eval_every", "save_every", "eval_bleu_sentences", "keep_checkpoints", "average_last",
                 "beam_size"):                          # 0 이면 첫 평가·저장에서야 죽거나 ([-0:] 처럼) 엉뚱하게 돈다
        check_at_least(name, getattr(cfg, name), 1)
    check_at_least("length_penalty", cfg.length_penalty, 0)     # 음수면 빔 서치가 짧은 번역을 더 좋아한다
    if cfg.warmup < 1:
        raise ValueError(f"--warmup 은 1 이상이어야 합니다 (받은 값 {cfg.warmup}): 논문 스케줄은 "
                         "step · warmup^-1.5 를 쓰므로 0 이면 정의되지 않습니다 (논문 4000).")
    if cfg.max_steps <= cfg.warmup:
        raise ValueError(f"총 업데이트 수(max_steps={cfg.max_steps})가 워밍업(warmup={cfg.warmup})보다 커야 합니다: "
                         "학습률이 한 번도 최고점에 닿지 못합니다. --max-steps 를 늘리거나 --warmup 을 줄이세요.")
    if cfg.d_model % cfg.num_heads:
        raise ValueError(f"d_model={cfg.d_model} 이 num_heads={cfg.num_heads} 로 나누어떨어져야 합니다.")
    if cfg.corpus == "wmt14":                            # 옛 이름: 평행 코퍼스라면 무엇이든 (WMT14 만이 아니다)
        cfg = cfg.replace(corpus="parallel")
    if cfg.corpus not in ("demo", "parallel"):
        raise ValueError(f"알 수 없는 코퍼스 '{cfg.corpus}' 입니다: demo 또는 parallel 을 쓰세요.")
    if cfg.corpus == "demo" and (cfg.src, cfg.tgt) != ("en", "de"):
        raise ValueError(f"내장 데모 코퍼스는 영어→독일어뿐입니다 (--src {cfg.src} --tgt {cfg.tgt}): "
                         "--data-dir 로 평행 코퍼스를 주세요.")
    if cfg.amp not in ("auto", "fp16", "bf16", "off"):
        raise ValueError(f"--amp 는 auto, fp16, bf16, off 중 하나여야 합니다 ('{cfg.amp}').")
    if cfg.lr_schedule not in ("noam", "cosine"):
        raise ValueError(f"--lr-schedule 은 noam, cosine 중 하나여야 합니다 ('{cfg.lr_schedule}').")
    return cfg


def check_corpus_dir(cfg):
    """코퍼스 디렉터리와 파일이 있는지 (몇 분 걸리는 준비·학습 전에 한 줄 오류로)."""
    if not os.path.isdir(cfg.data_dir):
        name = os.path.basename(os.path.normpath(cfg.data_dir))
        how = (f"`python data.py download {name} --dir {cfg.data_dir}` 로 내려받거나"
               if name in ("multi30k", "wmt14") else "train/valid/test.<언어> 파일을 그곳에 두거나")
        raise FileNotFoundError(f"코퍼스 디렉터리 '{cfg.data_dir}' 가 없습니다: {how} --data-dir 를 고치세요.")
    data.check_corpus(cfg.data_dir, cfg.src, cfg.tgt)


def estimate_memory_gb(cfg, vocab_size):
    """한 배치(max_tokens)의 학습 메모리 어림 (GiB): 파라미터·그래디언트·Adam 상태(fp32 4벌) + 층마다 저장되는
    활성값 (토큰당 대략 d_model × 34, 어텐션 확률 h × T 는 평균 길이 50 으로 가정) + 로짓.
    >>> 2 < estimate_memory_gb(preset_config("rtx3090"), 37000) < 24     # RTX 3090 의 24 GB 안에 들어간다
    True
    """
    # 파라미터: 임베딩·출력층 2·V·d, 인코더 층마다 4d² (Q, K, V, 출력 투영) + 2·d·d_ff (FFN 두 행렬), 디코더 층마다
    # 8d² (어텐션 두 개) + 2·d·d_ff (편향·LayerNorm 은 뺀다). 16 = 파라미터마다 fp32 4벌 × 4 바이트 (가중치, 기울기,
    # Adam 의 m 과 v). 활성값: 2·n 층 (인코더 + 디코더), 층마다 토큰당 34·d + 5·h·T 는 Korthikanti et al. (2022) 가
    # 센 역전파용 저장값 (선형층 입력, 드롭아웃 마스크, 어텐션 확률 h×T …; 여기서 T = 평균 길이 50) 에 d_ff 를 더한 것.
    # 그 식은 16비트 바이트 수인데 여기서는 값 개수로 보고 bytes_per 를 곱하므로 넉넉한 (약 2배) 어림이다.
    # 로짓: 토큰마다 V 개를 autocast 정밀도로 한 벌, 손실용 fp32 사본(logits.float())으로 한 벌 (bytes_per + 4).
    d, n, bytes_per = cfg.d_model, cfg.num_layers, 2 if cfg.amp in ("fp16", "bf16", "auto") else 4
    params = 2 * vocab_size * d + n * (4 * d * d + 2 * d * cfg.d_ff) + n * (8 * d * d + 2 * d * cfg.d_ff)
    per_token = 2 * n * (34 * d + 5 * cfg.num_heads * 50 + cfg.d_ff) * bytes_per
    logits = cfg.max_tokens * vocab_size * (bytes_per + 4)
    return (16 * params + cfg.max_tokens * per_token + logits) / 2 ** 30


def check_batch_fits(cfg, corpus, device):
    """토큰 예산으로 묶는 두 분할(학습, 검증)의 가장 긴 문장 쌍이 한 배치에 들어가고, (GPU 면) 어림 메모리가 장치에
    들어가는지 — 첫 스텝 전에 (검증은 첫 평가에서야 묶인다). 시험 분할은 문장 수로 묶어 번역하므로 상관없다."""
    for name, pairs in (("학습", corpus.train), ("검증", corpus.valid)):
        longest = int(max((np.max(lengths, initial=0) for lengths in sequence_lengths(pairs)), default=0)) + 1
        if longest > cfg.max_tokens:
            raise ValueError(f"{name} 분할의 가장 긴 문장({longest} 토큰)이 배치 상한 max_tokens={cfg.max_tokens} 보다 "
                             "깁니다: --max-tokens 를 늘리세요.")
    if device.type == "cuda":
        need = estimate_memory_gb(cfg, len(corpus.bpe))
        have = torch.cuda.get_device_properties(device).total_memory / 2 ** 30
        if need > have:
            raise ValueError(f"배치 하나에 약 {need:.1f} GiB 가 필요한데 GPU 메모리는 {have:.1f} GiB 입니다: "
                             "--max-tokens 를 줄이고 --accum-steps 를 늘리세요.")


# ══════ C. 장치, 혼합 정밀도, 분산(torchrun), 건너뛴 업데이트, CPU 메모리와 드롭아웃 ══════
def setup_device(cfg, world_size):
    """(장치, AMP 모드). device auto = CUDA 가 있으면 cuda (torchrun 아래면 LOCAL_RANK 의 GPU). AMP: fp16 은 CUDA
    에서만 (GradScaler 로 손실 스케일링), bf16 은 CUDA(지원 시)와 CPU, auto = GPU 면 bf16(지원 시) 또는 fp16, CPU 는
    bf16 을 명령 하나로 계산하는 CPU(AVX512-BF16, AMX) 면 bf16, 아니면 off (흉내 낸 bf16 은 fp32 보다 느리다).
    >>> auto = setup_device(Config(device="cpu", amp="auto"), 1)[1]
    >>> auto == ("bf16" if cpu_has_native_bf16() else "off"), setup_device(Config(device="cpu", amp="bf16"), 1)[1]
    (True, 'bf16')
    >>> setup_device(Config(device="cpu", amp="fp16"), 1)
    Traceback (most recent call last):
    ...
    ValueError: fp16 혼합 정밀도는 CUDA GPU 에서만 됩니다: CPU 에서는 --amp bf16 이나 --amp off 를 쓰세요.
    """
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device 는 auto, cpu, cuda 중 하나여야 합니다 ('{cfg.device}').")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda 를 골랐지만 CUDA GPU 가 없습니다: --device cpu 를 쓰세요.")
    device = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    if world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        if cfg.amp == "fp16":
            raise ValueError("fp16 혼합 정밀도는 CUDA GPU 에서만 됩니다: CPU 에서는 --amp bf16 이나 --amp off 를 쓰세요.")
        return device, ("bf16" if cpu_has_native_bf16() else "off") if cfg.amp == "auto" else cfg.amp
    if cfg.amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("이 GPU 는 bf16 을 지원하지 않습니다: --amp fp16 을 쓰세요.")
    return device, ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cfg.amp == "auto" else cfg.amp


def cpu_has_native_bf16():
    """이 CPU 가 bf16 행렬곱을 명령 하나로 하나 (AVX512-BF16 의 VDPBF16PS 나 AMX). 아니면 oneDNN 이 흉내 낸다."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def autocast(amp, device):
    """amp 모드에 맞는 autocast 문맥 (off 면 아무것도 하지 않음)."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16 if amp == "fp16" else torch.bfloat16)


def keep_freed_memory():
    """CPU 학습이 해제한 큰 버퍼를 OS 에 돌려주지 않고 다시 쓰게 glibc malloc 을 설정한다 (리눅스 glibc 만).
    프로세스 전체를 되돌릴 수 없게 바꾸므로 명령줄의 CPU 학습만 부른다 (``--no-malloc-tuning`` 으로 끔); 라이브러리로
    만든 Trainer (노트북, plots.py, doctest) 는 부르지 않는다.
    glibc 는 128 KB 이상의 할당을 mmap 으로 받아 해제하자마자 OS 에 돌려주므로, 스텝마다 같은 크기의 텐서를 다시
    받는 학습은 매번 새 쪽을 0 으로 채우는 페이지 폴트를 낸다 (Multi30k de→en 52분 런: 6.6억 번, 시스템 시간이 CPU
    시간의 19%). mmap 을 끄고 힙을 돌려주는 문턱을 2 GB 로 올리면 값은 같고 빠르기만 하다 (README).
    반환: 설정했으면 True, 다른 운영체제·C 라이브러리면 아무것도 하지 않고 False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:                                    # musl 같은 다른 C 라이브러리
        return False
    m_trim_threshold, m_mmap_max = -1, -4              # glibc <malloc.h> 의 mallopt 항목 번호
    return libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2 ** 31 - 1) == 1


class FastCpuDropout(torch.nn.Module):
    """nn.Dropout 과 같은 일 (학습 중 원소마다 확률 p 로 0, 남은 값 × 1/(1−p)) 을 CPU 에서 빨리 한다.
    PyTorch 의 CPU 드롭아웃은 원소마다 bernoulli_ 난수를 하나씩 뽑아 (mt19937, 한 스레드) multi30k 프리셋 한 스텝의
    약 20% 를 쓴다 (torch.profiler). 여기서는 64비트 난수 하나를 16비트 넷으로 나눠 원소 넷의 마스크를 만든다:
    같은 분포 (p 는 1/65536 단위로 반올림), 같은 시드면 같은 마스크, 난수 뽑기는 1/4. 평가 모드, p 가 0 이나 1,
    GPU 텐서 (GPU 난수는 빠르다) 는 F.dropout 그대로.
    >>> _ = torch.manual_seed(0)
    >>> y = FastCpuDropout(0.25).train()(torch.ones(100_000))
    >>> round((y == 0).float().mean().item(), 2), torch.equal(y[y != 0], torch.full_like(y[y != 0], 4 / 3))
    (0.25, True)
    """

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or not 0 < self.p < 1 or x.device.type != "cpu":
            return F.dropout(x, self.p, self.training)
        words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((x.numel() + 3) // 4,), dtype=torch.int64)  # 원소 넷에 하나
        uniform = words.view(torch.int16)[:x.numel()].view(x.shape)        # −32768 … 32767 에 고르게
        keep = uniform >= round(self.p * 65536) - 32768                     # P(남김) = 1 − p
        return torch.where(keep, x * (1.0 / (1.0 - self.p)), 0.0)           # x 의 dtype 그대로 (bf16 이면 bf16)

    def extra_repr(self):
        return f"p={self.p}"


def use_fast_cpu_dropout(model):
    """model 안의 nn.Dropout (p > 0) 을 FastCpuDropout 으로 바꾸고 바꾼 수를 돌려준다 (매개변수와 state_dict 는 그대로).
    명령줄의 CPU 학습만 부른다 (``--no-fast-dropout`` 으로 끔). 어텐션 가중치의 드롭아웃은
    F.scaled_dot_product_attention 안에 있어 그대로다 (그 원소는 드롭아웃 원소의 약 10%)."""
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Dropout) and child.p > 0:
                setattr(module, name, FastCpuDropout(child.p))
                swapped += 1
    return swapped


def init_distributed():
    """(랭크, 프로세스 수). torchrun 이 준 환경 변수로 프로세스 그룹을 연다 (GPU 면 NCCL, CPU 면 gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not torch.distributed.is_initialized():         # WMT14 캐시 준비(수십 분)를 다른 랭크가 기다릴 수 있게 3시간
        torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo",
                                             timeout=datetime.timedelta(hours=3))
    return torch.distributed.get_rank(), world_size


def broadcast_from_rank0(value, world_size):
    """랭크 0 의 값(예: 캐시 경로)을 모든 랭크에 돌려준다. 다른 랭크는 랭크 0 이 여기 올 때까지 기다린다."""
    if world_size == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def distributed_model(model, device, world_size):
    """torchrun 아래면 DistributedDataParallel 로 감싼 모델 (역전파 때 랭크들의 기울기를 평균), 아니면 model 그대로."""
    return model if world_size == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def discard_update(optimizer, scaler, amp):
    """NaN/inf 업데이트의 기울기를 버린다. fp16 이면 넘침일 수 있으니 손실 스케일도 반으로 낮춘다."""
    optimizer.zero_grad(set_to_none=True)
    if amp == "fp16":
        scaler.update(scaler.get_scale() / 2)


def optimizer_step(optimizer, scaler, parameters, clip_norm):
    """(clip_norm > 0 이면 기울기 노름을 자르고) optimizer.step(). fp16 이면 GradScaler 가 손실 스케일을 되돌리고,
    inf 기울기를 보면 step 을 건너뛰고 스케일을 줄인다. GradScaler 가 꺼져 있으면 unscale_/update 는 아무것도
    하지 않고 스케일은 늘 1.0 (동기화 없음). 반환: 적용했으면 True, 건너뛰었으면 False."""
    scaler.unscale_(optimizer)
    if clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
    scale_before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    skipped = scaler.get_scale() < scale_before      # 스케일이 줄었다 = 이번 optimizer.step 은 건너뛰었다
    return not skipped


def handle_skipped(trainer, result):
    """Trainer.count_skipped: fp16 넘침은 흔한 일이라 세기만 한다. NaN/inf 는 세고 경고하며, 연속으로
    max_nonfinite 번이면 체크포인트를 쓰고 TrainingDiverged 로 멈춘다."""
    if result == "overflow":
        trainer.overflow_total += 1
        scale = trainer.scaler.get_scale()
        if scale < trainer.cfg.min_loss_scale:         # 이대로면 0 이 되어 건너뜀을 알아챌 수 없다 (fairseq 처럼 멈춤)
            path = trainer.stop("중단 (손실 스케일 바닥)")
            raise TrainingDiverged(f"fp16 손실 스케일이 {scale:.1e} 로 min_loss_scale={trainer.cfg.min_loss_scale:g} "
                                   f"아래가 되어 멈췄습니다 (넘침 건너뜀 {trainer.overflow_total}회, 체크포인트: {path}). "
                                   "--amp bf16 이나 --amp off 로, 또는 --lr-factor 를 낮춰 다시 시도하세요.")
        return
    trainer.nonfinite_in_row, trainer.nonfinite_total = trainer.nonfinite_in_row + 1, trainer.nonfinite_total + 1
    trainer.log(f"경고: 스텝 {trainer.step + 1} 의 손실이 유한하지 않아 건너뜁니다 "
                f"(연속 {trainer.nonfinite_in_row}회, 총 {trainer.nonfinite_total}회).")
    if trainer.nonfinite_in_row >= trainer.cfg.max_nonfinite:
        path = trainer.stop("중단 (손실 발산)")
        raise TrainingDiverged(f"손실이 {trainer.nonfinite_in_row}번 연속 NaN/inf 여서 멈췄습니다 (체크포인트: {path}). "
                               "학습률(--lr-factor)을 낮추거나 --clip-norm 을 켜거나 --amp bf16/off 로 다시 시도하세요.")


def all_reduce(value, device, world_size):
    """수 하나를 모든 랭크에서 더한다 (한 프로세스면 그대로). NaN/inf 도 합에 그대로 남는다."""
    if world_size == 1:
        return value
    tensor = torch.tensor(value, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)                        # 기본 연산 = 합 (ReduceOp.SUM)
    return tensor.item()


# ══════ D. 체크포인트: 담는 것(Trainer.state_dict), 원자적 저장, weights_only 로 읽기, 평균 ══════
def trainer_state(trainer):
    """Trainer.state_dict: 재개에 필요한 모든 것 (weights_only 로 읽히는 타입만). 학습 중에 쓰는 난수는
    드롭아웃(torch 전역 난수)뿐이라 그 상태만 담으면 재개해도 같은 마스크가 나온다: 배치 순서는 (시드, 에폭) 으로
    정해진다."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(), "scaler": trainer.scaler.state_dict(),
            "step": trainer.step, "epoch": trainer.epoch, "batch_pos": trainer.batch_pos, "rng": rng,
            "config": dataclasses.asdict(trainer.cfg), "elapsed": trainer.elapsed(), "status": dict(trainer.status),
            "nonfinite_total": trainer.nonfinite_total, "overflow_total": trainer.overflow_total,
            "cache": trainer.corpus.cache}                              # cache: 재개도 같은 캐시로


def restore_trainer(trainer, state):
    """Trainer.restore: state_dict() 로 저장한 상태로 되돌린다 (--resume)."""
    for name in ("model", "optimizer", "scheduler", "scaler"):
        getattr(trainer, name).load_state_dict(state[name])
    trainer.step, trainer.epoch, trainer.batch_pos = state["step"], state["epoch"], state["batch_pos"]
    trainer.elapsed_before, trainer.nonfinite_total = state["elapsed"], state["nonfinite_total"]
    trainer.overflow_total = state.get("overflow_total", 0)
    trainer.status.update(state["status"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    trainer.log(f"재개: {state['path']} (스텝 {trainer.step}, 에폭 {trainer.epoch})")


def atomic_save(path, obj):
    """임시 파일에 쓴 뒤 이름을 바꾼다: 도중에 죽어도 반쯤 쓰인 파일은 남지 않는다. 문자열(status.md, 번역)은
    UTF-8 텍스트로, 그 밖(체크포인트 dict)은 torch.save 로 쓴다."""
    tmp = f"{path}.tmp-{os.getpid()}"
    if isinstance(obj, str):
        pathlib.Path(tmp).write_text(obj, encoding="utf-8")
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    """``torch.load(..., weights_only=True)`` 로 CPU 에 읽는다. 없거나 손상된 파일은 한 줄 오류."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"체크포인트 '{path}' 가 없습니다.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # 잘린 zip, 엉뚱한 파일 … 모두 같은 안내로
        raise ValueError(f"체크포인트 '{path}' 를 읽을 수 없습니다 (손상되었거나 체크포인트가 아닙니다: "
                         f"{type(exc).__name__}).") from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"'{path}' 는 이 프로젝트의 체크포인트가 아닙니다 (model/config 항목 없음).")
    return state


def step_checkpoints(run_dir):
    """런 디렉터리의 스텝별 체크포인트, 스텝 순서대로."""
    paths = glob.glob(os.path.join(run_dir, "checkpoint_step*.pt"))
    return sorted(paths, key=lambda p: int(os.path.basename(p)[len("checkpoint_step"):-3]))


def average_run(run_dir, last_n, log=print):
    """"averaging the last 5 checkpoints" (§6.1): 런의 마지막 last_n 개 스텝 체크포인트의 파라미터를 (float64 로
    더해) 평균해 checkpoint_averaged.pt 로 쓴다 (나머지 항목은 checkpoint_last.pt 의 것).
    반환: 그 경로, 평균할 체크포인트가 2개보다 적으면 None."""
    paths = step_checkpoints(run_dir)[-last_n:]
    if len(paths) < 2:
        return None
    states = [load_checkpoint(p)["model"] for p in paths]
    average = {name: sum(s[name].double() for s in states).div(len(states)).to(value.dtype)
               if value.is_floating_point() else value.clone() for name, value in states[0].items()}
    names, out = [os.path.basename(p) for p in paths], os.path.join(run_dir, "checkpoint_averaged.pt")
    last = load_checkpoint(os.path.join(run_dir, "checkpoint_last.pt"))
    atomic_save(out, dict(last, model=average, averaged_from=names))
    log(f"마지막 체크포인트 {len(paths)}개를 평균했습니다 ({', '.join(names)}).")
    return out


# ══════ E. 재개와 런 읽기 (load_run) ══════
def find_latest_run(root="outputs/training", preset=None, matching=None):
    """체크포인트가 있는 가장 최근 런 디렉터리 (없으면 None). preset: 디렉터리 이름이 "<preset>_" 로 시작하는 런만.
    matching ({필드: 값}): 저장된 설정이 그 값들과 같은 런만 (RESUMABLE_CHANGES 는 비교하지 않는다; 체크포인트를 읽는다)."""
    pattern = os.path.join(root, f"{preset}_*" if preset else "*", "checkpoint_last.pt")
    found = sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True)
    for path in found:
        if not matching or changed_field(saved_config(load_checkpoint(path)), matching) is None:
            return os.path.dirname(path)
    return None


# 재개할 때 명령줄로 바꿀 수 있는 필드. 나머지(모델, 데이터, 방향, 어휘, 스케줄 …)는 런이 저장한 값을 그대로 쓴다:
# 런 디렉터리가 그 런을 다 설명한다.
RESUMABLE_CHANGES = ("max_steps", "stop_after", "log_every", "eval_every", "save_every", "threads")


def saved_config(state):
    """체크포인트에 저장된 설정 → Config (모르는 필드는 버리고, 옛 이름 corpus="wmt14" 는 "parallel")."""
    names = {f.name for f in dataclasses.fields(Config)}
    cfg = Config(**{k: v for k, v in state["config"].items() if k in names})
    return cfg.replace(corpus="parallel") if cfg.corpus == "wmt14" else cfg


def changed_field(saved, given):
    """given ({필드: 값}) 중 바꿀 수 없는데 saved 와 다른 첫 필드 (이름, 저장된 값, 준 값), 모두 같으면 None."""
    for name, value in given.items():
        cosine_end = name == "max_steps" and saved.lr_schedule == "cosine"     # 코사인은 max_steps 에서 0 이 되게 짜였다
        if (name in RESUMABLE_CHANGES and not cosine_end) or name in ("resume", "run_dir"):
            continue
        old = getattr(saved, name)
        same = (os.path.realpath(old) == os.path.realpath(value) if name == "data_dir"
                else old == ("parallel" if name == "corpus" and value == "wmt14" else value))
        if not same:
            return name, old, value
    return None


def resumed_config(target, given):
    """--resume: 런이 저장한 설정을 되살린다. given = 명령줄에서 준 필드들 ({필드: 값}, --preset 포함).
    RESUMABLE_CHANGES 만 바꾸고, 다른 필드가 런과 다르면 그 필드·두 값·런을 밝힌 한 줄 오류.
    target "latest" = --run-dir, 없으면 명령줄과 맞는 가장 최근 런."""
    if target == "latest":
        target = given.get("run_dir") or find_latest_run(matching=given)
        if target is None:
            shown = ", ".join(f"{k}={v}" for k, v in given.items() if k not in RESUMABLE_CHANGES)
            raise FileNotFoundError(f"outputs/training 에 이어 갈 런이 없습니다 (명령줄과 맞는 런: {shown or '아무 런'}).")
    path = os.path.join(target, "checkpoint_last.pt") if os.path.isdir(target) else target
    saved, run_dir = saved_config(load_checkpoint(path)), os.path.dirname(path)
    diff = changed_field(saved, given)
    if diff is not None and diff[0] == "max_steps":
        raise ValueError(f"런 '{run_dir}' 은 코사인 스케줄이라 학습률이 max_steps={diff[1]} 에서 0 이 되도록 짜여 있어 "
                         f"--max-steps {diff[2]} 로 이어 가면 학습률이 다시 커집니다: 같은 값으로 잇거나 새 런을 시작하세요.")
    if diff is not None:
        name, old, new = diff
        raise ValueError(f"런 '{run_dir}' 의 {name}={old!r} 를 이어 가며 {new!r} 로 바꿀 수 없습니다: 이어 갈 때는 "
                         f"{', '.join('--' + n.replace('_', '-') for n in RESUMABLE_CHANGES)} 만 바꿀 수 있습니다 "
                         "(다른 설정이면 새 런을 시작하세요).")
    if given.get("run_dir") and os.path.realpath(given["run_dir"]) != os.path.realpath(run_dir):
        raise ValueError(f"--run-dir '{given['run_dir']}' 와 이어 갈 런 '{run_dir}' 가 다릅니다: 둘 중 하나만 주세요.")
    changes = {"stop_after": 0} | {k: v for k, v in given.items() if k in RESUMABLE_CHANGES}   # 멈춤은 한 번만
    return check_config(saved.replace(resume=path, run_dir=run_dir, **changes))


def make_run_dir(cfg, resume_state, is_main):
    """--run-dir, 재개면 원래 디렉터리, 아니면 outputs/training/<preset>_<YYYYmmdd_HHMMSS>/."""
    resumed = os.path.dirname(resume_state["path"]) if resume_state is not None else None
    stamp = f"{cfg.preset}_{datetime.datetime.now():%Y%m%d_%H%M%S}"
    run_dir = cfg.run_dir or resumed or os.path.join("outputs", "training", stamp)
    if is_main:
        os.makedirs(run_dir, exist_ok=True)
    return run_dir


def find_resume_state(cfg):
    """cfg.resume (런 디렉터리, 체크포인트 파일, "latest") 의 체크포인트 상태, 재개가 아니면 None. cfg 가 런이 저장한
    설정과 RESUMABLE_CHANGES 밖에서 다르면 거절한다 (resumed_config 와 같은 규칙; 라이브러리로 만든 Trainer 도)."""
    if not cfg.resume:
        return None
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(Config)}
    path = resumed_config(cfg.resume, fields).resume
    return dict(load_checkpoint(path), path=path)


# 학습된 런 하나: 런 디렉터리, Config, data.BPE, 모델 (eval(), CPU), 읽은 가중치 파일 경로.
Run = collections.namedtuple("Run", "run_dir cfg bpe model checkpoint")


def run_checkpoint(target=None, root="outputs/training"):
    """런 디렉터리나 체크포인트 파일 → 읽을 체크포인트 경로. target 이 None 이면 root 의 가장 최근 런;
    런 디렉터리면 checkpoint_averaged.pt, 없으면 checkpoint_last.pt."""
    path = target or find_latest_run(root)
    if path is None:
        raise FileNotFoundError(f"'{root}' 에 체크포인트가 없습니다: 먼저 `python train.py` 로 학습하세요.")
    if os.path.isdir(path):
        averaged = os.path.join(path, "checkpoint_averaged.pt")
        path = averaged if os.path.exists(averaged) else os.path.join(path, "checkpoint_last.pt")
    return path


def load_run(target=None, root="outputs/training"):
    """런 디렉터리나 체크포인트 파일 → Run (체크포인트는 run_checkpoint 가 고른다). --translate, --translate-file,
    plots.py 가 쓰고, --average-checkpoints 는 같은 run_checkpoint 로 런을 찾는다."""
    path = run_checkpoint(target, root)
    state = load_checkpoint(path)
    cfg = saved_config(state)
    bpe = data.BPE.load(os.path.join(os.path.dirname(path), "bpe.txt"))
    model = build_model(cfg, len(bpe))
    model.load_state_dict(state["model"])
    return Run(os.path.dirname(path), cfg, bpe, model.eval(), path)


def translate_texts(run, texts):
    """원문 문장들 → 번역문 문장들 (load_run 의 런, CPU 빔 서치). 너무 긴 원문은 잘라 번역하고 stderr 에 경고."""
    hyps = translate_ids(run.model, [run.bpe.encode(t) for t in texts], torch.device("cpu"), run.cfg.beam_size,
                         run.cfg.length_penalty, warn=lambda line: print(line, file=sys.stderr))
    return [run.bpe.decode(h) for h in hyps]


# ══════ F. 평행 코퍼스의 캐시: 읽기, 없으면 준비, 재개할 때의 확인 ══════
def load_prepared_corpus(cfg, log, cache=None, rank=0, world_size=1):
    """평행 코퍼스 디렉터리의 캐시를 읽는다. cache 를 주면 (재개) 꼭 그 캐시를, 아니면 설정(어휘 크기, 언어 쌍)과
    지금의 코퍼스 파일에 맞는 캐시를 쓰고, 없으면 먼저 준비한다 (torchrun 이면 랭크 0 만; 나머지는 기다렸다 읽는다)."""
    check_corpus_dir(cfg)
    if cache is not None:
        check_run_cache(cache, cfg.data_dir)            # 아래: 사라졌거나 코퍼스 파일이 바뀌었으면 한 줄 오류
    elif rank == 0:
        cache = find_or_prepare(cfg, log)
    cache = broadcast_from_rank0(cache, world_size)    # 부록 C: 랭크 0 의 캐시 경로를 모든 랭크에 (준비를 기다림)
    bpe = data.BPE.load(os.path.join(cache, "bpe.txt"))
    limit = cfg.max_len - 1                              # 위치 표에서 [EOS]/[BOS] 한 칸을 뺀 문장 길이 한계
    train = data.load_prepared(cache, "train", max_len=limit)           # 더 긴 쌍이 있으면 한 줄 오류
    splits = {name: data.load_prepared(cache, name) for name in ("valid", "test")}
    texts = {name: data.load_pairs(cfg.data_dir, name, cfg.src, cfg.tgt) for name in ("valid", "test")}
    # 검증 분할은 거르지 않은 공식 집합: 위치 표보다 긴 쌍은 교사 강요 손실에서만 뺀다 (시험은 translate_ids 가 자름)
    keep = [i for i, (s, t) in enumerate(splits["valid"]) if max(len(s), len(t)) <= limit]
    if len(keep) < len(splits["valid"]):
        log(f"검증 쌍 {len(splits['valid']) - len(keep)}개가 {limit} 토큰보다 길어 검증에서 뺍니다.")
    log(f"준비된 캐시 {cache}: {cfg.src}→{cfg.tgt} 학습 {len(train):,} 쌍, BPE 어휘 {len(bpe):,}")
    return Corpus(bpe, train, [splits["valid"][i] for i in keep], splits["test"], [texts["valid"][i] for i in keep],
                  texts["test"], cache)


def find_or_prepare(cfg, log):
    """설정과 지금의 코퍼스 파일에 맞는 캐시의 경로. 없으면 ``data.prepare_corpus`` 로 만든다."""
    cache = data.find_prepared(cfg.data_dir, cfg.vocab_size, cfg.src, cfg.tgt, log=log)
    if cache is None:                                   # Multi30k 는 몇 초, WMT14 는 수십 분
        log(f"'{cfg.data_dir}' 에 어휘 {cfg.vocab_size}, {cfg.src}→{cfg.tgt} 캐시가 없어 먼저 준비합니다 "
            f"(= python data.py prepare {cfg.data_dir} --src {cfg.src} --tgt {cfg.tgt} --vocab {cfg.vocab_size}).")
        cache = data.prepare_corpus(cfg.data_dir, cfg.vocab_size, cfg.src, cfg.tgt, log=log)
    return cache


def check_run_cache(cache, data_dir):
    """재개하는 런이 처음에 쓴 캐시가 아직 있고 코퍼스 파일과 맞는지. 아니면 다른 캐시로 바꿔 타지 않고 멈춘다:
    어휘의 i 번째 행이 다른 부분 단어를 뜻하게 되거나, 옛 번역을 새 참조와 견주게 된다."""
    if not os.path.isfile(os.path.join(cache, "meta.json")):
        raise FileNotFoundError(f"이 런이 쓰던 캐시 '{cache}' 가 없습니다: 같은 설정으로 다시 준비하면 BPE 가 달라질 수 "
                                "있어 이어 갈 수 없습니다. 새 런을 시작하세요.")
    if not data.prepared_is_current(cache, data_dir):
        raise ValueError(f"이 런이 쓰던 캐시 '{cache}' 를 만든 뒤 '{data_dir}' 의 코퍼스 파일이 바뀌었습니다: "
                         "이어 갈 수 없습니다. 새 런을 시작하세요.")


def keep_run_bpe(run_dir, bpe):
    """런의 bpe.txt: 없으면 쓰고, 있으면 지금 코퍼스의 BPE 와 같은지만 확인한다 (런의 bpe.txt 는 다시 쓰지 않는다)."""
    path = os.path.join(run_dir, "bpe.txt")
    if not os.path.exists(path):
        bpe.save(path)
        return
    saved = data.BPE.load(path)
    if (saved.alphabet, saved.merges) != (bpe.alphabet, bpe.merges):
        raise ValueError(f"'{path}' 가 이 코퍼스의 BPE 와 다릅니다: 다른 런의 디렉터리에 학습하려는 것 같습니다 "
                         "(--run-dir 를 비우거나 새 디렉터리를 주세요).")


# ══════ G. 명령줄 ══════
# 번역(--translate, --translate-file)에서 런에 저장된 값 대신 줄 수 있는 설정: 디코딩만 바뀌고 모델은 그대로다.
DECODING_OPTIONS = ("beam_size", "length_penalty")


def build_parser():
    """Config 의 모든 필드를 --필드-이름 옵션으로 만든다 (불리언은 --x / --no-x)."""
    parser = argparse.ArgumentParser(description="Transformer 학습 (Attention Is All You Need).")
    add = parser.add_argument
    add("--preset", choices=PRESETS, default=None, help="설정 묶음 (기본: --data-dir 를 주면 GPU 에서 rtx3090 "
        "= 논문 base, CPU 에서 multi30k; 안 주면 data/wmt14 에 준비된 캐시가 있을 때 rtx3090, 없으면 demo)")
    add("--translate", metavar="TEXT", help="최근(또는 --checkpoint) 체크포인트로 이 문장만 번역한다")
    add("--checkpoint", help="번역·평균에 쓸 런 디렉터리나 체크포인트 파일 (기본: 가장 최근 런)")
    add("--translate-file", metavar="IN", help="IN 파일(- 면 표준 입력)의 줄마다 번역해 한 줄씩 쓴다 (빈 줄은 빈 줄; 기본 출력: 표준 출력)")
    add("--output", metavar="FILE",
        help="--translate-file 의 결과를 표준 출력 대신 FILE 에 쓴다 (다 끝난 뒤 원자적으로; 기본: 표준 출력)")
    add("--score", nargs=2, metavar=("HYP", "REF"), help="두 파일의 코퍼스 BLEU 를 sacreBLEU 기본값(13a)으로, 대소문자를 "
        "구분해 한 번, 소문자로 한 번 잰다 (서명 줄과 함께)")
    add("--lowercase", action="store_true", help="--score 에서 소문자 점수만 찍는다 (sacreBLEU -lc; 기본: 둘 다)")
    add("--average-checkpoints", type=int, metavar="N",
        help="런 디렉터리의 마지막 N(2 이상) 개 체크포인트를 평균해 checkpoint_averaged.pt 로 쓴다 (논문 5)")
    add("--malloc-tuning", action=argparse.BooleanOptionalAction, default=True,
        help="CPU 학습에서 glibc malloc 이 해제한 큰 버퍼를 다시 쓰게 설정한다 (리눅스; 페이지 폴트가 줄어 더 빠르고 값은 "
             "같음, 최대 RSS 는 늘어남; 기본: 켬, 끄려면 --no-malloc-tuning)")
    add("--fast-dropout", action=argparse.BooleanOptionalAction, default=True,
        help="CPU 학습에서 드롭아웃 마스크를 64비트 난수 하나로 네 칸씩 만든다 (같은 분포, 다른 난수; multi30k 스텝이 약 "
             "10%% 빠름; 기본: 켬, 끄려면 --no-fast-dropout)")
    for field in dataclasses.fields(Config):
        if field.name in ("preset", "resume"):
            continue
        values = {p: getattr(preset_config(p), field.name) for p in PRESETS[1:]}   # 도움말의 프리셋별 기본값
        default = (repr(values["demo"]) if len(set(map(repr, values.values()))) == 1
                   else ", ".join(f"{p} {v!r}" for p, v in values.items()))
        kind = {"action": argparse.BooleanOptionalAction} if field.type is bool else {"type": field.type}
        add("--" + field.name.replace("_", "-"), dest=field.name, default=None,
            help=f"{field.metadata['help']} (기본: {default})", **kind)
    add("--resume", nargs="?", const="latest", default=None, help="런 디렉터리나 체크포인트에서 이어 간다 "
        "(값이 없으면 --run-dir, 그것도 없으면 가장 최근 런; 기본: 새로 시작)")
    return parser


def config_from_args(args, log=print):
    """프리셋 + 명령줄에서 준 필드만 덮어쓴다. 프리셋을 안 주면 데이터와 장치에 따라 고른다: --data-dir 를
    주면 그 평행 코퍼스로 (GPU 면 rtx3090, 아니면 multi30k 프리셋; 디렉터리나 파일이 없으면 조용히 데모를
    학습하지 않고 한 줄 오류, 캐시가 없으면 학습 전에 준비), 안 주면 준비된 data/wmt14 또는 데모로.
    --resume 이면 프리셋이 아니라 런이 저장한 설정에서 시작한다 (resumed_config)."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                 if f.name not in ("preset", "resume") and getattr(args, f.name, None) is not None}
    if args.resume:
        return resumed_config(args.resume, dict(overrides, **({"preset": args.preset} if args.preset else {})))
    name = args.preset
    if args.data_dir is not None and name is None:
        name = "rtx3090" if torch.cuda.is_available() else "multi30k"
        log(f"--data-dir 만 주어 {name} 프리셋을 씁니다 ({'GPU' if name == 'rtx3090' else 'CPU'}): "
            "다른 크기는 --preset 으로 고르세요.")
    elif name is None:
        prepared = os.path.isdir("data/wmt14") and data.find_prepared("data/wmt14", 37000) is not None
        name = "rtx3090" if prepared else "demo"
        if not prepared and args.corpus in (None, "demo"):
            log("data/wmt14 가 준비되지 않아 내장 데모 코퍼스로 demo 프리셋을 학습합니다.")
    if args.data_dir is not None:
        overrides.setdefault("corpus", "parallel")
    cfg = check_config(preset_config(name).replace(**overrides))
    if cfg.corpus == "parallel":
        check_corpus_dir(cfg)
    return cfg


def run_training(cfg, log=print, malloc_tuning=False, fast_dropout=False):
    """학습 → (끝까지 갔으면) 평균·테스트 BLEU → 그림을 그리는 명령 안내. CPU 면 malloc_tuning: keep_freed_memory(),
    fast_dropout: use_fast_cpu_dropout(모델)."""
    cpu = cfg.device == "cpu" or not torch.cuda.is_available()
    if malloc_tuning and cpu and keep_freed_memory() and os.environ.get("RANK", "0") == "0":
        log("CPU 학습: 해제한 메모리를 OS 에 돌려주지 않고 다시 쓰도록 glibc malloc 을 설정했습니다 "
            "(같은 값, 더 빠름; 끄려면 --no-malloc-tuning).")
    t0, trainer = time.time(), Trainer(cfg, log)
    if cfg.amp == "auto" and trainer.device.type == "cpu" and trainer.amp == "bf16":   # setup_device 가 고른 값
        trainer.log("CPU 가 bf16 을 명령 하나로 계산해 (AVX512-BF16/AMX) --amp auto 가 bf16 혼합 정밀도를 골랐습니다 "
                    "(더 빠름; fp32 로 하려면 --amp off).")
    if fast_dropout and trainer.device.type == "cpu" and use_fast_cpu_dropout(trainer.model):
        trainer.log("CPU 학습: 드롭아웃 마스크를 64비트 난수 하나로 네 칸씩 만듭니다 (같은 분포, 더 빠름; "
                    "끄려면 --no-fast-dropout).")
    report = final_evaluation(trainer, log) if trainer.train() and trainer.is_main else None
    if report is not None:
        write_test_result(trainer.run_dir, cfg, report, time.time() - t0)          # 부록 A
        log(f"총 시간 {format_duration(time.time() - t0)} | 런 디렉터리 {trainer.run_dir}")
        log(f"테스트 BLEU {report['bleu']:.2f} (대소문자 구분), {report['bleu_lc']:.2f} (소문자) "
            f"(beam {cfg.beam_size}, {report['sentences']} 문장; sacreBLEU 13a 와 같은 값):")
        for lowercase in (False, True):
            log(bleu_report(report["hypotheses"], report["references"], lowercase=lowercase))
        log(f"그림: python plots.py --run {trainer.run_dir}")
    if trainer.world_size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return report


def read_text_lines(path):
    """파일(- 면 표준 입력)의 줄들. '\\n' 으로만 나누고, 마지막 줄바꿈 뒤의 빈 줄은 세지 않는다."""
    if path != "-" and not os.path.isfile(path):
        raise FileNotFoundError(f"파일 '{path}' 가 없습니다.")
    try:
        text = sys.stdin.read() if path == "-" else pathlib.Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"'{path}' 가 UTF-8 이 아닙니다 (바이트 {exc.start}): UTF-8 로 바꿔 주세요.") from None
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def run_translate_file(args, batch_size=64):
    """--translate-file IN: 줄마다 빔 서치 번역, 입력과 같은 줄 수 (빈 줄은 빈 줄). 진행과 시간은 stderr 로."""
    run, lines = with_decoding_options(load_run(args.checkpoint), args), read_text_lines(args.translate_file)
    # 빈 줄은 번역하지 않고, 비슷한 길이끼리 묶어 패딩을 줄인다
    todo = sorted((i for i, line in enumerate(lines) if line.strip()), key=lambda i: len(lines[i]))
    out, start = [""] * len(lines), time.time()
    for k in range(0, len(todo), batch_size):
        chunk = todo[k:k + batch_size]
        for i, text in zip(chunk, translate_texts(run, [lines[i] for i in chunk])):
            out[i] = " ".join(text.split())                             # 줄바꿈이 섞여 줄 수가 바뀌지 않게
        done, spent = k + len(chunk), time.time() - start
        print(f"  번역 {done:,}/{len(todo):,} 줄 | 경과 {format_duration(spent)} | "
              f"남은 시간 {format_duration(spent / done * (len(todo) - done))}", file=sys.stderr, flush=True)
    text = "".join(line + "\n" for line in out)
    if args.output:
        atomic_save(args.output, text)                                   # 다 끝난 뒤 원자적으로
    else:
        sys.stdout.write(text)
    print(f"{len(lines):,} 줄 번역 ({len(todo):,} 줄은 내용 있음), {time.time() - start:.1f} 초", file=sys.stderr)
    return out


def bleu_report(hypotheses, references, lowercase=False):
    """``sacrebleu`` 명령이 찍는 두 줄: 점수 줄과 서명 줄.
    >>> print(bleu_report(["the cat is on the mat"], ["the cat sat on the mat"]))
    BLEU = 37.99 83.3/60.0/25.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)
    nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|impl:train.py (sacreBLEU 2.6.0 과 같은 값)
    """
    stats = bleu_stats(hypotheses, references, lowercase)
    (score, precisions, brevity), (sys_len, ref_len) = _bleu_from_stats(stats), stats[:2]
    return (f"BLEU = {score:.2f} {'/'.join(f'{p:.1f}' for p in precisions)} (BP = {brevity:.3f} "
            f"ratio = {sys_len / ref_len if ref_len else 0.0:.3f} hyp_len = {sys_len} ref_len = {ref_len})\n"
            f"nrefs:1|case:{'lc' if lowercase else 'mixed'}|eff:no|tok:13a|smooth:exp|impl:train.py "
            "(sacreBLEU 2.6.0 과 같은 값)")


def run_score(args):
    """--score HYP REF: sacreBLEU 와 같은 코퍼스 BLEU 와 서명 줄, 대소문자 구분 한 번과 소문자(-lc) 한 번
    (--lowercase 면 소문자만). 반환: 첫 점수. 줄 수가 다르면 두 파일을 밝혀 거절."""
    (hyp_path, ref_path), (hyps, refs) = args.score, [read_text_lines(p) for p in args.score]
    if len(hyps) != len(refs):
        raise ValueError(f"줄 수가 다릅니다: '{hyp_path}' {len(hyps):,}줄, '{ref_path}' {len(refs):,}줄.")
    for lowercase in (True,) if args.lowercase else (False, True):
        print(bleu_report(hyps, refs, lowercase=lowercase))
    return bleu(hyps, refs, lowercase=args.lowercase)


def run_average(args):
    """--average-checkpoints N: 런 디렉터리의 마지막 N 개를 평균해 checkpoint_averaged.pt 로 저장."""
    path = run_checkpoint(args.checkpoint)
    load_checkpoint(path)                              # 없거나 손상된 체크포인트면 여기서 한 줄 오류
    run_dir = os.path.dirname(path)
    out = average_run(run_dir, args.average_checkpoints)
    if out is None:
        count = len(step_checkpoints(run_dir)[-args.average_checkpoints:])
        raise ValueError(f"'{run_dir}' 에 평균할 체크포인트가 {count}개뿐입니다 (2개 이상 필요).")
    print(f"저장했습니다: {out}")
    return out


def check_modes(args):
    """한 가지 일에만 쓰는 옵션이 그 일 없이 오면 거절한다 (조용히 학습을 시작하지 않는다)."""
    if args.output is not None and args.translate_file is None:
        raise ValueError("--output 은 --translate-file 과 함께만 씁니다.")
    if args.lowercase and args.score is None:
        raise ValueError("--lowercase 는 --score 와 함께만 씁니다.")
    if args.checkpoint is not None and args.translate is None and args.translate_file is None \
            and args.average_checkpoints is None:
        raise ValueError("--checkpoint 는 --translate, --translate-file, --average-checkpoints 와 함께만 씁니다 "
                         "(학습을 이어 가려면 --resume 런).")
    if args.average_checkpoints is not None and args.average_checkpoints < 2:
        raise ValueError(f"--average-checkpoints 는 2 이상이어야 합니다 (받은 값 {args.average_checkpoints}).")
    mode = next((m for m in ("translate", "translate_file", "score", "average_checkpoints")
                 if getattr(args, m) is not None), None)
    given = [f.name for f in dataclasses.fields(Config) if getattr(args, f.name, None) is not None]
    for name in given if mode is not None else ():    # 번역·채점·평균에서 조용히 무시될 학습 옵션은 거절한다
        flag, where = "--" + name.replace("_", "-"), "--" + mode.replace("_", "-")
        translating = mode in ("translate", "translate_file")
        if name not in DECODING_OPTIONS or not translating:
            raise ValueError(f"{flag} 은 학습{'과 번역' if name in DECODING_OPTIONS else ''}에만 씁니다 " + (
                f"({where} 은 런에 저장된 설정을 씁니다; 번역에서 바꿀 수 있는 것은 --beam-size, --length-penalty)."
                if translating else f"({where} 에는 쓰이지 않습니다)."))
        check_at_least(name, getattr(args, name), 1 if name == "beam_size" else 0)


def with_decoding_options(run, args):
    """--translate, --translate-file 에서 --beam-size, --length-penalty 를 주면 런에 저장된 값 대신 쓴다
    (다시 학습하지 않고 검증 분할에서 빔 크기와 α 를 고르는 길)."""
    changes = {name: getattr(args, name) for name in DECODING_OPTIONS if getattr(args, name) is not None}
    return run._replace(cfg=run.cfg.replace(**changes)) if changes else run


def main(argv=None):
    """명령줄 진입점. 잘못된 입력은 종료 코드 2, 발산은 1, Ctrl-C 는 130 과 한 줄 설명 (트레이스백 없음)."""
    args = build_parser().parse_args(argv)
    try:
        check_modes(args)
        if args.translate is not None:                 # 최근(또는 --checkpoint) 런으로 빔 서치 번역
            text = translate_texts(with_decoding_options(load_run(args.checkpoint), args), [args.translate])[0]
            print(text)
            return text
        if args.translate_file is not None:
            return run_translate_file(args)
        if args.score is not None:
            return run_score(args)
        if args.average_checkpoints is not None:
            return run_average(args)
        log = functools.partial(print, flush=True)     # 파일로 돌려도 진행 줄이 바로 보이게
        return run_training(config_from_args(args, log), log, malloc_tuning=args.malloc_tuning,
                            fast_dropout=args.fast_dropout)
    except (ValueError, FileNotFoundError, TrainingDiverged) as exc:
        print(f"오류: {exc}", file=sys.stderr)
        raise SystemExit(1 if isinstance(exc, TrainingDiverged) else 2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
