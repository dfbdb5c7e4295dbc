"""The paired threefry stream (`icl.tasks.rng`): the bits are Threefry-2x32's, checked against an
independent NumPy implementation and the published known-answer vectors; every value depends only
on its index; the distributions drawn from it are the intended ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import tasks
from icl.tasks import rng

ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
SKEIN_PARITY = 0x1BD11BDA


def threefry2x32(key: tuple[int, int], x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32, 20 rounds (Salmon et al. 2011), in NumPy uint32 arithmetic."""
    ks = [np.uint32(key[0]), np.uint32(key[1]), np.uint32(key[0] ^ key[1] ^ SKEIN_PARITY)]
    x0, x1 = x0.astype(np.uint32) + ks[0], x1.astype(np.uint32) + ks[1]
    for block in range(5):  # 5 x 4 rounds, a key injection after each 4
        for r in ROTATIONS[4 * (block % 2): 4 * (block % 2) + 4]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
        x0 = x0 + ks[(block + 1) % 3]
        x1 = x1 + ks[(block + 2) % 3] + np.uint32(block + 1)
    return x0, x1


@pytest.mark.parametrize(("key", "counter", "want"), [  # Random123's kat_vectors for threefry2x32_20
    ((0x0, 0x0), (0x0, 0x0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_reference_threefry_meets_the_known_answers(key, counter, want):
    got = threefry2x32(key, np.array([counter[0]], np.uint32), np.array([counter[1]], np.uint32))
    assert (int(got[0][0]), int(got[1][0])) == want


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
def test_32_bit_draws_are_both_words_of_consecutive_blocks(seed):
    key = jax.random.fold_in(rng.key(seed), 3)
    got = np.asarray(jax.random.bits(key, (2, 5), jnp.uint32)).reshape(-1)  # 10 values: 5 blocks
    k0, k1 = (int(w) for w in jax.random.key_data(key))
    first, second = threefry2x32((k0, k1), np.zeros(5, np.uint32), np.arange(5, dtype=np.uint32))
    np.testing.assert_array_equal(got, np.stack([first, second], -1).reshape(-1))
    odd = np.asarray(jax.random.bits(key, (7,), jnp.uint32))  # the last block's second word unused
    np.testing.assert_array_equal(odd, got[:7])


def test_64_bit_draws_take_one_block_each():
    with jax.enable_x64(True):
        key = rng.key(11)
        got = np.asarray(jax.random.bits(key, (6,), jnp.uint64))
    first, second = threefry2x32((0, 11), np.zeros(6, np.uint32), np.arange(6, dtype=np.uint32))
    np.testing.assert_array_equal(got, (first.astype(np.uint64) << np.uint64(32)) | second.astype(np.uint64))


def test_values_depend_only_on_their_index():
    """A longer draw extends a shorter one (what lets a sharded draw compute only its shard), and
    the same draw jitted, vmapped or sharded over the batch gives the same numbers."""
    key = rng.key(5)
    short, long = jax.random.uniform(key, (1001,)), jax.random.uniform(key, (5000,))
    np.testing.assert_array_equal(short, long[:1001])
    keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(3))
    eager = jnp.stack([jax.random.normal(k, (4, 6)) for k in keys])
    np.testing.assert_array_equal(jax.jit(jax.vmap(lambda k: jax.random.normal(k, (4, 6))))(keys), eager)


def test_paired_and_plain_streams_differ_but_split_alike():
    """Keys split and fold alike; 32-bit draws differ; 64-bit draws are the same stream (plain
    threefry already uses both words of a block for a 64-bit value)."""
    paired, plain = rng.key(3), rng.key(3, "threefry")
    np.testing.assert_array_equal(jax.random.key_data(jax.random.split(paired, 4)), jax.random.key_data(jax.random.split(plain, 4)))
    np.testing.assert_array_equal(jax.random.key_data(jax.random.fold_in(paired, 9)), jax.random.key_data(jax.random.fold_in(plain, 9)))
    assert not np.array_equal(jax.random.uniform(paired, (8,), jnp.float32), jax.random.uniform(plain, (8,), jnp.float32))
    with jax.enable_x64(True):
        np.testing.assert_array_equal(jax.random.uniform(paired, (8,), jnp.float64), jax.random.uniform(plain, (8,), jnp.float64))
    with pytest.raises(ValueError, match="sampler must be one of"):
        rng.key(0, "philox")


def test_distributions_drawn_from_it():
    """Uniform and normal draws of 10^6 values: moments within 5 standard errors, and a
    Kolmogorov-Smirnov distance below its 0.1 % critical value (1.95 / sqrt(n))."""
    n = 10**6  # float32: the draws that pair two values per block
    u = np.sort(np.asarray(jax.random.uniform(rng.key(1), (n,), jnp.float32), np.float64))
    z = np.asarray(jax.random.normal(rng.key(2), (n,), jnp.float32), np.float64)
    se = 1 / np.sqrt(n)
    assert abs(u.mean() - 0.5) < 5 * se * np.sqrt(1 / 12) and abs(u.var() - 1 / 12) < 5 * se * np.sqrt(1 / 180)
    assert abs(z.mean()) < 5 * se and abs(z.var() - 1) < 5 * se * np.sqrt(2)
    assert np.max(np.abs(u - (np.arange(n) + 0.5) / n)) < 1.95 / np.sqrt(n)
    assert abs(np.mean(z[:-1] * z[1:])) < 5 * se  # neighbours (the two words of a block) uncorrelated
    assert 0.0 <= u[0] and u[-1] < 1.0


def test_a_task_batch_from_a_paired_key():
    task = tasks.get("linear", d=4, n_ctx=6)
    with jax.enable_x64(False):
        batch = task.sample(rng.key(0), 3000)
    assert batch.x_ctx.dtype == jnp.float32
    np.testing.assert_allclose(batch.y_ctx, jnp.einsum("bnd,bd->bn", batch.x_ctx, batch.w), rtol=1e-5, atol=1e-5)
    assert abs(float(jnp.var(batch.w)) - 1.0) < 0.05
