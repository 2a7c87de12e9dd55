"""data.py — 원문 텍스트에서 토큰 텐서까지: 정규화, 손으로 쓴 BPE, 배치, MLM 마스킹 (부록: 코퍼스·내려받기·캐시·데모).

"Sentences were encoded using byte-pair encoding [3], which has a shared source-target
vocabulary of about 37000 tokens." (§5.1)

본문 읽는 순서 (``# ══════ 부록`` 배너 줄 위까지; 아래로 건너뛸 일 없음):
1. 특수 토큰과 정규화 → 2. BPE (순진한 학습 → BPE 클래스: 인코딩·디코딩·저장·읽기 → train_bpe) →
3. 배치 (토큰 예산, collate) → 4. MLM 마스킹.
부록 (처음 읽을 때는 건너뛴다; 도구): A. 빠른 BPE 학습 (증분, 힙) · B. BPE 파일 검사 · C. 평행 코퍼스 읽기
(train/valid/test.<언어>, WMT14 공식 배치) · D. 내려받기 (이어받기, 확인 뒤에만 풀기) · E. 이진 캐시 (``prepare``) ·
F. 데모 코퍼스 (작은 영어→독일어 문법) · G. 명령줄.
명령줄: ``python data.py download {wmt14,multi30k} [--dir DIR]``,
``python data.py prepare {wmt14,multi30k,DIR} [--src en --tgt de] [--vocab N]``.

>>> SPECIAL_TOKENS[:3], PAD_ID, BOS_ID, EOS_ID, MASK_ID, normalize("  Hallo\\t\\tWelt \\x00! ")
(('[PAD]', '[UNK]', '[BOS]'), 0, 2, 3, 6, 'Hallo Welt !')
>>> bpe = train_bpe(["the cat sat", "the cat ate", "a cat"], vocab_size=60)
>>> bpe.decode(bpe.encode("the cat 고양이")) == "the cat 고양이"
True
"""
import argparse
import array
import collections
import dataclasses
import gzip
import hashlib
import heapq
import http.client
import itertools
import json
import os
import random
import re
import shutil
import sys
import tarfile
import time
import unicodedata
import urllib.error
import urllib.request
import zlib

import numpy as np
import torch


# ══════ 1. 특수 토큰과 정규화 ══════
# 특수 토큰은 어휘의 맨 앞 0..6 번. BPE 병합은 이 id 를 만들지도 쪼개지도 않는다. [PAD] 패딩,
# [UNK] (무손실 BPE 라 쓰지 않고 자리만 지킨다), [BOS]/[EOS] 문장 시작/끝, [CLS]/[SEP]/[MASK] 는 MLM 용.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, BOS_ID, EOS_ID, CLS_ID, SEP_ID, MASK_ID = range(7)

# 제어 문자(Cc)와 짝 없는 서로게이트(Cs)는 지운다. 단, 공백 역할의 제어 문자(\t \n \v \f \r,
# \x1c-\x1f, \x85)는 str.split() 이 공백으로 보므로 지우지 않고 공백으로 접는다.
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff]")


def normalize(text):
    """텍스트 정규화: 제어 문자 제거 → 공백 한 칸으로 접기(앞뒤 제거) → 유니코드 NFC.

    제어 문자를 먼저 지워야 "e\\x01\\u0301" 도 NFC 결과가 된다. 멱등이다: ``normalize(normalize(s)) ==
    normalize(s)``. BPE 의 무손실 약속은 ``decode(encode(s)) == normalize(s)`` 이다.

    >>> normalize("Cafe\\u0301  au\\nlait")      # e + 결합 악센트 → é (NFC)
    'Café au lait'
    >>> normalize("\\u1100\\u1161\\u11a8 "), normalize("a\\rb\\x07c")   # 첫가끝 자모 → 완성형
    ('각', 'a bc')
    """
    if not isinstance(text, str):
        raise ValueError(f"normalize 는 str 을 받습니다 ({type(text).__name__} 를 받음): 먼저 디코딩하세요.")
    text = " ".join(_CONTROL_RE.sub("", text).split())
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


# ══════ 2. BPE (byte-pair encoding, Sennrich et al. 2016) ══════
# "We iteratively count all symbol pairs and replace each occurrence of the most frequent pair ('A', 'B')
# with a new symbol 'AB'." (논문의 [3], Sennrich et al. 2016, §3.2) — 아래 learn_merges_naive 가 이 문장 그대로다.
# - 정규화한 문장을 공백으로 나눈 "단어"가 단위다 (병합은 단어 경계를 넘지 않는다). 단어의 마지막 글자는 끝형이다
#   ("dog" → d o g</w>): 디코딩은 토큰을 이어 붙이고 </w> 자리에 공백을 넣을 뿐.
# - 어휘의 id 배치 (앞에서부터; 아래 상수들이 경계다):
#     0..6   특수 토큰 [PAD] … [MASK]
#     7      단독 </w>: 니블로 쓴 글자가 단어 끝일 때 뒤에 붙는 단어 끝 표시        (EOW_ID)
#     8..23  니블 <x0>..<xF>: 4비트 값 0..15 (니블 = 바이트의 반쪽 = 16진수 한 자리) (NIBBLE_ID + 값)
#     24..   학습 글자 (글자마다 보통형 a, 끝형 a</w>), 그 뒤에 병합 결과가 배운 순서대로 (FIRST_CHAR_ID 부터)
# - 무손실 폴백: 학습 글자에 없는 글자(이모지, 한글 …)는 UTF-8 바이트로 쪼개고, 바이트 하나를 16진수 두 자리 =
#   니블 두 개로 쓴다: "한" = ED 95 9C → <xE><xD><x9><x5><x9><xC> = id 22 21 17 13 17 20. 256개 바이트 토큰
#   대신 16개라 작은 어휘에도 병합 자리가 남는다. 니블은 병합하지 않는다 (글자 사이 병합만 배운다).
# GPT-2 식 바이트 수준 BPE 가 아닌 까닭: [3] 이 단어 빈도 BPE 이고, 단어 빈도표 위에서 배우면 450만 쌍이라도
# "단어 종류 수"만큼만 일한다. 어떤 문자열도 표현하는 장점은 니블 폴백으로 얻는다.
# 논문과 다른 점: 논문은 (아마 Moses 로) 토큰화한 텍스트에 BPE 를 썼다. 우리는 정규화한 원문을 공백으로만
# 나눈다 ("Haus." 는 한 단어; 병합이 구두점을 떼어 낸다). 니블 폴백과 특수 토큰 이름 병합 금지도 원래 없다.
END_OF_WORD = "</w>"
EOW_ID = len(SPECIAL_TOKENS)                  # 7: 단독 단어 끝 표시
NIBBLE_ID = EOW_ID + 1                        # 8..23: 니블 <x0>..<xF>
FIRST_CHAR_ID = NIBBLE_ID + 16                # 24: 학습 글자가 여기서 시작
BPE_FORMAT = "#version: transformer-ko-bpe 1"


def pair_counts(words):
    """(기호 목록, 빈도) 들에서 이웃한 기호 쌍의 빈도를 센다 — BPE 의 기본 통계.

    >>> pair_counts([(["l", "o", "w</w>"], 5), (["l", "o", "t"], 2)])
    Counter({('l', 'o'): 7, ('o', 'w</w>'): 5, ('o', 't'): 2})
    """
    counts = collections.Counter()
    for symbols, freq in words:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] += freq
    return counts


def merge_pair(symbols, pair, new):
    """기호 목록에서 ``pair`` 가 나오는 곳을 왼쪽부터 겹치지 않게 ``new`` 하나로 바꾼다.

    >>> merge_pair(["a", "a", "a", "b"], ("a", "a"), "aa"), merge_pair([1, 2, 1, 2, 3], (1, 2), 9)
    (['aa', 'a', 'b'], [9, 9, 3])
    """
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_merges_naive(words, num_merges, first_id, min_frequency=2):
    """순진한 BPE 학습: 병합마다 모든 쌍을 처음부터 다시 세어 가장 잦은 쌍을 새 id 로 바꾼다.

    ``words`` 는 (기호 id 목록, 빈도) 들. 동점이면 id 가 작은 쌍. 병합 M 번 × 전체 단어라 느리다;
    부록 A 의 ``_learn_merges`` 가 같은 병합을 빠르게 찾는다 (특수 토큰 이름 검사는 그쪽에만 있다).

    >>> # l=1 o=2 w</w>=3 e=4 r</w>=5: "low" 5번, "lower" 2번 → lo(6), low</w>(7), er</w>(8), lower</w>(9)
    >>> learn_merges_naive([([1, 2, 3], 5), ([1, 2, 4, 5], 2)], num_merges=10, first_id=6)
    [(1, 2), (6, 3), (4, 5), (6, 8)]
    """
    words, merges = [(list(symbols), freq) for symbols, freq in words], []
    while len(merges) < num_merges:
        counts = pair_counts(words)
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))       # 가장 잦은 쌍, 동점이면 작은 (a, b)
        if counts[pair] < min_frequency:
            break
        new = first_id + len(merges)
        words = [(merge_pair(symbols, pair, new), freq) for symbols, freq in words]
        merges.append(pair)
    return merges


# ---- 배운 병합을 쓰는 BPE: 니블 폴백, 인코딩·디코딩, 저장·읽기 ----
def _nibbles(ch):
    """글자 하나 → UTF-8 바이트 → 니블 토큰 id 목록 (바이트마다 상위, 하위 4비트).

    >>> _nibbles("한")         # UTF-8 ED 95 9C → E D 9 5 9 C → 8 + 니블 값
    [22, 21, 17, 13, 17, 20]
    """
    return [NIBBLE_ID + nib for byte in ch.encode("utf-8") for nib in (byte >> 4, byte & 15)]


def _nibble_bytes(nibbles):
    """니블 목록 → 바이트. 홀수로 남은 니블은 잘못된 바이트가 되어 디코딩 때 U+FFFD 가 된다."""
    data = bytes(16 * hi + lo for hi, lo in zip(nibbles[::2], nibbles[1::2]))
    return data + (b"\xff" if len(nibbles) % 2 else b"")


class BPE:
    """학습된 BPE: 기본 어휘(글자와 끝형)와 병합 목록으로 인코딩·디코딩한다.

    id 배치: 0..6 특수 토큰, 7 단독 </w>, 8..23 니블 <x0>..<xF>, 24.. 글자(코드 포인트 순, 보통형 뒤에
    끝형), 그 뒤 병합 결과(학습 순서 = 병합 순위). 본문의 글자 "[MASK]" 는 특수 토큰이 아니라 보통 글자다.

    >>> bpe = train_bpe(["low lower lowest", "low low"], vocab_size=40)
    >>> len(bpe), bpe.token_strings(bpe.encode("lowest low"))    # 빈도 2 이상 쌍이 떨어져 38 에서 멈춤
    (38, ['lowe', 's', 't</w>', 'low</w>'])
    >>> bpe.encode("x")                   # 못 본 글자: 니블 두 개 + 단독 </w>
    [15, 16, 7]
    """

    def __init__(self, alphabet, merges):
        self.alphabet = [(str(ch), bool(final)) for ch, final in alphabet]
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.tokens = list(SPECIAL_TOKENS) + [END_OF_WORD] + [f"<x{i:X}>" for i in range(16)]
        pieces = [b""] * len(SPECIAL_TOKENS) + [b" "] + [b""] * 16   # 디코딩용 바이트 조각
        final = [False] * len(self.tokens)           # 단어 끝 토큰인가 (표시 문자열이 아니라 이것이 정체)
        self._char_id, self._final_id = {}, {}
        for ch, is_final in self.alphabet:
            table = self._final_id if is_final else self._char_id
            if len(ch) != 1 or ch in table or ch.isspace():
                raise ValueError(f"BPE 기본 어휘의 글자 {ch!r} 가 잘못되었거나 중복입니다.")
            table[ch] = len(self.tokens)
            self.tokens.append(ch + END_OF_WORD if is_final else ch)
            pieces.append(ch.encode("utf-8") + (b" " if is_final else b""))
            final.append(is_final)
        self._first_merge, self._merge_id = len(self.tokens), {}
        for a, b in self.merges:
            if not FIRST_CHAR_ID <= min(a, b) <= max(a, b) < len(self.tokens):
                raise ValueError(f"병합 ({a}, {b}) 이 아직 없는 id 나 특수·니블 id 를 가리킵니다.")
            if final[a]:
                raise ValueError(f"병합 ({a}, {b}) 의 왼쪽이 단어 끝 토큰입니다.")
            self._merge_id[(a, b)] = len(self.tokens)
            self.tokens.append(self.tokens[a] + self.tokens[b])
            pieces.append(pieces[a] + pieces[b])
            final.append(final[b])
        self._pieces, self._cache, self.cache_size = pieces, {}, 1_000_000

    def __len__(self):
        return len(self.tokens)

    def __repr__(self):
        return f"BPE(vocab={len(self)}, alphabet={len(self.alphabet)}, merges={len(self.merges)})"

    def _word_symbols(self, word):
        """단어 → 병합 전 기호 id: 학습 글자는 그대로, 못 본 글자는 니블, 끝 글자는 끝형(없으면 +</w>)."""
        ids = []
        for ch in word:
            i = self._char_id.get(ch)
            ids += _nibbles(ch) if i is None else [i]
        final = self._final_id.get(word[-1])
        if final is not None and word[-1] in self._char_id:
            ids[-1] = final
        else:
            ids.append(EOW_ID)
        return ids

    def _encode_word(self, word):
        """한 단어에 병합 규칙을 순위대로 적용한다 (가장 먼저 배운 쌍부터). 결과는 캐시된다."""
        ids, big = self._word_symbols(word), len(self.tokens)
        while len(ids) > 1:
            best = min(self._merge_id.get(p, big) for p in zip(ids, ids[1:]))
            if best == big:
                break
            ids = merge_pair(ids, self.merges[best - self._first_merge], best)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[word] = ids = tuple(ids)
        return ids

    def encode(self, text, out=None):
        """텍스트 → 토큰 id 목록 ([BOS]/[EOS] 는 collate 가 붙인다). ``out`` (예: ``array.array``) 을 주면
        거기에 덧붙이고 그것을 돌려준다 (prepare 가 쓴다). 같은 단어는 캐시로 한 번만 병합한다.

        >>> bpe = train_bpe(["ab ab ab"], vocab_size=30)
        >>> bpe.token_strings(bpe.encode(" ab  abab "))   # 'ab' 는 끝형(ab</w>)으로만 배웠다
        ['ab</w>', 'a', 'b', 'ab</w>']
        """
        out = [] if out is None else out
        for word in normalize(text).split():
            ids = self._cache.get(word)
            out.extend(ids if ids is not None else self._encode_word(word))
        return out

    def decode(self, ids, skip_special=True):
        """토큰 id → 텍스트. 조각의 UTF-8 바이트를 이어 붙이고(끝형은 뒤에 공백) 니블은 둘씩 바이트로.

        특수 토큰은 기본으로 건너뛰고, ``skip_special=False`` 면 "[MASK]" 같은 이름을 한 단어처럼 넣는다.
        모델이 만든 어긋난 니블·바이트 열은 U+FFFD 로 바뀐다 (예외를 던지지 않는다).

        >>> bpe = train_bpe(["ab ab ab"], vocab_size=30)
        >>> bpe.decode(bpe.encode("ab 🙂 b")), bpe.decode([BOS_ID, 24, MASK_ID, 27], skip_special=False)
        ('ab 🙂 b', '[BOS] a [MASK] ab')
        """
        out, nib, size = [], [], len(self.tokens)
        for i in map(int, ids):
            if not 0 <= i < size:
                raise ValueError(f"토큰 id {i} 가 어휘 크기 {size} 를 벗어났습니다.")
            if NIBBLE_ID <= i < FIRST_CHAR_ID:
                nib.append(i - NIBBLE_ID)
                continue
            if nib:
                out.append(_nibble_bytes(nib))
                nib = []
            if i >= EOW_ID:
                out.append(self._pieces[i])
            elif not skip_special:
                out.append((b"" if not out or out[-1].endswith(b" ") else b" ") + SPECIAL_TOKENS[i].encode() + b" ")
        if nib:
            out.append(_nibble_bytes(nib))
        return b"".join(out).decode("utf-8", errors="replace").strip(" ")

    def token_strings(self, ids):
        """토큰 id → 사람이 읽는 토큰 문자열 (본문에 "</w>" 가 글자로 있으면 겹칠 수 있다; 정체는 id).

        >>> train_bpe(["ab"], vocab_size=30).token_strings([0, 7, 8, 24])
        ['[PAD]', '</w>', '<x0>', 'a']
        """
        return [self.tokens[int(i)] for i in ids]

    def save(self, path):
        """사람이 읽는 텍스트로 저장한다 (임시 파일에 쓴 뒤 이름 바꾸기: 반쯤 쓰인 파일은 없다).

        형식: 버전 줄, ``specials 7`` + 이름들, ``alphabet N`` + ``char|end 코드포인트 글자`` 줄들,
        ``merges M`` + ``왼쪽id 오른쪽id 결과토큰`` 줄들. 결과 토큰 문자열은 읽을 때 다시 검사한다.
        """
        lines = [BPE_FORMAT, f"specials {len(SPECIAL_TOKENS)}", *SPECIAL_TOKENS, f"alphabet {len(self.alphabet)}"]
        lines += [f"{'end' if final else 'char'} {ord(ch):04X} {ch}" for ch, final in self.alphabet]
        lines.append(f"merges {len(self.merges)}")
        lines += [f"{a} {b} {self.tokens[self._first_merge + k]}" for k, (a, b) in enumerate(self.merges)]
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        """``save`` 가 쓴 파일을 읽는다. 잘못되었거나 잘린 파일은 파일 이름과 줄 번호를 담은 ValueError.

        >>> import tempfile, os
        >>> bpe = train_bpe(["hello world", "hello"], vocab_size=40)
        >>> tmp = tempfile.TemporaryDirectory(); path = os.path.join(tmp.name, "bpe.txt")
        >>> bpe.save(path); BPE.load(path).encode("hello") == bpe.encode("hello")
        True
        >>> tmp.cleanup()
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(f"BPE 파일 '{path}' 가 없습니다: 경로를 확인하거나 train_bpe 로 새로 만드세요.")
        try:
            with open(path, encoding="utf-8", newline="\n") as f:
                lines = f.read().split("\n")
        except UnicodeDecodeError as exc:
            raise ValueError(f"BPE 파일 '{path}' 가 UTF-8 이 아닙니다 (바이트 {exc.start}).") from exc
        # 줄마다 검사하며 읽는 파서는 부록 B 의 _parse_bpe
        return _parse_bpe(lines[:-1] if lines[-1:] == [""] else lines, path)


# ---- BPE 학습: 단어 세기 → 시작 상태(기본 어휘, 구간) → 병합 학습 → BPE ----
def count_words(lines, log=None, every=1_000_000):
    """문장들을 정규화해 공백으로 나누고 단어 빈도를 센다 (스트리밍: 문장을 쌓아 두지 않는다).

    >>> sorted(count_words(["a b a", "  b\\tc "]).items())
    [('a', 2), ('b', 2), ('c', 1)]
    """
    counts, t0 = collections.Counter(), time.time()
    for n, line in enumerate(lines, 1):
        counts.update(normalize(line).split())
        if log is not None and n % every == 0:
            log(f"  단어 세기: {n:,} 줄, 단어 종류 {len(counts):,} ({time.time() - t0:.0f}초)")
    return counts


def bpe_start(word_counts, min_char_count=1):
    """병합 전 상태: (기본 어휘 ``[(글자, 끝형인가)]``, ``[(병합 가능한 구간의 기호 id, 빈도)]``).

    학습 글자는 ``min_char_count`` 이상 나온 것, 코드 포인트 순. "구간"(segment)은 한 단어 안에서 학습 글자 id 가
    끊기지 않고 이어진 토막이다. 병합은 학습 글자(와 그 병합 결과) 사이에서만 일어나고 니블·단독 </w> 는 병합하지
    않으므로, 단어를 니블·단독 </w> 자리에서 잘라 두 기호 이상인 토막만 (같은 토막은 빈도를 합쳐) 센다:
    "ab🙂cd" → a b [🙂 의 니블 8개] c d</w> → 구간 (a, b) 와 (c, d</w>). 한 기호짜리 토막에는 병합할 쌍이 없다.

    >>> bpe_start({"ab": 3, "b": 1})
    ([('a', False), ('b', False), ('b', True)], [((24, 26), 3)])
    """
    chars, finals = collections.Counter(), collections.Counter()
    for word, freq in word_counts.items():
        for ch in word:
            chars[ch] += freq
        finals[word[-1]] += freq
    alphabet = [(ch, final) for ch in sorted(c for c, n in chars.items() if n >= min_char_count)
                for final in (False, True) if not final or finals[ch] >= min_char_count]
    start, segments = BPE(alphabet, []), collections.Counter()
    for word, freq in word_counts.items():
        run = []
        for i in start._word_symbols(word) + [EOW_ID]:
            if i >= FIRST_CHAR_ID:
                run.append(i)
                continue
            if len(run) > 1:
                segments[tuple(run)] += freq
            run = []
    return alphabet, list(segments.items())


def train_bpe_from_counts(word_counts, vocab_size, min_frequency=2, min_char_count=1, log=None):
    """단어 빈도표(``{단어: 빈도}``)에서 BPE 를 배운다 (증분 학습). ``train_bpe`` 와 ``prepare`` 가 쓴다."""
    if min_frequency < 1 or min_char_count < 1:
        raise ValueError("min_frequency 와 min_char_count 는 1 이상이어야 합니다.")
    alphabet, segments = bpe_start(word_counts, min_char_count)
    base = FIRST_CHAR_ID + len(alphabet)
    if vocab_size < base:
        raise ValueError(f"vocab_size={vocab_size} 가 기본 어휘 {base} (특수 7 + </w> 1 + 니블 16 + 글자 "
                         f"{len(alphabet)}) 보다 작습니다: vocab_size 를 {base} 이상으로 하거나 min_char_count 를 올리세요.")
    if log is not None:
        log(f"BPE 학습: 단어 종류 {len(word_counts):,}, 구간 {len(segments):,}, 글자 {len(alphabet):,}, "
            f"목표 병합 {vocab_size - base:,}")
    names = BPE(alphabet, []).tokens
    # 빠른 병합 학습은 부록 A 의 _learn_merges (병합 목록은 learn_merges_naive 와 같다)
    merges = _learn_merges([list(s) for s, _ in segments], [f for _, f in segments], names, vocab_size - base,
                           min_frequency, log)
    return BPE(alphabet, merges)


def train_bpe(lines, vocab_size, min_frequency=2, min_char_count=1, log=None):
    """문장들로 공동(영어+독일어) BPE 를 배운다: ``vocab_size`` 가 될 때까지 가장 잦은 쌍을 병합.

    ``lines`` 는 한 번만 훑는다 (제너레이터 가능). 빈도가 ``min_frequency`` 미만인 쌍만 남으면 일찍
    멈추므로 ``len(bpe) <= vocab_size``. ``min_char_count`` 보다 드문 글자는 니블로 쓴다 (잡음 글자 방지).

    >>> bpe = train_bpe(["der Hund", "den Hund", "dem Hund"], vocab_size=45)
    >>> len(bpe), bpe.token_strings(bpe.encode("den Hunden"))   # 'Hund' 는 끝형으로만 배웠다
    (39, ['de', 'n</w>', 'Hu', 'n', 'de', 'n</w>'])
    """
    return train_bpe_from_counts(count_words(lines, log), vocab_size, min_frequency, min_char_count, log)


# ══════ 3. 배치: 토큰 예산과 collate (패딩 비율은 그림이 재므로 plots.padding_ratio) ══════
# "Sentence pairs were batched together by approximate sequence length. Each training batch
# contained a set of sentence pairs containing approximately 25000 source tokens and 25000
# target tokens." (§5.1)
# 생각은 세 단계다. ① 예제마다 폭 = max(원문, 번역 길이) + 1 ([EOS]/[BOS]) 을 재고 폭으로 정렬한다. ② 정렬된 줄을
# 앞에서부터 자른다: "예제 수 × 가장 긴 폭 ≤ max_tokens" (패딩을 포함한 크기) 가 깨지기 직전까지가 한 배치.
# ③ 배치 순서를 섞는다. 비슷한 길이끼리 묶이므로 패딩이 적다.
# 곁가지 (처음엔 넘겨도 된다): 섞기는 (seed, epoch) 로 정해져 에폭마다 다르고 재개해도 같다. 분산 학습이면 랭크마다
# 배치를 나눠 가진다 (rank, world_size). 자를 자리는 이분 탐색으로 빨리 찾는다 (_greedy_batches).
def token_batches(src_lengths, tgt_lengths, max_tokens, seed=0, epoch=0, shuffle=True, rank=0,
                  world_size=1, specials=1, by_length=True, max_sentences=None):
    """예제 번호 배치들의 목록. 에폭마다 모든 예제가 정확히 한 번, 랭크끼리는 서로소.

    ``src_lengths``/``tgt_lengths`` 는 특수 토큰을 뺀 길이; ``specials`` (=1) 를 더해 collate 가 만드는
    실제 폭(원문+[EOS], [BOS]+번역)으로 센다. ``by_length=False`` 면 길이 정렬 없이 (비교용).
    분산 학습: 모든 랭크가 같은 배치 목록을 만든 뒤 ``batches[rank::world_size]`` 를 가진다. 배치 수가
    world_size 의 배수가 되도록 예제가 가장 많은 배치를 반으로 나눈다 (예산은 그대로 지켜진다).

    >>> token_batches([3, 1, 3, 2], [3, 1, 2, 2], max_tokens=8, shuffle=False)   # 폭 2,3,4,4
    [[1, 3], [0, 2]]
    >>> token_batches([3, 1, 3, 2], [3, 1, 2, 2], 8, shuffle=False, rank=1, world_size=2)
    [[0, 2]]
    """
    src = np.asarray(src_lengths, dtype=np.int64)
    tgt = np.asarray(tgt_lengths, dtype=np.int64)
    if src.shape != tgt.shape or src.ndim != 1:
        raise ValueError(f"원문 길이 {src.shape} 와 번역 길이 {tgt.shape} 는 같은 길이의 1차원이어야 합니다.")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}: 0 <= rank < world_size 여야 합니다.")
    width = np.maximum(src, tgt) + specials                               # ① 폭
    if len(width) and width.max() > max_tokens:
        i = int(width.argmax())
        raise ValueError(f"예제 {i} 의 폭 {int(width[i])} 토큰이 max_tokens={max_tokens} 보다 큽니다: "
                         "max_tokens 를 늘리거나 긴 문장을 거르세요.")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(width)) if shuffle else np.arange(len(width))
    if by_length:
        order = order[np.argsort(width[order], kind="stable")]             # ① 폭으로 정렬 (섞었으면 동점 순서는 무작위)
    batches = _greedy_batches(order, width, max_tokens, max_sentences, sorted_widths=by_length)   # ② 자르기
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]     # ③ 배치 순서 섞기
    _make_divisible(batches, world_size)                                  # 곁가지: 분산 학습
    return batches[rank::world_size]


def _greedy_batches(order, width, max_tokens, max_sentences, sorted_widths):
    """순서대로 예산이 허락하는 만큼 담는다 (한 배치 = ``order`` 의 연속된 토막).

    폭이 정렬돼 있으면 앞에서 k 개를 담은 크기 k × (k 번째 폭) 가 k 에 따라 커지기만 하므로, 예산을 지키는 가장 큰
    k 를 이분 탐색으로 찾는다. 정렬이 없으면 (else) 하나씩 더해 보며 가장 긴 폭을 갱신한다: 같은 규칙, 느린 길.
    """
    w = width[order]
    cap = max_sentences or len(order)
    batches, start, n = [], 0, len(order)
    while start < n:
        if sorted_widths:                       # 폭 비내림차순: count × w[start+count-1] 가 단조 증가
            lo, hi = 1, min(cap, n - start, max_tokens // int(w[start]))
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if mid * int(w[start + mid - 1]) <= max_tokens:
                    lo = mid
                else:
                    hi = mid - 1
            end = start + lo
        else:
            end, longest = start, 0
            while end < n and end - start < cap and (end - start + 1) * max(longest, int(w[end])) <= max_tokens:
                longest = max(longest, int(w[end]))
                end += 1
        batches.append(order[start:end].tolist())
        start = end
    return batches


def _make_divisible(batches, world_size):
    """배치 수를 world_size 의 배수로: 예제가 가장 많은 배치를 둘로 나눈다 (나눌 수 없으면 그대로)."""
    while len(batches) % world_size:
        k = max(range(len(batches)), key=lambda i: len(batches[i]))
        if len(batches[k]) < 2:
            return
        half = len(batches[k]) // 2
        batches[k:k + 1] = [batches[k][:half], batches[k][half:]]


def collate(pairs, pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID):
    """(원문 id, 번역 id) 쌍들 → (src, tgt_in, tgt_out) LongTensor, 모두 (B, T) 이고 오른쪽을 패딩.

    src = x + [EOS]; 디코더 입력 tgt_in = [BOS] + y; 정답 tgt_out = y + [EOS] (한 칸 밀린 교사 강요).

    >>> src, tgt_in, tgt_out = collate([([5, 6], [7]), ([8], [9, 10])])
    >>> src.tolist(), tgt_in.tolist(), tgt_out.tolist()
    ([[5, 6, 3], [8, 3, 0]], [[2, 7, 0], [2, 9, 10]], [[7, 3, 0], [9, 10, 3]])
    """
    if len(pairs) == 0:
        raise ValueError("collate 에 빈 배치가 들어왔습니다.")
    src_len = max(len(s) for s, _ in pairs) + 1
    tgt_len = max(len(t) for _, t in pairs) + 1
    src = np.full((len(pairs), src_len), pad_id, dtype=np.int64)         # (B, S)
    tgt_in = np.full((len(pairs), tgt_len), pad_id, dtype=np.int64)      # (B, T)
    tgt_out = np.full((len(pairs), tgt_len), pad_id, dtype=np.int64)     # (B, T)
    for row, (s, t) in enumerate(pairs):                                 # numpy 로 채우고 한 번에 텐서로
        src[row, :len(s) + 1] = [*s, eos_id]
        tgt_in[row, :len(t) + 1] = [bos_id, *t]
        tgt_out[row, :len(t) + 1] = [*t, eos_id]
    return torch.from_numpy(src), torch.from_numpy(tgt_in), torch.from_numpy(tgt_out)


# ══════ 4. BERT 식 MLM 마스킹 ══════
# 논문과 다른 점: 이 논문(Vaswani et al.)에는 MLM 이 없다. BERT (Devlin et al. 2019, §3.1):
# "The training data generator chooses 15% of the token positions at random for prediction. If the
# i-th token is chosen, we replace the i-th token with (1) the [MASK] token 80% of the time (2) a
# random token 10% of the time (3) the unchanged i-th token 10% of the time."
# 여기서는 비율을 기대값이 아니라 정확한 개수로 고른다 (반올림): 특수 토큰이 아닌 위치의 15% 를
# 무작위로 뽑고, 그중 80% 를 [MASK], 10% 를 (원래와 다른) 무작위 보통 토큰, 나머지는 그대로 둔다.
def mlm_mask(tokens, vocab_size, seed=0, mask_prob=0.15, mask_ratio=0.8, random_ratio=0.1,
             mask_id=MASK_ID, special_ids=None, ignore_index=-100):
    """(inputs, labels): 고른 자리의 labels 는 원래 토큰, 나머지는 ``ignore_index`` (-100, 손실에서 무시).

    특수 토큰(기본 0..6, [PAD] 포함)은 절대 고르지 않는다.

    >>> tokens = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 3, 0]])
    >>> inputs, labels = mlm_mask(tokens, vocab_size=30, seed=0, mask_prob=0.2)
    >>> int((labels != -100).sum()), bool((labels[0, [0, 15, 16]] == -100).all())   # 14개의 20% ≈ 3
    (3, True)
    >>> bool((inputs[labels == -100] == tokens[labels == -100]).all())    # 고르지 않은 자리는 그대로
    True
    """
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    special = torch.tensor(sorted(range(len(SPECIAL_TOKENS)) if special_ids is None else special_ids), dtype=torch.long)
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"토큰 id 는 0..{vocab_size - 1} 이어야 합니다.")
    normal = torch.tensor([i for i in range(vocab_size) if i not in set(special.tolist())], dtype=torch.long)
    if len(normal) < 2:
        raise ValueError("무작위 대체를 하려면 특수 토큰이 아닌 어휘가 2개 이상 있어야 합니다.")
    gen = torch.Generator().manual_seed(seed)
    flat = tokens.reshape(-1)                                              # (N,)
    candidates = (~torch.isin(flat, special)).nonzero().squeeze(1)        # (M,)
    k = int(round(mask_prob * len(candidates)))
    chosen = candidates[torch.randperm(len(candidates), generator=gen)[:k]]  # (k,) 무작위 순서
    n_mask, n_rand = int(round(mask_ratio * k)), int(round(random_ratio * k))
    to_mask, to_rand = chosen[:n_mask], chosen[n_mask:n_mask + n_rand]
    inputs = flat.clone()
    inputs[to_mask] = mask_id
    # 원래 토큰과 다른 무작위 보통 토큰: normal 에서 원래 것을 뺀 (len-1)개 중 하나를 고른다
    draw = torch.randint(0, len(normal) - 1, (len(to_rand),), generator=gen)
    own = torch.searchsorted(normal, flat[to_rand])
    inputs[to_rand] = normal[draw + (draw >= own).long()]
    labels = torch.full_like(flat, ignore_index)
    labels[chosen] = flat[chosen]
    return inputs.view_as(tokens), labels.view_as(tokens)


# ══════ 부록: 도구 — 처음 읽을 때는 건너뛰어도 됩니다 (A. 빠른 BPE 학습, B. BPE 파일 검사, C. 코퍼스 읽기, D. 내려받기, E. 이진 캐시, F. 데모 문법, G. 명령줄) ══════


# ══════ A. 같은 병합을 빠르게: 증분 BPE 학습 (전체 WMT14 에 맞춰) ══════
# 결과는 본문의 learn_merges_naive 와 똑같고 (테스트가 확인) 빠르기만 하다: 처음 읽을 때는 건너뛴다.
# 쌍 빈도와 "쌍 → 그 쌍을 가진 단어" 색인을 한 번 만들고, 병합마다 그 쌍이 든 단어만 고치며 주변 쌍의 빈도만
# 증감한다. 가장 잦은 쌍은 힙 (-빈도, 쌍) 에서 꺼낸다: 병합은 기존 쌍의 빈도를 줄이기만 하고 늘어나는 쌍은 모두 새
# 기호를 포함하므로 힙의 값은 실제 빈도의 상한이다. 꺼낸 값이 실제와 같으면 그것이 최대, 다르면 실제 값으로 다시 넣는다.
def _learn_merges(words, freqs, names, max_merges, min_frequency, log=None, every=1000):
    """증분 BPE 학습: ``learn_merges_naive`` 와 같은 병합 목록 (테스트가 확인). ``words`` 를 제자리에서 고친다.

    ``stats[쌍]``: 현재 빈도, ``where[쌍]``: 그 쌍을 (한때) 가졌던 단어 번호 (낡은 항목은 쓸 때 거른다),
    ``names``: id → 토큰 문자열 (결과가 특수 토큰 이름 "[MASK]" 등이 되는 병합은 건너뛴다).
    """
    stats, where = collections.defaultdict(int), collections.defaultdict(list)
    for wid, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            stats[pair] += freq
            where[pair].append(wid)
    heap = [(-count, pair) for pair, count in stats.items()]
    heapq.heapify(heap)
    merges, t0 = [], time.time()
    while len(merges) < max_merges and heap:
        neg, pair = heapq.heappop(heap)
        count = stats.get(pair, 0)
        if count != -neg:                       # 낡은 항목: 실제 빈도로 다시 넣는다
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < min_frequency:
            break
        if names[pair[0]] + names[pair[1]] in SPECIAL_TOKENS:
            del stats[pair]
            continue
        names.append(names[pair[0]] + names[pair[1]])
        merges.append(pair)
        for p in _apply_merge(pair, len(names) - 1, words, freqs, stats, where):   # 새 기호를 가진 쌍만 생긴다
            heapq.heappush(heap, (-stats[p], p))
        del stats[pair]
        if log is not None and len(merges) % every == 0:
            log(f"  병합 {len(merges):,}/{max_merges:,}: 빈도 {count:,} ({time.time() - t0:.1f}초)")
    return merges


def _apply_merge(pair, new, words, freqs, stats, where):
    """``pair`` 가 든 단어만 ``new`` 로 병합하고 병합 자리 양옆 쌍의 빈도만 고친다. 새로 생긴 쌍들을 돌려준다.

    "x a b y" → "x AB y": (x,a)·(b,y) 를 빼고 (x,AB)·(AB,y) 를 더한다. 연속 병합 "a b a b" → "AB AB" 에서는
    (b,a) 를 한 번만 빼고 (AB,AB) 를 한 번만 더하도록 오른쪽 처리를 다음 병합 자리에 미룬다.
    """
    a, b = pair
    touched = set()
    for wid in dict.fromkeys(where.pop(pair)):          # 순서를 지키며 중복 제거
        word, freq = words[wid], freqs[wid]
        n, i, out, changed = len(word), 0, [], False
        while True:
            try:
                j = word.index(a, i)
            except ValueError:
                break
            if j + 1 < n and word[j + 1] == b:
                out.extend(word[i:j])
                neighbours = []
                if j > 0:                                   # 왼쪽 이웃
                    stats[(word[j - 1], a)] -= freq
                    neighbours.append((out[-1], new))
                if j + 2 < n and not (word[j + 2] == a and j + 3 < n and word[j + 3] == b):   # 오른쪽 (미룸)
                    stats[(b, word[j + 2])] -= freq
                    neighbours.append((new, word[j + 2]))
                for p in neighbours:
                    stats[p] += freq
                    where[p].append(wid)
                    touched.add(p)
                out.append(new)
                i, changed = j + 2, True
            else:
                out.extend(word[i:j + 1])
                i = j + 1
        if changed:
            words[wid] = out + word[i:]
    return touched


# ══════ B. BPE 파일 검사: BPE.load 가 부르는 줄 단위 파서 ══════
def _parse_bpe(lines, path):
    """BPE 파일의 줄들을 검사하며 읽는다. 오류는 '파일 N번째 줄: 무엇이 잘못' 한 문장.

    줄을 앞에서부터 한 번만 읽는다. ``pos`` 는 지금까지 읽은 줄 수 (= 다음에 읽을 줄의 0부터 번호) 이고, 안쪽 함수
    셋이 이것을 함께 쓴다: ``take`` 는 다음 줄을 내주고 ``pos`` 를 하나 올린다 (``nonlocal pos`` 는 "바깥 함수의
    ``pos`` 를 고친다" 는 뜻; 없으면 ``pos += 1`` 이 take 안에 새 지역 변수를 만든다). ``count`` 는 'alphabet 12'
    같은 줄에서 개수를 읽는다. ``fail`` 은 줄 번호를 따로 받지 않으면 방금 읽은 줄 ``pos`` (1부터 센 번호) 를 알린다.
    """
    pos = 0

    def fail(msg, line_no=None):
        raise ValueError(f"BPE 파일 '{path}' {line_no or pos}번째 줄: {msg} "
                         "(파일이 잘렸거나 손상되었습니다; 다시 저장하거나 새로 학습하세요).")

    def take(parts=1):
        nonlocal pos
        if pos >= len(lines):
            fail("파일이 예상보다 일찍 끝났습니다", pos + 1)      # 없는 다음 줄
        pos += 1
        return lines[pos - 1].split(" ", parts - 1) if parts > 1 else lines[pos - 1]

    def count(keyword):
        parts = take().split(" ")
        if len(parts) != 2 or parts[0] != keyword or not parts[1].isdigit():
            fail(f"'{keyword} <개수>' 줄이 있어야 합니다")
        return int(parts[1])

    if take() != BPE_FORMAT:
        fail(f"첫 줄이 버전 줄 '{BPE_FORMAT}' 이 아닙니다")
    if count("specials") != len(SPECIAL_TOKENS) or [take() for _ in SPECIAL_TOKENS] != list(SPECIAL_TOKENS):
        fail(f"특수 토큰 {len(SPECIAL_TOKENS)}개 {SPECIAL_TOKENS} 가 차례로 있어야 합니다")
    alphabet = []
    for _ in range(count("alphabet")):
        kind, code, ch = (take(3) + ["", ""])[:3]
        if kind not in ("char", "end") or not re.fullmatch("[0-9A-Fa-f]{1,6}", code) \
                or len(ch) != 1 or ord(ch) != int(code, 16):
            fail("'char|end 코드포인트 글자' 형식이 아닙니다")
        alphabet.append((ch, kind == "end"))
    n_merges, merge_start = count("merges"), pos
    rows = [take(3) for _ in range(n_merges)]
    for k, row in enumerate(rows):
        if len(row) != 3 or not row[0].isdigit() or not row[1].isdigit():
            fail("'왼쪽id 오른쪽id 토큰' 형식이 아닙니다", merge_start + k + 1)
    if pos != len(lines):
        fail("병합 목록 뒤에 남는 줄이 있습니다", pos + 1)     # 읽지 않은 첫 줄
    try:
        bpe = BPE(alphabet, [(int(a), int(b)) for a, b, _ in rows])
    except ValueError as exc:
        fail(str(exc))
    for k, (_, _, text) in enumerate(rows):
        if bpe.tokens[bpe._first_merge + k] != text:
            fail(f"병합 결과 '{text}' 가 계산한 토큰 '{bpe.tokens[bpe._first_merge + k]}' 와 다릅니다", merge_start + k + 1)
    return bpe


# ══════ C. 평행 코퍼스 읽기: 아무 언어 쌍의 단순 배치, 그리고 WMT14 공식 배치 ══════
# "We trained on the standard WMT 2014 English-German dataset consisting of about 4.5 million
# sentence pairs." (§5.1)
# 코퍼스 = 디렉터리 하나. 두 가지 배치를 읽는다 (단순 배치가 있으면 그것이 먼저):
# - 단순 배치 (Multi30k, 직접 만든 코퍼스 무엇이든): data_dir/{train,valid,test}.{원문,번역문 언어} — UTF-8, 한 줄에
#   한 문장, 두 언어 파일의 줄 수가 같다. 언어 쌍은 --src/--tgt (기본 en→de).
# - WMT14 공식 배치(아카이브를 푼 그대로, en·de 만): training/europarl-v7.de-en.*, commoncrawl.de-en.* (최상위),
#   training/news-commentary-v9.de-en.*, dev/newstest2013.*, test-full/newstest2014-deen-*.sgm
WMT14_TRAIN = ("training/europarl-v7.de-en", "commoncrawl.de-en", "training/news-commentary-v9.de-en")
WMT14_VALID = "dev/newstest2013"
WMT14_TEST_SGM = ("test-full/newstest2014-deen-src.en.sgm", "test-full/newstest2014-deen-ref.de.sgm")
_SPLITS = ("train", "valid", "test")


def corpus_files(data_dir, split, src="en", tgt="de"):
    """분할의 (종류, 원문 파일, 번역문 파일) 목록. 종류는 "text"(한 줄에 한 문장) 또는 "sgm"."""
    if split not in _SPLITS:
        raise ValueError(f"split={split!r} 는 알 수 없습니다: 'train', 'valid', 'test' 중 하나를 쓰세요.")
    simple = (os.path.join(data_dir, f"{split}.{src}"), os.path.join(data_dir, f"{split}.{tgt}"))
    marks = ("training", "dev", "test-full", "commoncrawl.de-en.en", os.path.basename(WMT14_TEST_SGM[0]))
    wmt14 = {src, tgt} == {"en", "de"} and any(os.path.exists(os.path.join(data_dir, m)) for m in marks)
    if all(os.path.isfile(p) for p in simple) or not wmt14:
        for path in simple:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"코퍼스 파일 '{path}' 가 없습니다: 코퍼스 디렉터리에는 {{train,valid,test}}.{src} 와 "
                                        f"{{train,valid,test}}.{tgt} (한 줄에 한 문장) 가 있어야 합니다 (--src/--tgt 로 언어 확인).")
        return [("text", *simple)]
    join = os.path.join                                   # WMT14 공식 배치: (종류, 영어, 독일어)
    if split != "test":
        stems = WMT14_TRAIN if split == "train" else (WMT14_VALID,)
        files = [("text", join(data_dir, f"{stem}.en"), join(data_dir, f"{stem}.de")) for stem in stems]
    else:                                                 # SGM 은 test-full/ 아래나 최상위에
        files = [("sgm", *(join(data_dir, p) for p in WMT14_TEST_SGM))]
        if not all(os.path.isfile(p) for p in files[0][1:]):
            files = [("sgm", *(join(data_dir, os.path.basename(p)) for p in WMT14_TEST_SGM))]
    for path in (p for _, en, de in files for p in (en, de)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"WMT14 '{split}' 파일 '{path}' 가 없습니다: `python data.py download wmt14 "
                                    f"--dir {data_dir}` 로 내려받거나 {split}.en / {split}.de 를 두세요.")
    return [(kind, b, a) for kind, a, b in files] if src == "de" else files


def check_corpus(data_dir, src="en", tgt="de"):
    """코퍼스를 읽기 전에 확인한다: 세 분할의 파일이 다 있고 평행 파일의 줄 수가 같은가 (prepare 가 BPE 를
    몇 분 배운 뒤에야 터지지 않게). 어긋나면 파일 이름을 담은 한 줄 오류. 돌려주는 값: 분할별 줄 수 (SGM 은 None).
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"코퍼스 디렉터리 '{data_dir}' 가 없습니다.")
    counts = {}
    for split in _SPLITS:
        files = corpus_files(data_dir, split, src, tgt)
        counts[split] = None if files[0][0] == "sgm" else sum(_same_line_count(a, b) for _, a, b in files)
    return counts


def _same_line_count(a, b):
    """두 평행 파일의 줄 수 ('\\n' 으로만 나눈다; 마지막 줄에 '\\n' 이 없어도 한 줄; 1 MiB 씩 읽어 빠르다).
    다르면 두 파일과 두 개수를 알린다."""
    counts = []
    for path in (a, b):
        count, last = 0, b"\n"
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                count, last = count + block.count(b"\n"), block[-1:]
        counts.append(count + (last != b"\n"))
    if counts[0] != counts[1]:
        raise ValueError(f"평행 코퍼스의 줄 수가 다릅니다: '{a}' {counts[0]:,}줄, '{b}' {counts[1]:,}줄 — "
                         "두 파일을 다시 내려받거나 짝을 맞추세요.")
    return counts[0]


def _read_lines(path):
    """파일을 '\\n' 으로만 나누어 (줄 번호, 문자열) 로 내보낸다. 텍스트 모드의 '보편 줄바꿈'은 줄 안의 맨
    '\\r' 도 줄 끝으로 보아 영어·독일어 줄이 어긋나므로 바이트로 읽는다.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.rstrip(b"\n").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"'{path}' {number}번째 줄이 올바른 UTF-8 이 아닙니다 (줄 안 바이트 {exc.start}): "
                                 "파일을 UTF-8 로 고치거나 다시 내려받으세요.") from None


_SEG_RE = re.compile(r"<seg[^>]*>(.*)</seg>")
_DOCID_RE = re.compile(r"<doc[^>]*\sdocid=\"([^\"]*)\"")
_SEGID_RE = re.compile(r"<seg[^>]*\sid=\"?([^\" >]*)")


def read_sgm(path):
    """SGM 을 한 줄씩 읽어 (문서 id, 구절 id, 본문) 을 문서 순서대로 내보낸다.

    XML 파서를 쓰지 않는다: newstest 에는 이스케이프되지 않은 '&' 가 흔하다. 본문은 sacreBLEU 처럼
    엔티티를 풀지 않고 그대로 둔다.

    >>> import tempfile, os
    >>> tmp = tempfile.TemporaryDirectory(); p = os.path.join(tmp.name, "t.sgm")
    >>> _ = open(p, "w").write('<doc docid="d1">\\n<seg id="1">Tom & Jerry</seg>\\n</doc>\\n')
    >>> list(read_sgm(p))
    [('d1', '1', 'Tom & Jerry')]
    >>> tmp.cleanup()
    """
    doc = None
    for number, line in _read_lines(path):
        found = _DOCID_RE.search(line)
        if found:
            doc = found.group(1)
        elif "<seg" in line:
            seg, seg_id = _SEG_RE.search(line), _SEGID_RE.search(line)
            if seg is None:
                raise ValueError(f"'{path}' {number}번째 줄: <seg> 가 같은 줄의 </seg> 로 닫히지 않았습니다.")
            yield doc, seg_id.group(1) if seg_id else str(number), seg.group(1)


def _pairs_of(kind, src_path, tgt_path):
    """두 평행 파일을 짝지어 (원문, 번역문) 을 내보낸다. 텍스트: 줄 수가 다르면 읽기 전에 알린다.
    SGM: 구절 수가 다르거나 문서·구절 id 가 어긋나면 처음 어긋난 곳을 알린다."""
    if kind == "text":
        _same_line_count(src_path, tgt_path)
        yield from ((a, b) for (_, a), (_, b) in zip(_read_lines(src_path), _read_lines(tgt_path)))
        return
    src, ref = list(read_sgm(src_path)), list(read_sgm(tgt_path))
    if len(src) != len(ref):
        raise ValueError(f"SGM 구절 수가 다릅니다: '{src_path}' {len(src):,}개, '{tgt_path}' {len(ref):,}개.")
    for k, ((d1, s1, a), (d2, s2, b)) in enumerate(zip(src, ref)):
        if (d1, s1) != (d2, s2):
            raise ValueError(f"SGM {k + 1}번째 구절의 id 가 어긋납니다: '{src_path}' ({d1}, {s1}), "
                             f"'{tgt_path}' ({d2}, {s2}).")
        yield a, b


def iter_corpus(data_dir, split, src="en", tgt="de", max_words=250, max_ratio=9.0, normalize_text=True):
    """분할을 (원문, 번역문) 쌍으로 하나씩 내보낸다 (스트리밍: 메모리에 쌓지 않는다).

    텍스트 파일은 줄 수가 다르면 읽기 전에, SGM 은 문서·구절 id 가 처음 어긋난 곳에서 알린다. 한쪽이라도 (정규화
    뒤) 빈 쌍은 건너뛴다. 학습 분할에만 길이 필터: 단어 수가 ``max_words`` 를 넘거나 긴 쪽/짧은 쪽 단어 수 비가
    ``max_ratio`` (Moses clean-corpus 와 같은 9) 를 넘는 쌍(정렬 오류일 가능성)을 뺀다; ``None`` 은 끄기.
    검증·시험 분할은 공식 점수와 같아야 하므로 거르지 않는다. 단어 수는 BPE 토큰 수가 아니다 (드문 글자는 니블
    토큰 2개 이상): 토큰 수 필터는 prepare 가 인코딩한 뒤 쓴다.
    """
    for kind, src_path, tgt_path in corpus_files(data_dir, split, src, tgt):
        for a, b in _pairs_of(kind, src_path, tgt_path):
            a, b = (normalize(a), normalize(b)) if normalize_text else (a, b)
            if not a.strip() or not b.strip():
                continue
            n_a, n_b = a.count(" ") + 1, b.count(" ") + 1
            if split == "train" and ((max_words is not None and max(n_a, n_b) > max_words) or
                                     (max_ratio is not None and max(n_a, n_b) > max_ratio * min(n_a, n_b))):
                continue
            yield a, b


def load_pairs(data_dir, split, src="en", tgt="de", max_words=250, max_ratio=9.0, normalize_text=True):
    """분할을 ``[(원문, 번역문), ...]`` 목록으로 (``iter_corpus`` 를 목록으로; 그림·실험용, prepare 는 흘려 읽는다).

    >>> import tempfile, os
    >>> tmp = tempfile.TemporaryDirectory(); d = tmp.name
    >>> _ = open(os.path.join(d, "valid.en"), "wb").write(b"a\\rb\\n\\nHello .\\n")
    >>> _ = open(os.path.join(d, "valid.de"), "wb").write(b"x\\nleer\\nHallo .\\n")
    >>> load_pairs(d, "valid")          # '\\r' 은 줄을 나누지 않고, 빈 영어 쪽 쌍은 빠진다
    [('a b', 'x'), ('Hello .', 'Hallo .')]
    >>> load_pairs(d, "valid", src="de", tgt="en")
    [('x', 'a b'), ('Hallo .', 'Hello .')]
    >>> tmp.cleanup()
    """
    return list(iter_corpus(data_dir, split, src, tgt, max_words, max_ratio, normalize_text))


def load_wmt14(data_dir, split, max_words=250, max_ratio=9.0, normalize_text=True):
    """WMT14 분할을 ``[(영어, 독일어), ...]`` 로. "valid" = newstest2013, "test" = newstest2014."""
    return load_pairs(data_dir, split, "en", "de", max_words, max_ratio, normalize_text)


# ══════ D. 내려받기: WMT14 (statmt.org 공식 아카이브), Multi30k (공식 .gz 여섯 개) ══════
# 하나뿐인 ``download`` 가 둘 다 받는다: ``이름.part`` 에 받고 (끊기면 HTTP Range 로 이어받기, 재시도), 크기를 서버가
# 알린 값과, SHA-256 이 주어지면 그것과 맞춘 뒤에야 최종 이름으로 바꾼다. 그다음 ``_extract`` 가 gzip 을 끝까지
# 읽어 무결성(CRC)을 확인하며 필요한 파일만 임시 이름으로 풀고, 모두 성공해야 최종 이름으로 바꾼다: 반쯤 쓰인
# 파일은 최종 이름으로 남지 않고, 손상본은 풀지 않고 지운다. 체크섬: statmt.org 는 SHA-256 을 공개하지 않아
# WMT14 는 지어내지 않고 크기 + gzip CRC 로 확인한다. Multi30k 는 고정한 커밋의 파일이라 값이 정해져 있다.
STATMT_URL = "https://www.statmt.org"


@dataclasses.dataclass(frozen=True)
class Archive:
    """내려받을 아카이브 하나: URL 경로(기준 URL 뒤), 풀 파일들 ((아카이브 안 이름, data_dir 안 경로) 쌍들)."""
    name: str
    url_path: str
    members: tuple
    sha256: str = None


def _pairs(stem, dest):
    """영어·독일어 두 파일의 (아카이브 안 이름, 목적지) 쌍."""
    return tuple((f"{stem}.{x}", f"{dest}{stem}.{x}") for x in ("en", "de"))


WMT14_ARCHIVES = (
    Archive("europarl-v7", "wmt13/training-parallel-europarl-v7.tgz", _pairs("europarl-v7.de-en", "training/")),
    Archive("commoncrawl", "wmt13/training-parallel-commoncrawl.tgz", _pairs("commoncrawl.de-en", "")),
    Archive("news-commentary-v9", "wmt14/training-parallel-nc-v9.tgz", _pairs("news-commentary-v9.de-en", "training/")),
    Archive("dev", "wmt14/dev.tgz", _pairs("newstest2013", "dev/")),
    Archive("test-full", "wmt14/test-full.tgz", tuple((os.path.basename(p), p) for p in WMT14_TEST_SGM)),
)
# Multi30k task 1 (이미지 설명 영어-독일어; train 29,000 / val 1,014 / test_2016_flickr 1,000 쌍).
# 공개 저장소 multi30k/dataset 의 한 커밋에 고정한 주소라 내용과 SHA-256 이 바뀌지 않는다.
MULTI30K_URL = ("https://raw.githubusercontent.com/multi30k/dataset/"
                "a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw")
MULTI30K_SHA256 = (                                      # (.gz 이름, SHA-256): 이 순서로 받는다
    ("train.en.gz", "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f"),
    ("train.de.gz", "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6"),
    ("val.en.gz", "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28"),
    ("val.de.gz", "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a"),
    ("test_2016_flickr.en.gz", "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"),
    ("test_2016_flickr.de.gz", "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"),
)
_MULTI30K_SPLITS = {"train": "train", "val": "valid", "test_2016_flickr": "test"}


def download(url, path, sha256=None, retries=5, timeout=60, backoff=2.0, progress=True):
    """``url`` → ``path``: ``path.part`` 에 받고 (있으면 ``Range: bytes=N-`` 로 이어받기; 서버가 206 대신 200 이면
    처음부터), 끊기면 ``retries`` 번 다시 이어받는다. 크기와 (주어지면) SHA-256 이 맞아야 ``path`` 로 바꾼다.
    """
    part = path + ".part"
    for attempt in range(retries + 1):
        have = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            have, total = _fetch(url, part, have, timeout, progress)
            if total is None or have == total:
                break
            error = f"{have:,} / {total:,} 바이트에서 끊김"
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:                 # 이미 끝까지 받았을 수 있다
                if _content_range(exc.headers.get("Content-Range"))[1] == have:
                    break
                os.remove(part)
            elif 400 <= exc.code < 500:
                raise ValueError(f"'{url}' 를 받을 수 없습니다 (HTTP {exc.code}): 주소(--base-url)를 확인하세요.") from None
            error = f"HTTP {exc.code}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt == retries:
            raise ValueError(f"'{url}' 내려받기가 {retries + 1}번 모두 실패했습니다 (마지막 오류: {error}). "
                             f"받은 부분 '{part}' 은 남겨 두었으니 같은 명령을 다시 실행하면 이어받습니다.")
        print(f"  {os.path.basename(path)}: {error} — 이어받기 다시 시도 ({attempt + 1}/{retries})", file=sys.stderr)
        time.sleep(backoff * (attempt + 1))
    if sha256:
        hasher = hashlib.sha256()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                hasher.update(block)
        digest = hasher.hexdigest()
        if digest != sha256.lower():
            os.remove(part)
            raise ValueError(f"'{os.path.basename(path)}' 의 SHA-256 이 기대값 {sha256.lower()} 이 아니라 "
                             f"{digest} 입니다: 손상되었거나 다른 파일이라 지웠고 풀지 않았습니다.")
    os.replace(part, path)
    return path


def _fetch(url, part, have, timeout, progress):
    """HTTP 요청 한 번으로 받을 수 있는 만큼 ``part`` 에 덧붙인다. 반환: (받은 바이트 수, 전체 크기 또는 None).
    진행 표시(stderr): 터미널이면 '\\r' 로 한 줄을 0.5초마다 덮어쓰고, 아니면(로그 파일) 10초마다 한 줄."""
    headers = {"User-Agent": "transformer-ko/1.0", **({"Range": f"bytes={have}-"} if have else {})}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
        if have and resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                raise OSError(f"서버가 {have} 가 아니라 {start} 바이트부터 보냈습니다")
        else:                                            # Range 를 무시한 서버: 처음부터
            have, length = 0, resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        tty, t0 = sys.stderr.isatty(), time.time()

        def show(end=""):
            size = f"/{total / 1e6:,.1f} MB ({100 * have / total:5.1f}%)" if total else " MB"
            rate = have / 1e6 / max(time.time() - t0, 1e-9)
            line = f"  {os.path.basename(part)[:-len('.part')]}: {have / 1e6:,.1f}{size} {rate:.1f} MB/s"
            print(f"\r{line}" if tty else line, end=end if tty else "\n", file=sys.stderr, flush=True)

        shown = t0
        try:
            with open(part, "ab" if have else "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    have += len(chunk)
                    if progress and time.time() - shown >= (0.5 if tty else 10.0):
                        shown = time.time()
                        show()
        finally:
            if progress:
                show(end="\n")
    return have, total


def _content_range(value):
    """'bytes 100-199/1000' → (100, 1000); 'bytes */1000' → (None, 1000)."""
    found = re.match(r"bytes (\d+|\*)-?\d*/(\d+|\*)", value or "")
    start, total = found.groups() if found else ("*", "*")
    return (None if start == "*" else int(start)), (None if total == "*" else int(total))


def _extract(path, members, dest_dir):
    """gzip 을 끝까지 읽어 무결성(CRC·길이)을 확인하며 ``members`` (이름 → 목적지)만 임시 이름으로 풀고, 모두
    성공해야 최종 이름으로 바꾼다. .tgz 는 안의 파일을 이름(basename)으로 찾아 우리가 정한 경로에만 쓰고 (경로
    탈출 없음), .gz 는 파일 하나다. 손상이나 빠진 파일은 임시 파일을 지우고 ValueError.
    """
    temps = {}

    def save(name, src):
        target = os.path.join(dest_dir, members[name])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temps[name] = f"{target}.tmp-{os.getpid()}"
        with open(temps[name], "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    try:
        with gzip.open(path, "rb") as raw:
            if not path.endswith(".tgz"):
                save(*members, raw)
            else:
                with tarfile.open(fileobj=raw, mode="r|") as tar:
                    for m in tar:
                        if m.isfile() and os.path.basename(m.name) in set(members) - set(temps):
                            save(os.path.basename(m.name), tar.extractfile(m))
            while raw.read(1 << 20):                     # gzip 끝까지: 여기서 CRC·길이를 확인한다
                pass
        if set(members) - set(temps):
            raise ValueError(f"아카이브 '{path}' 에 필요한 파일 {sorted(set(members) - set(temps))} 이 없습니다.")
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:   # BadGzipFile 은 OSError
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(exc, ValueError):
            raise
        raise ValueError(f"아카이브 '{path}' 가 손상되었습니다 ({type(exc).__name__}: {exc}); 풀지 않았습니다.") from None
    for name, tmp in temps.items():
        os.replace(tmp, os.path.join(dest_dir, members[name]))


def download_archives(data_dir, base_url, archives, retries=5, timeout=60, backoff=2.0, progress=True, log=print):
    """``archives`` 를 차례로 받고(``download``), 풀고(``_extract``), 이미 풀린 것은 건너뛴다.

    아카이브는 ``data_dir/downloads/`` 에 남겨 둔다 (다시 풀 때 또 받지 않도록). 풀다가 손상이 드러나면
    지운다: 다시 실행하면 새로 받는다. ``base_url`` 을 바꾸면 거울 서버나 시험용 로컬 서버에서 받는다.
    """
    os.makedirs(os.path.join(data_dir, "downloads"), exist_ok=True)
    for archive in archives:
        members = dict(archive.members)
        if all(os.path.isfile(os.path.join(data_dir, dest)) for dest in members.values()):
            log(f"[{archive.name}] 이미 있습니다: 건너뜀")
            continue
        path = os.path.join(data_dir, "downloads", os.path.basename(archive.url_path))
        if not os.path.isfile(path):
            url = f"{base_url.rstrip('/')}/{archive.url_path}"
            log(f"[{archive.name}] 내려받기: {url}")
            download(url, path, archive.sha256, retries, timeout, backoff, progress)
            log(f"[{archive.name}] {os.path.getsize(path):,} 바이트 받음, 크기{'·SHA-256' * bool(archive.sha256)} 확인")
        log(f"[{archive.name}] 무결성 확인하며 풀기")
        try:
            _extract(path, members, data_dir)
        except ValueError:
            os.remove(path)
            raise
        log(f"[{archive.name}] 완료: {', '.join(members.values())}")
    return data_dir


def download_wmt14(data_dir="data/wmt14", base_url=STATMT_URL, archives=WMT14_ARCHIVES, retries=5,
                   timeout=60, backoff=2.0, progress=True, log=print):
    """WMT14 영어-독일어 공식 아카이브 다섯 개를 받아 필요한 파일만 공식 배치로 푼다."""
    return download_archives(data_dir, base_url, archives, retries, timeout, backoff, progress, log)


def download_multi30k(data_dir="data/multi30k", base_url=MULTI30K_URL, checksums=MULTI30K_SHA256, retries=5,
                      timeout=60, backoff=2.0, progress=True, log=print):
    """Multi30k task 1 의 .gz 여섯 개를 받아 SHA-256 을 맞추고 단순 배치(train/valid/test.{en,de})로 푼다
    ("val.de.gz" → valid.de). ``checksums`` 는 (.gz 이름, SHA-256) 표 (기본은 진짜 값; 시험은 자기 표를 준다)."""
    archives = []
    for name, sha256 in dict(checksums).items():
        stem, lang, _ = name.rsplit(".", 2)              # "test_2016_flickr.de.gz" → test_2016_flickr, de
        if stem not in _MULTI30K_SPLITS:
            raise ValueError(f"Multi30k 파일 이름 '{name}' 을 모릅니다: {sorted(_MULTI30K_SPLITS)} 중 하나로 "
                             "시작해야 합니다.")
        archives.append(Archive(name, name, ((name, f"{_MULTI30K_SPLITS[stem]}.{lang}"),), sha256))
    return download_archives(data_dir, base_url, archives, retries, timeout, backoff, progress, log)


# ══════ E. 이진 캐시: prepare 가 만들고 train.py 가 메모리 매핑으로 읽는다 ══════
# ``data_dir/prepared/bpe<어휘>-<설정 해시>/`` 에 bpe.txt 와 분할마다 네 배열을 쓴다:
# ``<분할>.src.ids.npy`` (모든 문장의 토큰 id 를 이어 붙인 1차원 배열), ``<분할>.src.offsets.npy``
# (문장 i 는 ids[offsets[i]:offsets[i+1]]), tgt 도 같다. 마지막에 meta.json 을 쓰고 임시 디렉터리를
# 통째로 최종 이름으로 바꾼다: 중간에 끊긴 prepare 는 쓰일 수 있는 캐시를 남기지 않는다.
# 같은 설정(입력 파일 크기·시각 포함) → 같은 해시 → 재사용, 설정이 바뀌면 새 캐시. meta.json 에는 그 파일
# 도장(``corpus_stamp``)도 적어, 코퍼스 파일을 고친 뒤에는 ``find_prepared`` 가 옛 캐시를 집지 않는다.
CACHE_FORMAT = 2                                         # 2: meta.json 에 "files" (파일 도장)


def corpus_stamp(data_dir, src="en", tgt="de"):
    """코퍼스 파일들의 [data_dir 기준 경로, 크기, 수정 시각(ns)] 목록: 파일을 고치면 달라지는 도장."""
    files = [p for split in _SPLITS for _, a, b in corpus_files(data_dir, split, src, tgt) for p in (a, b)]
    return [[os.path.relpath(p, data_dir), os.path.getsize(p), os.stat(p).st_mtime_ns] for p in files]


def prepare_corpus(data_dir, vocab_size=8000, src="en", tgt="de", min_frequency=2, min_char_count=100,
                   max_words=250, max_ratio=9.0, max_bpe_tokens=250, max_train_pairs=None, log=print):
    """코퍼스를 준비하고 캐시 경로를 돌려준다: 학습 문장(두 언어)으로 공동 BPE 를 배우고 세 분할을 인코딩.

    먼저 ``check_corpus`` 로 파일과 줄 수를 확인한다. src→tgt 는 방향이다 (de→en 캐시는 따로). 학습 텍스트는 두 번
    흘려 읽는다 (단어 세기, 인코딩). ``max_train_pairs``: 앞부분만 (실험용). ``max_bpe_tokens``: 한쪽이라도 BPE
    토큰이 이보다 많은 *학습* 쌍을 뺀다 (meta.json 의 ``dropped_long_pairs``): Common Crawl 의 4,000 글자 잡음 단어
    하나가 3,155 토큰, 드문 한자 171 글자 단어가 1,027 토큰이 되어 위치표(1,024)를 넘었고 학습이 죽었다.
    검증·시험 분할은 공식 점수를 위해 거르지 않고, 분할마다 가장 긴 길이를 ``max_lengths`` 에 적는다.
    """
    if max_bpe_tokens < 1:
        raise ValueError(f"max_bpe_tokens={max_bpe_tokens}: 문장당 최대 BPE 토큰 수는 1 이상이어야 합니다.")
    if src == tgt:
        raise ValueError(f"원문과 번역문 언어가 같습니다 (src={src!r}, tgt={tgt!r}): --src/--tgt 를 고치세요.")
    check_corpus(data_dir, src, tgt)
    settings = dict(vocab_size=vocab_size, src=src, tgt=tgt, min_frequency=min_frequency, min_char_count=min_char_count,
                    max_words=max_words, max_ratio=max_ratio, max_train_pairs=max_train_pairs,
                    max_bpe_tokens=max_bpe_tokens)
    stamp = corpus_stamp(data_dir, src, tgt)
    key = json.dumps({"format": CACHE_FORMAT, "settings": settings, "files": stamp}, sort_keys=True)
    cache = os.path.join(data_dir, "prepared", f"bpe{vocab_size}-{hashlib.sha256(key.encode()).hexdigest()[:12]}")
    if os.path.isfile(os.path.join(cache, "meta.json")):
        log(f"같은 설정의 캐시가 있습니다: {cache} (재사용)")
        return cache
    tmp = f"{cache}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        _prepare_into(tmp, data_dir, settings, stamp, log)
    except BaseException:                                # 오류·Ctrl-C: 임시 디렉터리를 치우고 그대로 알린다
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(cache, ignore_errors=True)             # meta.json 없는 찌꺼기 (쓰이지 않는 캐시)
    os.replace(tmp, cache)
    log(f"준비 완료: {cache}")
    return cache


def _prepare_into(tmp, data_dir, settings, stamp, log):
    """prepare 의 본체: 단어 세기 → BPE 학습 → 세 분할 인코딩 → meta.json (모두 ``tmp`` 안에)."""
    t0, langs = time.time(), (settings["src"], settings["tgt"])

    def pairs(split):
        found = iter_corpus(data_dir, split, *langs, settings["max_words"], settings["max_ratio"])
        n = settings["max_train_pairs"] if split == "train" else None
        return itertools.islice(found, n)

    log(f"1/3 단어 세기: {data_dir} 학습 분할")
    counts = count_words((s for pair in pairs("train") for s in pair), log)
    log(f"2/3 BPE 학습: 어휘 {settings['vocab_size']:,} (단어 종류 {len(counts):,}, {time.time() - t0:.0f}초 경과)")
    bpe = train_bpe_from_counts(counts, settings["vocab_size"], settings["min_frequency"],
                                settings["min_char_count"], log)
    bpe.save(os.path.join(tmp, "bpe.txt"))
    stats = {}
    for split in _SPLITS:                                # 학습 분할만 BPE 길이로 거른다
        log(f"3/3 인코딩: {split} ({time.time() - t0:.0f}초 경과)")
        limit = settings["max_bpe_tokens"] if split == "train" else None
        stats[split] = _encode_split(bpe, pairs(split), tmp, split, log, max_tokens=limit)
    sizes = {split: s["pairs"] for split, s in stats.items()}
    meta = dict(format=CACHE_FORMAT, settings=settings, files=stamp, data_dir=os.path.abspath(data_dir), vocab=len(bpe),
                pairs=sizes, dropped_long_pairs=stats["train"]["dropped"],           # 학습 분할에서 뺀 쌍 수
                max_lengths={split: s["max_lengths"] for split, s in stats.items()},  # 특수 토큰 제외
                seconds=round(time.time() - t0, 1))
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    log(f"인코딩 끝: {sizes} 쌍, {time.time() - t0:.0f}초")


def _encode_split(bpe, pairs, out_dir, split, log, max_tokens=None, every=500_000):
    """쌍들을 인코딩해 ids/offsets 배열 네 개를 쓰고 ``{"pairs", "dropped", "max_lengths"}`` 를 돌려준다.

    ``max_tokens`` 가 있으면 한쪽이라도 BPE 토큰이 그보다 많은 쌍은 인코딩한 뒤 버퍼를 되돌려 뺀다.
    어휘가 65,535 이하면 uint16 (메모리 절반).
    """
    code, sides = ("H" if len(bpe) <= 65535 else "i"), ("src", "tgt")
    ids, offsets = {s: array.array(code) for s in sides}, {s: array.array("q", [0]) for s in sides}
    longest, dropped, t0 = dict.fromkeys(sides, 0), 0, time.time()
    for n, pair in enumerate(pairs, 1):
        lengths = {s: len(bpe.encode(text, ids[s])) - offsets[s][-1] for s, text in zip(sides, pair)}
        keep = max_tokens is None or max(lengths.values()) <= max_tokens
        for s in sides:
            if keep:
                offsets[s].append(len(ids[s]))
                longest[s] = max(longest[s], lengths[s])
            else:
                del ids[s][offsets[s][-1]:]              # 이 쌍의 토큰을 지운다
        dropped += not keep
        if n % every == 0:
            log(f"  {split}: {n:,} 쌍 ({n / (time.time() - t0):,.0f} 쌍/초)")
    if max_tokens is not None:
        log(f"  {split}: BPE 토큰이 {max_tokens:,}개를 넘는 쌍 {dropped:,}개를 뺐습니다.")
    for s in sides:
        np.save(os.path.join(out_dir, f"{split}.{s}.ids.npy"), np.frombuffer(ids[s], dtype=np.dtype(code)))
        np.save(os.path.join(out_dir, f"{split}.{s}.offsets.npy"), np.frombuffer(offsets[s], dtype=np.int64))
    return dict(pairs=len(offsets["src"]) - 1, dropped=dropped, max_lengths=longest)


def find_prepared(data_dir, vocab_size=None, src=None, tgt=None, log=None):
    """``data_dir`` 의 완성된 캐시(meta.json 이 있는 것) 중 가장 최근 것의 경로, 없으면 None.

    ``vocab_size``/``src``/``tgt`` 를 주면 meta.json 의 설정이 그것인 캐시만 본다 (디렉터리 이름은 믿지 않는다).
    그리고 meta.json 의 파일 도장이 지금 디스크의 파일과 같은 캐시만 고른다: 코퍼스 파일을 고친 뒤의 옛 캐시는
    옛 문장을 담고 있다 (그런 캐시를 건너뛰면 ``log`` 에 한 줄). 코퍼스 파일이 없으면 어느 캐시도 확인할 수 없어 None.
    """
    root, found = os.path.join(data_dir, "prepared"), []
    for name in os.listdir(root) if os.path.isdir(root) else []:
        meta = os.path.join(root, name, "meta.json")
        if ".tmp-" in name or not os.path.isfile(meta):
            continue
        try:
            with open(meta, encoding="utf-8") as f:
                info = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"'{meta}' 가 올바른 JSON 이 아닙니다 ({exc.msg}): 그 캐시 디렉터리를 지우고 "
                             "`python data.py prepare <코퍼스>` 를 다시 실행하세요.") from None
        wanted = (("vocab_size", vocab_size), ("src", src), ("tgt", tgt))
        if not all(value is None or info["settings"].get(key) == value for key, value in wanted):
            continue
        if not prepared_is_current(os.path.join(root, name), data_dir):
            if log is not None:
                log(f"캐시 {os.path.join(root, name)} 는 지금의 코퍼스 파일과 도장이 맞지 않아 (파일이 바뀌었거나 옛 형식) "
                    "쓰지 않습니다.")
            continue
        found.append((os.path.getmtime(meta), os.path.join(root, name)))
    return max(found)[1] if found else None


def prepared_is_current(cache_dir, data_dir):
    """캐시 meta.json 의 파일 도장이 지금 디스크의 코퍼스 파일과 같은가 (코퍼스 파일이 없으면 확인할 수 없어 False)."""
    with open(os.path.join(cache_dir, "meta.json"), encoding="utf-8") as f:
        info = json.load(f)
    try:
        langs = info["settings"].get("src", "en"), info["settings"].get("tgt", "de")   # 언어가 없는 옛 캐시는 en→de
        return info.get("files") == corpus_stamp(data_dir, *langs)
    except FileNotFoundError:
        return False


class PreparedSplit:
    """캐시된 분할 하나: ``split[i]`` → (원문 id 목록, 번역 id 목록). 배열은 메모리 매핑이라 거의 공짜로 연다.

    ``src_lengths``/``tgt_lengths`` 는 특수 토큰을 뺀 길이 (numpy 배열) — 배치 만들기에 바로 쓴다.
    ``max_length`` 는 두 쪽을 통틀어 가장 긴 문장의 토큰 수 (빈 분할은 0). ``split[a:b]`` 는 쌍의 목록.
    """

    def __init__(self, cache_dir, split):
        arrays = {}
        for name in (f"{side}.{part}" for side in ("src", "tgt") for part in ("ids", "offsets")):
            path = os.path.join(cache_dir, f"{split}.{name}.npy")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"캐시 파일 '{path}' 가 없습니다: 캐시 디렉터리를 지우고 prepare 를 다시 하세요.")
            arrays[name] = np.load(path, mmap_mode="r").view(np.ndarray)
        self._src, self._src_off = arrays["src.ids"], arrays["src.offsets"]
        self._tgt, self._tgt_off = arrays["tgt.ids"], arrays["tgt.offsets"]
        if len(self._src_off) != len(self._tgt_off):
            raise ValueError(f"캐시 '{cache_dir}' 의 {split} 원문·번역 문장 수가 다릅니다: prepare 를 다시 하세요.")
        self.src_lengths, self.tgt_lengths = np.diff(self._src_off), np.diff(self._tgt_off)
        self.max_length = int(max(self.src_lengths.max(), self.tgt_lengths.max())) if len(self) else 0

    def __len__(self):
        return len(self._src_off) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"예제 번호 {index} 가 범위 밖입니다 (0..{len(self) - 1}).")
        i = index % len(self)
        return (self._src[self._src_off[i]:self._src_off[i + 1]].tolist(),
                self._tgt[self._tgt_off[i]:self._tgt_off[i + 1]].tolist())

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def load_prepared(cache_dir, split, max_len=None):
    """``prepare_corpus`` 가 만든 캐시에서 분할 하나를 연다 (``PreparedSplit``).

    ``max_len`` 을 주면 특수 토큰을 뺀 문장 길이가 모두 그 이하인지 확인하고, 넘으면 ``ValueError``.
    collate 는 한쪽에 [BOS] 또는 [EOS] 하나를 붙이므로, 위치표가 P 칸인 모델에는 ``max_len=P - 1`` 을 준다.
    """
    if split not in _SPLITS:
        raise ValueError(f"split={split!r} 는 알 수 없습니다: 'train', 'valid', 'test' 중 하나를 쓰세요.")
    if not os.path.isfile(os.path.join(cache_dir, "meta.json")):
        raise FileNotFoundError(f"'{cache_dir}' 는 완성된 캐시가 아닙니다 (meta.json 없음): "
                                "`python data.py prepare <코퍼스 디렉터리>` 를 실행하세요.")
    prepared = PreparedSplit(cache_dir, split)
    if max_len is not None and prepared.max_length > max_len:
        raise ValueError(f"캐시 '{cache_dir}' 의 {split} 분할에 BPE 토큰 {prepared.max_length:,}개짜리 문장이 있어 "
                         f"한계 {max_len:,}개를 넘습니다: 학습 분할이면 `python data.py prepare <코퍼스> "
                         f"--max-bpe-tokens {max_len}` 처럼 더 작은 한계로 다시 준비하고, 검증·시험 분할이면 "
                         "모델의 위치 수(max_len)를 늘리세요.")
    return prepared


# ══════ F. 데모 코퍼스: 작은 영어→독일어 문법 ══════
# "We trained on the standard WMT 2014 English-German dataset consisting of about 4.5 million
# sentence pairs." (§5.1)
# 논문과 다른 점: WMT14 가 없는 CPU 에서도 몇 분 만에 "정말 번역하는" 모델을 보이려고 작은 문법이 영어→독일어 쌍을
# 만든다: 성·격·수에 따른 관사와 형용사 어미(약/혼합/강변화), 주어-동사 일치, 현재/과거, 부정(nicht/kein), 어순 바꾸기
# — 부사를 앞세우면 동사가 둘째 자리(V2), weil/dass 부문장에서는 끝자리 (어텐션 그림에 볼 것이 생긴다).
# 영어 한 문장의 번역은 하나다: 격은 문장 성분이 정한다 (주어 1격, 직접 목적어 4격, 간접 목적어와 with 3격, of 2격,
# without/for 4격, help/thank/follow 의 목적어 3격). 영어는 소문자(I 만 대문자), 독일어는 명사만 대문자, 마침표 없음,
# 쉼표는 weil/dass 앞과 앞세운 weil(because) 절 뒤에만. 표본 추출(_demo_sample_*)이 문장을 사전(dict)으로 뽑고,
# _demo_render 가 두 언어로 쓴다. 낱말 표는 데이터라서 옆의 demo_lexicon.json 에 있다 (줄 형식은 그 파일의 "형식").
_DEMO_LEXICON_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_lexicon.json")
_DEMO_LEXICON = dict(nouns={}, relational=[], adjectives=[], verbs=[], adverbs=[], pronouns={}, numbers={})
if os.path.isfile(_DEMO_LEXICON_PATH):                 # data.py 만 옮겨 왔으면 빈 표: BPE 등은 되고 데모만 멈춘다
    with open(_DEMO_LEXICON_PATH, encoding="utf-8") as _f:
        _DEMO_LEXICON = json.load(_f)
# 표의 행은 튜플이고 자리로 읽는다 (demo_lexicon.json 의 "형식" 과 같은 순서):
#   명사 r: (영어단수, 영어복수, 성, 독일어단수, 단수2격, 복수, 부류) — r[0] 영어 키, r[6] 부류 (person·animal·food·thing)
#   형용사 a: (영어, 독일어어간, 어울리는 부류 글자 PAFT) · 부사: (영어, 독일어, 시제)
#   동사 v: (영어키, 틀, 주어 부류, 목적어 부류, 전치사, 목적어 격, 영어 형태, 독일어 형태) — v[1] 틀, v[6] 영어 형태
_DEMO_NOUNS = tuple((*entry.split(), kind) for kind, rows in _DEMO_LEXICON["nouns"].items() for entry in rows)
_DEMO_RELATIONAL = tuple(_DEMO_LEXICON["relational"])
_DEMO_ADJECTIVES = tuple(a.split() for a in _DEMO_LEXICON["adjectives"])
_DEMO_VERBS = tuple(tuple(None if f == "-" else f for f in line.split("|")) for line in _DEMO_LEXICON["verbs"])
_DEMO_ADVERBS = tuple(tuple(a) for a in _DEMO_LEXICON["adverbs"])
_DEMO_PRONOUNS = {k: tuple(v) for k, v in _DEMO_LEXICON["pronouns"].items()}
_DEMO_NUMBERS = _DEMO_LEXICON["numbers"]
_DEMO_ADJUNCTS = {"with": ("mit", "dat"), "without": ("ohne", "acc")}      # 자동사 뒤 부가어
# 격 → (남, 여, 중, 복수): 정관사, ein-류(ein/kein/mein; ein 은 복수가 없다) 어미, 형용사 어미. 약변화 = der-류
# 뒤 (관사가 격을 보이므로 -e/-en 뿐), 혼합변화 = ein-류 뒤 (ein 에 어미가 없는 남 1격, 중 1·4격에서만 -er/-es),
# 강변화 = 관사 없음(수사 뒤 포함): 형용사가 관사 어미를 스스로 진다.
_DEMO_DEFINITE = {"nom": "der die das die", "acc": "den die das die", "dat": "dem der dem den",
                  "gen": "des der des der"}
_DEMO_EIN_ENDINGS = {"nom": "- e - e", "acc": "en e - e", "dat": "em er em en", "gen": "es er es er"}
_DEMO_ADJ_ENDINGS = {"weak": {"nom": "e e e en", "acc": "en e e en", "dat": "en en en en", "gen": "en en en en"},
                     "mixed": {"nom": "er e es en", "acc": "en e es en", "dat": "en en en en", "gen": "en en en en"},
                     "strong": {"nom": "er e es e", "acc": "en e es e", "dat": "em er em en", "gen": "en er en er"}}
_DEMO_NOUN, _DEMO_ADJ, _DEMO_VERB, _DEMO_ADVERB = ({row[0]: row for row in table} for table in (   # 영어 → 행
    _DEMO_NOUNS, _DEMO_ADJECTIVES, _DEMO_VERBS, _DEMO_ADVERBS))
_DEMO_FITS = {"any": "person animal food thing", "animate": "person animal", "person": "person",
              "thing": "food thing", "food": "food"}                 # 요구 부류 → 맞는 명사 부류
_DEMO_NOUNS_FOR = {w: tuple(r for r in _DEMO_NOUNS if r[6] in kinds.split()) for w, kinds in _DEMO_FITS.items()}
_DEMO_ADJ_FOR = {c: tuple(a[0] for a in _DEMO_ADJECTIVES if c[0].upper() in a[2]) for c in _DEMO_LEXICON["nouns"]}
_DEMO_VERBS_FOR = {f: tuple(v for v in _DEMO_VERBS if v[1] == f) for f in ("intr", "obj", "ditr", "cop", "that")}


def _demo_np(np_, case, negate=False):
    """명사구 → (영어, 독일어 단어들). 관사 종류가 형용사 변화를 정한다: der-류 → 약, ein-류 → 혼합, 없음·수사 → 강.

    복수 3격은 -n, 남·중성 단수 2격은 -(e)s. ``negate`` 면 부정 관사나 무관사 복수를 kein 으로 ("not a dog" →
    "keinen Hund"). of 로 붙은 소유자는 2격으로 명사 뒤에 온다 ("das Buch des Mannes").

    >>> _demo_np({"noun": "dog", "plural": False, "det": "a", "adj": "small", "of": None}, "acc", True)
    (['a', 'small', 'dog'], ['keinen', 'kleinen', 'Hund'])
    >>> _demo_np({"noun": "child", "plural": True, "det": "", "adj": "tired", "of": None}, "dat")[1]
    ['müden', 'Kindern']
    """
    if "pron" in np_:
        return [np_["pron"]], [_DEMO_PRONOUNS[np_["pron"]][0]]
    en_sg, en_pl, gender, de_sg, de_gen, de_pl, _ = _DEMO_NOUN[np_["noun"]]
    det, adj, plural = np_.get("det", ""), np_.get("adj"), np_.get("plural", False)      # 빠진 키 = 없음
    en = ([adj] if adj else []) + [en_pl if plural else en_sg]
    en = ([("an" if en[0][0] in "aeiou" else "a") if det == "a" else det] if det else []) + en
    slot = 3 if plural else "mfn".index(gender)                            # (남, 여, 중, 복수) 칸
    det = "kein" if negate and det in ("a", "") else det
    if det == "the":
        de, declension = [_DEMO_DEFINITE[case].split()[slot]], "weak"
    elif det in ("a", "my", "kein"):
        ending = _DEMO_EIN_ENDINGS[case].split()[slot].strip("-")
        de, declension = [{"a": "ein", "my": "mein", "kein": "kein"}[det] + ending], "mixed"
    else:
        de, declension = ([_DEMO_NUMBERS[det]] if det else []), "strong"
    if adj:
        stem = _DEMO_ADJ[adj][1]
        de.append(stem.removesuffix("e") + _DEMO_ADJ_ENDINGS[declension][case].split()[slot])   # müde → müden
    de.append((de_pl + "n" if case == "dat" and not de_pl.endswith(("n", "s")) else de_pl) if plural else
              de_gen if case == "gen" else de_sg)
    if np_.get("of"):
        owner_en, owner_de = _demo_np(np_["of"], "gen")
        en, de = en + ["of"] + owner_en, de + owner_de
    return en, de


def _demo_clause(clause, order):
    """절 → (영어, 독일어 단어들). order: main (주어-동사), inverted (동사-주어, V2), sub (동사가 끝).

    영어: 주어 동사군 [간접 목적어] [목적어] [부가어] [형용사] [that 절]; 부정은 do/does/did not + 원형.
    독일어 중간 영역: [3격] [4격] [nicht] [전치사구] [서술 형용사]. 부정 관사·무관사 목적어는 kein 으로
    (nicht 없음), 아니면 nicht 는 한정 목적어 뒤, 전치사구·서술 형용사 앞 ("sieht den Hund nicht").
    """
    key, frame, _, _, prep, case, en_forms, de_forms = _DEMO_VERB[clause["verb"]]
    subj = clause["subj"]
    person = _DEMO_PRONOUNS[subj["pron"]][1] if "pron" in subj else "pl" if subj.get("plural") else "3sg"
    past, neg = clause["tense"] == "past", clause.get("neg", False)
    en, subj_de = _demo_np(subj, "nom")
    if frame == "cop":
        en += [("were" if person == "pl" else "was") if past else {"1sg": "am", "3sg": "is", "pl": "are"}[person]]
        en += ["not"] if neg else []
    else:
        base, third, past_form = en_forms.split()
        en += (["did" if past else "does" if person == "3sg" else "do", "not", base] if neg else
               [past_form if past else third if person == "3sg" else base]) + key.split()[1:]
    forms = de_forms.split()
    finite = (forms[4] if person == "pl" else forms[3]) if past else forms[{"1sg": 0, "3sg": 1, "pl": 2}[person]]
    middle, phrase, kein = [], [], False
    if clause.get("iobj"):
        words, de = _demo_np(clause["iobj"], "dat")
        en, middle = en + words, middle + de
    if clause.get("obj"):
        kein = neg and not prep and clause["obj"].get("det", "") in ("a", "")
        words, de = _demo_np(clause["obj"], case, negate=kein)
        en, middle, phrase = (en + words, middle, [prep] + de) if prep else (en + words, middle + de, [])
    if clause.get("adjunct"):
        word, np_ = clause["adjunct"]
        words, de = _demo_np(np_, _DEMO_ADJUNCTS[word][1])
        en, phrase = en + [word] + words, [_DEMO_ADJUNCTS[word][0]] + de
    middle += (["nicht"] if neg and not kein else []) + phrase
    if clause.get("adj"):
        en, middle = en + [clause["adj"]], middle + [_DEMO_ADJ[clause["adj"]][1]]   # 서술 형용사: 어미 없음
    de = {"main": subj_de + [finite] + middle, "inverted": [finite] + subj_de + middle,
          "sub": subj_de + middle + [finite]}[order]
    if clause.get("comp"):
        words, sub = _demo_clause(clause["comp"], "sub")
        en, de = en + ["that"] + words, _demo_comma(de) + ["dass"] + sub
    return en, de


def _demo_comma(words):
    """마지막 단어 뒤에 쉼표."""
    return words[:-1] + [words[-1] + ","]


def _demo_render(sentence):
    """문장 사전 → (영어, 독일어). 형태: [부사] 주절 / [부사] 주절 because 절 / because 절, 주절.

    >>> clause = {"subj": {"pron": "he"}, "verb": "sleep", "tense": "past", "neg": False}
    >>> _demo_render({"main": clause, "adverb": "yesterday"})
    ('yesterday he slept', 'gestern schlief er')
    """
    sub, adverb = sentence.get("because"), sentence.get("adverb")
    if sentence.get("first"):                              # 앞세운 weil 절 뒤 주절은 동사-주어
        (en_sub, de_sub), (en, de) = _demo_clause(sub, "sub"), _demo_clause(sentence["main"], "inverted")
        en, de = ["because"] + _demo_comma(en_sub) + en, ["weil"] + _demo_comma(de_sub) + de
    else:
        en, de = _demo_clause(sentence["main"], "inverted" if adverb else "main")
        if adverb:
            en, de = [adverb] + en, [_DEMO_ADVERB[adverb][1]] + de
        if sub:
            en_sub, de_sub = _demo_clause(sub, "sub")
            en, de = en + ["because"] + en_sub, _demo_comma(de) + ["weil"] + de_sub
    return " ".join(en), " ".join(de)


# ---- 표본 추출: 무엇이 얼마나 자주 나오는가 ----
def _demo_sample_np(rng, wanted, dets=("the", "a", "my", "", "num"), of_prob=0.12, adj_prob=0.3):
    """부류에 맞는 명사구 하나. ``dets``: 허용하는 관사 ("" = 무관사 복수, "num" = 수사). 복수 40%."""
    row = rng.choice(_DEMO_NOUNS_FOR[wanted])
    choices = [(d, w) for d, w in (("the", 5), ("a", 3), ("my", 2)) if d in dets]
    plural = not choices or rng.random() < 0.4
    if plural:
        choices = [(d, w) for d, w in (("the", 4), ("", 2), ("num", 3), ("my", 1)) if d in dets]
    det = rng.choices([d for d, _ in choices], [w for _, w in choices])[0]
    if det == "num":
        det = rng.choice(list(_DEMO_NUMBERS))
    adj = rng.choice(_DEMO_ADJ_FOR[row[6]]) if rng.random() < adj_prob else None
    owner = None                            # 소유자(사람): "the book of the man" → "das Buch des Mannes"
    if det == "the" and (row[6] != "person" or row[0] in _DEMO_RELATIONAL) and rng.random() < of_prob:
        owner = _demo_sample_np(rng, "person", ("the", "a", "my"), of_prob=0.0, adj_prob=0.2)
        owner = None if owner["noun"] == row[0] else owner
    return {"noun": row[0], "plural": plural, "det": det, "adj": adj, "of": owner}


def _demo_sample_clause(rng, tense, frame):
    """절 하나. 부정 30%, 대명사 주어 20%. 부정문의 (전치사 없는) 목적어에는 수사를 쓰지 않는다."""
    verb = rng.choice(_DEMO_VERBS_FOR[frame])
    neg = rng.random() < 0.3
    subj = {"pron": rng.choice(list(_DEMO_PRONOUNS))} if rng.random() < 0.2 else _demo_sample_np(rng, verb[2])
    clause = {"subj": subj, "verb": verb[0], "tense": tense, "neg": neg}
    plain = ("the", "a", "my", "") if neg else ("the", "a", "my", "", "num")
    if frame == "ditr":                     # 부정문의 간접 목적어는 한정 (kein 은 직접 목적어 몫)
        clause["iobj"] = _demo_sample_np(rng, "animate", ("the", "my") if neg else plain)
        clause["obj"] = _demo_sample_np(rng, verb[3], plain)
    elif frame == "obj":
        clause["obj"] = _demo_sample_np(rng, verb[3], ("the", "a", "my", "", "num") if verb[4] else plain)
    elif frame == "intr" and verb[3] and rng.random() < 0.4:
        clause["adjunct"] = (rng.choice(("with", "without")), _demo_sample_np(rng, verb[3]))
    elif frame == "cop":
        clause["adj"] = rng.choice(_DEMO_ADJ_FOR["person" if "pron" in subj else _DEMO_NOUN[subj["noun"]][6]])
    elif frame == "that":
        clause["comp"] = _demo_sample_clause(rng, rng.choice(("present", "past")), _demo_sample_frame(rng))
    return clause


def _demo_sample_frame(rng):
    """동사 틀의 비율: 자동사 3 : 목적어 5 : 수여 2 : 계사 2."""
    return rng.choices(("intr", "obj", "ditr", "cop"), (3, 5, 2, 2))[0]


def _demo_sample_sentence(rng):
    """문장 사전 하나: 형태(단문 5 : because 뒤 2 : because 앞 1 : that 2), 부사 앞세우기 40%."""
    form = rng.choices(("main", "because", "first", "that"), (5, 2, 1, 2))[0]
    adverb = rng.choice(_DEMO_ADVERBS) if form != "first" and rng.random() < 0.4 else None
    tense = (adverb and adverb[2]) or rng.choice(("present", "past"))
    sentence = {"main": _demo_sample_clause(rng, tense, "that" if form == "that" else _demo_sample_frame(rng))}
    if adverb:
        sentence["adverb"] = adverb[0]
    if form in ("because", "first"):
        sentence["because"] = _demo_sample_clause(rng, rng.choice(("present", "past")), _demo_sample_frame(rng))
        sentence["first"] = form == "first"
    return sentence


def demo_corpus(num_pairs=10000, seed=0, max_words=16):
    """서로 다른 (영어, 독일어) 쌍 ``num_pairs`` 개. 같은 seed → 같은 목록 (``random.Random(seed)``).

    영어가 ``max_words`` 단어를 넘으면 다시 뽑고, 영어로 중복을 거른다 (영어가 같으면 독일어도 같다).

    >>> pairs = demo_corpus(3, seed=0)
    >>> len(pairs), pairs == demo_corpus(3, seed=0), pairs != demo_corpus(3, seed=1)
    (3, True, True)
    """
    if not isinstance(num_pairs, int) or num_pairs < 0:
        raise ValueError(f"num_pairs={num_pairs!r}: 0 이상의 정수를 주세요.")
    if max_words < 4:
        raise ValueError(f"max_words={max_words}: 2~3 단어 문장은 몇 가지뿐이므로 4 이상을 주세요.")
    if not _DEMO_NOUNS:                                # data.py 만 옮겨 왔을 때: BPE 등은 되고 데모만 안 된다
        raise FileNotFoundError(f"데모 낱말 표 '{_DEMO_LEXICON_PATH}' 가 없습니다: data.py 옆에 demo_lexicon.json 을 두세요.")
    rng, seen, pairs = random.Random(seed), set(), []
    for _ in range(20 * num_pairs + 1000):
        if len(pairs) == num_pairs:
            break
        en, de = _demo_render(_demo_sample_sentence(rng))
        if en not in seen and len(en.split()) <= max_words:
            seen.add(en)
            pairs.append((en, de))
    if len(pairs) < num_pairs:
        raise ValueError(f"서로 다른 쌍을 {len(pairs)}개밖에 못 만들었습니다: num_pairs 를 줄이거나 max_words 를 늘리세요.")
    return pairs


def demo_splits(num_train=60000, num_valid=500, num_test=500, seed=0):
    """``{"train", "valid", "test"}`` → (영어, 독일어) 목록. 한 흐름의 앞쪽부터 테스트, 검증, 학습 순으로 자른다:
    세 분할의 영어는 겹치지 않고, 테스트 집합은 ``num_train`` 과 무관하다 (같은 seed, 같은 num_test).

    >>> s = demo_splits(num_train=20, num_valid=5, num_test=5)
    >>> [len(s[k]) for k in ("train", "valid", "test")], s["test"] == demo_splits(50, 5, 5)["test"]
    ([20, 5, 5], True)
    """
    for name, value in (("num_train", num_train), ("num_valid", num_valid), ("num_test", num_test)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r}: 0 이상의 정수를 주세요.")
    pairs = demo_corpus(num_train + num_valid + num_test, seed=seed)
    return {"test": pairs[:num_test], "valid": pairs[num_test:num_test + num_valid],
            "train": pairs[num_test + num_valid:]}


# 생성된 영어 문장의 겉모양만으로 판단한다 (이 문법에서 do/does/did 는 부정에만, that 은 접속사로만 나온다).
_DEMO_INTRANSITIVE_FORMS = {f for v in _DEMO_VERBS_FOR["intr"] for f in v[6].split()}
_DEMO_PLURAL_NOUNS = {row[1] for row in _DEMO_NOUNS}


def _demo_words(english):
    """생성된 영어 문장 → 단어 목록 (쉼표 제외). 빈 문장은 한 줄 오류."""
    if not isinstance(english, str) or not english.split():
        raise ValueError(f"{english!r}: 데모 문법이 만든 영어 문장 하나를 주세요.")
    return english.replace(",", "").split()


def needs_reordering(english):
    """독일어 어순이 영어와 달라지는 (생성된) 문장인가 — 내용어의 순서가 바뀌는가.

    부사나 because 절을 앞세우면 동사가 주어 앞으로 (V2); 주절이 do-부정이면 nicht/kein 이 뒤로
    ("does not see the dog" → "sieht den Hund nicht"; be 의 부정 "is not old" → "ist nicht alt" 는 그대로);
    weil/dass 절은 동사가 끝으로 가므로 영어 부문장이 동사로 끝나지 않으면 (목적어·전치사구·형용사) 바뀐다.

    >>> needs_reordering("yesterday the man saw the dog"), needs_reordering("the man sees the dog")
    (True, False)
    >>> needs_reordering("the man sleeps because the dog is old"), needs_reordering("I know that he sleeps")
    (True, False)
    """
    words = _demo_words(english)
    if words[0] in _DEMO_ADVERB or words[0] == "because":
        return True
    cut = next((i for i, w in enumerate(words) if w in ("because", "that")), len(words))
    if any(w in ("do", "does", "did") for w in words[:cut]):
        return True
    return cut < len(words) and words[-1] not in _DEMO_INTRANSITIVE_FORMS


def demo_kind(english):
    """보고서용 문장 종류 하나 (앞쪽이 우선): subordinate (because/that), fronted (부사 앞세움),
    negation, number (수사), genitive (of), plural (복수 명사), simple.

    >>> demo_kind("often the dog sleeps"), demo_kind("the dogs of the man sleep")
    ('fronted', 'genitive')
    >>> demo_kind("three dogs see a cat"), demo_kind("the dog sees a cat")
    ('number', 'simple')
    """
    words = _demo_words(english)
    for kind, found in (("subordinate", {"because", "that"} & set(words)), ("fronted", words[0] in _DEMO_ADVERB),
                        ("negation", "not" in words), ("number", set(_DEMO_NUMBERS) & set(words)),
                        ("genitive", "of" in words), ("plural", _DEMO_PLURAL_NOUNS & set(words))):
        if found:
            return kind
    return "simple"


# ══════ G. 명령줄 ══════
def main(argv=None):
    """``python data.py download {wmt14,multi30k}`` / ``python data.py prepare {wmt14,multi30k,DIR}``.
    오류는 한 줄, 종료 코드 2."""
    parser = argparse.ArgumentParser(prog="data.py", description="WMT14·Multi30k 내려받기와 BPE 캐시 준비")
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="공식 파일을 받아 체크섬·무결성을 확인하고 푼다")
    down.add_argument("dataset", choices=["wmt14", "multi30k"])
    down.add_argument("--dir", default=None, help="저장할 디렉터리 (기본 data/<dataset>)")
    down.add_argument("--base-url", default=None, help=f"거울 서버 주소 (기본 wmt14: {STATMT_URL}, multi30k: {MULTI30K_URL})")
    prep = sub.add_parser("prepare", help="공동 BPE 를 배우고 세 분할을 numpy 캐시로 인코딩")
    prep.add_argument("corpus", help="wmt14 (= data/wmt14), multi30k (= data/multi30k) 또는 코퍼스 디렉터리: "
                                     "train/valid/test.<src>, .<tgt> 파일들")
    prep.add_argument("--dir", default=None, help="wmt14·multi30k 를 다른 디렉터리에서 읽는다")
    prep.add_argument("--src", default="en", help="원문 언어 = 파일 확장자 (기본 en)")
    prep.add_argument("--tgt", default="de", help="번역문 언어 = 파일 확장자 (기본 de)")
    prep.add_argument("--vocab", type=int, default=None, help="공동 어휘 크기 (기본: wmt14 는 37000 = §5.1, 그 밖의 코퍼스는 8000)")
    prep.add_argument("--min-frequency", type=int, default=2, help="병합할 쌍의 최소 빈도")
    prep.add_argument("--min-char-count", type=int, default=100, help="기본 어휘에 넣을 글자의 최소 빈도")
    prep.add_argument("--max-bpe-tokens", type=int, default=250,
                      help="한쪽이라도 BPE 토큰이 이보다 많은 학습 쌍을 뺀다 (기본 250, 위치표 1,024 보다 한참 작게)")
    prep.add_argument("--max-train-pairs", type=int, default=None, help="학습 쌍을 앞에서부터 이만큼만 (실험용)")
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            data_dir = args.dir or f"data/{args.dataset}"
            if args.dataset == "wmt14":
                download_wmt14(data_dir, base_url=args.base_url or STATMT_URL)
                print(f"다음 단계: python data.py prepare wmt14 --dir {data_dir}")
            else:
                download_multi30k(data_dir, base_url=args.base_url or MULTI30K_URL)
                where = "" if data_dir == "data/multi30k" else f" --data-dir {data_dir}"
                print(f"다음 단계: python train.py --preset multi30k{where} (BPE 캐시는 처음에 알아서 준비합니다)")
        else:
            named = args.corpus in ("wmt14", "multi30k")
            data_dir = (args.dir or f"data/{args.corpus}") if named else args.corpus
            if not os.path.isdir(data_dir):
                hint = (f"먼저 `python data.py download {args.corpus} --dir {data_dir}` 를 실행하세요" if named else
                        "train/valid/test.<언어> 파일을 담은 디렉터리를 주세요")
                raise FileNotFoundError(f"코퍼스 디렉터리 '{data_dir}' 가 없습니다: {hint}.")
            vocab = args.vocab or (37000 if args.corpus == "wmt14" else 8000)
            cache = prepare_corpus(data_dir, vocab, args.src, args.tgt, args.min_frequency, args.min_char_count,
                                   max_bpe_tokens=args.max_bpe_tokens, max_train_pairs=args.max_train_pairs)
            print(f"캐시: {cache}")
    except (ValueError, OSError) as exc:                 # FileNotFoundError 는 OSError
        print(f"오류: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n중단됨: 반쯤 만든 파일은 최종 이름으로 남지 않았습니다. 같은 명령으로 다시 시작하세요.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
