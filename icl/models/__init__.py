"""Flax NNX transformers of linear (or softmax) self-attention layers; see `icl.models.lsa`."""

from icl.models.lsa import AttentionLayer, Frozen, LSATransformer, ModelConfig, build, predict

__all__ = ["AttentionLayer", "Frozen", "LSATransformer", "ModelConfig", "build", "predict"]
