"""Typed, frozen configs for a training run, their JSON form and `--set key=value` overrides.

An experiment is an `ExperimentConfig`: a task (any registered task family's dataclass), a model
(any registered model family's config, `icl.models.registry`; the LSA transformer's
`ModelConfig` by default), an `OptimConfig` and a `TrainConfig`. Library code only ever sees
these objects.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from typing import Any

from icl import curriculum, models, tasks
from icl.checks import check_int
from icl.models import ModelConfig
from icl.precision import PRECISIONS
from icl.tasks.base import check_positive_int, default_baselines, default_reference
from icl.tasks.rng import SAMPLERS


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """optax optimiser: `name` in (adamw, adam, sgd), with global-norm clipping and a schedule.

    schedule: "constant" or "cosine" (decay to 0 over the run), after `warmup_steps` of linear
    warm-up from 0.
    """

    name: str = "adamw"
    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup_steps: int = 0
    schedule: str = "constant"

    def __post_init__(self):
        if self.name not in ("adamw", "adam", "sgd"):
            raise ValueError(f"optim: name must be one of adamw, adam, sgd, got {self.name!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"optim: schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"optim: lr must be > 0, got {self.lr!r}")
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise ValueError("optim: b1 and b2 must lie in [0, 1)")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ValueError("optim: grad_clip, weight_decay and warmup_steps must be >= 0")


SWEEPABLE = ("lr", "b1", "b2", "weight_decay")  # optim fields a run can sweep in one program (train.sweep)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    Attributes:
      steps: optimiser steps; every step draws `batch_size` fresh tasks from fold_in(key, step).
      seed: seed of the first run; `n_seeds` runs use seed, seed + 1, ... in one vmapped program.
      eval_every: steps between evaluations on `eval_tasks` held-out tasks (also the number of
        steps compiled into one dispatch, and the log interval).
      ckpt_every: steps between checkpoints (a multiple of eval_every).
      final_eval_tasks: held-out tasks for the final comparison table.
      eval_seed: root of every held-out key (evaluation, final table, the optimal GD lr); training
        keys derive from `seed` by another path, so no held-out task is ever trained on.
      dtype: "float32" or "float64": the run computes with x64 off or on, in a scope of its own
        (`precision.at_dtype`), whatever the caller's setting.
      data_parallel: devices the task batch is split over (a `data` mesh axis); 0 = all devices
        left after seed_parallel; "auto" (default): on a CPU, its cores as devices where that
        trains faster (`icl.devices.auto_data_parallel`: attention-only models deeper than one
        linear layer, >= 1,024 tasks per core), else 1; on an accelerator 1. Parameters are
        replicated over this axis. It does not name a run, and a resumed run may change it
        (`LAYOUT_FIELDS`): layouts give the same training up to float rounding of the gradient's sum.
      seed_parallel: devices the seeds are split over (a `seeds` mesh axis).
      sampler: the random stream training tasks are drawn from (`icl.tasks.rng`):
        "threefry_paired" (default) is JAX's threefry hash with both words of each block used,
        half the hashing of "threefry" (plain `jax.random`, the stream of runs written before this
        field existed; a config.json without the field loads as "threefry"). Both give the same
        values on any device count. Held-out tasks always come from plain `jax.random`.
      seed_group: 0 = every seed in one vmap (default); g > 0 = vmap over groups of g seeds and
        run the groups one after another (lax.map) inside the step. Same numbers; on a memory-bound
        CPU many seeds at a large batch run faster in groups (benchmarks/bench_train.py). Needs
        seed_parallel = 1 and n_seeds divisible by g.
      matmul_precision: the `jax.default_matmul_precision` the training step is traced under
        (`icl.precision.PRECISIONS`). The default "highest" makes a float32 run float32 on every
        backend; "default" takes the backend's fast mode (bfloat16 passes on TPU, TF32 on Ampere
        and later GPUs; no change on CPU). Evaluations and the final table always run at "highest".
      objective: "query" (default): the loss at the task's query tokens (von Oswald et al.);
        "causal": every position of the sequence [context, queries] is a query for the pairs
        before it, the loss averaged over positions (Garg et al. 2022); for model families that
        support it (`model.objectives()`).
      reference: the solver spec the model is measured against at every evaluation (the log's
        ref_loss, preds_diff, model_cos, model_diff), with the task's default hyper-parameters
        (`icl.compare.solver_predictor`). None: the task's `tasks.base.default_reference`, one
        step of GD at the optimal rate for the families that list GD (the paper's reference),
        else the family's first baseline (kernel ridge for sine, logistic regression for
        classification, ...). A config.json without the field loads as "gd", what older code
        logged for every task.
      curriculum: "none" (default) or "garg": Garg et al.'s curriculum (`icl.curriculum`), a pure
        function of the step: the active input dimensions grow min(5, d) -> d by 1 and the
        positions in the loss k dims + 1 -> T by k (T = n_ctx + n_query = k d + 1), every
        `curriculum_every` steps. Needs the causal objective and a task family whose `sample`
        takes `active_dims` (`icl.tasks.base.takes_active_dims`). Evaluations use the full task.
      curriculum_every: the steps between the curriculum's increments (Garg et al.: 2,000; Yang et al.: 5,000).
      loop_curriculum: "none" (default) or "yang": a looped GPT-2 (`model.loops` = b) trains with
        Yang et al.'s loop curriculum (`icl.models.gpt2.loop_curriculum`, the task family's
        `LOOP_SCHEDULES` entry): b_t loops growing to b, the loss averaged over the last
        `window` loops' read-outs with truncated backpropagation. Causal objective only.
      sweep, sweep_values: "" and () (default), or an optimiser hyper-parameter (`SWEEPABLE`:
        "lr", "b1", "b2", "weight_decay") and its values: the run trains one column per (value,
        seed), value-major, C = len(sweep_values) x n_seeds columns in one compiled program
        (`n_columns`); column (v, i) is the run with `optim.<sweep>` = v and seed `seed + i`, so
        the values see the same initial weights and tasks (paired). Every per-seed list a run
        writes (log, summary, checkpoints) is then per column; `icl.trainer.columns` names them.
    """

    steps: int = 5000
    batch_size: int = 2048
    seed: int = 0
    n_seeds: int = 1
    eval_every: int = 100
    eval_tasks: int = 2048
    ckpt_every: int = 1000
    final_eval_tasks: int = 10000
    eval_seed: int = 2**20
    dtype: str = "float32"
    data_parallel: int | str = "auto"
    seed_parallel: int = 1
    sampler: str = "threefry_paired"
    seed_group: int = 0
    matmul_precision: str = "highest"
    reference: str | None = None
    objective: str = "query"
    curriculum: str = "none"
    curriculum_every: int = 2000
    loop_curriculum: str = "none"
    sweep: str = ""
    sweep_values: tuple[float, ...] = ()

    @property
    def n_columns(self) -> int:
        """The runs trained side by side: n_seeds, times the sweep's values if any."""
        return self.n_seeds * max(len(self.sweep_values), 1)

    def __post_init__(self):
        names = ("steps", "batch_size", "n_seeds", "eval_every", "eval_tasks", "ckpt_every", "final_eval_tasks", "seed_parallel",
                 "curriculum_every")
        check_positive_int("train", **{n: getattr(self, n) for n in names})
        if self.ckpt_every % self.eval_every:
            raise ValueError(
                f"train: ckpt_every ({self.ckpt_every}) must be a multiple of eval_every ({self.eval_every})"
            )
        if isinstance(self.data_parallel, str) and self.data_parallel != "auto":  # `--set train.data_parallel=2` gives "2"
            if not self.data_parallel.isdigit():
                raise ValueError(f"train: data_parallel must be 'auto' or an integer >= 0, got {self.data_parallel!r}")
            object.__setattr__(self, "data_parallel", int(self.data_parallel))
        if self.data_parallel != "auto":
            check_int("train", 0, data_parallel=self.data_parallel)
        check_int("train", 0, seed_group=self.seed_group)
        if self.data_parallel not in ("auto", 0) and self.batch_size % self.data_parallel:
            raise ValueError(f"train: batch_size ({self.batch_size}) must be divisible by data_parallel ({self.data_parallel})")
        if self.n_seeds % self.seed_parallel:
            raise ValueError(f"train: n_seeds ({self.n_seeds}) must be divisible by seed_parallel ({self.seed_parallel})")
        if self.seed_group and (self.n_seeds % self.seed_group or self.seed_parallel != 1):
            raise ValueError(
                f"train: seed_group ({self.seed_group}) must divide n_seeds ({self.n_seeds}) and needs seed_parallel = 1"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"train: dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"train: sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        for name, known in (("curriculum", ("none", "garg")), ("loop_curriculum", ("none", "yang"))):
            if getattr(self, name) not in known:
                raise ValueError(f"train: {name} must be one of {', '.join(known)}, got {getattr(self, name)!r}")
        if self.matmul_precision not in PRECISIONS:
            raise ValueError(f"train: matmul_precision must be one of {', '.join(PRECISIONS)}, got {self.matmul_precision!r}")
        if self.sweep not in ("", *SWEEPABLE):
            raise ValueError(f"train: sweep must be one of {', '.join(SWEEPABLE)} (or empty), got {self.sweep!r}")
        if bool(self.sweep) != bool(self.sweep_values):
            raise ValueError("train: sweep and sweep_values go together: name the optim field and give its values")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.sweep_values):
            raise ValueError(f"train: sweep_values must be numbers, got {self.sweep_values!r}")


# Fields that lay a run out on devices: they change its numbers by float rounding only (the
# gradient's sum is split otherwise), so they do not name a run (`icl.rundir.naming_config`), a
# resumed run may change them (bit for bit only on the same layout) and a shipped model matches a
# config whatever they say (`icl.pretrained.matches`). The value is the one a run is named by:
# data_parallel's default before "auto", so a run of the default layout keeps its directory.
LAYOUT_FIELDS = {"train.data_parallel": 1}


def at_layout_names(config: ExperimentConfig) -> ExperimentConfig:
    """`config` with every LAYOUT_FIELDS field at the value runs are named by."""
    for dotted, value in LAYOUT_FIELDS.items():
        section, name = dotted.split(".")
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **{name: value})})
    return config


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One training experiment: what to learn, with what, and how."""

    name: str = "custom"
    task: Any = dataclasses.field(default_factory=lambda: tasks.get("linear"))
    model: Any = dataclasses.field(default_factory=ModelConfig)  # any registered model family's config
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    compare_against: tuple[str, ...] | None = None  # None: the task's baselines (see below)

    def __post_init__(self):
        """`name` becomes a directory name (runs/<name>-<hash>): letters, digits, `-`, `_`, `.`.
        `compare_against` (solver names or specs like "ridge(lam=0.1)") defaults to the task
        family's baselines, `tasks.base.default_baselines(task)`: for the linear family without
        noise that is (gd, least_squares)."""
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name) or self.name.startswith("."):
            raise ValueError(f"config: name must be letters, digits, '-', '_' or '.' (it names a directory), got {self.name!r}")
        if getattr(type(self.task), "family", None) not in tasks.names():
            raise ValueError(f"config: task must be a registered task family, got {self.task!r}")
        models.family_of(self.model)
        models.check_objective(self.model, self.train.objective)
        curriculum.of_run(self)  # a one-line error if the curriculum does not fit the task and model
        from icl import solvers  # solvers import nothing from here

        if self.compare_against is None:
            object.__setattr__(self, "compare_against", default_baselines(self.task))
        if isinstance(self.compare_against, str):
            object.__setattr__(self, "compare_against", solvers.split_specs(self.compare_against))
        object.__setattr__(self, "compare_against", tuple(self.compare_against))
        for spec in self.compare_against:
            solvers.parse_spec(spec)
        for value in self.train.sweep_values:  # each column's optimiser is a valid one
            try:
                dataclasses.replace(self.optim, **{self.train.sweep: value})
            except ValueError as error:
                raise ValueError(f"train: sweep_values: {error}") from None
        if self.train.sweep == "weight_decay" and self.optim.name != "adamw":
            raise ValueError(f"train: sweep weight_decay needs optim.name = adamw, got {self.optim.name!r}")
        if self.train.sweep in ("b1", "b2") and self.optim.name == "sgd":
            raise ValueError(f"train: sweep {self.train.sweep} needs optim.name = adam or adamw (sgd has no {self.train.sweep})")
        if self.train.reference is None:
            object.__setattr__(self, "train", dataclasses.replace(self.train, reference=default_reference(self.task)))
        try:
            solvers.parse_spec(self.train.reference)
        except ValueError as error:
            raise ValueError(f"train: reference: {error}") from None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["task"] = {"family": self.task.family, **dataclasses.asdict(self.task)}
        out["model"] = {"family": self.model.family, **dataclasses.asdict(self.model)}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ExperimentConfig:
        data = upgrade_saved(data)
        task_params = dict(data.pop("task"))
        family = task_params.pop("family")
        model_params = dict(data["model"])
        model_family = model_params.pop("family")
        return cls(
            name=data["name"],
            task=tasks.get(family, **_coerce_fields(tasks.family(family), task_params)),
            model=models.get(model_family, **_coerce_fields(models.family(model_family), model_params)),
            optim=OptimConfig(**_coerce_fields(OptimConfig, data["optim"])),
            train=TrainConfig(**_coerce_fields(TrainConfig, data["train"])),
            compare_against=tuple(data["compare_against"]),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def upgrade_saved(data: dict) -> dict:
    """A saved config dict (config.json) as this version reads it. A `train` section written
    before `sampler` existed trained on plain `jax.random` ("threefry") and logged one GD step
    as its reference ("gd"); one with the removed `fast_sampling` on trained on a stream this
    version no longer draws (an error). A `model` section without a `family` was written before the
    model registry, when every model was the LSA transformer ("lsa")."""
    data = dict(data)
    data["model"] = {"family": "lsa", **data.get("model", {})}
    train = dict(data.get("train", {}))
    if train.pop("fast_sampling", False):
        raise ValueError("config: this run was trained with train.fast_sampling=true, a random stream this version "
                         "no longer draws; finish it with the version that started it")
    train.setdefault("sampler", "threefry")
    train.setdefault("reference", "gd")
    data["train"] = train
    return data


def _coerce_fields(cls, values: dict) -> dict:
    """JSON lists back to tuples where the dataclass field is a tuple."""
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in values.items():
        if isinstance(value, list) and "tuple" in str(hints.get(key, "")):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        out[key] = value
    return out


def _parse_value(text: str, current: Any, where: str) -> Any:
    """Parse `text` as the type of the field's current value."""
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"--set {where}: expected true or false, got {text!r}")
    try:
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, tuple) or (isinstance(current, str) and text.startswith(("[", "("))):
            value = json.loads(text.replace("(", "[").replace(")", "]"))
            return tuple(tuple(v) if isinstance(v, list) else v for v in value) if isinstance(value, list) else value
    except ValueError as error:
        raise ValueError(f"--set {where}: cannot read {text!r} as {type(current).__name__}") from error
    return text


def _parse_assignment(config: ExperimentConfig, assignment: str) -> tuple[str, str, Any]:
    """`section.field=value` -> (section, field, typed value); `task=family`, `name=`,
    `compare_against=a,b` -> (key, "", value)."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value, got {assignment!r}")
    key, text = assignment.split("=", 1)
    if key == "task":
        tasks.family(text)
        return key, "", text
    if key == "model":
        models.family(text)
        return key, "", text
    if key == "name":
        return key, "", text
    if key == "compare_against":
        from icl import solvers

        return key, "", solvers.split_specs(text)
    sections = ("task", "model", "optim", "train")
    section, _, field = key.partition(".")
    if section not in sections or not field:
        valid = ", ".join(f"{s}.<field>" for s in sections)
        raise ValueError(f"--set {key!r}: unknown key; use task=<family>, model=<family>, name=..., compare_against=..., or {valid}")
    obj = getattr(config, section)
    names = [f.name for f in dataclasses.fields(obj) if f.init]
    if field not in names:
        raise ValueError(f"--set {key!r}: {section} has no field {field!r}; valid: {', '.join(names)}")
    if (section, field) == ("train", "data_parallel"):  # "auto" or a count, whatever it holds now
        if text == "auto":
            return section, field, text
        if not text.isdigit():
            raise ValueError(f"--set {key}: expected 'auto' or an integer >= 0 (0 = every device), got {text!r}")
        return section, field, int(text)
    return section, field, _parse_value(text, getattr(obj, field), key)


def apply_overrides(config: ExperimentConfig, assignments) -> ExperimentConfig:
    """Apply `--set` assignments; fields of one section are replaced together (order-free), so
    e.g. `task.d=2 task.covariance=[[1,0],[0,2]]` is validated as a whole."""
    top: dict[str, Any] = {}
    fields: dict[str, dict[str, Any]] = {}
    assignments = list(assignments or ())
    # A config comparing against its task's default baselines (reference) keeps doing so for the new task.
    follows_task = config.compare_against == default_baselines(config.task)
    reference_follows_task = config.train.reference == default_reference(config.task)
    assignments.sort(key=lambda a: not a.startswith(("task=", "model=")))  # a new family first, then its fields
    for assignment in assignments:
        section, field, value = _parse_assignment(config, assignment)
        if field:
            fields.setdefault(section, {})[field] = value
        elif section == "task":
            config = dataclasses.replace(config, task=tasks.get(value))
        elif section == "model":
            config = dataclasses.replace(config, model=models.get(value))
        else:
            top[section] = value
    if reference_follows_task and "reference" not in fields.get("train", {}):
        fields.setdefault("train", {})["reference"] = None
    updates = {section: dataclasses.replace(getattr(config, section), **values) for section, values in fields.items()}
    if follows_task and "compare_against" not in top:
        top["compare_against"] = None
    return dataclasses.replace(config, **top, **updates)


def override(config: ExperimentConfig, assignment: str) -> ExperimentConfig:
    """Apply one `--set` assignment (see `apply_overrides`)."""
    return apply_overrides(config, [assignment])
