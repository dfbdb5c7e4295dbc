"""Model families behind a registry (`icl.models.registry`): `build(config, d, key)` dispatches on
the config's family. "lsa": transformers of linear (or softmax) self-attention layers
(`icl.models.lsa`, with its exact fast paths in `gram`, `fast`, `gelu_mlp`, `products`); "gpt2":
GPT-2-style causal transformers over interleaved (x, y) tokens (`icl.models.gpt2`, Garg et al.);
the recurrent families over paired tokens (`icl.models.sequence`): "linear_attention" (causal,
optionally gated linear attention as a recurrence); "deltanet" (the delta rule, DeltaNet: a
state corrected by one LMS step per token, `icl.models.deltanet`); "mamba" (a selective state-space model,
Mamba's mixer in pure JAX, `icl.models.mamba`); "gated_rnn" (a diagonal linear RNN with
multiplicative input and output gates that can implement linear attention exactly, Zucchet et
al. 2023, `icl.models.gated_rnn`)."""

from icl.models import deltanet, gated_rnn, gpt2, linear_attention, lsa, mamba  # noqa: F401  (each registers its family)
from icl.models.gpt2 import GPT2, GPT2Config
from icl.models.lsa import AttentionLayer, Frozen, LSATransformer, ModelConfig, predict
from icl.models.registry import OBJECTIVES, build, check_objective, family, family_of, get, names, register

__all__ = [
    "AttentionLayer", "Frozen", "GPT2", "GPT2Config", "LSATransformer", "ModelConfig", "OBJECTIVES", "build",
    "check_objective", "family", "family_of", "get", "names", "predict", "register",
]
