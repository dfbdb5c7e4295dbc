"""icl.analysis.chain_of_thought: the token layout, the layer against token-by-token attention, the
exact multi-step GD construction (float64, ~1e-12, against the project's GD solver), the no-CoT
closed forms (against Monte Carlo; even terms only add error), the step fits (exact on GD), the
training routine (both objectives learn; the no-CoT layer reaches the one-step optimum and not
below), the evaluation on the construction, and the verdict rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import solvers
from icl.analysis import chain_of_thought as ct

SMALL = ct.Setting(d=3, n_ctx=12, steps=4, lr=0.5)


def _batch(setting=SMALL, n=64, seed=0):
    return ct.sample(jax.random.key(seed), setting, n)


def _random_params(setting, seed=1, scale=0.3):
    return ct.init_params(jax.random.key(seed), setting, scale)


def test_sample_and_token_layout():
    x, y, w = _batch()
    assert x.dtype == jnp.float64  # the tests run in float64 (conftest)
    np.testing.assert_allclose(y, np.einsum("bnd,bd->bn", x, w), atol=1e-12)
    s = ct.slots(3)
    z = ct.context_tokens(x, y)
    assert z.shape == (64, 12, SMALL.width) and SMALL.width == 8
    np.testing.assert_array_equal(z[..., s["x"]], x)
    np.testing.assert_array_equal(z[..., s["y"]], y)
    assert not np.any(z[..., s["w"]]) and not np.any(z[..., s["c"]])
    u = ct.chain_tokens(w)
    np.testing.assert_array_equal(u[..., s["w"]], w)
    assert np.all(u[..., s["c"]] == 1) and not np.any(u[..., s["x"]]) and not np.any(u[..., s["y"]])
    np.testing.assert_allclose(ct.context_moment(x, y), np.einsum("bnd,bne->bde", z, z), atol=1e-12)


def _attention_by_token(params, x, y, ws):
    """The layer written token by token: at chain position j, f(u_j) = u_j + (1/n) sum over the
    context tokens and chain tokens 0..j of (PV z_t)(z_t^T KQ u_j); its w slot."""
    kq, pv = np.asarray(params["kq"]), np.asarray(params["pv"])
    z = np.asarray(ct.context_tokens(x, y))
    u = np.asarray(ct.chain_tokens(ws))
    n, s = x.shape[1], ct.slots(x.shape[2])
    out = np.zeros(ws.shape)
    for b in range(ws.shape[0]):
        for j in range(ws.shape[1]):
            keys = np.concatenate([z[b], u[b, : j + 1]])
            f = u[b, j] + sum((pv @ t) * (t @ kq @ u[b, j]) for t in keys) / n
            out[b, j] = f[s["w"]]
    return out


def test_next_estimates_and_rollout_are_the_attention_layer():
    x, y, _ = _batch(n=5)
    params = _random_params(SMALL)
    ws = jax.random.normal(jax.random.key(2), (5, 4, 3))
    np.testing.assert_allclose(ct.next_estimates(params, x, y, ws), _attention_by_token(params, x, y, ws), atol=1e-12)
    path = ct.rollout(params, x, y, 4)
    assert path.shape == (5, 5, 3) and not np.any(path[:, 0])
    # autoregressive: each estimate is the layer's output with the earlier estimates as chain tokens
    np.testing.assert_allclose(path[:, 1:], _attention_by_token(params, x, y, path[:, :-1]), atol=1e-12)
    w0 = jnp.ones(3)
    np.testing.assert_allclose(ct.rollout(params, x, y, 2, w0=w0)[:, 0], np.ones((5, 3)))


def test_gd_construction_is_k_steps_of_gd_in_float64():
    x, y, w = _batch(n=128)
    params = ct.gd_params(3, 0.5)
    path = ct.rollout(params, x, y, 12)
    gd = ct.gd_path(x, y, 0.5, 12)
    np.testing.assert_allclose(path, gd, atol=1e-12, rtol=0)
    for k in (1, 4, 12):  # the project's solver, same convention (L = 1/(2n) |Xw - y|^2, step -eta grad)
        np.testing.assert_allclose(gd[:, k], solvers.gd_weights(x, y, 0.5, k), atol=1e-12)
    np.testing.assert_allclose(ct.next_estimates(params, x, y, gd[:, :-1]), gd[:, 1:], atol=1e-12, rtol=0)
    # from a nonzero start too, and it converges to w* (n > d, noiseless, stable eta)
    np.testing.assert_allclose(ct.rollout(params, x, y, 3, w0=w), ct.gd_path(x, y, 0.5, 3, w0=w), atol=1e-12)
    assert ct.relative_error(ct.rollout(params, x, y, 200)[:, -1], w) < 1e-6


def test_gd_construction_float32():
    with jax.enable_x64(False):
        x, y, _ = _batch(n=64)
        path = ct.rollout(ct.gd_params(3, 0.5), x, y, 8)
        assert path.dtype == jnp.float32
        np.testing.assert_allclose(path, ct.gd_path(x, y, 0.5, 8), atol=2e-5)


def test_grad_ls_matches_autodiff():
    x, y, _ = _batch(n=4)
    w = jax.random.normal(jax.random.key(3), (4, 3))
    loss = lambda w_: jnp.sum((jnp.einsum("bnd,bd->bn", x, w_) - y) ** 2) / (2 * x.shape[1])
    np.testing.assert_allclose(ct.grad_ls(x, y, w), jax.grad(loss)(w), atol=1e-12)
    ws = jnp.stack([w, 2 * w], 1)
    np.testing.assert_allclose(ct.grad_ls(x, y, ws)[:, 1], ct.grad_ls(x, y, 2 * w), atol=1e-12)


@pytest.mark.parametrize("lr", [0.3, 0.7])
def test_one_step_error_closed_form_against_monte_carlo(lr):
    setting = ct.Setting(d=4, n_ctx=10, steps=1, lr=lr)
    x, y, w = ct.sample(jax.random.key(4), setting, 200000)
    w1 = ct.rollout(ct.gd_params(4, lr), x, y, 1)[:, 1]
    per_task = np.sum((np.asarray(w1) - np.asarray(w)) ** 2, -1)
    expected = ct.one_step_error(4, 10, lr) * np.sum(np.asarray(w) ** 2, -1)
    diff = per_task - expected
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size)


def test_no_cot_optimum_minimises_the_one_step_error_and_even_terms_add_error():
    d, n = 4, 10
    gamma, err = ct.no_cot_optimum(d, n)
    assert err == pytest.approx(ct.one_step_error(d, n, gamma), abs=1e-14) == pytest.approx((d + 1) / (n + d + 1))
    grid = np.linspace(0.0, 1.5, 301)
    assert grid[np.argmin([ct.one_step_error(d, n, g) for g in grid])] == pytest.approx(gamma, abs=0.005)
    setting = ct.Setting(d=d, n_ctx=n, steps=1)
    x, y, w = ct.sample(jax.random.key(5), setting, 100000)
    best = ct.gd_params(d, gamma)
    assert ct.relative_error(ct.rollout(best, x, y, 1)[:, 1], w) == pytest.approx(err, rel=0.02)
    s = ct.slots(d)
    x_terms = {k: np.array(v) for k, v in best.items()}
    x_terms["kq"][s["x"], s["c"]] = 0.3  # scores + 0.3 sum(x_t): terms in x only
    y2_terms = {k: np.array(v) for k, v in best.items()}
    y2_terms["pv"][s["w"], s["y"]] = 0.2  # values + 0.2 y_t: terms in y_t^2
    for other in (x_terms, y2_terms):  # even in y: they only add error
        got = ct.relative_error(ct.rollout(other, x, y, 1)[:, 1], w)
        assert got > err * 1.02


def test_relative_error_and_step_fits_are_exact_on_gd():
    x, y, w = _batch(n=256)
    gd = ct.gd_path(x, y, 0.5, 6)
    errs = ct.relative_error(gd, w)
    assert errs.shape == (7,) and errs[0] == pytest.approx(1.0) and np.all(np.diff(errs) < 0)
    assert float(ct.relative_error(w, w)) == 0.0
    fit = ct.step_fit(gd, x, y)
    np.testing.assert_allclose(fit["eta"], 0.5, atol=1e-12)
    np.testing.assert_allclose(fit["cos"], 1.0, atol=1e-12)
    np.testing.assert_allclose(fit["unexplained"], 0.0, atol=1e-20)
    # an update that is not along the gradient: cos < 1, unexplained share > 0
    bent = gd.at[:, 1].add(0.1 * jax.random.normal(jax.random.key(6), gd[:, 1].shape))
    fit = ct.step_fit(bent, x, y)
    assert fit["cos"][0] < 0.999 and fit["unexplained"][0] > 1e-3
    h = jnp.einsum("bnd,bn->bd", x, y) / x.shape[1]
    one = ct.one_step_fit(0.7 * h, x, y)
    assert one["gamma"] == pytest.approx(0.7) and one["cos"] == pytest.approx(1.0) and one["unexplained"] < 1e-24


def test_losses_are_zero_at_the_constructions():
    x, y, w = _batch(n=32)
    assert float(ct.cot_loss(ct.gd_params(3, SMALL.lr), x, y, SMALL)) < 1e-24
    assert float(ct.cot_loss(ct.gd_params(3, 0.9 * SMALL.lr), x, y, SMALL)) > 1e-4  # the wrong eta
    gamma, err = ct.no_cot_optimum(3, 12)
    loss = float(ct.no_cot_loss(ct.gd_params(3, gamma), x, y, w))
    w_hat = gamma * jnp.einsum("bnd,bn->bd", x, y) / 12  # one GD step at gamma
    assert loss == pytest.approx(float(ct.relative_error(w_hat, w)) * float(np.mean(np.sum(np.asarray(w) ** 2, -1))), rel=1e-12)
    assert float(ct.objective("no_cot", SMALL)(ct.gd_params(3, gamma), (x, y, w))) == loss
    # answer-only supervision: at the GD construction, the mean over steps 1..K of |w_k^GD - w*|^2
    gd = ct.gd_path(x, y, SMALL.lr, SMALL.steps)
    expected = float(np.mean(np.sum((np.asarray(gd[:, 1:]) - np.asarray(w)[:, None]) ** 2, -1)))
    assert float(ct.outcome_loss(ct.gd_params(3, SMALL.lr), x, y, w, SMALL)) == pytest.approx(expected, rel=1e-12)
    assert float(ct.objective("cot_outcome", SMALL)(ct.gd_params(3, SMALL.lr), (x, y, w))) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="objective must be one of"):
        ct.objective("both", SMALL)


def test_training_learns_both_objectives():
    """Short float32 runs: the CoT layer fits the GD trajectory (held-out objective down > 100x from
    its start) and the no-CoT layer reaches the one-step optimum (d (d + 1) / (n + d + 1) per task
    with |w*|^2 ~ d) and not below it."""
    spec = ct.TrainSpec(steps=600, batch_size=256, lr=1e-2, log_every=200, eval_tasks=1024)
    cot = ct.train(SMALL, spec, "cot", seed=0)
    assert cot["finite"] and cot["steps"] == [0, 200, 400, 600] and len(cot["train_loss"]) == 3
    assert cot["params"]["kq"].dtype == np.float32
    assert cot["loss"][-1] < cot["loss"][0] / 100
    no_cot = ct.train(SMALL, spec, "no_cot", seed=0)
    optimum = 3 * ct.no_cot_optimum(3, 12)[1]
    assert optimum * 0.9 < no_cot["loss"][-1] < optimum * 1.1
    outcome = ct.train(SMALL, spec, "cot_outcome", seed=0)  # answer-only chain: learns, beats the one-step optimum
    assert outcome["finite"] and outcome["loss"][-1] < 0.5 * outcome["loss"][0]
    path = ct.rollout(jax.tree.map(jnp.asarray, outcome["params"]), *_batch(n=2000, seed=9)[:2], SMALL.steps)
    assert ct.relative_error(path, _batch(n=2000, seed=9)[2])[-1] < 0.8 * ct.no_cot_optimum(3, 12)[1]
    again = ct.train(SMALL, spec, "no_cot", seed=0)
    np.testing.assert_array_equal(again["params"]["pv"], no_cot["params"]["pv"])  # explicit keys: reproducible
    with pytest.raises(ValueError, match="multiple of log_every"):
        ct.train(SMALL, ct.TrainSpec(steps=250, log_every=100), "cot", seed=0)


def test_training_in_float64():
    spec = ct.TrainSpec(steps=100, batch_size=64, log_every=50, eval_tasks=128)
    out = ct.train(SMALL, spec, "cot", seed=1, dtype="float64")
    assert out["params"]["kq"].dtype == np.float64 and out["loss"][-1] < out["loss"][0]


def test_evaluate_on_the_constructions_and_the_checks():
    setting = ct.Setting(d=3, n_ctx=20, steps=5, lr=0.6)
    gamma, err = ct.no_cot_optimum(3, 20)
    ev = ct.evaluate(setting, ct.gd_params(3, 0.6), ct.gd_params(3, gamma), jax.random.key(7), 20000)
    assert len(ev["cot_error"]) == 11 and ev["cot_finite"]
    np.testing.assert_allclose(ev["cot_error"], ev["gd_error"], rtol=1e-10)
    np.testing.assert_allclose(ev["cot_teacher"], 0.0, atol=1e-20)
    np.testing.assert_allclose(ev["cot_steps"]["eta"], 0.6, atol=1e-10)
    assert ev["no_cot_error"] == pytest.approx(err, rel=0.03) and ev["no_cot_fit"]["gamma"] == pytest.approx(gamma)
    assert ev["least_squares"] < 1e-20 and ev["one_step"]["no_cot_optimum_error"] == err
    assert ct.seed_checks(setting, ev) == {"no_cot_at_one_step": True, "recovers": True, "matches_gd": True,
                                           "keeps_descending": True}
    # a CoT "layer" that does one GD step at the wrong rate and then stops is caught
    slow = ct.evaluate(setting, ct.gd_params(3, 0.2), ct.gd_params(3, gamma), jax.random.key(7), 4000)
    checks = ct.seed_checks(setting, slow)
    assert not checks["matches_gd"] and not checks["recovers"]
    # no CoT layer given: no no-CoT numbers
    assert "no_cot_error" not in ct.evaluate(setting, ct.gd_params(3, 0.6), None, jax.random.key(8), 100)


def test_verdict_rule():
    good = {"no_cot_at_one_step": True, "recovers": True, "matches_gd": True, "keeps_descending": True}
    assert ct.verdict([good] * 3) == "held"
    assert ct.verdict([good, good, {**good, "keeps_descending": False}]) == "held in part"
    assert ct.verdict([good, {**good, "no_cot_at_one_step": False}]) == "held in part"
    failed = {**good, "recovers": False}
    assert ct.verdict([good, failed, failed]) == "did not hold"
    assert ct.verdict([good, failed]) == "did not hold"  # not a majority
    assert ct.verdict([good, good, failed]) == "held in part"


def test_gd_blocks_read_the_construction():
    blocks = ct.gd_blocks(ct.gd_params(4, 0.35), 4)
    assert blocks["eta_xw"] == pytest.approx(0.35) and blocks["eta_yc"] == pytest.approx(0.35)
    assert blocks["off_block_share"] == 0.0
    # the scale symmetry PV -> a PV, KQ -> KQ / a leaves the rates alone
    scaled = {"kq": ct.gd_params(4, 0.35)["kq"] / 3.0, "pv": 3.0 * ct.gd_params(4, 0.35)["pv"]}
    assert ct.gd_blocks(scaled, 4)["eta_xw"] == pytest.approx(0.35)
    noisy = {k: np.array(v) for k, v in ct.gd_params(4, 0.35).items()}
    noisy["pv"][ct.slots(4)["w"], ct.slots(4)["y"]] = 0.1  # reachable, outside the blocks
    noisy["pv"][ct.slots(4)["x"], ct.slots(4)["x"]] = 5.0  # not reachable: ignored
    share = ct.gd_blocks(noisy, 4)["off_block_share"]
    assert 0 < share < 0.1
