"""The random streams tasks are drawn from: JAX's threefry2x32, with both words of a block used.

Training keys (`icl.trainer.data_keys`) are made with one of `SAMPLERS` (`train.sampler`):

  "threefry_paired" (default)  JAX's Threefry-2x32 hash; value j of a 32-bit draw is word
      j mod 2 of the block hashed at counter j // 2 (a 64-bit value takes both words of block j).
  "threefry"  `jax.random` as it is (JAX's partitionable threefry, the stream of runs written
      before `train.sampler` existed). It hashes one block per 32-bit value and keeps the xor
      of the two words, i.e. it hashes twice as many blocks.

Both are counter-based: every value depends only on (key, its index in the flat draw), so a draw
split over devices is computed shard by shard, and the values are the same on any device count.
Keys are split and folded exactly as JAX's threefry keys (`split`, `fold_in` are threefry's); only
`random_bits` differs, so every `jax.random` distribution (uniform, normal, bernoulli, ...) drawn
from a paired key uses it.

Why: drawing the tasks is most of a small model's training step on a CPU. A batch of paper_1layer
(2048 tasks, 225,280 uniforms and 20,480 normals) costs about half as much paired (see
`benchmarks/bench_train.py`, "sampling"). Threefry-2x32 with 20 rounds is the hash of
Salmon et al. (2011), "Parallel random numbers: as easy as 1, 2, 3"; `tests/test_rng.py` checks
the draws against an independent NumPy implementation and its published known-answer vectors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.random import define_prng_impl, threefry2x32_p, threefry_prng_impl

SAMPLERS = ("threefry_paired", "threefry")
MAX_BLOCKS = 2**32  # the block counter is one uint32 word (the other word is 0)


def paired_bits(key_data: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    """Random bits [shape] of uint{bit_width} from a threefry key (key_data: uint32 [2]).

    32 bits: value j = word (j mod 2) of threefry2x32(key, (0, j // 2)); 64 bits: value j = the
    two words of block j, first word high; 8 and 16 bits: JAX's own threefry bits."""
    if bit_width not in (32, 64):
        return threefry_prng_impl.random_bits(key_data, bit_width, shape)
    size = math.prod(shape)
    n_blocks = size if bit_width == 64 else (size + 1) // 2
    if n_blocks > MAX_BLOCKS:
        raise ValueError(f"rng: a draw of {size} values of {bit_width} bits is more than {MAX_BLOCKS} threefry blocks")
    counters = lax.iota(jnp.uint32, n_blocks)
    first, second = threefry2x32_p.bind(key_data[0], key_data[1], jnp.zeros_like(counters), counters)  # [n_blocks] each
    if bit_width == 64:
        wide = lambda w: lax.convert_element_type(w, jnp.uint64)
        return (lax.shift_left(wide(first), jnp.uint64(32)) | wide(second)).reshape(shape)
    return jnp.stack([first, second], axis=-1).reshape(-1)[:size].reshape(shape)


THREEFRY_PAIRED = define_prng_impl(
    key_shape=threefry_prng_impl.key_shape,
    seed=threefry_prng_impl.seed,
    split=threefry_prng_impl.split,
    random_bits=paired_bits,
    fold_in=threefry_prng_impl.fold_in,
    name="threefry2x32_paired",
    tag="fryp",
)


def key(seed: int, sampler: str = SAMPLERS[0]) -> jax.Array:
    """A typed PRNG key of `seed` whose draws follow `sampler` (one of `SAMPLERS`)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"rng: sampler must be one of {SAMPLERS}, got {sampler!r}")
    return jax.random.key(seed, impl=THREEFRY_PAIRED if sampler == "threefry_paired" else "threefry2x32")
