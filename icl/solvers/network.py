"""A two-layer ReLU network trained by gradient descent on the context examples: Garg et al.
(2022)'s baseline for their two-layer ReLU network task ("2-layer NN, GD" in their Figure 2).

Model (one per task and prefix), with H = `hidden` units:
    f_theta(x) = a . relu(W x + b) + c,     W [H, d], b [H], a [H], c scalar,
initialised as PyTorch's `nn.Linear` (Garg et al.'s layers): W, b ~ U(-1/sqrt(d), 1/sqrt(d)) and
a, c ~ U(-1/sqrt(H), 1/sqrt(H)) (kaiming_uniform with a = sqrt(5): bound 1/sqrt(fan_in)).

Loss on the present context examples S (mask 1; n = |S|), or on a minibatch of them:
    L(theta) = (1/|S_k|) sum_{i in S_k} (f_theta(x_i) - y_i)^2          (PyTorch's MSELoss, no 1/2)
where S_k = S when n <= batch_size, else batch_size examples of S drawn uniformly without
replacement at each step k (Garg's `torch.randperm(i)[:batch_size]`).
Adam (Kingma & Ba 2015, PyTorch's defaults beta1 = 0.9, beta2 = 0.999, eps = 1e-8), from m = v = 0,
for k = 1..steps, with g = grad L(theta):
    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
    theta <- theta - lr (m / (1 - beta1^k)) / (sqrt(v / (1 - beta2^k)) + eps).
The prediction is f_theta(x_q) after `steps` steps; 0 when no example is present (n = 0), as
Garg et al. predict 0 at the first position.

Defaults = Garg et al.'s (github.com/dtsip/in-context-learning, src/models.py,
`get_relevant_baselines("relu_2nn_regression")`: `GDModel(NeuralNetwork, hidden_size=100,
opt_alg="adam", batch_size=100, lr=5e-3, num_steps=100)`; src/base_models.py `NeuralNetwork`:
Linear(d, 100) -> ReLU -> Linear(100, 1)): hidden 100, Adam lr 5e-3, 100 steps, batch 100. Their
contexts have at most 100 examples (T = 101), so their minibatch is the whole prefix every step:
plain full-batch Adam. Differences, none of which changes the algorithm:
  * the initial weights have PyTorch's distribution but are JAX's draws (below), not torch's;
  * Garg's `ParallelNetworks` averages the loss over the batch of tasks as well, so each task's
    gradient is divided by the number of tasks B; Adam is invariant to that scale except through
    eps (|g| / B >> 1e-8 for their B = 64), and here each task has its own mean (a task's
    prediction does not depend on B);
  * their minibatch (when n > batch_size) is one subset of indices for every task of the batch;
    here each task draws its own.

Randomness (explicit, deterministic): the hyper-parameter `seed` gives k0 = jax.random.key(seed);
task b of the batch (its index in x_ctx) with n present examples uses
    key = fold_in(fold_in(k0, b), n);   init_key, batch_key = split(key),
the initial weights are one draw u ~ U(-1, 1)^(H d + 2 H + 1) with init_key (`init_params`), so
every prefix length gets a fresh initialisation, as Garg et al. build a new network for each
prefix, and a prefix seen through a mask draws what the truncated context draws (the prefix
evaluation is exact). The minibatch of step k ranks the present examples by
u_i = uniform(fold_in(fold_in(batch_key, k), i)), a number of the example's index i alone, and
keeps the batch_size smallest. A task's prediction depends on (seed, its index b in the batch,
its data); the same task at another index gets another initialisation.

Everything is jit-able; the per-task fit `fit_predict` is vmapped over tasks, the Adam steps are a
`lax.scan`, and a mask ([B, N], 1 = present) makes the N prefixes of `solvers.prefix_predictions`
one vmapped program. Its gradient with respect to x_q is that of the fitted network, a.e. (the
ReLU kinks have measure 0), so it has a sensitivity (`icl.compare`,
`icl.analysis.prefix_curves.sensitivity_cosine`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from icl.checks import check_int, check_number
from icl.precision import highest
from icl.solvers.baselines import _finish, _prepare

# Garg et al.'s hyper-parameters (module docstring) and PyTorch's Adam defaults
HIDDEN, LR, STEPS, BATCH_SIZE, SEED = 100, 5e-3, 100, 100, 0
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def init_params(key: jax.Array, d: int, hidden: int, dtype=jnp.float32) -> dict:
    """PyTorch nn.Linear's initialisation of Linear(d, hidden) -> ReLU -> Linear(hidden, 1):
    {"w": [H, d], "b": [H]} ~ U(-1/sqrt(d), 1/sqrt(d)), {"a": [H], "c": []} ~ U(-1/sqrt(H), 1/sqrt(H)),
    all four from one draw u ~ U(-1, 1)^(H d + 2 H + 1) with `key` (in that order, each scaled by
    its bound): one random-bits call, which keeps the compiled program small."""
    s1, s2 = 1.0 / math.sqrt(d), 1.0 / math.sqrt(hidden)
    u = jax.random.uniform(key, (hidden * d + 2 * hidden + 1,), dtype, -1.0, 1.0)
    hd = hidden * d
    return {
        "w": s1 * u[:hd].reshape(hidden, d),
        "b": s1 * u[hd:hd + hidden],
        "a": s2 * u[hd + hidden:hd + 2 * hidden],
        "c": s2 * u[-1],
    }


def network(params: dict, x: jax.Array) -> jax.Array:
    """f_theta(x_i) = a . relu(W x_i + b) + c for each row of x [N, d]: [N]."""
    hidden = jax.nn.relu(jnp.einsum("nd,hd->nh", x, params["w"]) + params["b"][None, :])  # [N, H]
    return jnp.einsum("nh,h->n", hidden, params["a"]) + params["c"]


def minibatch(batch_key: jax.Array, step, mask: jax.Array, batch_size: int) -> jax.Array:
    """[N] 0/1: the batch_size present examples (mask [N]) of smallest u_i =
    uniform(fold_in(fold_in(batch_key, step), i)); all present ones when there are at most
    batch_size. Ties (probability 0) go to the earlier example."""
    n_ctx = mask.shape[0]
    step_key = jax.random.fold_in(batch_key, step)
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(step_key, i), (), mask.dtype))(jnp.arange(n_ctx))
    u = jnp.where(mask > 0, u, jnp.inf)  # [N]
    idx = jnp.arange(n_ctx)
    before = (u[None, :] < u[:, None]) | ((u[None, :] == u[:, None]) & (idx[None, :] < idx[:, None]))  # [N, N]: j ranks before i
    rank = jnp.sum(before & (mask[None, :] > 0), axis=1)  # [N]
    return (mask > 0) & (rank < batch_size)


def mse(params: dict, x: jax.Array, y: jax.Array, weight: jax.Array) -> jax.Array:
    """(1 / sum_i weight_i) sum_i weight_i (f_theta(x_i) - y_i)^2 for x [N, d], y [N], weight
    [N] in {0, 1}; 0 when no weight is 1."""
    residual = network(params, x) - y  # [N]
    return jnp.sum(weight * residual**2) / jnp.maximum(jnp.sum(weight), 1.0)


def task_key(seed, index, n_present) -> jax.Array:
    """fold_in(fold_in(key(seed), index), n_present): the key of task `index` fitted on
    `n_present` examples (module docstring)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), index), n_present)


def fit(key: jax.Array, x: jax.Array, y: jax.Array, mask: jax.Array, hidden: int, lr, steps: int,
        batch_size: int) -> dict:
    """theta after `steps` Adam steps on the MSE of one task's present examples (x [N, d], y [N],
    mask [N]) from PyTorch's initialisation drawn with `key` (module docstring); a `lax.scan`."""
    n_ctx, d = x.shape
    init_key, batch_key = jax.random.split(key)
    params = init_params(init_key, d, hidden, x.dtype)
    grad = jax.grad(mse)
    full_batch = n_ctx <= batch_size  # static: every step sees every present example

    def step(state, k):  # k = 1..steps
        params, m, v = state
        weight = mask if full_batch else minibatch(batch_key, k, mask, batch_size).astype(x.dtype)
        g = grad(params, x, y, weight)
        m = jax.tree.map(lambda m_, g_: BETA1 * m_ + (1 - BETA1) * g_, m, g)
        v = jax.tree.map(lambda v_, g_: BETA2 * v_ + (1 - BETA2) * g_**2, v, g)
        kf = k.astype(x.dtype)
        c1, c2 = 1 - BETA1**kf, 1 - BETA2**kf
        params = jax.tree.map(lambda p, m_, v_: p - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + EPS), params, m, v)
        return (params, m, v), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    (params, _, _), _ = jax.lax.scan(step, (params, zeros, zeros), jnp.arange(1, steps + 1))
    return params


def fit_predict(key: jax.Array, x: jax.Array, y: jax.Array, mask: jax.Array, x_query: jax.Array, hidden: int,
                lr, steps: int, batch_size: int) -> jax.Array:
    """One task: the fitted network at x_query [M, d]: [M]; 0 when no example is present."""
    params = fit(key, x, y, mask, hidden, lr, steps, batch_size)
    return jnp.where(jnp.sum(mask) > 0, network(params, x_query), 0.0)


@functools.partial(jax.jit, static_argnames=("hidden", "steps", "batch_size"))
def _relu_net_gd(x_ctx, y_ctx, x_query, mask, seed, hidden, lr, steps, batch_size):  # -> [B, M]
    b = x_ctx.shape[0]
    n_present = jnp.sum(mask > 0, axis=1)  # [B]
    keys = jax.vmap(task_key, in_axes=(None, 0, 0))(seed, jnp.arange(b), n_present)
    one = functools.partial(fit_predict, hidden=hidden, lr=lr, steps=steps, batch_size=batch_size)
    return jax.vmap(one)(keys, x_ctx, y_ctx, mask, x_query)


@highest
def relu_net_gd(x_ctx, y_ctx, x_query, hidden: int = HIDDEN, lr=LR, steps: int = STEPS, batch_size: int = BATCH_SIZE,
                seed: int = SEED, mask=None) -> jax.Array:
    """A two-layer ReLU network with `hidden` units trained by Adam (rate `lr`, `steps` steps,
    minibatches of `batch_size`) on each task's present context examples, from PyTorch's
    initialisation drawn from `seed` and the task's index, evaluated at x_query (module
    docstring): [B, M] or [B]. Defaults: Garg et al.'s."""
    check_int("relu_net_gd", hidden=hidden, batch_size=batch_size)
    check_int("relu_net_gd", minimum=0, steps=steps)
    check_number("relu_net_gd", positive=True, lr=lr)
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "dtype"):
        raise ValueError(f"relu_net_gd: seed must be an integer, got {seed!r}")
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    out = _relu_net_gd(x_ctx, y_ctx, x_query, mask, seed, hidden, jnp.asarray(lr, x_ctx.dtype), steps, batch_size)
    return _finish(out, squeeze)
