"""icl.analysis.lsa_weights: the preconditioner a layer computes, the blocks outside its structure,
and the resemblance of a layer's weights to the GD construction in any gauge (float64, conftest)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl import compare, constructions, models, runs, solvers, tasks, weights
from icl.analysis import lsa_weights as lw
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.models import ModelConfig

D, N = 4, 6


@pytest.fixture
def batch(key):
    task = tasks.get("linear", d=4, n_ctx=9, n_query=6, input_dist="gaussian", covariance="rotated", condition_number=20.0)
    return task.sample(key, 64)


def test_frobenius_cosine():
    p = np.array([[2.0, 1.0], [0.0, 3.0]])
    assert lw.frobenius_cosine(p, 5 * p) == pytest.approx(1.0)
    assert lw.frobenius_cosine(p, -p) == pytest.approx(-1.0)
    assert lw.frobenius_cosine(p, np.eye(2)) == pytest.approx(5 / (np.sqrt(14) * np.sqrt(2)))
    assert lw.frobenius_cosine(p, np.zeros((2, 2))) == 0.0


def test_gd_construction_has_preconditioner_lr_over_n():
    d, n, lr = 4, 9, 0.7
    model = constructions.gd_model(d=d, n_ctx=n, lr=lr, layers=2, dtype=jnp.float64)
    for layer in model.layers:
        a, b = weights.layer_products(layer)
        np.testing.assert_allclose(weights.preconditioner(layer, d)["gamma"], (lr / n) * np.eye(d), rtol=0, atol=1e-12)
        assert all(v == 0.0 for v in lw.block_norms(a, b).values())


def test_preconditioner_of_a_general_layer_is_preconditioned_gd(batch):
    """A 1-layer LSA with A_xx = G and the GD value/out blocks predicts x_q^T Gamma X^T y with the
    Gamma that `weights.preconditioner` reads off, i.e. exactly solvers.preconditioned_gd(Gamma)."""
    d, n = 4, 9
    g = np.asarray(jax.random.normal(jax.random.key(3), (d, d)), np.float64)  # not symmetric
    model = constructions.gd_model(d=d, n_ctx=n, lr=2.5, layers=1, dtype=jnp.float64)
    layer = model.layers[0]
    query = np.asarray(layer.query[...]).copy()  # [1, D, k]
    query[0, :d, :d] = g  # key stays [[I, 0], [0, 0]], so A[:d, :d] = G
    layer.query[...] = jnp.asarray(query)
    gamma = weights.preconditioner(layer, d)["gamma"]
    np.testing.assert_allclose(gamma, (2.5 / n) * g, rtol=1e-12)
    y_model = model(batch)  # [B, M]
    y_pgd = solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=gamma)
    np.testing.assert_allclose(y_model, y_pgd, rtol=1e-10, atol=1e-10)
    # and the transpose would not do (G is not symmetric): the test can fail
    y_wrong = solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=gamma.T)
    assert np.max(np.abs(y_model - y_wrong)) > 1e-3


def test_first_layer_odd_part_in_y_is_preconditioned_gd_with_gamma(batch):
    """For random weights (every block non-zero) the part of a first layer's read-out that is odd in
    the context labels is x_q^T Gamma X^T y with Gamma = -(B_yy A_xx + A_xy B_xy^T)."""
    model = models.build(models.ModelConfig(n_layers=1, init_scale=1.0), 4, jax.random.key(5))
    a, b = weights.layer_products(model.layers[0])
    assert np.linalg.norm(a[:4, 4]) > 0.1 and np.linalg.norm(b[:4, 4]) > 0.1  # both routes present
    gamma = weights.preconditioner(model.layers[0], 4)["gamma"]
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    odd = 0.5 * (model.predict(xc, yc, xq) - model.predict(xc, -yc, xq))  # [B, M]
    np.testing.assert_allclose(odd, solvers.preconditioned_gd(xc, yc, xq, gamma_matrix=gamma), rtol=1e-9, atol=1e-9)
    first_term_only = -b[4, 4] * a[:4, :4]  # the x-x block alone misses the rank-one route
    assert np.max(np.abs(odd - solvers.preconditioned_gd(xc, yc, xq, gamma_matrix=first_term_only))) > 1e-3
    shares = lw.block_norms(a, b)
    assert 0 < shares["rank_one_share"] < 1


def test_preconditioner_alignment_layout_and_references():
    """Per layer and seed: cosines [L, S] in [-1, 1], blocks and Gamma [S][L]; the reference
    cos(Sigma^-1, I) is 1 for isotropic inputs and below 1 for kappa 20."""
    train = TrainConfig(steps=10, batch_size=8, n_seeds=3, eval_every=5, ckpt_every=10)
    for kappa, isotropic in ((1.0, True), (20.0, False)):
        task = tasks.get("linear", d=3, n_ctx=8, input_dist="gaussian", covariance="rotated", condition_number=kappa)
        config = ExperimentConfig(name="t", task=task, model=ModelConfig(n_layers=2, shared=False, init_scale=0.5),
                                  optim=OptimConfig(), train=train)
        out = lw.preconditioner_alignment(config, runs.initial_params(config))
        assert np.shape(out["cos_sigma_inv"]) == (2, 3) and np.shape(out["gamma"]) == (3, 2, 3, 3)
        assert len(out["blocks"]) == 3 and len(out["blocks"][0]) == 2
        assert np.all(np.abs(out["cos_identity"]) <= 1 + 1e-12)
        assert (out["reference"]["cos_sigma_inv_identity"] == pytest.approx(1.0)) is isotropic
        if isotropic:  # Sigma^-1 = I: the two cosines agree
            np.testing.assert_allclose(out["cos_sigma_inv"], out["cos_identity"], rtol=1e-9)


def _gauge(model, c):
    """The same layer with (A, B) -> (cA, B/c), through W_q -> c W_q, W_o -> W_o / c."""
    layer = model.layers[0]
    layer.query[...] = c * layer.query[...]
    layer.out[...] = layer.out[...] / c
    return model


@pytest.mark.parametrize("c", [1.0, 7.5, -0.2])
def test_construction_resembles_itself_in_any_gauge(c):
    eta = 2.0
    target = constructions.gd_model(D, N, eta, dtype=jnp.float64)
    w = lw.weight_resemblance(_gauge(constructions.gd_model(D, N, eta, dtype=jnp.float64), c), target, N)
    for k in ("cos_A", "cos_B", "cos_A_xx", "cos_B_label_row", "cos_B_readout_col"):
        assert w[k] == pytest.approx(1.0, abs=1e-12)
    for k in ("zero_frac_A", "zero_frac_B", "zero_frac_A_relevant", "zero_frac_B_irrelevant"):
        assert w[k] == pytest.approx(0.0, abs=1e-12)
    assert w["eta_eff"] == pytest.approx(eta, rel=1e-12)
    assert w["c"] == pytest.approx(1.0 / c, rel=1e-12)


def test_irrelevant_blocks_change_weights_not_predictions(key):
    """Weight in the blocks a 1-layer read-out cannot see (A's query-label row, B's x columns):
    the predictions stay those of GD exactly, the weight cosines drop."""
    batch = tasks.get("linear", d=D, n_ctx=N, input_dist="uniform", input_range=0.5, n_query=2).sample(key, 64)
    eta = 2.0
    target = constructions.gd_model(D, N, eta, dtype=jnp.float64)
    model = constructions.gd_model(D, N, eta, dtype=jnp.float64)
    layer = model.layers[0]
    noise = jax.random.normal(key, (2, D + 1, D + 1))
    # row convention: A = query key^T with key = I-block, so A[D, :] is query[D, :] @ key^T
    layer.query[...] = layer.query[...].at[0, D].set(noise[0, 0])  # A's row D (query label slot)
    layer.out[...] = layer.out[...].at[0, :, :D].set(0.1 * noise[1, :, :D])  # B's x columns (never read)
    np.testing.assert_allclose(model.predict(batch.x_ctx, batch.y_ctx, batch.x_query),
                               target.predict(batch.x_ctx, batch.y_ctx, batch.x_query), rtol=1e-12, atol=1e-12)
    w = lw.weight_resemblance(model, target, N)
    assert w["cos_A"] < 0.99 and w["zero_frac_A_irrelevant"] > 0.01 and w["zero_frac_A_relevant"] == pytest.approx(0.0, abs=1e-12)
    assert w["cos_A_xx"] == pytest.approx(1.0, abs=1e-12)
    assert w["cos_B_readout_col"] == pytest.approx(1.0, abs=1e-12)
    assert w["eta_eff"] == pytest.approx(eta, rel=1e-12)
    g = compare.compare(model.predict, target.predict, batch)
    assert float(g["model_cos"]) == pytest.approx(1.0, abs=1e-12)


def test_weight_resemblance_rejects_multi_head():
    model = models.LSATransformer(models.ModelConfig(n_heads=2), D, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="1-head"):
        lw.weight_resemblance(model, constructions.gd_model(D, N, 1.0), N)


def test_construction_resemblance_one_entry_per_seed():
    task = tasks.get("linear", d=D, n_ctx=N, input_dist="uniform", input_range=0.5)
    train = TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=5, ckpt_every=10)
    config = ExperimentConfig(name="t", task=task, model=ModelConfig(n_layers=1, init_scale=1.0), optim=OptimConfig(), train=train)
    out = lw.construction_resemblance(config, runs.initial_params(config), eta=1.5)
    assert len(out) == 2 and out[0]["cos_A"] != out[1]["cos_A"]  # two seeds, two initialisations
    assert all(np.shape(w["A"]) == (D + 1, D + 1) for w in out)
