"""A run directory and the promises its records keep.

    <run>/config.json        the run's config (written once the run has really started)
    <run>/log.jsonl          one JSON line per evaluation (+ events: resumed, log_gap, diverged)
    <run>/checkpoints/<step> orbax checkpoints of parameters and optimiser state, the last two kept
    <run>/summary.json       the final table, written when train.steps is reached
    <run>/.lock              held by the training process (one trainer per directory)

Guarantees (tested by fault injection in tests/test_faults.py):
  * a file is written whole or not at all (`write_atomic`; orbax renames a finished checkpoint
    into place), so a kill -9 at any moment leaves the last checkpoint and true records;
  * one trainer per directory: a second `icl train` on it is refused at once (`lock`);
  * a checkpoint is only ever written of a state whose training loss, held-out loss and
    parameters are finite ("last good" means good);
  * an unreadable checkpoint is moved aside to <run>/corrupt/ and the run resumes from the one
    before it, with an event in the log;
  * the directory belongs to one config: another config is refused, except train.steps (which
    may grow, to extend a run, unless the learning-rate schedule depends on it),
    compare_against and final_eval_tasks (which only shape the final table), and the device
    layout (`icl.config.LAYOUT_FIELDS`: it names no run, so a run named with an explicit
    data_parallel before the field became a layout field is found under a new name).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from icl.checks import first_line
from icl.config import LAYOUT_FIELDS, at_layout_names, upgrade_saved

LOG, SUMMARY, CONFIG, LOCK = "log.jsonl", "summary.json", "config.json", ".lock"
# Fields a resumed run may change: they do not change the trained parameters.
FREE_FIELDS = ("train.steps", "compare_against", "train.final_eval_tasks")


def naming_config(config) -> dict:
    """The JSON form of `config` that names its default run directory (`cli.default_run_dir`
    hashes it): the FREE_FIELDS do not name it, so changing one on a finished run resumes the same
    directory (and recomputes only its table). train.steps is left out; the others are set to
    their defaults (compare_against: the task's baselines), which keeps the name of a config
    that has them at their defaults (the default `paper_1layer`) what it was before this rule. The
    LAYOUT_FIELDS name it at their fixed values, whatever the config says."""
    for dotted in FREE_FIELDS:
        if dotted != "train.steps":
            config = _at_default(config, dotted)
    data = at_layout_names(config).to_dict()
    data["train"].pop("steps")
    for section, name, default in ADDED_FIELDS:
        if data[section].get(name) == default:
            del data[section][name]
    return data


# Fields added after run directories were first named, with the value every older run had: at
# that value they stay out of the name, so an existing directory keeps its name (and resumes).
ADDED_FIELDS = (("model", "family", "lsa"), ("train", "objective", "query"), ("task", "weight_mean", 0.0),
                ("train", "curriculum", "none"), ("train", "curriculum_every", 2000), ("train", "loop_curriculum", "none"),
                ("train", "sweep", ""), ("train", "sweep_values", ()))


def _at_default(config, dotted: str):
    """`config` with the field `dotted` ("field" or "section.field") at its dataclass default."""
    section, _, name = dotted.rpartition(".")
    obj = getattr(config, section) if section else config
    field = next(f for f in dataclasses.fields(obj) if f.name == name)
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    changed = dataclasses.replace(obj, **{name: default})
    return dataclasses.replace(config, **{section: changed}) if section else changed


class CheckpointMismatch(ValueError):
    """A run directory's checkpoint or config does not match the requested config."""


class RunDirectoryBusy(ValueError):
    """Another process is training in this run directory."""


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a kill mid-write leaves the old file, never half a file)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def lock(run_dir: Path):
    """Hold the run directory's lock (an flock, released by the OS if the process dies)."""
    with open(run_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise RunDirectoryBusy(
                f"{run_dir} is in use: {holder} is training in it. Wait for it to finish, or use another --out."
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the config ---------------------------------------------------------------------------------
def _field_defaults(obj) -> dict:
    """The JSON form of a config section's field defaults (what an older run, saved before a
    field existed, implicitly used)."""
    defaults = {f.name: f.default for f in dataclasses.fields(obj) if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps(defaults, default=list))


def config_differences(saved: dict, config) -> list[str]:
    """Dotted names of the fields in which `config` differs from the saved JSON config, apart from
    FREE_FIELDS. A field the saved config lacks (added to the code later) counts as its default, except
    where `icl.config.upgrade_saved` knows what the older code did."""
    now = json.loads(config.to_json())  # the JSON form, so tuple fields compare equal to saved lists
    saved = upgrade_saved(saved)
    diff = []
    for section, values in now.items():
        if not isinstance(values, dict):
            if values != saved.get(section) and section not in FREE_FIELDS:
                diff.append(section)
            continue
        old = {**_field_defaults(getattr(config, section)), **saved.get(section, {})}
        diff += [f"{section}.{k}" for k in sorted(set(values) | set(old))
                 if values.get(k) != old.get(k) and f"{section}.{k}" not in (*FREE_FIELDS, *LAYOUT_FIELDS)]
    return diff


def check_config(run_dir: Path, config, has_checkpoint: bool) -> None:
    """Refuse to train `config` in a directory that holds another run (see the module docstring).
    A config.json without any checkpoint is a start that failed before training: it is replaced."""
    path = run_dir / CONFIG
    if not path.exists():
        if has_checkpoint:
            raise CheckpointMismatch(
                f"{run_dir} has checkpoints but no {CONFIG}: its config is unknown, so it cannot be "
                f"resumed safely. Restore {CONFIG}, or use another --out."
            )
        return
    if not has_checkpoint:
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointMismatch(f"{path} is not valid JSON ({error}); restore it, or use another --out") from None
    diff = config_differences(saved, config)
    if diff:
        raise CheckpointMismatch(
            f"{run_dir} holds a run with another config (differs in: {', '.join(diff)}). "
            "Use a new --out directory to start a new run."
        )
    old_steps = saved.get("train", {}).get("steps")
    schedule_needs_steps = config.optim.schedule == "cosine"
    if schedule_needs_steps and old_steps != config.train.steps:
        raise CheckpointMismatch(
            f"{run_dir} was trained with a cosine schedule over {old_steps} steps; training it to "
            f"{config.train.steps} would follow a schedule no config describes. Use a new --out."
        )


# -- checkpoints --------------------------------------------------------------------------------
def manager(run_dir: Path) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        (run_dir / "checkpoints").absolute(),
        # the checkpoint older than the last two is deleted by orbax's own thread (joined on close),
        # not in the writer's path, so a save does not wait for the deletion
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_background_delete=True),
        item_handlers=ocp.StandardCheckpointHandler(),
    )


def _shapes(tree) -> dict[str, tuple]:
    """{"layers/0/key": shape, ...} for a tree of arrays or of orbax array metadata."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(leaf.shape) for path, leaf in flat}


def check_compatible(mgr: ocp.CheckpointManager, step: int, params: dict) -> None:
    """Refuse a checkpoint whose parameter tree or shapes differ from what the config builds."""
    saved, wanted = _shapes(mgr.item_metadata(step)["params"]), _shapes(params)
    problems = [f"{k}: checkpoint {saved.get(k)} vs config {v}" for k, v in wanted.items() if saved.get(k) != v]
    problems += [f"{k}: in the checkpoint, not in the config" for k in saved if k not in wanted]
    if problems:
        raise CheckpointMismatch(
            f"checkpoint at step {step} in {mgr.directory} does not match the config "
            f"({len(problems)} differences; first: {'; '.join(problems[:3])}). "
            "Use a new --out directory, or the config the run was made with."
        )


def restore(mgr: ocp.CheckpointManager, step: int, target: dict) -> dict:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return mgr.restore(step, args=ocp.args.StandardRestore(abstract))


def restore_latest(run_dir: Path, target: dict, echo=print, mgr: ocp.CheckpointManager | None = None
                   ) -> tuple[ocp.CheckpointManager, int, dict | None]:
    """(manager, step, restored state) of the newest readable checkpoint; (manager, 0, None) if
    there is none. An unreadable checkpoint is moved to <run>/corrupt/<step> (nothing is deleted)
    and the one before it is tried; a checkpoint of another shape is refused (CheckpointMismatch).
    `mgr`: the run directory's open manager, if the caller has one."""
    mgr = mgr or manager(run_dir)
    while mgr.latest_step() is not None:
        step = mgr.latest_step()
        try:
            metadata_ok = mgr.item_metadata(step) is not None
        except Exception:  # noqa: BLE001  unreadable metadata: a corrupt checkpoint
            metadata_ok = False
        if metadata_ok:
            check_compatible(mgr, step, target["params"])
            try:
                return mgr, step, restore(mgr, step, target)
            except Exception as error:  # noqa: BLE001  orbax raises many kinds for a damaged file
                reason = f"{type(error).__name__}: {first_line(error)[:200]}"
        else:
            reason = "unreadable metadata"
        mgr.close()
        aside = run_dir / "corrupt" / str(step)
        aside.parent.mkdir(exist_ok=True)
        shutil.move(str(run_dir / "checkpoints" / str(step)), aside)
        echo(f"checkpoint {step} is unreadable ({reason}); moved it to {aside} and trying the one before")
        mgr = manager(run_dir)
    return mgr, 0, None


# -- the log ------------------------------------------------------------------------------------
def read_log(run_dir: Path) -> list[dict]:
    """The log's records; a last line cut by a kill is dropped. Records written before
    `train.reference` existed name the reference's loss "gd_loss" (it was one GD step); they are
    read as "ref_loss"."""
    path = run_dir / LOG
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "gd_loss" in record:
            record["ref_loss"] = record.pop("gd_loss")
        records.append(record)
    return records


def last_logged(records: list[dict]) -> tuple[int, float]:
    """(step, cumulative wall seconds) of the last evaluation record (0, 0.0 if none)."""
    evals = [r for r in records if "step" in r and "event" not in r]
    if not evals:
        return 0, 0.0
    return evals[-1]["step"], float(evals[-1].get("wall_s", 0.0))
