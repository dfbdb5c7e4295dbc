"""`trainer.build_optimizer` against closed forms and a hand-written update, in float64.

What the optimiser must do (`OptimConfig`), with t = 0, 1, ... the step (optax's count before the
update), W = warmup_steps, T = max(total_steps - W, 1), eta = lr:

  schedule   eta_t = eta t / W                             for t < W   (linear warm-up from 0)
             eta_t = eta                                   for t >= W  ("constant")
             eta_t = eta (1 + cos(pi min(t - W, T) / T)) / 2  for t >= W  ("cosine", to 0 at the end)
  clip       g <- g min(1, c / ||g||)  with ||g|| the global norm over every leaf, of the RAW gradient
             (before Adam's moments), c = grad_clip (0: no clipping)
  sgd        p <- p - eta_t g
  adam       m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,  m^ = m / (1 - b1^(t+1)),
             v^ = v / (1 - b2^(t+1)),  p <- p - eta_t m^ / (sqrt(v^) + 1e-8)
  adamw      adam plus the decoupled decay: p <- p - eta_t (m^ / (sqrt(v^) + 1e-8) + lambda p)

Each test below checks one line of this in float64, to 2e-7 relative: optax computes the linear
warm-up's rate (and a constant rate joined after it) in float32 (its int32 step count promotes
the schedule to float32, a relative rounding of <= 6e-8); everything else agrees to ~1e-15. The
effect of getting a line wrong is 1 % or more (stated per test), so each test fails when its line
is broken: the warm-up removed, the cosine turned constant, the decay ignored, the clip moved
after Adam (`benchmarks/mutation/named_bugs.py` applies those bugs and records these failures).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from icl.config import OptimConfig
from icl.trainer import build_optimizer

RTOL = 2e-7  # the float32 rounding of optax's warm-up rate (module docstring); all else float64


def lr_at(config: OptimConfig, total_steps: int, t: int) -> float:
    """eta_t of the module docstring."""
    w = config.warmup_steps
    if t < w:
        return config.lr * t / w
    if config.schedule == "constant":
        return config.lr
    decay = max(total_steps - w, 1)
    return config.lr * 0.5 * (1.0 + np.cos(np.pi * min(t - w, decay) / decay))


def reference_updates(config: OptimConfig, total_steps: int, params: dict, grads: list[dict]) -> list[dict]:
    """The parameters after each step of the module docstring's update, in numpy float64."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    out = []
    for t, g in enumerate(grads):
        g = {k: np.asarray(x, np.float64) for k, x in g.items()}
        if config.grad_clip:
            norm = np.sqrt(sum(np.sum(x * x) for x in g.values()))
            g = {k: x * min(1.0, config.grad_clip / norm) for k, x in g.items()}
        eta = lr_at(config, total_steps, t)
        for k in p:
            if config.name == "sgd":
                step = g[k]
            else:
                m[k] = config.b1 * m[k] + (1 - config.b1) * g[k]
                v2[k] = config.b2 * v2[k] + (1 - config.b2) * g[k] ** 2
                m_hat, v_hat = m[k] / (1 - config.b1 ** (t + 1)), v2[k] / (1 - config.b2 ** (t + 1))
                step = m_hat / (np.sqrt(v_hat) + 1e-8)
                if config.name == "adamw":
                    step = step + config.weight_decay * p[k]
            p[k] = p[k] - eta * step
        out.append({k: x.copy() for k, x in p.items()})
    return out


def run_optimizer(config: OptimConfig, total_steps: int, params: dict, grads: list[dict]) -> list[dict]:
    """The parameters after each step of build_optimizer(config, total_steps), in float64."""
    opt = build_optimizer(config, total_steps)
    p = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
    state = opt.init(p)
    out = []
    for g in grads:
        updates, state = opt.update(jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), g), state, p)
        p = optax.apply_updates(p, updates)
        out.append(jax.tree.map(np.asarray, p))
    return out


def random_problem(seed: int, steps: int, scales=None):
    """Parameters {a [3, 2], b [4]} and `steps` gradients, step t's scaled by scales[t] (default 1)."""
    rng = np.random.default_rng(seed)
    params = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    scales = np.ones(steps) if scales is None else scales
    grads = [{k: s * rng.standard_normal(v.shape) for k, v in params.items()} for s in scales]
    return params, grads


def assert_trajectories_equal(got: list[dict], want: list[dict], start: dict) -> None:
    """Equal to RTOL times each parameter's distance travelled so far (each step's rate carries a
    relative error of at most RTOL, module docstring), plus 1e-14 of float64 rounding."""
    assert len(got) == len(want)
    before, travelled = start, {k: np.zeros_like(v) for k, v in start.items()}
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        for k in w:
            travelled[k] = travelled[k] + np.abs(w[k] - before[k])
            err = np.abs(g[k] - w[k])
            bound = RTOL * travelled[k] + 1e-14 * (1 + np.abs(w[k]))
            assert np.all(err <= bound), f"step {t}, leaf {k}: |got - want| {err} > {bound}"
        before = w


def test_lr_at_is_the_documented_schedule():
    """The closed form itself, on points computed by hand (W = 4, T = 8, eta = 2)."""
    warm_cos = OptimConfig(name="sgd", lr=2.0, warmup_steps=4, schedule="cosine", grad_clip=0.0)
    assert [lr_at(warm_cos, 12, t) for t in (0, 1, 2, 4)] == [0.0, 0.5, 1.0, 2.0]
    assert lr_at(warm_cos, 12, 8) == pytest.approx(1.0, abs=1e-15)  # half way through the decay
    assert lr_at(warm_cos, 12, 12) == pytest.approx(0.0, abs=1e-15)
    assert lr_at(OptimConfig(name="sgd", lr=2.0, warmup_steps=4, grad_clip=0.0), 12, 9) == 2.0


@pytest.mark.parametrize("warmup, schedule", [(0, "constant"), (5, "constant"), (0, "cosine"), (5, "cosine")])
def test_sgd_steps_at_the_scheduled_learning_rate(warmup, schedule):
    """SGD without clipping moves by exactly -eta_t g: every step's rate is read off the update.
    Effects guarded: no warm-up gives eta_0 = eta instead of 0; a constant schedule gives eta at
    the last step instead of eta (1 + cos(pi 14/15)) / 2 = 0.011 eta."""
    total = 20
    config = OptimConfig(name="sgd", lr=0.3, warmup_steps=warmup, schedule=schedule, grad_clip=0.0)
    params = {"w": np.zeros(3)}
    g = np.array([1.0, -2.0, 0.5])
    got = run_optimizer(config, total, params, [{"w": g}] * total)
    before = np.zeros(3)
    for t, p in enumerate(got):
        rate = (before - p["w"]) / g  # eta_t, per coordinate
        np.testing.assert_allclose(rate, lr_at(config, total, t), rtol=RTOL, atol=1e-15, err_msg=f"step {t}")
        before = p["w"]
    if warmup:
        assert np.all(got[0]["w"] == 0.0)  # eta_0 = 0: the first step does not move
    if schedule == "cosine":
        assert lr_at(config, total, total - 1) < 0.05 * config.lr


def test_warmup_then_cosine_at_every_step():
    """The learning rates of a whole warm-up + cosine run, from Adam with the gradient set to a
    constant (every coordinate's Adam step is then exactly g / (|g| + 1e-8), so p_t - p_{t+1} =
    eta_t |g| / (|g| + 1e-8)). Effects guarded: eta_0..eta_3 = 0, 0.25, 0.5, 0.75 eta (no
    warm-up: all eta); eta_10 = eta / 2 (constant: eta)."""
    total, config = 16, OptimConfig(name="adam", lr=0.01, warmup_steps=4, schedule="cosine", grad_clip=0.0)
    g = np.array([0.5, -1.5])
    got = run_optimizer(config, total, {"w": np.ones(2)}, [{"w": g}] * total)
    rates = -np.diff(np.stack([np.ones(2)] + [p["w"] for p in got]), axis=0) / (g / (np.abs(g) + 1e-8))  # [T, 2]
    want = np.array([lr_at(config, total, t) for t in range(total)])
    np.testing.assert_allclose(rates, np.stack([want, want], 1), rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(want[:5], [0.0, 0.0025, 0.005, 0.0075, 0.01], rtol=1e-15)
    assert want[10] == pytest.approx(0.005, rel=1e-12)


def test_adamw_decay_is_decoupled_and_scaled_by_the_schedule():
    """With a zero gradient Adam's step is 0 and AdamW's update is the decay alone:
    p_{t+1} = (1 - eta_t lambda) p_t exactly (decoupled: not divided by sqrt(v^)). With lambda =
    1 and eta = 0.1 the six steps shrink p by 27 % (ignoring the decay: by 0)."""
    total, config = 6, OptimConfig(name="adamw", lr=0.1, weight_decay=1.0, warmup_steps=2, schedule="cosine", grad_clip=1.0)
    params = {"a": np.array([[1.0, -2.0], [3.0, 0.5]]), "b": np.array([4.0])}
    got = run_optimizer(config, total, params, [{k: np.zeros_like(v) for k, v in params.items()}] * total)
    want = {k: np.asarray(v) for k, v in params.items()}
    for t, p in enumerate(got):
        want = {k: (1 - lr_at(config, total, t) * config.weight_decay) * v for k, v in want.items()}
        for k in want:
            np.testing.assert_allclose(p[k], want[k], rtol=RTOL, err_msg=f"step {t}, leaf {k}")
    assert got[-1]["b"][0] < 0.8 * 4.0  # the decay did act


def test_adam_ignores_weight_decay_and_adamw_is_adam_at_zero_decay():
    params, grads = random_problem(3, 5)
    adam = run_optimizer(OptimConfig(name="adam", weight_decay=0.5, lr=0.01), 5, params, grads)
    adamw0 = run_optimizer(OptimConfig(name="adamw", weight_decay=0.0, lr=0.01), 5, params, grads)
    assert_trajectories_equal(adam, adamw0, params)


def test_clipping_acts_on_the_raw_gradient_before_adam():
    """Adam's first step is g / (|g| + 1e-8) = sign(g) whatever the scale of g, so with clipping
    before Adam the first update is -eta sign(g) (norm eta sqrt(10) = 3.2 at eta = 1), while a clip
    after Adam would cut it to norm c = 0.1. Later steps see the clip through the moments: a
    gradient of norm 100 clipped to 0.1 weighs as much in m and v as a gradient of norm 0.1."""
    config = OptimConfig(name="adam", lr=1.0, b2=0.98, grad_clip=0.1)
    params, grads = random_problem(5, 6, scales=[100.0, 0.01, 100.0, 0.02, 50.0, 0.01])
    got = run_optimizer(config, 6, params, grads)
    norm = np.sqrt(sum(np.sum(g * g) for g in grads[0].values()))
    for k in params:
        clipped = grads[0][k] * 0.1 / norm
        np.testing.assert_allclose(params[k] - got[0][k], clipped / (np.abs(clipped) + 1e-8), rtol=RTOL)  # ~sign(g)
    assert_trajectories_equal(got, reference_updates(config, 6, params, grads), params)


def test_clipping_uses_the_global_norm_over_every_leaf():
    """SGD at eta = 1: the update is g c / ||g|| with ||g|| over all leaves (not per leaf)."""
    config = OptimConfig(name="sgd", lr=1.0, grad_clip=1.0)
    params = {"a": np.zeros(2), "b": np.zeros(1)}
    grads = [{"a": np.array([3.0, 0.0]), "b": np.array([4.0])}]  # global norm 5
    got = run_optimizer(config, 1, params, grads)
    np.testing.assert_allclose(got[0]["a"], [-0.6, 0.0], rtol=RTOL)
    np.testing.assert_allclose(got[0]["b"], [-0.8], rtol=RTOL)
    below = run_optimizer(config, 1, params, [{"a": np.array([0.3, 0.0]), "b": np.array([0.4])}])
    np.testing.assert_allclose(below[0]["b"], [-0.4], rtol=RTOL)  # norm 0.5 < 1: untouched


@pytest.mark.parametrize("config", [
    OptimConfig(name="adam", lr=0.05, b2=0.98, grad_clip=1.0),
    OptimConfig(name="adamw", lr=0.05, weight_decay=0.1, grad_clip=0.5, warmup_steps=3, schedule="cosine"),
    OptimConfig(name="adamw", lr=0.02, b1=0.5, b2=0.9, weight_decay=0.2, grad_clip=0.0, schedule="cosine"),
    OptimConfig(name="sgd", lr=0.1, grad_clip=2.0, warmup_steps=4),
], ids=["adam-clip", "adamw-warmup-cosine-clip", "adamw-cosine-noclip", "sgd-warmup-clip"])
def test_whole_trajectory_matches_the_hand_written_update(config):
    """Twelve steps of gradients whose norms straddle the clip: every parameter after every step
    equals the module docstring's update (numpy float64)."""
    total = 12
    params, grads = random_problem(11, total, scales=np.geomspace(0.05, 20.0, total)[np.random.default_rng(1).permutation(total)])
    assert_trajectories_equal(run_optimizer(config, total, params, grads), reference_updates(config, total, params, grads), params)
