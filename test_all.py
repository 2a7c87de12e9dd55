"""Tests for the whole project, in reading order of the files.

embeddings/attention/layers/model -> schedules/losses -> data -> train -> plots.
Every test asserts behaviour; reference values come from PyTorch's own modules,
independent computations, or (BLEU) numbers computed once with sacreBLEU.
"""
import functools
import io
import math

import pytest
import torch
import torch.nn.functional as F

import losses
import schedules


# =============================================================================
# section: schedules_losses
# =============================================================================
# ---------------------------------------------------------------------------
# schedules.py
# ---------------------------------------------------------------------------

def _schedules_optimizer(kind="adam", lr=0.5):
    """파라미터 하나짜리 옵티마이저 (스케줄 비교용)."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.98), eps=1e-9)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _schedules_run(optimizer, scheduler, steps):
    """steps 번 업데이트하며 매 업데이트의 (lr, momentum) 을 모은다."""
    seen = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        seen.append((group["lr"], group["betas"][0] if "betas" in group else group.get("momentum")))
        optimizer.step()
        scheduler.step()
    return seen


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


def test_schedules_one_cycle_matches_pytorch():
    total = 50
    for anneal, three_phase, pct in (("cos", False, 0.3), ("linear", False, 0.25), ("cos", True, 0.3)):
        opt = _schedules_optimizer("adam")
        ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=total, pct_start=pct,
                                                  anneal_strategy=anneal, three_phase=three_phase,
                                                  base_momentum=0.85, max_momentum=0.95)
        expected = _schedules_run(opt, ref, total)
        kwargs = dict(pct_start=pct, anneal=anneal, three_phase=three_phase)
        for step, (lr, momentum) in enumerate(expected, start=1):
            assert math.isclose(schedules.one_cycle_lr(step, 0.01, total, **kwargs), lr, rel_tol=1e-12, abs_tol=1e-18)
            assert math.isclose(schedules.one_cycle_momentum(step, total, **kwargs), momentum, rel_tol=1e-12)
        opt2 = _schedules_optimizer("adam")
        fn = functools.partial(schedules.one_cycle_lr, max_lr=0.01, total_steps=total, **kwargs)
        ours = _schedules_run(opt2, schedules.as_lambda_lr(opt2, fn), total)
        assert [lr for lr, _ in ours] == pytest.approx([lr for lr, _ in expected], rel=1e-12, abs=1e-18)


def test_schedules_cyclic_matches_pytorch_and_warmup_shifts_it():
    for up, down in ((5, None), (4, 7)):
        opt = _schedules_optimizer("sgd")
        ref = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.001, max_lr=0.006, step_size_up=up,
                                                step_size_down=down, mode="triangular", cycle_momentum=False)
        expected = [lr for lr, _ in _schedules_run(opt, ref, 40)]
        ours = [schedules.cyclic_lr(s, 0.001, 0.006, up, down) for s in range(1, 41)]
        assert ours == pytest.approx(expected, rel=1e-12)
        warm = 6  # 워밍업 뒤 곡선은 PyTorch 곡선을 warm 스텝 민 것
        shifted = [schedules.cyclic_lr(s + warm, 0.001, 0.006, up, down, warmup_steps=warm) for s in range(1, 41)]
        assert shifted == pytest.approx(expected, rel=1e-12)
        ramp = [schedules.cyclic_lr(s, 0.001, 0.006, up, down, warmup_steps=warm) for s in range(1, warm + 2)]
        assert all(a < b for a, b in zip(ramp, ramp[1:])) and ramp[-1] == pytest.approx(0.001)


def test_schedules_decays_match_pytorch_without_warmup():
    total = 30
    checks = (
        (functools.partial(torch.optim.lr_scheduler.PolynomialLR, total_iters=total, power=2.0),
         functools.partial(schedules.polynomial_lr, peak_lr=0.1, warmup_steps=0, total_steps=total, power=2.0)),
        (functools.partial(torch.optim.lr_scheduler.PolynomialLR, total_iters=total, power=1.0),
         functools.partial(schedules.linear_lr, peak_lr=0.1, warmup_steps=0, total_steps=total)),
        (functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=total, eta_min=0.001),
         functools.partial(schedules.cosine_lr, peak_lr=0.1, warmup_steps=0, total_steps=total, min_lr=0.001)),
    )
    for make_ref, fn in checks:
        opt = _schedules_optimizer("sgd", lr=0.1)
        ref = make_ref(opt)
        expected = [lr for lr, _ in _schedules_run(opt, ref, total + 1)]  # expected[k] = PyTorch last_epoch k
        # PyTorch와 다른 점(모듈 설명): 우리 step k 는 PyTorch last_epoch k 의 값 (peak 는 step = warmup = 0)
        assert [fn(k) for k in range(1, total + 1)] == pytest.approx(expected[1:], rel=1e-9, abs=1e-12)


def test_schedules_warmup_decay_shapes():
    for fn, end in ((schedules.linear_lr, 0.0), (schedules.polynomial_lr, 0.0), (schedules.cosine_lr, 0.0)):
        lrs = [fn(s, 2.0, 10, 50) for s in range(1, 61)]
        assert lrs[0] == pytest.approx(0.2) and lrs[9] == pytest.approx(2.0) and lrs[49] == pytest.approx(end)
        assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
        assert all(a > b for a, b in zip(lrs[9:49], lrs[10:49]))
        assert lrs[49:] == [lrs[49]] * 11  # total 뒤에는 끝값 유지
    assert schedules.cosine_lr(30, 2.0, 10, 50, min_lr=0.5) == pytest.approx(1.25)
    assert schedules.linear_lr(30, 2.0, 10, 50, end_lr=0.4) == pytest.approx(1.2)
    assert schedules.polynomial_lr(37, 2.0, 10, 50, power=1.0) == pytest.approx(schedules.linear_lr(37, 2.0, 10, 50))


def test_schedules_lambda_lr_equals_pure_function_and_resumes():
    fns = [
        functools.partial(schedules.transformer_lr, d_model=512, warmup_steps=8),
        functools.partial(schedules.linear_lr, peak_lr=1e-3, warmup_steps=5, total_steps=20),
        functools.partial(schedules.cosine_lr, peak_lr=1e-3, warmup_steps=5, total_steps=20, min_lr=1e-5),
        functools.partial(schedules.polynomial_lr, peak_lr=1e-3, warmup_steps=5, total_steps=20, power=0.5),
        functools.partial(schedules.one_cycle_lr, max_lr=1e-3, total_steps=20),
        functools.partial(schedules.cyclic_lr, base_lr=1e-4, max_lr=1e-3, step_size_up=3, warmup_steps=4),
    ]
    for fn in fns:
        opt = _schedules_optimizer("adam", lr=7.0)  # 옵티마이저의 lr 은 무시되어야 한다
        torch.optim.lr_scheduler.StepLR(opt, step_size=5)  # 앞선 스케줄러가 남긴 initial_lr = 7.0 도 무시
        sched = schedules.as_lambda_lr(opt, fn)
        seen = [lr for lr, _ in _schedules_run(opt, sched, 25)]  # total_steps(20) 을 넘어도 오류 없음
        assert seen == [fn(s) for s in range(1, 26)]
        # 체크포인트: weights_only=True 로 읽히고, 새 옵티마이저/스케줄러가 같은 곳에서 이어 간다
        buffer = io.BytesIO()
        torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        opt2 = _schedules_optimizer("adam", lr=7.0)
        sched2 = schedules.as_lambda_lr(opt2, fn)
        opt2.load_state_dict(state["opt"])
        sched2.load_state_dict(state["sched"])
        assert [lr for lr, _ in _schedules_run(opt2, sched2, 3)] == [fn(s) for s in range(26, 29)]


def test_schedules_bad_input():
    with pytest.raises(ValueError, match="step must be >= 1"):
        schedules.transformer_lr(0)
    for fn in (functools.partial(schedules.linear_lr, peak_lr=1.0, warmup_steps=2, total_steps=5),
               functools.partial(schedules.cosine_lr, peak_lr=1.0, warmup_steps=2, total_steps=5),
               functools.partial(schedules.one_cycle_lr, max_lr=1.0, total_steps=20),
               functools.partial(schedules.one_cycle_momentum, total_steps=20),
               functools.partial(schedules.cyclic_lr, base_lr=0.1, max_lr=1.0, step_size_up=2)):
        with pytest.raises(ValueError):
            fn(0)
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.transformer_lr(1, 512, 0)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        schedules.cosine_lr(1, 1.0, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="pct_start"):
        schedules.one_cycle_lr(1, 1.0, total_steps=3, pct_start=0.3)
    with pytest.raises(ValueError, match="anneal"):
        schedules.one_cycle_lr(1, 1.0, total_steps=20, anneal="exp")
    with pytest.raises(ValueError, match="callable"):
        schedules.as_lambda_lr(_schedules_optimizer(), 0.1)


# ---------------------------------------------------------------------------
# losses.py
# ---------------------------------------------------------------------------

def _losses_batch(seed=0, shape=(3, 7), vocab=11, pad=0):
    """무작위 logits (…, V) 와 끝이 패딩인 targets (…)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, vocab, generator=gen) * 3
    targets = torch.randint(0, vocab, shape, generator=gen)
    targets[..., -2:] = pad
    return logits, targets


def test_losses_label_smoothing_matches_pytorch():
    for shape, pad, eps in (((3, 7), 0, 0.1), ((20,), 4, 0.1), ((2, 5), 0, 0.0), ((2, 9), 1, 0.3)):
        logits, targets = _losses_batch(seed=len(shape) + pad, shape=shape, pad=pad)
        a = logits.clone().requires_grad_(True)
        b = logits.clone().requires_grad_(True)
        ours = losses.label_smoothed_cross_entropy(a, targets, epsilon=eps, ignore_index=pad)
        ref = F.cross_entropy(b.reshape(-1, b.size(-1)), targets.reshape(-1), label_smoothing=eps, ignore_index=pad)
        assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
        ours.backward()
        ref.backward()
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=0)
    # 스무딩된 목표 분포 (spread="all") 로 직접 계산한 H(q, p) 와도 같다
    logits, targets = _losses_batch(seed=5, shape=(6,))
    q = losses.smoothed_targets(targets, 11, epsilon=0.1)
    assert torch.allclose(q.sum(-1), torch.ones(6))
    per_token = -(q * F.log_softmax(logits, -1)).sum(-1)
    real = targets != 0
    assert torch.allclose(losses.label_smoothed_cross_entropy(logits, targets), per_token[real].mean(), atol=1e-6)


def test_losses_low_precision_inputs():
    logits, targets = _losses_batch(seed=3)
    for dtype in (torch.float16, torch.bfloat16):
        low = logits.to(dtype)
        ours = losses.label_smoothed_cross_entropy(low, targets)
        ref = F.cross_entropy(low.float().reshape(-1, 11), targets.reshape(-1), label_smoothing=0.1, ignore_index=0)
        assert ours.dtype == torch.float32 and torch.allclose(ours, ref, atol=1e-6)


def test_losses_kl_variant_matches_independent_computation():
    logits, targets = _losses_batch(seed=1, shape=(4, 6), vocab=9, pad=0)
    eps, vocab = 0.1, 9
    a = logits.clone().requires_grad_(True)
    ours = losses.label_smoothed_kl_div(a, targets, epsilon=eps, ignore_index=0)
    # 독립 계산: q 를 (N, V) 로 직접 채우고 F.kl_div (float64)
    real = targets.reshape(-1) != 0
    flat_t = targets.reshape(-1)[real]
    q = torch.full((flat_t.numel(), vocab), eps / (vocab - 1), dtype=torch.float64)
    q.scatter_(1, flat_t.unsqueeze(1), 1 - eps)
    b = logits.double().clone().requires_grad_(True)
    log_p = F.log_softmax(b.reshape(-1, vocab)[real], dim=-1)
    ref = F.kl_div(log_p, q, reduction="sum") / flat_t.numel()
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


def test_losses_finite_where_probability_is_zero():
    vocab = 6
    logits = torch.randn(2, 4, vocab, generator=torch.Generator().manual_seed(2))
    logits[0, 0, :3] = -math.inf                  # 정답(0) 을 포함해 세 칸의 확률이 정확히 0
    logits[0, 1, 4] = -math.inf
    logits[1, 3] = -math.inf                      # 패딩 위치의 행 전체 −inf (무시되어야 함)
    targets = torch.tensor([[0, 2, 5, 1], [3, 3, 4, 0]])
    extreme = torch.tensor([[[-3.0, -65504.0, 0.0, 1.0, 65504.0, 2.0]]], dtype=torch.float16)  # fp16 끝값
    extreme_targets = torch.tensor([[1]])         # p_t ≈ 0 인 정답
    winner_targets = torch.tensor([[4]])          # p_t = 1 정확히 (1 − p_t = 0)
    mlm_labels = torch.tensor([[0, -100, 5, -100], [-100, 3, -100, -100]])
    cases = [
        lambda x, t: losses.label_smoothed_cross_entropy(x, t),
        lambda x, t: losses.label_smoothed_kl_div(x, t),
        lambda x, t: losses.focal_loss(x, t, gamma=0.5),
        lambda x, t: losses.focal_loss(x, t, gamma=2.0),
    ]
    for loss_fn in cases:
        for x, t in ((logits, targets), (extreme, extreme_targets), (extreme, winner_targets)):
            leaf = x.clone().requires_grad_(True)
            loss = loss_fn(leaf, t)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()
    leaf = logits.clone().requires_grad_(True)
    loss = losses.masked_lm_loss(leaf, mlm_labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()
    # 유한한 극단값은 바닥값으로 바꾸지 않는다: PyTorch 와 같은 값, 정답 logit 을 올리는 기울기
    leaf = extreme.float().requires_grad_(True)
    loss = losses.label_smoothed_cross_entropy(leaf, extreme_targets)
    ref = F.cross_entropy(extreme.float().reshape(-1, vocab), extreme_targets.reshape(-1), label_smoothing=0.1)
    assert torch.allclose(loss, ref, rtol=1e-6)
    loss.backward()
    assert leaf.grad[0, 0, 1] < 0


def test_losses_focal_gamma_zero_is_cross_entropy():
    logits, targets = _losses_batch(seed=4)
    ce = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=0)
    assert torch.allclose(losses.focal_loss(logits, targets, gamma=0.0), ce, atol=1e-6)
    # γ = 2: float64 로 직접 계산한 −(1 − p_t)^2 log p_t 와 같고, 교차 엔트로피보다 작다
    real = targets != 0
    log_p_t = F.log_softmax(logits.double(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)[real]
    ref = (-(1 - log_p_t.exp()) ** 2 * log_p_t).mean()
    focal = losses.focal_loss(logits, targets, gamma=2.0)
    assert abs(focal.item() - ref.item()) < 1e-6 and focal < ce
    weights = losses.focal_weight(torch.tensor([0.0, 0.5, 1.0]), gamma=3.0)
    assert torch.allclose(weights, torch.tensor([1.0, 0.125, 0.0]), atol=1e-12)


def test_losses_masked_lm_uses_masked_positions_only():
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 8, 13, generator=gen)
    labels = torch.full((2, 8), -100)
    labels[0, 1], labels[0, 5], labels[1, 2] = 4, 0, 12
    ref = F.cross_entropy(logits.reshape(-1, 13), labels.reshape(-1), ignore_index=-100)
    leaf = logits.clone().requires_grad_(True)
    loss = losses.masked_lm_loss(leaf, labels)
    assert torch.allclose(loss, ref, atol=1e-6)
    loss.backward()
    unmasked = labels == -100
    assert torch.all(leaf.grad[unmasked] == 0) and torch.all(leaf.grad[~unmasked].abs().sum(-1) > 0)
    changed = logits.clone()
    changed[unmasked] = torch.randn(int(unmasked.sum()), 13, generator=gen) * 10
    assert torch.equal(losses.masked_lm_loss(changed, labels), loss.detach())


def test_losses_padding_only_and_bad_input():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    loss = losses.label_smoothed_cross_entropy(logits, torch.zeros(2, 3, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 5\)"):
        losses.label_smoothed_cross_entropy(torch.randn(2, 5), torch.tensor([1, 5]))
    with pytest.raises(ValueError, match="same leading shape"):
        losses.focal_loss(torch.randn(2, 3, 5), torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="epsilon"):
        losses.label_smoothed_kl_div(torch.randn(2, 5), torch.tensor([1, 2]), epsilon=0.0)
    with pytest.raises(ValueError, match="spread"):
        losses.smoothed_targets(torch.tensor([1]), 5, spread="pad")
