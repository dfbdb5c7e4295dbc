"""icl.analysis.kernel_attention: the functional-GD step (against a loop), its closed-form eta
(against a grid search), the exp bandwidth fit (against a grid), the GP posterior mean (against the
formula, ridge for the linear kernel, and the conditional mean under the task's covariance), the
Bayes prediction beating every functional-GD step on GP data, the cosine, the weight alignment,
the matched-wins and verdict rules, and the summary on a hand-made construction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl import models, runs, solvers, tasks, trainer
from icl.analysis import kernel_attention as ka
from icl.config import ExperimentConfig, TrainConfig
from icl.tasks.kernel_gp import KERNELS

D, N = 3, 8
H = {"linear": lambda s: s, "relu": lambda s: np.maximum(s, 0.0), "exp": np.exp}


def _task(**fields):
    return tasks.get("kernel_gp", **{"d": D, "n_ctx": N, "noise_std": 0.1, **fields})


@pytest.mark.parametrize("kind", KERNELS)
def test_functional_gd_is_the_kernel_sum(kind):
    batch = _task(kernel=kind, n_query=2).sample(jax.random.key(0), 4)
    x, y, q = (np.asarray(v) for v in (batch.x_ctx, batch.y_ctx, batch.x_query))
    expected = np.zeros((4, 2))
    for b in range(4):
        for m in range(2):
            expected[b, m] = 0.4 * sum(H[kind](0.6 * q[b, m] @ x[b, i]) * y[b, i] for i in range(N))
    np.testing.assert_allclose(ka.functional_gd(batch.x_ctx, batch.y_ctx, batch.x_query, kind, 0.6, 0.4), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="kind must be one of"):
        ka.functional_gd(batch.x_ctx, batch.y_ctx, batch.x_query, "tanh")


def test_one_gd_step_is_the_linear_functional_gd_step():
    """One GD step from w = 0 at rate lr (solvers.gd: w = lr / N X^T y) is eta = lr / N."""
    batch = _task(kernel="linear").sample(jax.random.key(1), 6)
    np.testing.assert_allclose(ka.functional_gd(batch.x_ctx, batch.y_ctx, batch.x_query, "linear", 1.0, 0.7 / N),
                               solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=0.7), rtol=1e-12)


@pytest.mark.parametrize("kind", KERNELS)
def test_closed_form_eta_is_the_grid_minimum(kind):
    batch = _task(kernel=kind).sample(jax.random.key(2), 3000)
    g = ka.functional_gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query, kind)
    eta = ka.optimal_eta(g, batch.y_query)
    grid = np.linspace(eta - 0.5 * abs(eta) - 0.1, eta + 0.5 * abs(eta) + 0.1, 2001)
    losses = [ka.loss(e * g, batch.y_query) for e in grid]
    assert eta == pytest.approx(grid[int(np.argmin(losses))], abs=2 * (grid[1] - grid[0]))
    assert ka.loss(eta * g, batch.y_query) <= min(losses) + 1e-15
    assert ka.optimal_eta(np.zeros((3, 1)), np.ones((3, 1))) == 0.0
    with pytest.raises(ValueError, match="must have the same shape"):
        ka.optimal_eta(np.ones((3, 1)), np.ones(3))


def test_fit_functional_gd_exp_scale_is_the_grid_minimum_and_homogeneous_kinds_take_scale_one():
    batch = _task(kernel="exp", kernel_scale=0.5).sample(jax.random.key(3), 4000)
    scale, eta = ka.fit_functional_gd(batch, "exp")

    def best_loss(a):
        g = ka.functional_gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query, "exp", a)
        return ka.loss(ka.optimal_eta(g, batch.y_query) * g, batch.y_query)

    grid = 10.0 ** np.linspace(*ka.LOG10_SCALE_RANGE, 301)
    fitted = best_loss(scale)
    assert fitted <= min(best_loss(a) for a in grid) + 1e-9
    g = ka.functional_gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query, "exp", scale)
    assert eta == pytest.approx(ka.optimal_eta(g, batch.y_query), rel=1e-12)
    for kind in ("linear", "relu"):  # h(a s) = a h(s): a only rescales eta
        a1, e1 = ka.fit_functional_gd(batch, kind)
        assert a1 == 1.0
        g1 = ka.functional_gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query, kind, 2.5)
        assert ka.optimal_eta(g1, batch.y_query) * 2.5 == pytest.approx(e1, rel=1e-10)


@pytest.mark.parametrize("kind", KERNELS)
def test_gp_posterior_mean_is_kernel_ridge(kind):
    batch = _task(kernel=kind, n_query=2).sample(jax.random.key(4), 5)
    x, y, q = (np.asarray(v, np.float64) for v in (batch.x_ctx, batch.y_ctx, batch.x_query))
    got = ka.gp_posterior_mean(batch.x_ctx, batch.y_ctx, batch.x_query, kind, 0.8, 0.05)
    for b in range(5):
        k = H[kind](0.8 * x[b] @ x[b].T)
        kq = H[kind](0.8 * q[b] @ x[b].T)
        np.testing.assert_allclose(got[b], kq @ np.linalg.solve(k + 0.05 * np.eye(N), y[b]), rtol=1e-9, atol=1e-12)
    if kind == "linear":  # the linear kernel c x . x' with ridge r is ridge regression at lam = r / c
        np.testing.assert_allclose(got, solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=0.05 / 0.8), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kind", KERNELS)
def test_bayes_prediction_is_the_conditional_mean_under_the_task_covariance(kind):
    task = _task(kernel=kind, kernel_scale=0.5 if kind == "exp" else 1.0, n_query=2)
    batch = task.sample(jax.random.key(5), 6)
    got = ka.bayes_prediction(task, batch)
    if kind != "relu":  # a PSD kernel: kernel ridge with the true kernel and ridge noise^2 + jitter
        np.testing.assert_allclose(got, ka.gp_posterior_mean(batch.x_ctx, batch.y_ctx, batch.x_query, kind,
                                                             task.kernel_scale, task.diagonal), rtol=1e-8, atol=1e-12)
    x_all = np.concatenate([np.asarray(batch.x_ctx), np.asarray(batch.x_query)], 1)
    cov = np.asarray(task.label_covariance(jnp.asarray(x_all)))
    for b in range(6):
        c_cc = cov[b, :N, :N] + task.noise_std**2 * np.eye(N)
        np.testing.assert_allclose(got[b], cov[b, N:, :N] @ np.linalg.solve(c_cc, np.asarray(batch.y_ctx[b])), rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="needs a kernel_gp task"):
        ka.bayes_prediction(tasks.get("linear", d=D, n_ctx=N), batch)


@pytest.mark.parametrize("kind", KERNELS)
def test_bayes_beats_every_functional_gd_step_on_gp_data(kind):
    """The conditional mean is the best predictor: on 20k test tasks its loss is below every fitted
    functional-GD step's (the gaps here are > 10 standard errors, see the printed losses)."""
    task = _task(kernel=kind, kernel_scale=0.5 if kind == "exp" else 1.0)
    validation, test = task.sample(jax.random.key(6), 5000), task.sample(jax.random.key(7), 20000)
    preds, fitted = ka.predictors(task, validation, test)
    losses = {name: ka.loss(p, test.y_query) for name, p in preds.items()}
    assert set(fitted) == {*KERNELS, "data"} and losses["zero"] == max(losses.values())
    for k in (*KERNELS, "data"):
        assert losses["bayes"] < losses[f"fgd_{k}"]
    if kind != "exp":  # a homogeneous kernel: the data's own step is the fitted one
        np.testing.assert_allclose(preds["fgd_data"], preds[f"fgd_{kind}"], rtol=1e-9)
    else:  # the fitted bandwidth is at least as good as the data's own on the validation tasks' optimum
        assert fitted["data"]["scale"] == 0.5 and fitted["exp"]["scale"] != 0.5
    # a floor: the query noise alone costs 1/2 noise_std^2
    assert losses["bayes"] > 0.5 * task.noise_std**2 * 0.9


def test_cosine():
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    assert ka.cosine(a, 3 * a) == pytest.approx(1.0) and ka.cosine(a, -a) == pytest.approx(-1.0)
    assert ka.cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    assert ka.cosine(np.zeros(2), np.ones(2)) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        ka.cosine(np.ones(2), np.ones(3))


def test_weight_alignment_detects_departures_from_the_construction():
    base = ka.construction(D, "exp", 0.5, 0.2)
    w = ka.weight_alignment(base, D)
    assert w["score_cos"] == pytest.approx(1.0) and w["value_cos"] == pytest.approx(1.0)
    assert w["score_a"] == pytest.approx(0.5) and w["eta_a"] == pytest.approx(0.1)
    flipped = dict(base, value=-base["value"], query=-base["query"])  # the sign-flipped pair
    w = ka.weight_alignment(flipped, D)
    assert w["score_cos"] == pytest.approx(-1.0) and w["value_cos"] == pytest.approx(-1.0)
    leaky = dict(base, key=base["key"] + np.eye(D + 1)[None] * np.array([0, 0, 0, 1.0]))  # y_i in the keys
    leaky["query"] = base["query"] + 0.3 * np.ones((1, D + 1, D + 1))
    assert ka.weight_alignment(leaky, D)["score_cos"] < 0.99


def test_matched_wins_and_the_verdict_rule():
    clean = {"data": "relu", "linear": [0.5, 0.51], "relu": [0.30, 0.31], "exp": [0.40, 0.41]}
    r = ka.matched_wins(clean)
    assert r["best"] == "relu" and r["separated"] == {"linear": True, "exp": True}
    overlap = {"data": "relu", "linear": [0.5, 0.51], "relu": [0.30, 0.42], "exp": [0.40, 0.41]}
    r2 = ka.matched_wins(overlap)
    assert r2["best"] == "relu" and r2["separated"] == {"linear": True, "exp": False}

    def row(data, order):  # losses whose best h is order[0], cleanly separated
        return ka.matched_wins({"data": data, order[0]: [0.1, 0.11], order[1]: [0.2, 0.21], order[2]: [0.3, 0.31]})

    rows = {k: row(k, (k, *[o for o in KERNELS if o != k])) for k in KERNELS}
    good = {k: [0.99, 0.98] for k in KERNELS}
    assert ka.verdict(rows, good) == "held"
    assert ka.verdict(rows, dict(good, exp=[0.9, 0.9])) == "held in part"  # the cosine bar
    part = dict(rows, exp={**rows["exp"], "separated": {"linear": True, "relu": False}})
    assert ka.verdict(part, good) == "held in part"  # exp wins on the mean but the seeds overlap
    two_lost = dict(rows, exp=row("exp", ("relu", "exp", "linear")), relu=row("relu", ("linear", "relu", "exp")))
    assert ka.verdict(two_lost, good) == "did not hold"
    one_lost = dict(rows, exp=row("exp", ("relu", "exp", "linear")))
    assert ka.verdict(one_lost, good) == "held in part"


def test_summarise_on_a_hand_made_construction():
    """A 1-layer relu-attention LSA set to the relu functional-GD step at the fitted eta: its loss is
    that step's to float64 precision, its prediction cosine with it 1, its weights aligned."""
    task = _task(kernel="relu")
    config = ExperimentConfig(
        name="t", task=task, model=models.ModelConfig(n_layers=1, attention="relu"),
        train=TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=10, ckpt_every=10, eval_tasks=64,
                          final_eval_tasks=2000, dtype="float64"),
        compare_against=("gd",),
    )
    validation = task.sample(trainer.heldout_key(config, trainer.HeldOut.TUNE), 2000)
    scale, eta = ka.fit_functional_gd(validation, "relu")
    model = config.model.build(D)
    for name, value in ka.construction(D, "relu", scale, eta).items():
        getattr(model.layers[0], name)[...] = jnp.asarray(value)
    params = runs.stack_seeds([nnx.to_pure_dict(nnx.state(model, nnx.Param))] * 2)
    summary = trainer.final_table(config, params, config.compare_against, config.train.final_eval_tasks)
    out = ka.summarise(config, summary, params, n_validation=2000)
    base, m = out["baselines"]["loss"], out["model"]
    assert out["data"] == "relu" and out["attention"] == "relu" and out["n_tasks"] == 2000
    assert m["loss"]["mean"] == pytest.approx(base["fgd_relu"], rel=1e-9)
    assert m["cos_own_fgd"]["mean"] == pytest.approx(1.0, abs=1e-12)
    assert m["over_own_fgd"]["mean"] == pytest.approx(1.0, rel=1e-9)
    assert m["weights"]["score_cos"]["mean"] == pytest.approx(1.0) and m["weights"]["value_cos"]["mean"] == pytest.approx(1.0)
    assert summary["model"]["loss"][0] == pytest.approx(m["loss"]["mean"], rel=1e-9)  # the same test tasks
    assert base["bayes"] < base["fgd_relu"] < base["zero"]
    per_task = out["_per_task"]  # what the driver pairs: the seed-mean model's per-task losses and each predictor's
    assert per_task["model"].shape == (2000,) and float(per_task["model"].mean()) == pytest.approx(m["loss"]["mean"], rel=1e-9)
    assert float(per_task["bayes"].mean()) == pytest.approx(base["bayes"], rel=1e-9)


def test_paired_difference():
    a, b = np.array([1.0, 2.0, 4.0, 3.0]), np.array([0.5, 2.5, 3.0, 3.0])
    out = ka.paired_difference(a, b)
    assert out["mean"] == pytest.approx(0.25)  # differences 0.5, -0.5, 1, 0
    assert out["se"] == pytest.approx(np.std(a - b) / 2)
