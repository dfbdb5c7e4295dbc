"""icl/solvers/trees.py (greedy CART trees, boosted trees) against a naive recursive NumPy
implementation with the same tie rule, in float64; and the decision_tree task family's prior."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, solvers, tasks
from icl.tasks.decision_tree import tree_values

RTOL = 1e-12  # float64: the same partitions, means summed in another order


# -- naive references -------------------------------------------------------------------------------
def naive_tree(x, y, max_depth, tol):
    """CART by recursion over nodes for one task (x [n, d], y [n]): a nested tuple
    ("leaf", mean) or ("split", c, t, left, right). Candidates: for each coordinate c in order,
    thresholds at midpoints between consecutive distinct sorted values, in increasing order; the
    first whose SSE is within tol of the best wins."""
    n, d = x.shape
    if max_depth == 0 or n < 2 or np.all(y == y[0]):
        return ("leaf", float(np.mean(y)))
    candidates = []  # (sse, c, t)
    for c in range(d):
        values = np.unique(x[:, c])  # sorted distinct values
        for a, b in itertools.pairwise(values):
            t = (a + b) / 2
            t = a if t >= b else t
            left, right = y[x[:, c] <= t], y[x[:, c] > t]
            sse = np.sum((left - left.mean()) ** 2) + np.sum((right - right.mean()) ** 2)
            candidates.append((sse, c, t))
    if not candidates:
        return ("leaf", float(np.mean(y)))
    best = min(sse for sse, _, _ in candidates)
    _, c, t = next(cand for cand in candidates if cand[0] <= best + tol)
    go_left = x[:, c] <= t
    return ("split", c, t, naive_tree(x[go_left], y[go_left], max_depth - 1, tol),
            naive_tree(x[~go_left], y[~go_left], max_depth - 1, tol))


def naive_predict(tree, xq):
    while tree[0] == "split":
        _, c, t, left, right = tree
        tree = left if xq[c] <= t else right
    return tree[1]


def _tol(y):
    return 256 * np.finfo(np.float64).eps * np.sum(y * y)


def naive_greedy(x, y, xq, max_depth, mask=None):
    """[B, M] predictions, one task at a time; mask [B, N] drops examples before fitting."""
    x, y, xq = (np.asarray(a, np.float64) for a in (x, y, xq))
    out = np.zeros(xq.shape[:2])
    for b in range(len(x)):
        keep = np.ones(x.shape[1], bool) if mask is None else mask[b] > 0
        tree = naive_tree(x[b][keep], y[b][keep], max_depth, _tol(y[b][keep]))
        out[b] = [naive_predict(tree, q) for q in xq[b]]
    return out


def naive_boosted(x, y, xq, n_trees, max_depth, lr):
    out = np.zeros(xq.shape[:2])
    for b in range(len(x)):
        f_ctx, f_q = np.full(x.shape[1], y[b].mean()), np.full(xq.shape[1], y[b].mean())
        for _ in range(n_trees):
            r = y[b] - f_ctx
            tree = naive_tree(x[b], r, max_depth, _tol(r))
            f_ctx = f_ctx + lr * np.array([naive_predict(tree, p) for p in x[b]])
            f_q = f_q + lr * np.array([naive_predict(tree, q) for q in xq[b]])
        out[b] = f_q
    return out


def naive_depth(tree):
    return 0 if tree[0] == "leaf" else 1 + max(naive_depth(tree[3]), naive_depth(tree[4]))


def _data(seed, b=4, n=24, d=3, m=5, kind="tree"):
    """Labels from a random depth-2 tree (so greedy splits have structure), 'noisy' adds noise,
    'ties' rounds inputs to a grid of 5 values (many equal inputs and equal-SSE candidates)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n + m, d))
    if kind == "ties":
        x = np.clip(np.round(x), -2, 2)
    coords = rng.integers(0, d, (b, 3))
    leaves = rng.standard_normal((b, 4))
    y = np.asarray(tree_values(jnp.asarray(x), jnp.asarray(coords), jnp.asarray(leaves)))
    if kind in ("noisy", "ties"):
        y = y + 0.3 * rng.standard_normal(y.shape)
    return x[:, :n], y[:, :n], x[:, n:]


# -- greedy trees -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tree", "noisy", "ties"])
@pytest.mark.parametrize("max_depth", [1, 2, 4])
def test_greedy_tree_equals_naive_recursion(kind, max_depth):
    x, y, xq = _data(1, kind=kind)
    got = solvers.greedy_tree(x, y, xq, max_depth=max_depth)
    np.testing.assert_allclose(got, naive_greedy(x, y, xq, max_depth), rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("kind", ["noisy", "ties"])
def test_unbounded_tree_equals_naive_recursion_and_interpolates(kind):
    """Unbounded: the naive recursion with no depth limit; on its own context inputs it returns
    the labels (leaves are pure or hold equal inputs, whose mean it returns)."""
    x, y, xq = _data(2, n=30, kind=kind)
    got = solvers.greedy_tree_unbounded(x, y, xq)
    np.testing.assert_allclose(got, naive_greedy(x, y, xq, 10**6), rtol=RTOL, atol=RTOL)
    depths = [naive_depth(naive_tree(x[b], y[b], 10**6, _tol(y[b]))) for b in range(len(x))]
    assert max(depths) > 4  # deeper than the bounded default, so the bound is exercised
    fitted = solvers.greedy_tree_unbounded(x, y, x)
    if kind == "noisy":  # distinct inputs: every training label reproduced
        np.testing.assert_allclose(fitted, y, rtol=RTOL, atol=RTOL)


def test_greedy_tree_mask_drops_examples_and_prefixes():
    x, y, xq = _data(3, kind="noisy")
    rng = np.random.default_rng(0)
    mask = (rng.random(y.shape) < 0.6).astype(float)
    mask[:, 0] = 1.0
    got = solvers.greedy_tree(x, y, xq, max_depth=3, mask=mask)
    np.testing.assert_allclose(got, naive_greedy(x, y, xq, 3, mask), rtol=RTOL, atol=RTOL)
    prefixes = solvers.prefix_predictions("greedy_tree(max_depth=3)", x, y, xq)  # [B, N, M]
    for n in (1, 2, 7, 24):
        np.testing.assert_allclose(prefixes[:, n - 1], naive_greedy(x[:, :n], y[:, :n], xq, 3), rtol=RTOL, atol=RTOL)
    unbounded = solvers.prefix_predictions("greedy_tree_unbounded", x, y, xq)
    for n in (1, 5, 24):
        np.testing.assert_allclose(unbounded[:, n - 1], naive_greedy(x[:, :n], y[:, :n], xq, 10**6),
                                   rtol=RTOL, atol=RTOL)


def test_greedy_tree_closed_forms():
    """One example: its label everywhere. Depth 1 on two clusters: the two cluster means."""
    x = np.array([[[0.5, -1.0]]])
    np.testing.assert_allclose(solvers.greedy_tree(x, np.array([[2.5]]), np.zeros((1, 3, 2))), 2.5)
    x = np.array([[[-2.0], [-1.0], [1.0], [3.0]]])
    y = np.array([[1.0, 2.0, 10.0, 11.0]])
    xq = np.array([[[-0.01], [0.01], [-100.0], [100.0]]])  # the threshold is the midpoint 0
    np.testing.assert_allclose(solvers.greedy_tree(x, y, xq, max_depth=1), [[1.5, 10.5, 1.5, 10.5]], rtol=1e-15)


def test_sign_inputs_thresholds_at_zero():
    """With sign preprocessing a depth-D tree can recover a depth-D sign tree exactly from enough
    examples: on the decision_tree task's own samples (N = 400, d = 3) it fits the queries."""
    task = tasks.get("decision_tree", d=3, n_ctx=400, n_query=8, depth=2)
    batch = task.sample(jax.random.key(0), 6)
    got = solvers.greedy_tree(batch.x_ctx, batch.y_ctx, batch.x_query, max_depth=2, sign_inputs=True)
    np.testing.assert_allclose(got, batch.y_query, atol=1e-12)
    expect = naive_greedy(np.sign(batch.x_ctx), batch.y_ctx, np.sign(batch.x_query), 2)
    np.testing.assert_allclose(got, expect, rtol=RTOL, atol=RTOL)


# -- boosting -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["noisy", "ties"])
def test_boosted_trees_equal_naive_boosting(kind):
    x, y, xq = _data(4, kind=kind)
    got = solvers.boosted_trees(x, y, xq, n_trees=7, max_depth=2, lr=0.3)
    np.testing.assert_allclose(got, naive_boosted(x, y, xq, 7, 2, 0.3), rtol=1e-10, atol=1e-10)


def test_boosted_trees_one_round_of_lr_one_is_the_greedy_tree():
    x, y, xq = _data(5, kind="noisy")
    np.testing.assert_allclose(solvers.boosted_trees(x, y, xq, n_trees=1, max_depth=3, lr=1.0),
                               solvers.greedy_tree(x, y, xq, max_depth=3), rtol=1e-12, atol=1e-12)


# -- interface ------------------------------------------------------------------------------------------
CASES = {
    "greedy_tree": dict(max_depth=2),
    "greedy_tree_unbounded": {},
    "boosted_trees": dict(n_trees=3, max_depth=2, lr=0.5),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_single_query_jit_and_float32(name):
    x, y, xq = _data(6, kind="noisy")
    fn = solvers.get(name)
    full = fn(x, y, xq, **CASES[name])
    assert full.shape == xq.shape[:2] and full.dtype == jnp.float64
    np.testing.assert_allclose(fn(x, y, xq[:, 0], **CASES[name]), full[:, 0], rtol=RTOL)
    jitted = jax.jit(lambda a, b, c: fn(a, b, c, **CASES[name]))(x, y, xq)
    np.testing.assert_allclose(jitted, full, rtol=RTOL)
    x32, y32, xq32 = (a.astype(np.float32) for a in (x, y, xq))
    low = fn(x32, y32, xq32, **CASES[name])
    assert low.dtype == jnp.float32
    # Mostly the same splits as float64 on the same numbers; float32's tie tolerance (256 eps
    # sum y^2 ~ 1e-3 here) can pick another split among near-equal ones.
    same = np.isclose(low, fn(*(a.astype(np.float64) for a in (x32, y32, xq32)), **CASES[name]), atol=1e-5)
    assert same.mean() >= 0.8


def test_bad_hyper_parameters_fail_with_one_line():
    x, y, xq = _data(7)
    with pytest.raises(ValueError, match="greedy_tree: max_depth must be an integer >= 1, got 0"):
        solvers.greedy_tree(x, y, xq, max_depth=0)
    with pytest.raises(ValueError, match="boosted_trees: lr must be > 0"):
        solvers.boosted_trees(x, y, xq, lr=0.0)
    with pytest.raises(ValueError, match="boosted_trees: n_trees must be an integer >= 1"):
        solvers.boosted_trees(x, y, xq, n_trees=2.5)
    with pytest.raises(ValueError, match="sign_inputs must be True or False"):
        solvers.greedy_tree(x, y, xq, sign_inputs="yes")
    with pytest.raises(ValueError, match="mask must be"):
        solvers.greedy_tree(x, y, xq, mask=np.ones(3))


# -- the decision_tree family ----------------------------------------------------------------------------
def _naive_tree_value(xp, coords, leaves):
    node = 0
    while node < len(coords):
        node = 2 * node + 1 + int(xp[int(coords[node])] > 0)
    return leaves[node - len(coords)]


def test_decision_tree_prior():
    """Labels are the stored tree's leaves (a naive walk down the heap); coordinates uniform over
    d, leaves and inputs standard normal; noise adds sigma^2 to the label variance."""
    task = tasks.get("decision_tree", d=5, n_ctx=6, n_query=2)
    batch = task.sample(jax.random.key(0), 4000)
    w = np.asarray(batch.w)
    assert w.shape == (4000, 15 + 16)
    coords, leaves = w[:, :15], w[:, 15:]
    assert np.all(coords == np.round(coords)) and coords.min() == 0 and coords.max() == 4
    counts = np.bincount(coords.astype(int).ravel(), minlength=5) / coords.size
    np.testing.assert_allclose(counts, 0.2, atol=0.01)  # 60,000 draws: sd 0.0016
    for b in range(20):
        for xp, yp in zip(np.asarray(batch.x_ctx[b]), np.asarray(batch.y_ctx[b]), strict=True):
            assert yp == _naive_tree_value(xp, coords[b], leaves[b])
    assert abs(np.mean(leaves)) < 0.01 and abs(np.var(leaves) - 1) < 0.02  # 64,000 draws
    y = np.asarray(batch.y_ctx)
    assert abs(np.var(y) - 1) < 0.05
    noisy = tasks.get("decision_tree", d=5, n_ctx=6, n_query=2, noise_std=0.5).sample(jax.random.key(0), 4000)
    np.testing.assert_array_equal(noisy.w, batch.w)
    assert abs(np.var(np.asarray(noisy.y_ctx) - y) - 0.25) < 0.01


def test_decision_tree_errors_and_baselines():
    with pytest.raises(ValueError, match="decision_tree task: depth must be an integer >= 1"):
        tasks.get("decision_tree", depth=0)
    with pytest.raises(ValueError, match="depth must be <= 20"):
        tasks.get("decision_tree", depth=21)
    with pytest.raises(ValueError, match="noise_std must be a number >= 0"):
        tasks.get("decision_tree", noise_std=-1.0)
    task = tasks.get("decision_tree", depth=3)
    assert {solvers.parse_spec(s)[0] for s in task.baselines} <= set(solvers.names())
    assert task.solver_hparams("greedy_tree") == {"max_depth": 3}


def test_decision_tree_sign_tree_beats_least_squares_and_knn():
    """On 200 tasks at d = 20, N = 100 (10 queries each) the depth-4 greedy tree on sign(x) is far
    better than least squares and 3-NN (measured on 2,000 tasks: 0.49 vs 0.94 and 0.98; the
    zero predictor scores 1)."""
    task = tasks.get("decision_tree", n_query=10)
    batch = task.sample(jax.random.key(1), 200)
    err = {}
    for spec in ("greedy_tree(sign_inputs=true)", "knn", "least_squares"):
        predict, _ = compare.solver_predictor(spec, task, jax.random.key(2))
        err[spec] = float(jnp.mean((predict(batch.x_ctx, batch.y_ctx, batch.x_query) - batch.y_query) ** 2))
    assert err["greedy_tree(sign_inputs=true)"] < 0.7 < min(err["knn"], err["least_squares"])
