"""Model families behind a registry (`icl.models.registry`): `build(config, d, key)` dispatches on
the config's family. "lsa": transformers of linear (or softmax) self-attention layers
(`icl.models.lsa`, with its exact fast paths in `gram`, `fast`, `gelu_mlp`, `products`); "gpt2":
GPT-2-style causal transformers over interleaved (x, y) tokens (`icl.models.gpt2`, Garg et al.)."""

from icl.models import gpt2, lsa  # noqa: F401  (each registers its family)
from icl.models.gpt2 import GPT2, GPT2Config
from icl.models.lsa import AttentionLayer, Frozen, LSATransformer, ModelConfig, predict
from icl.models.registry import OBJECTIVES, build, check_objective, family, family_of, get, names, register


__all__ = [
    "AttentionLayer", "Frozen", "GPT2", "GPT2Config", "LSATransformer", "ModelConfig", "OBJECTIVES", "build",
    "check_objective", "family", "family_of", "get", "names", "predict", "register",
]
