"""icl.analysis.depth: layer-by-layer comparison, solver losses, the plateau filter, diverged runs."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from icl import constructions, experiments, runs, train
from icl.analysis import depth

HP = {"gd_lr": 0.8, "gd_plus_plus_lr": 0.9, "gd_plus_plus_gamma": 0.1}


@pytest.fixture(scope="module")
def stack():
    base = experiments.get("tiny")
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, n_layers=2, init_scale=0.3),
                                 train=dataclasses.replace(base.train, n_seeds=2))
    return config, runs.initial_params(config), config.task.sample(jax.random.key(4), 64)


def test_compare_layers_matches_layer_l_with_l_solver_steps(stack):
    config, params, batch = stack
    out = depth.compare_layers(config, params, batch, HP)
    assert len(out["layers"]) == 2 and out["final"] == out["layers"][-1]
    for i, row in enumerate(out["layers"]):
        assert row.keys() >= {"loss", "gd_loss", "gd_plus_plus_loss", "model_cos_gd", "preds_diff_gd_plus_plus"}
        assert len(row["loss"]) == 2 and len(row["model_cos_gd"]) == 2  # per seed
        assert row["gd_loss"] == pytest.approx(depth.solver_losses(batch, i + 1, HP)["gd_loss"], rel=1e-10)
        assert row["gd_plus_plus_loss"] == pytest.approx(depth.solver_losses(batch, i + 1, HP)["gd_plus_plus_loss"], rel=1e-10)
        assert all(-1 <= c <= 1 for c in row["model_cos_gd"])


def numpy_gd_and_gd_plus_plus(batch, steps: int, lr: float, gamma: float) -> list[dict]:
    """After every step k = 1..steps of GD++ at (lr, gamma) in numpy float64 (gamma = 0: GD from
    w = 0), independently of icl: with residuals r (start y), inputs X (start the context) and
    the query map T (x_q -> x_q T, start I), one step is
        r <- r - (lr / N) X X^T r,   X <- X (I - gamma X^T X),   T <- T (I - gamma X^T X),
    and the prediction accumulates y_hat = x_q . v with v += (lr / N) T X^T r (taken before the
    update), so v = d y_hat / d x_q (the sensitivity). [{"y": [B, M], "v": [B, d]}] per step."""
    x, r, xq = (np.array(a, np.float64) for a in (batch.x_ctx, batch.y_ctx, batch.x_query))
    n, d = x.shape[1:]
    t, v, out = np.broadcast_to(np.eye(d), (len(x), d, d)).copy(), np.zeros((len(x), d)), []
    for _ in range(steps):
        xtr = np.einsum("bnd,bn->bd", x, r)
        v = v + (lr / n) * np.einsum("bde,be->bd", t, xtr)
        cov = np.einsum("bnd,bne->bde", x, x)
        r = r - (lr / n) * np.einsum("bnd,bd->bn", x, xtr)
        shrink = np.eye(d) - gamma * cov
        x, t = x @ shrink, t @ shrink
        out.append({"y": np.einsum("bmd,bd->bm", xq, v), "v": v})
    return out


def test_compare_layers_against_numpy_on_the_constructions(stack):
    """Seed 0 is the 2-layer GD construction at HP's GD rate, seed 1 the GD++ construction at HP's
    (lr, gamma): every number of every layer's row equals a numpy computation of l steps of GD and
    GD++ (not the library's solvers): losses, preds_diff, model_cos and model_diff of each seed
    against each solver. float64 throughout (sums of <= 64 x 6 products: ~1e-15); tolerance 1e-10
    relative, 1e-12 absolute for the zeros, far below the GD vs GD++ gaps (checked: losses > 1 %
    apart, preds_diff and model_diff > 1e-3)."""
    config, _, batch = stack
    gd_model = constructions.gd_model(3, 5, lr=HP["gd_lr"], layers=2)
    pp_model = constructions.gd_plus_plus_model(3, 5, lr=HP["gd_plus_plus_lr"], gamma=HP["gd_plus_plus_gamma"], layers=2)
    params = runs.stack_seeds([nnx.to_pure_dict(nnx.state(m, nnx.Param)) for m in (gd_model, pp_model)])
    out = depth.compare_layers(config, params, batch, HP)
    gd = numpy_gd_and_gd_plus_plus(batch, 2, HP["gd_lr"], 0.0)
    pp = numpy_gd_and_gd_plus_plus(batch, 2, HP["gd_plus_plus_lr"], HP["gd_plus_plus_gamma"])
    yq = np.asarray(batch.y_query, np.float64)

    def close(got, want):
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)

    for i, row in enumerate(out["layers"]):
        seeds = (gd[i], pp[i])  # what each seed's model computes after layer i (0-based)
        losses = {name: 0.5 * np.mean((ref[i]["y"] - yq) ** 2) for name, ref in (("gd", gd), ("gd_plus_plus", pp))}
        close(row["gd_loss"], losses["gd"])
        close(row["gd_plus_plus_loss"], losses["gd_plus_plus"])
        close(row["loss"], [losses["gd"], losses["gd_plus_plus"]])
        assert abs(losses["gd"] - losses["gd_plus_plus"]) > 1e-2 * losses["gd"]
        for name, ref in (("gd", gd[i]), ("gd_plus_plus", pp[i])):
            cos = [np.mean(np.sum(m["v"] * ref["v"], 1) / (np.linalg.norm(m["v"], axis=1) * np.linalg.norm(ref["v"], axis=1)))
                   for m in seeds]
            close(row[f"model_cos_{name}"], cos)
            close(row[f"preds_diff_{name}"], [np.mean(np.abs(m["y"] - ref["y"])) for m in seeds])
            close(row[f"model_diff_{name}"], [np.mean(np.linalg.norm(m["v"] - ref["v"], axis=1)) for m in seeds])
        assert row["preds_diff_gd"][1] > 1e-3 and row["model_diff_gd"][1] > 1e-3  # the two seeds differ


def test_solver_losses_at_gamma_zero_agree():
    batch = experiments.get("tiny").task.sample(jax.random.key(1), 128)
    out = depth.solver_losses(batch, 3, {"gd_lr": 0.5, "gd_plus_plus_lr": 0.5, "gd_plus_plus_gamma": 0.0})
    assert out["gd_loss"] == pytest.approx(out["gd_plus_plus_loss"], rel=1e-10)


def test_off_plateau_averages_over_the_seeds_below_the_threshold():
    off, out = depth.off_plateau([0.1, 0.5, 0.2], 0.35, {"loss": [0.1, 0.5, 0.2], "cos": [1.0, 0.0, 0.5]})
    assert off.tolist() == [True, False, True]
    assert out == {"seeds": [0, 2], "loss": pytest.approx(0.15), "cos": pytest.approx(0.75)}
    _, none = depth.off_plateau([0.5, 0.6], 0.35, {"loss": [0.5, 0.6]})
    assert none == {"seeds": []}


def test_summarise_reports_stats_and_the_off_plateau_seeds():
    row = {"loss": [0.1, 0.5], "gd_loss": 0.2, "gd_plus_plus_loss": 0.15, "model_cos_gd": [0.9, 0.7],
           "model_cos_gd_plus_plus": [0.99, 0.5]}
    result = {"final": row, "layers": [row], "diverged": None, "log": [{"step": 10}, {"step": 20}],
              "train_steps_per_s": 5.0, "train_wall_s": 3.0}
    out = depth.summarise(result, 0.35)
    assert out["final"]["loss"]["mean"] == pytest.approx(0.3) and out["final"]["gd_loss"] == 0.2
    assert out["per_layer"][0]["model_cos_gd"]["max"] == 0.9
    assert out["off_plateau"] == {"seeds": [0], "median_loss": pytest.approx(0.3), "loss": 0.1,
                                  "model_cos_gd": 0.9, "model_cos_gd_plus_plus": 0.99}
    assert out["final_log_step"] == 20


def test_a_diverged_run_is_evaluated_at_its_last_good_checkpoint(tmp_path):
    base = experiments.get("tiny")
    config = dataclasses.replace(base, train=dataclasses.replace(base.train, steps=20, eval_every=10, ckpt_every=10,
                                                             eval_tasks=64, final_eval_tasks=64))
    _, run = runs.train_run(config, tmp_path)

    def diverging(_):
        raise train.TrainingDiverged("loss is nan at step 30")

    summary, params, message = runs.train_or_last_good(config, tmp_path, diverging)
    assert summary == {"diverged_at_checkpoint": 20} and message == "loss is nan at step 30"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(run.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    summary, params, message = runs.train_or_last_good(config, tmp_path)  # finished: reused
    assert message is None and summary["model"]
