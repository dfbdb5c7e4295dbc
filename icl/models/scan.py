"""Linear recurrences along the time axis, in pure JAX: one parallel and one sequential form.

    h_t = a_t * h_{t-1} + b_t,   h_0 = 0,   t = 1..T        (element-wise; a broadcasts against b)

is the state update of every diagonal recurrent layer here (gated linear attention's decaying
memory, the selective state-space layer, the gated linear RNN). `parallel` evaluates it with
`jax.lax.associative_scan` on the operator (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2), O(log T)
depth; `sequential` with `jax.lax.scan`, one step at a time. They agree to round-off (float64
tests: `tests/test_sequence_models.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SCANS = ("parallel", "sequential")


def _combine(left, right):
    a_left, b_left = left
    a_right, b_right = right
    return a_left * a_right, a_right * b_left + b_right


def diagonal_recurrence(a: jax.Array, b: jax.Array, scan: str = "parallel") -> jax.Array:
    """Every state h_1..h_T of h_t = a_t * h_{t-1} + b_t from h_0 = 0, along axis 1.

    a: [B, T, ...] broadcastable to b [B, T, ...]; returns [B, T, ...] (b's shape), h_t at t."""
    a = jnp.broadcast_to(a, b.shape)
    if scan == "parallel":
        return jax.lax.associative_scan(_combine, (a, b), axis=1)[1]
    if scan == "sequential":
        def step(h, ab):
            a_t, b_t = ab
            h = a_t * h + b_t
            return h, h

        _, states = jax.lax.scan(step, jnp.zeros_like(b[:, 0]), (jnp.moveaxis(a, 1, 0), jnp.moveaxis(b, 1, 0)))
        return jnp.moveaxis(states, 0, 1)
    raise ValueError(f"scan must be one of {', '.join(SCANS)}, got {scan!r}")


def states_before(states: jax.Array, seen: jax.Array) -> jax.Array:
    """The state after the first seen[m] steps, for each m: states [B, T, ...] (h_1..h_T),
    seen [M] ints in 0..T -> [B, M, ...] (h_0 = 0 where seen is 0)."""
    padded = jnp.concatenate([jnp.zeros_like(states[:, :1]), states], axis=1)  # [B, T + 1, ...]
    return padded[:, seen]
