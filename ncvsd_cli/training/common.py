"""Pieces shared by teacher.py and distill.py: network building, autocast, optimiser steps, snapshot names."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Collection, Iterator
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path

import torch

from ncvsd_cli.training import distributed
from ncvsd_cli.training.loop import force_finite_, recorded_duration

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class RunSettings:
    """Settings shared by `ncvsd train` and `ncvsd distill` (small-scale defaults for `builtin`).

    lr: ref_lr of the EDM2 schedule (docs/method.md §1.8); ref_batches: decay starts after ref_batches·batch images
    (0 = none); rampup_kimg: linear warm-up; p_mean/p_std: lognormal σ (teacher) or t (distillation); sigma_rels: EMA
    widths; duration/snapshot: see loop.parse_duration; command: the command line recorded in provenance.
    """

    data: str = "builtin"
    out: str = "runs/run"
    batch: int = 32
    duration: str | None = None  # None: on resume the run's recorded one, else DEFAULT_DURATION (`with_duration`)
    snapshot: str = "5min"
    lr: float = 0.01
    ref_batches: float = 0.0
    rampup_kimg: float = 20.0
    p_mean: float = -0.8
    p_std: float = 1.6
    loss_scaling: float = 1.0
    sigma_rels: tuple[float, ...] = (0.05, 0.10)
    seed: int = 0
    xflip: bool = True
    precision: str = "fp32"
    channels_last: bool = False
    device: str = "auto"
    log_every: int = 20
    resume: bool = False
    progress: bool = True
    command: str | None = None

    def check(self) -> None:
        """ValueError naming the first option out of range (before anything is written to the run directory)."""
        check_ranges(positive={"batch": self.batch, "lr": self.lr, "p_std": self.p_std,
                               "loss_scaling": self.loss_scaling, "log_every": self.log_every},
                     non_negative={"ref_batches": self.ref_batches, "rampup_kimg": self.rampup_kimg})
        if not math.isfinite(self.p_mean):
            raise ValueError(f"--p-mean must be finite, got {self.p_mean}")
        if self.lr > MAX_LR:  # Adam's update overflowed float32 ("internal error" at the first step)
            raise ValueError(f"--lr must be <= {MAX_LR:g} (EDM2's are about 0.01), got {self.lr}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")


#: The largest --lr taken: 1e30 still trains (and is stopped as diverged, `loop.TrainingDiverged`); 1e38 overflowed
#: float32 inside Adam's update.
MAX_LR = 1e30


def check_ranges(positive: dict[str, float], non_negative: dict[str, float]) -> None:
    """ValueError "--name must be > 0, got v" (or ">= 0") for the first value that is not a finite number in range."""
    for low, values in (("> 0", positive), (">= 0", non_negative)):
        for name, value in values.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and (value > 0 if low == "> 0" else value >= 0)):
                raise ValueError(f"--{name.replace('_', '-')} must be {low}, got {value}")


def autocast(device: torch.device, precision: str):
    """Context for the network forward passes: bf16/fp16 autocast on CUDA (bf16 also on CPU), else nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs CUDA; use bf16 or fp32 on CPU")
    return torch.autocast(device.type, dtype=dtype)


def build(kind: str, arch: str, device: torch.device, channels_last: bool = False) -> tuple[torch.nn.Module, dict]:
    """A fresh network of `kind` with architecture `arch` (a name in ncvsd_cli.networks.PRESETS), on `device`;
    returns (module, config)."""
    from ncvsd_cli.networks import build_network, network_config

    config = network_config(kind, arch)
    net = build_network(config).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, config


#: Config keys that must agree between a network and weights loaded into it (architecture and data format).
ARCH_KEYS = ("arch", "img_resolution", "img_channels", "label_dim", "sigma_data", "gamma", "init_sigma")


def load_init_weights(net: torch.nn.Module, config: dict, source: str, kind: str, option: str,
                      quiet: bool = False) -> str:
    """Copy the weights of checkpoint `source` (a name, path or run folder; a `kind` network, "teacher" or
    "generator") into `net`, whose config is `config`; returns the resolved path (a run folder's snapshot is named
    on stderr unless `quiet`). Raises ValueError naming `option` when the checkpoint's architecture differs
    (`networks.build.architecture`: sizes, data format, arch kwargs; use_fp16 does not count)."""
    from ncvsd_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from ncvsd_cli.networks.build import architecture

    path = str(resolve_checkpoint(source, kind=kind, quiet=quiet))
    loaded, cfg = load_checkpoint(path, kind=kind)
    theirs, ours = architecture({**cfg, "kind": kind}), architecture({**config, "kind": kind})
    mismatch = [k for k in ours if theirs.get(k) != ours[k]]
    if mismatch:
        raise ValueError(f"{option} {source}: its {', '.join(mismatch)} differ{'s' * (len(mismatch) == 1)} from "
                         "the network being trained "
                         f"({', '.join(f'{k}={theirs.get(k)!r} vs {ours[k]!r}' for k in mismatch)})")
    net.load_state_dict(loaded.state_dict())
    return path


def file_provenance(key: str, path: str | Path) -> dict:
    """{key: file name, key_sha256: its sha256}: how a checkpoint names a file it was made from."""
    from ncvsd_cli.checkpoints import sha256_file

    return {key: Path(path).name, f"{key}_sha256": sha256_file(path)}


def make_adam(net: torch.nn.Module, device: torch.device) -> torch.optim.Adam:
    """Adam(β = (0.9, 0.99), eps 1e-8, no weight decay) as in docs/method.md §1.8; lr is set per step by the schedule."""
    return torch.optim.Adam(net.parameters(), lr=0.0, betas=(0.9, 0.99), eps=1e-8,
                            foreach=True if device.type != "cpu" else None)


def optimiser_step(net: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    """backward, all-reduce over ranks, force-finite, set lr, step, zero grads (set_to_none)."""
    loss.backward()
    params = [p for p in net.parameters() if p.requires_grad]
    distributed.all_reduce_grads(params)
    force_finite_(params)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    opt.zero_grad(set_to_none=True)


def snapshot_path(out: Path, kind: str, kimg: float, sigma_rel: float | None = None) -> Path:
    """snapshots/<kind>-<kimg>[-<sigma_rel:.3f>].safetensors, kimg as 0000054.500 (EDM2-style names, to the image:
    two snapshots of a short run within one kimg do not replace each other; names sort in training order)."""
    tail = f"-{sigma_rel:.3f}" if sigma_rel is not None else ""
    return out / "snapshots" / f"{kind}-{kimg_tag(kimg)}{tail}.safetensors"


def kimg_tag(kimg: float) -> str:
    """kimg (images / 1000) as a fixed-width name part exact to the image: 54.5 -> "0000054.500"."""
    return f"{round(kimg * 1000) / 1000:011.3f}"


def labels_for(net: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor | None:
    """Integer labels (-1 = none) -> what the network wants: None for unconditional nets."""
    if getattr(net, "label_dim", 0) == 0:
        return None
    if (labels < 0).any():
        raise ValueError("a class-conditional architecture needs a labelled dataset (dataset.json with labels)")
    return labels


def latest_snapshot(run_dir: str | Path, kind: str, sigma_rel: float = 0.05) -> Path:
    """The newest snapshots/<kind>-<kimg>-<sigma_rel>.safetensors of a run directory (ValueError if none)."""
    from ncvsd_cli.checkpoints import CheckpointError, run_snapshot

    try:
        return run_snapshot(run_dir, kind, sigma_rel)
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None


def run_record(run_dir: str | Path) -> dict:
    """The settings a run recorded in `run_dir`/run.json; {} when the file is missing or unreadable."""
    try:
        recorded = json.loads(Path(run_dir, "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def recorded_setting(run_dir: str | Path, key: str, *old_keys: str) -> object | None:
    """The value of `key` (or, for run directories of older versions, of the first of `old_keys`) in the
    run.json of `run_dir`; None when the file, or the key, is missing or unreadable."""
    recorded = run_record(run_dir)
    return next((recorded[k] for k in (key, *old_keys) if recorded.get(k) is not None), None)


#: --duration of a new run given none.
DEFAULT_DURATION = "30min"


def with_duration(settings: RunSettings) -> RunSettings:
    """`settings` with its duration decided: None becomes the run's recorded one on resume (a count there is the
    run's total: a finished run has nothing to do), else DEFAULT_DURATION."""
    if settings.duration is not None:
        return settings
    recorded = recorded_setting(settings.out, "duration") if settings.resume else None
    return replace(settings, duration=recorded_duration(recorded) if recorded else DEFAULT_DURATION)


#: Settings that belong to one invocation, never taken from the run's record on --resume.
PER_INVOCATION = ("out", "resume", "progress", "command", "device", "init_teacher", "init_generator")


def _tuples(value: object) -> object:
    """JSON lists back to the tuples the settings dataclasses hold (sigma_rels, preview_ts)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@contextlib.contextmanager
def training_rng(device: torch.device) -> Iterator[None]:
    """Run training inside: the global random state (CPU, and `device`'s when CUDA) is put back afterwards, so a
    Python caller's seeded draws do not continue from the run's seed-0 stream (a run seeds and restores its own)."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() or device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # (a run's torch.manual_seed reseeds every CUDA device)
        yield


def library_settings(settings: RunSettings, given: Collection[str] | None = None) -> RunSettings:
    """`settings` as `teacher.train_teacher` / `distill.distill` run them: checked (ValueError naming the field: a
    negative lr trained without a word); on a resume, the run's recorded recipe for every field not in `given`
    (the fields the caller sets; None: those that differ from their defaults, so a field set back to its default
    must be named there), as `ncvsd train --resume` keeps it (a bare resume from Python trained on the built-in
    photos at the default lr and batch). The command line merges what was typed itself (`given`: every field)."""
    if settings.resume and Path(settings.out, "run.json").is_file():
        if given is None:
            given = {f.name for f in fields(settings) if getattr(settings, f.name) != (
                f.default_factory() if f.default_factory is not MISSING else f.default)}
        settings, _ = resumed_settings(settings, set(given))
    settings.check()
    return settings


def resumed_settings(settings: RunSettings, given: set[str]) -> tuple[RunSettings, dict[str, tuple]]:
    """A resumed run keeps its recipe: every field of `settings` not in `given` (the options the user typed) and
    not per invocation (PER_INVOCATION) is taken from the run's run.json when recorded there (lr, batch,
    schedule, data, EMA widths, ...). Returns (the settings, {field: (recorded, given)} for typed values that
    differ from the record; these override it)."""
    recorded = run_record(settings.out)
    names = {f.name for f in fields(settings)} - set(PER_INVOCATION)
    taken = {k: _tuples(recorded[k]) for k in names - given if recorded.get(k) is not None}
    if "duration" in taken:  # ("2M", recorded when it meant minutes: "2min")
        taken["duration"] = recorded_duration(taken["duration"])
    changed = {k: (_tuples(recorded[k]), getattr(settings, k)) for k in names & given
               if k in recorded and _tuples(recorded[k]) != getattr(settings, k)}
    return replace(settings, **taken), changed


def recipe_changes(run_dir: str | Path, settings: dict) -> dict[str, tuple]:
    """{field: (recorded, now)} for the recipe fields of `settings` (not PER_INVOCATION) whose value differs from
    the run's run.json: the values typed on this --resume that replace the record."""
    recorded = run_record(run_dir)
    return {k: (recorded[k], v) for k, v in settings.items()
            if k not in PER_INVOCATION and recorded.get(k) is not None and _tuples(recorded[k]) != _tuples(v)}


def record_overrides(run_dir: str | Path, changed: dict[str, tuple], command: str | None) -> None:
    """Write the values typed on a --resume that differ from the record (`changed`, from resumed_settings) into
    the run's run.json, so that later resumes keep them; the list "overrides" says when (command) and what
    (field: [old, new]; a new --duration is recorded without one). Atomic; call on one rank only."""
    from ncvsd_cli.images import atomic_write_bytes

    path = Path(run_dir, "run.json")
    recorded = json.loads(path.read_text(encoding="utf-8"))
    recorded.update({k: new for k, (_, new) in changed.items()})
    listed = {k: [old, new] for k, (old, new) in changed.items() if k != "duration"}  # extending is no override
    if listed:
        recorded["overrides"] = [*recorded.get("overrides", []), {"command": command, **listed}]
    atomic_write_bytes(path, (json.dumps(recorded, indent=2, default=str) + "\n").encode())
