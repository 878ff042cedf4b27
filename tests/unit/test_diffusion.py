"""Flow matching maths and samplers on an analytic flow between two Gaussians (exact velocity known)."""

from __future__ import annotations

import math

import pytest
import torch

from avatarv.diffusion import (
    EulerSampler,
    GuidanceScales,
    OvershootEulerSampler,
    add_noise,
    guided,
    refine_one_step,
    renoise,
    resolution_shift,
    sample_logit_normal,
    shift_time,
    sigma_schedule,
    velocity_target,
)

MU0, S0 = 2.0, 0.5  # data distribution N(MU0, S0²); noise N(0, 1)


def exact_velocity(x: torch.Tensor, sigma) -> torch.Tensor:
    """E[ε − x0 | x_σ = x] for x0 ~ N(MU0, S0²), ε ~ N(0, 1), x_σ = (1 − σ)x0 + σε (Gaussian conditioning)."""
    s = float(sigma)
    var = (1 - s) ** 2 * S0**2 + s**2
    centred = x - (1 - s) * MU0
    e_x0 = MU0 + (1 - s) * S0**2 / var * centred
    e_eps = s / var * centred
    return e_eps - e_x0


def sample_errors(sampler, steps: int, n: int = 200_000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, dtype=torch.float64, generator=g)
    x0 = sampler(exact_velocity, x1, sigma_schedule(steps).double(), generator=g)
    return abs(x0.mean().item() - MU0), abs(x0.std().item() - S0)


def test_add_noise_and_target():
    x0, eps = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    t = torch.tensor([0.0, 0.5, 1.0])
    xt = add_noise(x0, eps, t)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[2], eps[2])
    torch.testing.assert_close(xt[1], 0.5 * (x0[1] + eps[1]))
    # the target is the time derivative of the path
    h = 1e-3
    deriv = (add_noise(x0, eps, t.clamp(max=1 - h) + h) - add_noise(x0, eps, t.clamp(max=1 - h))) / h
    torch.testing.assert_close(deriv, velocity_target(x0, eps), atol=1e-3, rtol=1e-3)


def test_logit_normal_and_shift():
    g = torch.Generator().manual_seed(0)
    t = sample_logit_normal(100_000, generator=g)
    assert 0 < t.min() and t.max() < 1
    assert abs(t.mean().item() - 0.5) < 0.01 and abs(torch.median(t).item() - 0.5) < 0.01
    # density peaks in the middle: more mass in [0.4, 0.6] than a uniform's 20 %
    assert ((t > 0.4) & (t < 0.6)).float().mean() > 0.25
    s = torch.linspace(0, 1, 11)
    torch.testing.assert_close(shift_time(s, 1.0), s)
    shifted = shift_time(s, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1 and torch.all(shifted[1:-1] > s[1:-1])
    assert resolution_shift(256) == pytest.approx(math.exp(0.5))
    assert resolution_shift(4096) == pytest.approx(math.exp(1.15))
    sig = sigma_schedule(10, shift=3.0)
    assert sig[0] == 1 and sig[-1] == 0 and torch.all(sig[1:] < sig[:-1])


@pytest.mark.parametrize("sampler", [EulerSampler(), OvershootEulerSampler(overshoot=1.0)])
def test_samplers_converge_as_steps_grow(sampler):
    errs = [sample_errors(sampler, steps, n=50_000) for steps in (4, 16, 64, 256)]
    mean_err, std_err = errs[-1]
    assert mean_err < 0.01 and std_err < 0.01, errs
    spreads = [e[1] for e in errs]
    assert all(a > b for a, b in zip(spreads, spreads[1:], strict=False)), errs  # error falls with every refinement


def test_euler_first_order_convergence():
    """Euler's spread error halves when the step count doubles (first-order method)."""
    e1 = sample_errors(EulerSampler(), 16)[1]
    e2 = sample_errors(EulerSampler(), 32)[1]
    assert 1.6 < e1 / e2 < 2.5, (e1, e2)


def test_overshoot_zero_is_euler():
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x = torch.randn(1000, dtype=torch.float64)
    sig = sigma_schedule(8).double()
    a = EulerSampler()(exact_velocity, x, sig, generator=g1)
    b = OvershootEulerSampler(overshoot=0.0)(exact_velocity, x, sig, generator=g2)
    assert torch.equal(a, b)


@pytest.mark.parametrize("sigma_low,sigma_next", [(0.2, 0.5), (0.0, 0.3), (0.45, 0.5), (0.7, 0.95)])
def test_renoise_keeps_the_marginal(sigma_low, sigma_next):
    g = torch.Generator().manual_seed(2)
    n = 400_000
    x0 = MU0 + S0 * torch.randn(n, dtype=torch.float64, generator=g)
    eps = torch.randn(n, dtype=torch.float64, generator=g)
    x_low = (1 - sigma_low) * x0 + sigma_low * eps
    x_next = renoise(x_low, sigma_low, sigma_next, torch.randn(n, dtype=torch.float64, generator=g))
    exp_mean = (1 - sigma_next) * MU0
    exp_var = (1 - sigma_next) ** 2 * S0**2 + sigma_next**2
    assert abs(x_next.mean().item() - exp_mean) < 0.01
    assert abs(x_next.var().item() - exp_var) < 0.01
    # the data part is carried exactly: Cov(x_next, x0) = (1 − σn)·Var(x0)
    cov = ((x_next - x_next.mean()) * (x0 - x0.mean())).mean().item()
    assert abs(cov - (1 - sigma_next) * S0**2) < 0.005


def test_renoise_rejects_going_down():
    with pytest.raises(ValueError):
        renoise(torch.zeros(3), 0.5, 0.4, torch.zeros(3))


def test_refine_one_step_is_posterior_mean():
    """One jump from σ returns E[x0 | x_σ] under the exact velocity."""
    g = torch.Generator().manual_seed(3)
    x_clean = MU0 + S0 * torch.randn(1000, dtype=torch.float64, generator=g)
    noise = torch.randn(1000, dtype=torch.float64, generator=g)
    out = refine_one_step(exact_velocity, x_clean, sigma=0.6, noise=noise)
    s = 0.6
    xs = (1 - s) * x_clean + s * noise
    var = (1 - s) ** 2 * S0**2 + s**2
    expected = MU0 + (1 - s) * S0**2 / var * (xs - (1 - s) * MU0)
    torch.testing.assert_close(out, expected)


def test_joint_state_tuple_sampling():
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(50_000, dtype=torch.float64, generator=g), torch.randn(50_000, dtype=torch.float64, generator=g))
    out = OvershootEulerSampler()(lambda s, sig: tuple(exact_velocity(a, sig) for a in s), x,
                                  sigma_schedule(32).double(), generator=g)
    assert isinstance(out, tuple) and len(out) == 2
    for part in out:
        assert abs(part.mean().item() - MU0) < 0.02


def test_sampler_determinism():
    def run():
        g = torch.Generator().manual_seed(5)
        x = torch.randn(100, generator=g)
        return OvershootEulerSampler()(exact_velocity, x, sigma_schedule(6), generator=g)

    assert torch.equal(run(), run())


def test_multi_condition_guidance():
    base = {frozenset(): torch.tensor(1.0), frozenset({"ref"}): torch.tensor(2.0),
            frozenset({"ref", "audio"}): torch.tensor(4.0), frozenset({"ref", "audio", "text"}): torch.tensor(7.0)}
    calls = []

    def predict(kept):
        calls.append(kept)
        return base[kept]

    unit = GuidanceScales({"ref": 1.0, "audio": 1.0, "text": 1.0})
    assert guided(predict, unit).item() == 7.0 and len(calls) == 1
    s = GuidanceScales({"ref": 1.5, "audio": 3.0, "text": 2.0})
    # 1 + 1.5·(2−1) + 3·(4−2) + 2·(7−4)
    assert guided(predict, s).item() == pytest.approx(1 + 1.5 + 6 + 6)
    zero = GuidanceScales({"ref": 0.0, "audio": 0.0, "text": 0.0})
    assert guided(predict, zero).item() == 1.0
    # the nested sum written out, for scales that leave some passes with weight 0
    for scales in ({"ref": 1.0, "audio": 3.0, "text": 1.0}, {"ref": 2.0, "audio": 2.0, "text": 1.0},
                   {"ref": 1.0, "audio": 1.0, "text": 4.0}, {"ref": 0.5, "audio": 0.5, "text": 0.5}):
        g = GuidanceScales(scales)
        order = g.order
        expected = base[frozenset()] + sum(
            scales[name] * (base[frozenset(order[: i + 1])] - base[frozenset(order[:i])]) for i, name in enumerate(order))
        calls.clear()
        assert guided(predict, g).item() == pytest.approx(expected.item())
        # a pass whose weight s_k − s_{k+1} is 0 is not evaluated
        weights = [1.0 - scales["ref"], scales["ref"] - scales["audio"], scales["audio"] - scales["text"], scales["text"]]
        assert sorted(calls, key=len) == [frozenset(order[:k]) for k, w in enumerate(weights) if w != 0]
    calls.clear()
    guided(predict, GuidanceScales({"ref": 1.0, "audio": 3.0, "text": 1.0}))
    assert calls == [frozenset({"ref"}), frozenset({"ref", "audio"}), frozenset(order)]  # 3 passes, not 4


def test_guidance_scales_parse():
    from avatarv.diffusion import GuidanceScales

    g = GuidanceScales.parse("audio=3, ref=1.5")
    assert dict(g.scales) == {"ref": 1.5, "audio": 3.0, "text": 1.0} and not g.is_unit()
    assert GuidanceScales.parse("").is_unit()
    for bad in ("foo=2", "audio", "audio=x"):
        with pytest.raises(ValueError, match="guidance"):
            GuidanceScales.parse(bad)
