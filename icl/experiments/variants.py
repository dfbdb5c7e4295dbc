"""The model families the paper's figures train, on the one-layer setup (`paper_1layer`'s task,
optimiser and steps): what `icl aot`, `benchmarks/bench_figures.py` and the device check compile
and time, one config per family.

deep_linear — figure 2's deep linear stack: 5 layers, activations clipped at 10 (the official recipe).
softmax — softmax instead of linear attention.
sine_mlp — figure 4: sine regression, a 2-layer GELU MLP embedding x -> 40 features (hidden 160),
           one linear attention layer, compared with kernel ridge and GD.
classic_tokens — figure 5: x_i and y_i in separate tokens, a softmax first layer and a linear second.
"""

from icl.config import apply_overrides
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register

VARIANTS: dict[str, tuple[str, ...]] = {
    "deep_linear": ("model.n_layers=5", "model.clip_activations=10"),
    "softmax": ("model.attention=softmax",),
    "sine_mlp": (
        "task=sine", "task.n_ctx=10", "task.amplitude_range=[0.1,0.5]", "task.phase_range=[0.0,3.141592653589793]",
        "task.input_range=5.0", "model.embed_dim=40", "model.embed_hidden=160", "model.init_scale=0.02",
        "compare_against=kernel_ridge,gd",
    ),
    "classic_tokens": (
        "model.n_layers=2", "model.first_layer_softmax=true", "model.token_layout=separate",
        "model.n_positions=10", "model.init_scale=0.2", "compare_against=gd,least_squares",
    ),
}

for _name, _overrides in VARIANTS.items():
    register(apply_overrides(PAPER_1LAYER, [*_overrides, f"name={_name}"]), study="variants")
