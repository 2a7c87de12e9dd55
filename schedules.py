"""schedules.py — 학습률 스케줄: 스텝 번호 하나를 받아 학습률 하나를 돌려주는 순수 함수들.

§5.3 "We varied the learning rate over the course of training, according to the formula:
lrate = d_model^-0.5 · min(step_num^-0.5, step_num · warmup_steps^-1.5)"

이 파일의 모든 스케줄은 상태가 없는 함수 ``f(step) -> lr`` 이다. 그래서 그림으로 그리기,
테스트하기, 체크포인트에서 이어 하기가 쉽다. 옵티마이저에 붙일 때는 ``as_lambda_lr`` 하나만 쓴다.

스텝 규약 (모든 함수 공통):
- ``step`` 은 1부터 센다. ``step = k`` 는 k번째 ``optimizer.step()`` 에서 쓰는 학습률이다.
- ``step = 0`` 은 없다 (논문 식의 step^-0.5 가 정의되지 않음). 0 이하는 ValueError.
- ``LambdaLR`` 은 내부 카운터 ``last_epoch`` 를 0부터 세며 생성 시점에 0으로 한 번 부른다.
  그 값이 첫 업데이트의 학습률이므로 ``as_lambda_lr`` 이 ``step = last_epoch + 1`` 로 바꿔 준다.
- ``total_steps`` 가 있는 스케줄은 그 뒤로 마지막 값을 유지한다
  (LambdaLR 은 마지막 업데이트 뒤에도 ``scheduler.step()`` 으로 한 번 더 부르기 때문).

>>> f"{transformer_lr(4000, d_model=512, warmup_steps=4000):.3e}"
'6.988e-04'
>>> round(cosine_lr(10, peak_lr=1.0, warmup_steps=10, total_steps=110), 6)
1.0
>>> round(linear_lr(110, peak_lr=1.0, warmup_steps=10, total_steps=110), 6)
0.0
"""
import math

import torch


def _check_step(step):
    """스텝 번호 검사: 1 이상이어야 한다 (위 규약 참고)."""
    if step < 1:
        raise ValueError(f"step 은 1 이상이어야 합니다(step k = k번째 업데이트, 받은 값 {step}); "
                         "LambdaLR 의 0부터 세는 카운터는 as_lambda_lr 로 바꾸세요.")


def _check_total(warmup_steps, total_steps):
    """워밍업 뒤에 감쇠할 구간이 적어도 한 스텝은 있어야 한다."""
    if warmup_steps < 0 or total_steps <= warmup_steps:
        raise ValueError(f"0 <= warmup_steps < total_steps 여야 합니다(받은 값 warmup_steps={warmup_steps}, "
                         f"total_steps={total_steps}); 워밍업보다 길게 학습하세요.")


# ---------------------------------------------------------------------------
# 1. 논문의 스케줄 (§5.3): 선형 워밍업 + 역제곱근 감쇠
# ---------------------------------------------------------------------------

def transformer_lr(step, d_model=512, warmup_steps=4000, scale=1.0):
    """§5.3 lrate = d_model^-0.5 · min(step_num^-0.5, step_num · warmup_steps^-1.5).

    "This corresponds to increasing the learning rate linearly for the first warmup_steps
    training steps, and decreasing it thereafter proportionally to the inverse square root
    of the step number. We used warmup_steps = 4000."

    - step < warmup: 두 번째 항이 작다 → step 에 비례해 선형 증가.
    - step = warmup: 두 항이 같다 → 최대값 d_model^-0.5 · warmup^-0.5.
    - step > warmup: 첫 번째 항이 작다 → 1/√step 로 감소.
    ``scale`` 은 전체 곱 상수 (논문은 1.0). d_model 이 클수록 최대 학습률이 작다.

    >>> f"{transformer_lr(1, 512, 4000):.3e}"       # 첫 업데이트: 아주 작다
    '1.747e-07'
    >>> f"{transformer_lr(4000, 512, 4000):.3e}"    # 최대값 = 512^-0.5 · 4000^-0.5
    '6.988e-04'
    >>> f"{transformer_lr(16000, 512, 4000):.3e}"   # 4배 뒤: 최대값의 1/2
    '3.494e-04'
    >>> transformer_lr(0, 512, 4000)
    Traceback (most recent call last):
    ...
    ValueError: step 은 1 이상이어야 합니다(step k = k번째 업데이트, 받은 값 0); LambdaLR 의 0부터 세는 카운터는 as_lambda_lr 로 바꾸세요.
    """
    _check_step(step)
    if warmup_steps < 1:
        raise ValueError(f"논문의 스케줄은 warmup_steps >= 1 이 필요합니다(받은 값 {warmup_steps}).")
    return scale * d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)


# ---------------------------------------------------------------------------
# 2. 워밍업 + 감쇠 계열 (선형, 다항식, 코사인)
# ---------------------------------------------------------------------------
# 논문과 다른 점: 논문은 역제곱근 감쇠만 쓴다. 아래는 이후 널리 쓰인 변형들이다 (BERT 의 선형 감쇠,
# 코사인 등). 모두 같은 모양: step ≤ warmup 에서 peak·step/warmup 로 오르고, step = warmup 에서
# peak, step = total 에서 끝값에 닿는다.
# PyTorch와 다른 점: PolynomialLR/CosineAnnealingLR 은 0부터 세므로 첫 업데이트가 peak 이다.
# 여기서는 step = warmup 이 peak 이므로 warmup = 0 이면 첫 업데이트(step 1)가 이미 한 칸 감쇠한 값이다.

def _warmup(step, peak_lr, warmup_steps):
    """선형 워밍업 구간의 학습률: step/warmup 비율만큼 peak 에 다가간다."""
    return peak_lr * step / warmup_steps


def _progress(step, warmup_steps, total_steps):
    """인자를 검사하고 감쇠 구간의 진행도 (step − warmup)/(total − warmup) 를 준다 (total 뒤에는 1)."""
    _check_step(step)
    _check_total(warmup_steps, total_steps)
    return min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)


def polynomial_lr(step, peak_lr, warmup_steps, total_steps, power=2.0, end_lr=0.0):
    """다항식 감쇠: lr = (peak − end) · (1 − progress)^power + end, progress = (step−warmup)/(total−warmup).

    power = 1 이면 선형 감쇠와 같다. total_steps 뒤에는 end_lr 을 유지한다.

    >>> [round(polynomial_lr(s, 1.0, 2, 6), 4) for s in range(1, 8)]
    [0.5, 1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]
    >>> round(polynomial_lr(4, 1.0, 2, 6, power=1.0), 4) == round(linear_lr(4, 1.0, 2, 6), 4)
    True
    """
    progress = _progress(step, warmup_steps, total_steps)
    if step <= warmup_steps:
        return _warmup(step, peak_lr, warmup_steps)
    return (peak_lr - end_lr) * (1.0 - progress) ** power + end_lr


def linear_lr(step, peak_lr, warmup_steps, total_steps, end_lr=0.0):
    """선형 워밍업 + 선형 감쇠 (BERT 식): step = total 에서 end_lr.

    >>> [round(linear_lr(s, 1.0, 2, 6), 2) for s in range(1, 8)]
    [0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    >>> math.isclose(linear_lr(4, 1.0, 2, 6, end_lr=0.4), 0.7)    # 가운데: (1 + 0.4) / 2
    True
    """
    return polynomial_lr(step, peak_lr, warmup_steps, total_steps, power=1.0, end_lr=end_lr)


def cosine_lr(step, peak_lr, warmup_steps, total_steps, min_lr=0.0):
    """코사인 감쇠: lr = min + ½(peak − min)(1 + cos(π · progress)), progress 는 polynomial_lr 과 같다.

    처음과 끝에서 천천히, 가운데에서 빠르게 내려간다. progress = ½ 이면 정확히 중간값.

    >>> [round(cosine_lr(s, 1.0, 2, 6), 4) for s in range(1, 8)]
    [0.5, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    >>> math.isclose(cosine_lr(4, 1.0, 2, 6, min_lr=0.5), 0.75)   # 가운데: (1 + 0.5) / 2
    True
    """
    progress = _progress(step, warmup_steps, total_steps)
    if step <= warmup_steps:
        return _warmup(step, peak_lr, warmup_steps)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------
# 3. OneCycle (Smith & Topin, 2017): 학습률은 올라갔다 내려오고, 모멘텀은 반대로 움직인다
# ---------------------------------------------------------------------------
# "1cycle": 처음 pct_start 비율 동안 max_lr/div_factor → max_lr 로 오르고(모멘텀은 max → base),
# 나머지 동안 max_lr → max_lr/(div_factor·final_div_factor) 로 내려간다(모멘텀은 base → max).
# 학습률이 클 때 모멘텀을 줄여 한 번에 너무 멀리 가지 않게 한다.
# 정의는 torch.optim.lr_scheduler.OneCycleLR 과 같다 (테스트가 스텝마다 비교한다).
# PyTorch와 다른 점: (1) step 은 1부터 (PyTorch 의 last_epoch + 1). (2) step > total_steps 이면
# PyTorch 는 오류를 내지만 여기서는 마지막 값을 유지한다.

def _anneal(start, end, pct, anneal):
    """pct 가 0 → 1 로 갈 때 start → end 로 보간. 'cos' 는 반코사인, 'linear' 는 직선."""
    if anneal == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    if anneal == "linear":
        return (end - start) * pct + start
    raise ValueError(f"anneal 은 'cos' 또는 'linear' 여야 합니다(받은 값 {anneal!r}).")


def _one_cycle_value(step, total_steps, pct_start, three_phase, anneal, points):
    """OneCycle 공통 보간. points = 구간별 (시작값, 끝값). 구간 경계는 0부터 센 t 로 적는다."""
    _check_step(step)
    if not 0.0 < pct_start < 1.0 or pct_start * total_steps <= 1:
        raise ValueError(f"0 < pct_start < 1 이고 pct_start * total_steps > 1 이어야 합니다(받은 값 pct_start="
                         f"{pct_start}, total_steps={total_steps}); 스텝을 늘리거나 pct_start 를 키우세요.")
    t = min(step, total_steps) - 1  # 0부터 센 업데이트 번호 (PyTorch 의 last_epoch)
    ends = [float(pct_start * total_steps) - 1, total_steps - 1]
    if three_phase:  # 오르기 → 같은 길이로 내리기 → 나머지에서 min 까지 소멸
        ends = [ends[0], float(2 * pct_start * total_steps) - 2, total_steps - 1]
        if ends[1] >= ends[2]:
            raise ValueError(f"three_phase 는 pct_start < 0.5 가 필요합니다(받은 값 {pct_start}).")
    start_t = 0.0
    for i, (end_t, (a, b)) in enumerate(zip(ends, points)):
        if t <= end_t or i == len(ends) - 1:
            return _anneal(a, b, (t - start_t) / (end_t - start_t), anneal)
        start_t = end_t


def one_cycle_lr(step, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
                 anneal="cos", three_phase=False):
    """OneCycle 학습률: initial = max/div_factor, min = initial/final_div_factor.

    최대값은 step = pct_start·total_steps 에서, 최소값은 step = total_steps 에서.

    >>> round(one_cycle_lr(1, 1.0, 100), 4)     # 첫 업데이트: max/25
    0.04
    >>> round(one_cycle_lr(30, 1.0, 100), 4)    # pct_start·total = 30 에서 최대
    1.0
    >>> f"{one_cycle_lr(100, 1.0, 100):.1e}"    # 마지막: max/25/1e4
    '4.0e-06'
    """
    initial = max_lr / div_factor
    low = initial / final_div_factor
    points = [(initial, max_lr), (max_lr, low)]
    if three_phase:
        points = [(initial, max_lr), (max_lr, initial), (initial, low)]
    return _one_cycle_value(step, total_steps, pct_start, three_phase, anneal, points)


def one_cycle_momentum(step, total_steps, pct_start=0.3, base_momentum=0.85, max_momentum=0.95,
                       anneal="cos", three_phase=False):
    """OneCycle 모멘텀 곡선: 학습률과 거울상 (max → base → max). Adam 이면 β1 에 쓴다.

    >>> [round(one_cycle_momentum(s, 100), 3) for s in (1, 30, 100)]
    [0.95, 0.85, 0.95]
    """
    points = [(max_momentum, base_momentum), (base_momentum, max_momentum)]
    if three_phase:
        points = [(max_momentum, base_momentum), (base_momentum, max_momentum), (max_momentum, max_momentum)]
    return _one_cycle_value(step, total_steps, pct_start, three_phase, anneal, points)


# ---------------------------------------------------------------------------
# 4. 삼각형 주기 학습률 (Smith, 2017 "Cyclical Learning Rates") + 워밍업
# ---------------------------------------------------------------------------
# base_lr → max_lr 로 step_size_up 스텝 동안 오르고, step_size_down 스텝 동안 내려오기를 반복한다.
# 워밍업: 처음 warmup_steps 동안 0 근처에서 base_lr 로 선형으로 오르고 (step = warmup+1 에서 정확히
# base_lr), 그 다음 스텝부터 주기가 시작된다. warmup_steps = 0 이면 torch.optim.lr_scheduler.CyclicLR
# (mode='triangular') 과 같다. PyTorch와 다른 점: step 은 1부터 (PyTorch 의 last_epoch + 1),
# 워밍업은 PyTorch 에 없는 추가 구간이다.

def cyclic_lr(step, base_lr, max_lr, step_size_up, step_size_down=None, warmup_steps=0):
    """워밍업 뒤 삼각형 주기 학습률. step_size_down 을 안 주면 step_size_up 과 같다.

    >>> [round(cyclic_lr(s, 0.1, 0.5, 2), 2) for s in range(1, 8)]
    [0.1, 0.3, 0.5, 0.3, 0.1, 0.3, 0.5]
    >>> [round(cyclic_lr(s, 0.1, 0.5, 2, warmup_steps=3), 3) for s in range(1, 7)]
    [0.025, 0.05, 0.075, 0.1, 0.3, 0.5]
    """
    _check_step(step)
    down = step_size_up if step_size_down is None else step_size_down
    if step_size_up < 1 or down < 1 or warmup_steps < 0:
        raise ValueError(f"step_size_up >= 1, step_size_down >= 1, warmup_steps >= 0 이어야 합니다(받은 값 "
                         f"{step_size_up}, {down}, {warmup_steps}).")
    if step <= warmup_steps:
        return base_lr * step / (warmup_steps + 1)
    pos = (step - warmup_steps - 1) % (step_size_up + down)  # 주기 안의 위치 (0 = base_lr)
    frac = pos / step_size_up if pos <= step_size_up else (step_size_up + down - pos) / down
    return base_lr + (max_lr - base_lr) * frac


# ---------------------------------------------------------------------------
# 5. 옵티마이저에 붙이기: LambdaLR
# ---------------------------------------------------------------------------

def as_lambda_lr(optimizer, fn):
    """순수 함수 fn(step) → 절대 학습률 을 torch.optim.lr_scheduler.LambdaLR 로 감싼다.

    LambdaLR 은 lr = (param group 의 초기 lr) × lambda(last_epoch) 로 계산한다. fn 이 이미 절대값을
    주므로 모든 param group 의 초기 lr 을 1.0 으로 두어 곱셈이 정확히 fn 값을 남기게 한다
    (나눗셈 오차도, 초기 lr 0 문제도 없다). 그래서 옵티마이저를 만들 때 준 lr 은 무시된다.
    last_epoch 는 0부터 세므로 fn(last_epoch + 1) 을 부른다 (모듈 설명의 스텝 규약).
    람다(클로저)는 state_dict 에 저장되지 않으므로 체크포인트는 weights_only=True 로 읽힌다.
    이어 하기: 옵티마이저와 스케줄러를 새로 만들고 둘 다 load_state_dict 하면 같은 곳에서 계속된다.

    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=123.0)
    >>> sched = as_lambda_lr(opt, lambda s: transformer_lr(s, 512, 4000))
    >>> opt.param_groups[0]["lr"] == transformer_lr(1, 512, 4000)   # 첫 업데이트 = step 1
    True
    >>> opt.step(); sched.step()
    >>> opt.param_groups[0]["lr"] == transformer_lr(2, 512, 4000)
    True
    """
    if not callable(fn):
        raise ValueError("fn 은 step → 학습률 인 호출 가능한 함수여야 합니다(예: functools.partial(cosine_lr, ...)).")
    for group in optimizer.param_groups:
        group["lr"] = 1.0
        group["initial_lr"] = 1.0

    def lr_lambda(last_epoch):
        return fn(last_epoch + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
