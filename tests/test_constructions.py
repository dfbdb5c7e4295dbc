"""The LSA constructions equal the solvers they claim, in float64, over randomised shapes."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from icl import constructions, solvers, tasks

ATOL = 1e-10
shapes = dict(
    d=st.integers(1, 6), n=st.integers(1, 9), m=st.integers(1, 3), layers=st.integers(1, 4),
    lr=st.floats(0.05, 1.5), seed=st.integers(0, 2**16),
)


def _batch(d, n, m, seed):
    """4 tasks of the paper's distribution (x ~ U(-1, 1)^d, w ~ N(0, I), y = w . x), drawn by
    numpy: every example has new shapes, and the jitted sampler would compile anew for each."""
    rng = np.random.default_rng(seed)
    x, w = rng.uniform(-1.0, 1.0, (4, n + m, d)), rng.standard_normal((4, d))
    y = np.einsum("bnd,bd->bn", x, w)
    return tasks.Batch(x[:, :n], y[:, :n], x[:, n:], y[:, n:], w)


@settings(max_examples=12, deadline=None)  # each example compiles anew (shapes differ)
@given(**shapes, with_w0=st.booleans())
def test_gd_model_equals_k_step_gd(d, n, m, layers, lr, seed, with_w0):
    batch = _batch(d, n, m, seed)
    w0 = np.random.default_rng(seed).standard_normal(d) if with_w0 else None
    model = constructions.gd_model(d, n, lr=lr, layers=layers, w0=w0, dtype=jnp.float64)
    expected = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, steps=layers, w0=w0)
    final, per_layer = jax.jit(lambda b: (model(b), model.layer_predictions(b.x_ctx, b.y_ctx, b.x_query)))(batch)
    np.testing.assert_allclose(final, expected, atol=ATOL, rtol=0)
    # every intermediate layer is the matching GD step
    for k in range(layers):
        gd_k = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, steps=k + 1, w0=w0)
        np.testing.assert_allclose(per_layer[k], gd_k, atol=ATOL, rtol=0)


@settings(max_examples=12, deadline=None)  # each example compiles anew (shapes differ)
@given(**shapes, gamma=st.floats(0.0, 0.3))
def test_gd_plus_plus_model_equals_solver(d, n, m, layers, lr, seed, gamma):
    batch = _batch(d, n, m, seed)
    model = constructions.gd_plus_plus_model(d, n, lr=lr, gamma=gamma, layers=layers, dtype=jnp.float64)
    expected = solvers.gd_plus_plus(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, gamma=gamma, steps=layers)
    # GD++ at lr ~ 1 over 4 layers grows the predictions to ~1e4 (it diverges); float64 round-off
    # is relative, so the 1e-10 bound is on |difference| / max(1, |largest prediction|)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(jax.jit(lambda b: model(b))(batch), expected, atol=ATOL * scale, rtol=0)


def test_gradients_through_the_construction_match_gd():
    """d y_hat / d (context labels, context inputs, query) of the model equal those of GD."""
    batch = _batch(4, 6, 2, 0)
    model = constructions.gd_model(4, 6, lr=0.8, layers=3, dtype=jnp.float64)

    def total(fn):
        return lambda xc, yc, xq: jnp.sum(fn(xc, yc, xq))

    def gd3(xc, yc, xq):
        return solvers.gd(xc, yc, xq, lr=0.8, steps=3)

    got = jax.grad(total(model.predict), argnums=(0, 1, 2))(batch.x_ctx, batch.y_ctx, batch.x_query)
    want = jax.grad(total(gd3), argnums=(0, 1, 2))(batch.x_ctx, batch.y_ctx, batch.x_query)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL)


def test_gd_plus_plus_beats_gd_on_the_paper_task():
    """GD++ with a fitted gamma reaches a lower loss than GD with the same number of steps."""
    task = tasks.get("linear", d=10, n_ctx=10)
    batch = task.sample(jax.random.key(1), 4000)

    def loss_of(y_hat):
        return jnp.mean((y_hat - batch.y_query) ** 2)

    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    gd3 = jax.jit(lambda lr: loss_of(solvers.gd(*args, lr=lr, steps=3)))
    pp3 = jax.jit(lambda lr, g: loss_of(solvers.gd_plus_plus(*args, lr=lr, gamma=g, steps=3)))
    best_gd = min(float(gd3(lr)) for lr in np.linspace(1, 12, 45))
    best_pp = min(float(pp3(lr, g)) for lr in np.linspace(1, 12, 23) for g in np.linspace(0, 0.6, 13))
    assert best_pp < 0.9 * best_gd
