"""Loop machinery shared by teacher training and distillation: durations, the EDM2 learning-rate schedule,
atomic training states, exact resume, snapshots on a time/kimg clock, JSONL logs and the progress bar.

A run directory holds:
  run.json                 the settings and exact command of the first invocation (+ one line per resume in log)
  log.jsonl                one JSON object per log interval: step, kimg, losses (means over loss_steps steps: since
                           the last line, or since a resume), lr, images/s, seconds
  state.pt                 the full training state: tensors and plain containers only, written atomically (temp
                           file + os.replace) and read with torch.load(weights_only=True), so it cannot run code
  snapshots/*.safetensors  EMA networks in the project's checkpoint format
  previews/*.png           sample grids (distillation)

A run stopped by SIGINT, SIGTERM or SIGHUP saves its state after the current step and raises TrainingInterrupted
(the CLI exits 130 or 143), so `ncvsd train && ncvsd distill` never continues on a half-trained teacher.

Randomness is counter based: update k of rank r draws from a generator seeded by (seed, r, k), and the data
stream is a pure function of its position (data.py), so a resumed run continues bit for bit (CPU).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import re
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ncvsd_cli.checkpoints import CheckpointError
from ncvsd_cli.images import ImageError, atomic_write_bytes, nearest_existing
from ncvsd_cli.progress import write_line
from ncvsd_cli.training import distributed
from ncvsd_cli.training.data import _mix

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|min|m|h|kimg|mimg|mi|ki|img|steps?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Duration:
    """A training length: `seconds` of wall time (this invocation), `nimg` images (total), or `steps` (total)."""

    seconds: float | None = None
    nimg: int | None = None
    steps: int | None = None

    def describe(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:g} s"
        return f"{self.nimg / 1000:g} kimg" if self.nimg is not None else f"{self.steps} steps"


def parse_duration(text: str, what: str = "duration") -> Duration:
    """'30min', '4min', '2h', '90s', '200kimg', '1.5Mimg', '64Mi' (2^20 images), '16Ki', '5000img', '300steps'.

    A bare number means kimg (EDM2 convention); 'm' is minutes and a capital 'M' alone is refused (ambiguous).
    Time lengths count this invocation only; image and step counts
    are totals over resumes. Raises ValueError naming the bad text and `what` it is (e.g. "--snapshot").
    """
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{what} {text!r} not understood; use e.g. 30min, 2h, 200kimg, 64Mi or 500steps")
    value, unit = float(m.group(1)), (m.group(2) or "kimg").lower()
    if m.group(2) == "M":  # 2M: minutes to `timeout`, millions to most people
        raise ValueError(f"{what} {text!r} is ambiguous: write {m.group(1)}min for minutes or {m.group(1)}Mimg for "
                         "images")
    if value <= 0:
        raise ValueError(f"{what} {text!r} must be > 0")
    seconds = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    if unit in seconds:
        return Duration(seconds=value * seconds[unit])
    if unit in ("step", "steps"):
        count, kind = int(value), "step"
    else:
        per = {"img": 1, "kimg": 1000, "mimg": 1_000_000, "ki": 1 << 10, "mi": 1 << 20}[unit]
        count, kind = round(value * per), "image"
    if count < 1:
        raise ValueError(f"{what} {text!r} is less than one {kind}")
    return Duration(steps=count) if kind == "step" else Duration(nimg=count)


def recorded_duration(text: str) -> str:
    """A --duration as a run recorded it, in today's terms: "2M", recorded when it meant 2 minutes (now refused as
    ambiguous by `parse_duration`), is "2min"; anything else as it is."""
    m = _DURATION.match(str(text))
    return f"{m.group(1)}min" if m and m.group(2) == "M" else str(text)


def learning_rate(cur_nimg: int, ref_lr: float, batch: int, ref_batches: float = 0.0,
                  rampup_img: float = 0.0) -> float:
    """EDM2 schedule (docs/method.md §1.8): ref_lr / sqrt(max(n / (ref_batches·batch), 1)) · min(n / rampup, 1).

    ref_batches <= 0 disables the decay and rampup_img <= 0 the warm-up (then lr(0) = ref_lr, else 0).
    """
    lr = ref_lr
    if ref_batches > 0:
        lr /= math.sqrt(max(cur_nimg / (ref_batches * batch), 1.0))
    if rampup_img > 0:
        lr *= min(cur_nimg / rampup_img, 1.0)
    return lr


def force_finite_(params) -> None:
    """Replace NaN/±Inf gradient entries by 0 in place (docs/method.md §1.8 'force_finite')."""
    for p in params:
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0, out=p.grad)


def step_generator(seed: int, rank: int, step: int, device: torch.device, stream: int = 0) -> torch.Generator:
    """The generator of update `stream` in iteration `step` on `rank` (counter based, see module docstring)."""
    return torch.Generator(device=device).manual_seed(_mix(seed, rank, step, stream, 0x5EED))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then os.replace (never a half-written state). Written
    through a Python file, so that a failed write (a full disk) is an OSError, not torch's RuntimeError."""
    from ncvsd_cli.images import atomic_path

    with atomic_path(path) as tmp, _RecordingFile(tmp, "w") as f:
        try:
            torch.save(obj, f)
        except RuntimeError:
            if f.error is not None:
                raise f.error from None
            raise


class _RecordingFile(io.FileIO):
    """A file that keeps the OSError of a failed write: torch's zip writer swallows it and raises RuntimeError."""

    error: OSError | None = None

    def write(self, data) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            self.error = exc
            raise


class StateError(CheckpointError):
    """A training state that is not ncvsd's own, is corrupt, or does not fit the run (CLI exit code 3)."""


class DataError(ValueError):
    """An image of the dataset could not be decoded during the run (its header was read at the start)."""


class PeerLost(RuntimeError):
    """Under torchrun: another process of the run stopped (its own error says why) or died, so a collective of
    this one failed; the state saved before is kept. Exit code 1."""

    exit_code = 1

    def __init__(self, state_path: Path):
        kept = state_path if state_path.is_file() else None
        self.summary = {"stopped": "another process of the run stopped", "exit_code": self.exit_code,
                        "state": str(kept) if kept else None}
        super().__init__("another process of this run stopped (its own error says why) or died; " + (
            f"the last saved training state, {kept}, is kept: --resume continues from it" if kept
            else "no training state was saved yet"))


def run_then_leave(run: Callable[[], dict], out: str | Path) -> dict:
    """`run()` (a training loop into `out`, its construction too), then leave the process group: at once after an
    error only this rank met (DataError; a collective that failed as another rank is gone: PeerLost, not "internal
    error: ... Connection closed by peer"), so no other rank waits for it; after the barrier otherwise."""
    alone = False
    try:
        return run()
    except DataError:
        alone = True
        raise
    except RuntimeError as exc:
        if not distributed.lost_a_peer(exc):
            raise
        alone = True
        raise PeerLost(Path(out) / "state.pt") from None
    finally:
        distributed.shutdown(failed=alone)


class RunInUse(FileExistsError):
    """The run folder is being trained in by another process (its lock is held; CLI exit code 2)."""

    @classmethod
    def of(cls, out: str | Path) -> RunInUse:
        return cls(f"{out} is being trained in by another process (ncvsd train or distill); wait for it to end, "
                   "stop it (Ctrl-C saves its state), or choose another --out")


def run_outputs(out: Path) -> str:
    """What a run folder holds that a new run there would overwrite: e.g. "3 files in snapshots/"; "" if none.
    run.json and log.jsonl alone (a start that failed before its first step) are not counted."""
    held = [f"{n} file{'s' * (n > 1)} in {d}/" for d in ("snapshots", "previews")
            if (n := sum(1 for p in (out / d).glob("*") if p.is_file()))]
    return ", ".join(held)


class TrainingInterrupted(Exception):
    """Training stopped by a signal after saving its state; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int, step: int, nimg: int, state_path: Path):
        self.signum, self.exit_code = int(signum), 128 + int(signum)
        name = signal.Signals(signum).name
        self.summary = {"interrupted": name, "exit_code": self.exit_code, "steps": int(step),
                        "kimg": round(nimg / 1000, 3), "state": str(state_path)}
        super().__init__(f"interrupted by {name} after step {step} ({nimg / 1000:g} kimg); training state saved to "
                         f"{state_path}; continue with --resume")


#: A mean loss above this size stops the run as diverged (`TrainLoop._check_loss_size`): EDM2's and NCVSD's losses
#: are of order 1 (the shipped runs' largest log line: 2.1; a tiny run at --lr 0.5: 264), a far too high --lr gave
#: 2e3 to 1e21.
DIVERGED_LOSS = 100.0

#: Under torchrun, signals and wall-clock limits are agreed on about this often (seconds of steps; `_events`): a
#: Ctrl-C once waited for the next log step, 30 s and more at CPU speed, and torchrun killed the workers unsaved.
AGREE_SECONDS = 2.0


class TrainingDiverged(RuntimeError):
    """A network's weights became NaN or infinite, or its losses grew far beyond their size (DIVERGED_LOSS; e.g. a
    far too high --lr): the run stops before it saves them; the state saved before (if any) stays, to --resume
    from with a lower learning rate. Exit code 1."""

    exit_code = 1

    def __init__(self, step: int, nimg: int, what: str, saved_step: int | None, state_path: Path):
        kept = state_path if saved_step is not None or state_path.is_file() else None
        self.summary = {"diverged": what, "exit_code": self.exit_code, "steps": int(step),
                        "kimg": round(nimg / 1000, 3), "state": str(kept) if kept else None}
        hint = (f"its weights were not saved; the state saved before ({kept}) is kept: --resume with a lower --lr "
                "(distill: or lower --g-lr-scale / --d-lr-scale)" if kept else
                "no state was saved: start again with a lower --lr")
        super().__init__(f"training diverged by step {step} ({what}); {hint}")


class TrainingAborted(KeyboardInterrupt):
    """A second SIGINT/SIGTERM: training stopped at once, possibly before its state was saved (exit 128 + signal)."""

    def __init__(self, signum: int, state_path: Path | None = None):
        self.signum, self.exit_code = int(signum), 128 + int(signum)
        kept = state_path if state_path is not None and state_path.is_file() else None  # written atomically: whole
        name = signal.Signals(signum).name
        self.summary = {"interrupted": name, "exit_code": self.exit_code, "state": str(kept) if kept else None}
        super().__init__(f"stopped at once by a second {name}; " + (
            f"the last saved training state, {kept}, is kept: --resume continues from it (and writes its snapshots "
            "if they were cut short)" if kept else "no training state was saved yet"))


def _write_failure(exc: BaseException) -> str:
    """Why a write failed: the OS's reason ("No space left on device"), else the error's first line."""
    return getattr(exc, "strerror", None) or _first_line(exc)


def _first_line(exc: BaseException, limit: int = 120) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _afresh(state_path: Path) -> str:
    """How to go on without a training state: another --out, from the run's newest snapshot where it has one."""
    snapshots = any(state_path.parent.glob("snapshots/*.safetensors"))
    return "choose another --out to start afresh" + (
        f" (--init-teacher / --init-generator {state_path.parent} start it from the run's newest snapshot)"
        if snapshots else "")


def load_state(path: Path) -> dict:
    """Read a training state without the ability to run code: torch.load(weights_only=True) admits only tensors
    and plain containers. Raises StateError (one line) for a corrupt, foreign or code-carrying file."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it in one line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise StateError(f"{path}: refusing to load this training state: it refers to {found.group(1)}, and "
                             "ncvsd states hold only tensors and plain containers") from None
        raise StateError(f"{path}: corrupt or foreign training state (not tensors and plain containers only); "
                         f"{_afresh(path)}") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError, ... for damaged files
        what = "empty file" if path.exists() and path.stat().st_size == 0 else _first_line(exc)
        raise StateError(f"{path}: unreadable or corrupt training state ({what}); {_afresh(path)}") from None
    loop = state.get("loop") if isinstance(state, dict) else None
    needed = {"cur_nimg": int, "step": int, "train_seconds": float, "seed": int, "name": str}
    if not isinstance(loop, dict) or not isinstance(state.get("trainer"), dict) \
            or not isinstance(state.get("rng"), dict) or not isinstance(state["rng"].get("torch"), torch.Tensor) \
            or any(not isinstance(loop.get(k), t) for k, t in needed.items()):
        raise StateError(f"{path}: not an ncvsd training state (no loop counters, RNG state and trainer state)")
    return state


def launcher_argv(pid: int | None = None) -> list[str] | None:
    """The command line of process `pid` (default: this process's parent, e.g. torchrun) read from /proc (Linux),
    or None elsewhere or when it cannot be read."""
    try:
        raw = Path(f"/proc/{os.getppid() if pid is None else pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1] or None


def command_line() -> str:
    """The command of this process, shell-quoted as one would type it again: `ncvsd ...`, `python -m ncvsd_cli
    ...`, or under torchrun (`-m ncvsd_cli`) torchrun's own command line as typed (its process's, where /proc shows
    it), else `torchrun --nproc_per_node=N [--nnodes=M] -m ncvsd_cli ...`."""
    head = [Path(sys.argv[0]).name]
    if head[0] == "__main__.py":  # run as a module
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and (typed := _torchrun_as_typed(launcher_argv())):
            return shlex.join(typed)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        nodes = [f"--nnodes={world // local}"] if world > local else []
        head = ["torchrun", f"--nproc_per_node={local}", *nodes] if world > 1 else ["python"]
        head += ["-m", "ncvsd_cli"]
    return shlex.join(head + sys.argv[1:])


def _torchrun_as_typed(argv: list[str] | None) -> list[str] | None:
    """`argv` of a torchrun (or `python -m torch.distributed.run`) process from `torchrun` on, when it launched
    this command (it ends with `-m ncvsd_cli` and this process's arguments), else None."""
    if not argv or argv[-len(sys.argv) - 1:] != ["-m", "ncvsd_cli", *sys.argv[1:]]:
        return None
    for i, arg in enumerate(argv):
        if Path(arg).name == "torchrun":
            return ["torchrun", *argv[i + 1:]]
        if arg == "torch.distributed.run" and i and argv[i - 1] == "-m":
            return ["python", *argv[i - 1:]]
    return None


#: Options naming the weights a new run starts from: unused on --resume (the state holds the weights).
STARTING_WEIGHTS = ("init_teacher", "init_generator")

#: The lock file a run folder holds while it trains (`filelock`).
LOCK_NAME = ".ncvsd-run.lock"


def folder_in_use(out: str | Path) -> bool:
    """Whether another process trains in run folder `out` now (holds its lock; False where locks do not work)."""
    from filelock import FileLock, Timeout

    if not Path(out).is_dir():
        return False
    lock = FileLock(str(Path(out) / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except (OSError, NotImplementedError):
        return False
    lock.release()
    return False


def check_run_folder(out: Path) -> None:
    """ValueError (a plain message) when run folder `out` cannot be made or written: it is a file, a file stands in
    its path, or its nearest existing folder is not writable; before any network or data is loaded."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a run folder; choose another --out")
    parent = nearest_existing(out)
    if not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        if parent == out:  # a run folder (to --resume) or an empty one
            raise ValueError(f"--out {out}: the folder is not writable; make it writable, or copy the run to a "
                             "writable folder and --resume there (a new run: choose another --out)")
        raise ValueError(f"--out {out}: the folder {parent} is not writable; choose another --out")


class TrainLoop:
    """Base class: subclasses implement `train_step`, `state_dict`, `load_state_dict` and `write_snapshot`.

    `run()` repeats `train_step(step)` (which returns a dict of scalar loss tensors, *without* host syncs) until
    the duration is reached; every `log_every` steps it logs (the only host sync), every `snapshot_every`
    (a Duration: time or images) it writes snapshots and the training state, and it always does so at the end,
    and after the current step on Ctrl-C or SIGTERM (then it raises TrainingInterrupted; a second signal
    raises TrainingAborted at once).
    """

    name = "train"
    snapshot_kind = "teacher"  # the network kind its snapshots hold

    def __init__(self, out: str | Path, dist_info: distributed.DistInfo, batch: int, duration: Duration,
                 snapshot_every: Duration, log_every: int = 20, seed: int = 0, settings: dict | None = None,
                 resume: bool = False, progress: bool = True):
        if batch % dist_info.world_size:
            n = dist_info.world_size
            fits = sorted({max(batch // n, 1) * n, (batch // n + 1) * n})
            raise ValueError(f"--batch {batch} is not divisible by the {n} processes: give --batch "
                             f"{' or '.join(map(str, fits))} (a --resume takes it too)")
        self.out = Path(out)
        self.dist = dist_info
        self.device = dist_info.device
        self.batch, self.batch_per_rank = batch, batch // dist_info.world_size
        self.duration, self.snapshot_every = duration, snapshot_every
        self.log_every, self.seed = max(1, int(log_every)), int(seed)
        self.settings = dict(settings or {})
        self.recipe_keys = frozenset(self.settings)  # the options; keys a trainer adds later are not compared
        self.resume, self.progress = resume, progress
        self.cur_nimg, self.step, self.train_seconds = 0, 0, 0.0
        self._agree_every = 1  # under torchrun: every step until the first log line times a step (`_events`)
        self.state_path = self.out / "state.pt"
        self.log_path = self.out / "log.jsonl"
        self._lock = None  # the run folder's lock, held by rank 0 while it trains
        if self.settings.get("precision") == "fp16" and torch.device(self.device).type != "cuda":
            raise ValueError("--precision fp16 needs CUDA; use bf16 or fp32 on CPU")  # before the folder is made
        check_run_folder(self.out)
        if self.out.is_dir():  # refuse a folder in use before the subclass loads networks and data
            self._claim_run_folder(hold=False)

    # ------------------------------------------------------------------ hooks
    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def write_snapshot(self) -> list[Path]:
        raise NotImplementedError

    def lr(self, ref_lr: float) -> float:
        s = self.settings
        return learning_rate(self.cur_nimg, ref_lr, self.batch, s.get("ref_batches", 0.0),
                             s.get("rampup_kimg", 0.0) * 1000)

    # ------------------------------------------------------------------ machinery
    def provenance(self) -> dict:
        """Training provenance written into every checkpoint (with the data's licence policy if declared)."""
        stream = getattr(self, "stream", None)  # the subclass's ImageStream
        source = stream.source if stream is not None else None
        known = {"data_licences": getattr(source, "licences", None), "data_files": getattr(source, "fingerprint", None)}
        return {**{k: v for k, v in known.items() if v}, "data": self.settings.get("data"),
                "steps": self.step, "kimg": round(self.cur_nimg / 1000, 3),
                "wall_time_s": round(self.train_seconds, 1), "command": self.settings.get("command"),
                "batch": self.batch, "world_size": self.dist.world_size, "seed": self.seed,
                "trainer": f"ncvsd {self.name}"}

    def _full_state(self) -> dict:
        files = self._data_files()
        return {"loop": {"cur_nimg": self.cur_nimg, "step": self.step, "train_seconds": self.train_seconds,
                         "seed": self.seed, "batch": self.batch, "name": self.name,
                         **({"data_files": files} if files else {})},
                "rng": {"torch": torch.get_rng_state()}, "trainer": self.state_dict()}

    def _check_lost_record(self, loop: dict) -> bool:
        """Whether the run's run.json is gone. A resume without it took the defaults for every option not typed
        again (batch 32 where the run trained at 8, without a word) and never wrote the record back: refused where
        the state's batch differs; the caller records this resume's settings once the state fits."""
        record = self.out / "run.json"
        if record.is_file():
            return False
        if loop.get("batch") not in (None, self.batch):
            raise ValueError(f"{record} is missing, so the run's options are unknown, and its state was trained at "
                             f"batch {loop['batch']}, not {self.batch}: give --batch {loop['batch']} (and the run's "
                             "other options: lr, schedule, data)")
        return True

    def save_state(self) -> None:
        if self.dist.is_main:
            atomic_torch_save(self._full_state(), self.state_path)

    def _prepare_run_dir(self) -> None:
        if self.state_path.exists() and not self.resume:
            from ncvsd_cli.checkpoints import SNAPSHOT_TRAINERS, run_snapshots

            kinds = {kind for kind, _, _ in run_snapshots(self.out)} - {self.snapshot_kind}
            if kinds:  # `distill --out` a teacher run: --resume would not fit either
                raise FileExistsError(f"{self.out} holds an 'ncvsd {SNAPSHOT_TRAINERS[kinds.pop()]}' run; choose "
                                      "another --out")
            raise FileExistsError(f"{self.out} already holds a training state; pass --resume to continue it "
                                  "or choose another --out")
        if self.resume and not self.state_path.exists():
            raise FileNotFoundError(f"--resume: no training state at {self.state_path}")
        made = run_outputs(self.out)
        if made and not self.resume:  # a new run would overwrite the snapshots of the same kimg and the log
            raise FileExistsError(f"{self.out} holds an earlier run's outputs ({made}) but no training state to "
                                  "continue; choose another --out, or move them away first")
        if self.dist.is_main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"--out {self.out}: cannot create the run folder ({exc.strerror or exc})") from None
        self._claim_run_folder(hold=True)
        if self.dist.is_main:  # a killed run's half-written files (`images.atomic_write_bytes`): ours now, the lock held
            for leftover in [*self.out.glob(".*.tmp"), *self.out.glob("*/.*.tmp"),  # and safetensors' own, which
                             *self.out.glob("snapshots/.tmp??????")]:  # versions before 2026-12-07 left there
                leftover.unlink(missing_ok=True)
        if self.dist.is_main and not self.resume:  # a new run (a failed start left no state): its own recipe, its log
            atomic_write_bytes(self.out / "run.json", (json.dumps(self.settings, indent=2, default=str) + "\n").encode())
            self.log_path.unlink(missing_ok=True)
        distributed.barrier()
        if self.resume:
            from ncvsd_cli.training.common import (  # common imports this module
                recipe_changes,
                record_overrides,
                run_record,
            )

            state = load_state(self.state_path)
            changes = recipe_changes(self.out, {k: v for k, v in self.settings.items() if k in self.recipe_keys})
            loop = state["loop"]
            if loop["name"] != self.name:
                raise StateError(f"{self.state_path} is an 'ncvsd {loop['name']}' state, not 'ncvsd {self.name}'")
            if loop["seed"] != self.seed:
                raise ValueError(f"--seed {self.seed} differs from the saved run's seed {loop['seed']}")
            lost_record = self._check_lost_record(loop)
            try:
                self.load_state_dict(state["trainer"])
                torch.set_rng_state(state["rng"]["torch"])
            except (KeyError, TypeError, RuntimeError, IndexError) as exc:
                typed = "; ".join(f"--{k.replace('_', '-')} {new} (the run's: {old})"
                                  for k, (old, new) in changes.items())
                lost = "" if (self.out / "run.json").is_file() else (
                    f"; {self.out / 'run.json'} is missing, so the run's architecture is unknown: give its --arch "
                    f"(this one: {self.settings.get('arch')})")
                raise StateError(f"{self.state_path} does not fit this run's networks and settings "
                                 f"({_first_line(exc)})" + (f"; typed on this --resume: {typed}, left unrecorded"
                                                            if typed else "") + lost) from None
            if lost_record and self.dist.is_main:  # the state fits: these settings become the run's record
                print(f"ncvsd: warning: {self.out / 'run.json'} is missing: the run's recorded options are lost; this "
                      "resume uses the options typed now and the defaults for the rest, recorded in a new run.json",
                      file=sys.stderr, flush=True)
                atomic_write_bytes(self.out / "run.json",
                                   (json.dumps(self.settings, indent=2, default=str) + "\n").encode())
            self.cur_nimg, self.step, self.train_seconds = loop["cur_nimg"], loop["step"], loop["train_seconds"]
            self._dropped_log_records = self._trim_log(self.step) if self.dist.is_main else 0
            recorded = run_record(self.out)
            for k in STARTING_WEIGHTS:  # typed again or not, the state's weights go on
                if self.settings.get(k) and self.settings[k] != recorded.get(k) and self.dist.is_main:
                    print(f"ncvsd: --{k.replace('_', '-')} {self.settings[k]} is read only when a run starts: the "
                          "resumed run goes on from its saved state", file=sys.stderr, flush=True)
            self._check_same_data(loop.get("data_files"))
            changes = {k: v for k, v in changes.items() if k not in STARTING_WEIGHTS}  # unused on a resume
            if changes and self.dist.is_main and not self._counts_done():  # (nothing to do: nothing recorded)
                record_overrides(self.out, changes, self.settings.get("command"))
                for k, (old, new) in changes.items():  # arch: never replaced (refused); duration: extending;
                    migrated = k == "data" and Path(str(old)).absolute() == Path(str(new))  # relative, now absolute
                    if k not in ("arch", "duration", "teacher_path", "teacher_sha256") and not migrated:
                        flag = k.replace("_", "-")  # a switch as typed: --no-xflip, not "--xflip False"
                        typed = f"--{'' if new else 'no-'}{flag}" if isinstance(new, bool) else f"--{flag} {new}"
                        was = f"--{'' if old else 'no-'}{flag}" if isinstance(new, bool) else old  # not "True"
                        print(f"ncvsd: --resume with {typed}: replaces the run's recorded {was} from now on",
                              file=sys.stderr, flush=True)

    def _trim_log(self, step: int) -> int:
        """Drop the log records past `step` (those of steps a killed run made after its last saved state: the
        resumed run makes them again); returns how many were dropped."""
        if not self.log_path.is_file():
            return 0
        lines = self.log_path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by the kill
                continue
            if not isinstance(record, dict) or int(record.get("step", 0)) <= step:
                kept.append(line)
        if len(kept) < len(lines):
            atomic_write_bytes(self.log_path, "".join(kept).encode())
        return len(lines) - len(kept)

    def _data_files(self) -> str | None:
        """The fingerprint of the training data's files (`data.files_fingerprint`), None for built-in data."""
        return getattr(getattr(getattr(self, "stream", None), "source", None), "fingerprint", None)

    def _check_same_data(self, saved: str | None) -> None:
        """Warn (main rank) when the data's files differ from those the saved state was trained on: the resume
        then draws other images than the uninterrupted run would have."""
        now = self._data_files()
        if saved and now and saved != now and self.dist.is_main:
            print(f"ncvsd: warning: the training data changed since the state was saved ({saved} then, {now} now): "
                  "the run goes on with the data as it is now, not bit for bit as it would have", file=sys.stderr,
                  flush=True)

    def _log(self, record: dict) -> None:
        if self.dist.is_main:
            from ncvsd_cli import strict_json

            with open(self.log_path, "a", encoding="utf-8") as f:  # a NaN loss as null: every line stays JSON (RFC 8259)
                f.write(strict_json.dumps(record) + "\n")

    def _check_finite_weights(self, what: str) -> None:
        """Raise TrainingDiverged when a network being trained holds a NaN or infinite weight (one host sync; at a
        log line whose loss is not finite and before every state is written, so no diverged state is saved)."""
        params = [p for m in vars(self).values() if isinstance(m, torch.nn.Module) for p in m.parameters()]
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            self._log({"event": "diverged", "step": self.step, "kimg": self.cur_nimg / 1000, "reason": what})
            raise TrainingDiverged(self.step, self.cur_nimg, what, getattr(self, "_saved_step", None),
                                   self.state_path)

    def _check_loss_size(self, losses: dict) -> None:
        """Raise TrainingDiverged when a mean loss (a log line's, or that of the steps since the last one, checked
        before every save so that no diverged state is saved) is above DIVERGED_LOSS: EDM2's weight normalisation
        keeps the weights finite while a far too high --lr sends the losses to 1e3-1e21 and the samples to white.
        Values that are not finite are left to `_check_finite_weights` (an fp16 overflow's inf is not divergence)."""
        high = [k for k, v in losses.items() if k.startswith("loss") and k != "loss_steps"
                and isinstance(v, float) and math.isfinite(v) and abs(v) > DIVERGED_LOSS]
        if high:
            what = f"{high[0]} {losses[high[0]]:.3g}, where a loss of order 1 is normal"
            self._log({"event": "diverged", "step": self.step, "kimg": self.cur_nimg / 1000, "reason": what})
            raise TrainingDiverged(self.step, self.cur_nimg, what, getattr(self, "_saved_step", None),
                                   self.state_path)

    def _counts_done(self) -> bool:
        d = self.duration
        return (d.nimg is not None and self.cur_nimg >= d.nimg) or (d.steps is not None and self.step >= d.steps)

    def _events(self, start: float, last_snap_time: float, last_snap_nimg: int,
                log_step: bool) -> tuple[int, bool, bool]:
        """(signal number or 0, duration reached, snapshot due) after a step.

        Image and step counts are equal on every rank, but wall-clock times and signals are not: with several
        ranks those are agreed on (maximum over ranks) at log steps and every `_agree_every` steps between, about
        AGREE_SECONDS apart (every step before the first log step), so that every rank stops, snapshots and meets
        the same collectives at the same step, and a Ctrl-C stops well within torchrun's grace period.
        """
        d, e, now = self.duration, self.snapshot_every, time.time()
        clock = [self._signal or 0, d.seconds is not None and now - start >= d.seconds,
                 e.seconds is not None and now - last_snap_time >= e.seconds, now - start]
        if self.dist.world_size > 1:
            agree = log_step or self.step % self._agree_every == 0
            clock = distributed.all_max(clock, self.device) if agree else [0, False, False, 0.0]
            if log_step and self.step > self._first_step:  # the slowest rank's seconds per step, the same on all
                self._agree_every = max(1, int(AGREE_SECONDS * (self.step - self._first_step) / max(clock[3], 1e-9)))
        signum, time_done, time_snap = int(clock[0]), bool(clock[1]), bool(clock[2])
        snap = time_snap or (e.nimg is not None and self.cur_nimg - last_snap_nimg >= e.nimg) or \
            (e.steps is not None and self.step % e.steps == 0)
        return signum, time_done or self._counts_done(), snap

    def checkpoint(self) -> None:
        """Write the training state, then the snapshots (rank 0; once per step). Collective: a write that fails
        on rank 0 (a full disk) raises OSError on every rank, so no rank waits for it at a barrier."""
        if getattr(self, "_saved_step", None) == self.step:
            return
        self._check_finite_weights("weights not finite")
        self._saved_step = self.step
        problem = ""
        if self.dist.is_main:
            saved_before = self.state_path.is_file()
            try:
                self.save_state()  # first: a snapshot that cannot be written (a full disk) loses no step
            except Exception as exc:  # noqa: BLE001 (any failure: told to every rank before it is raised)
                problem = (f"cannot write the training state {self.state_path} ({_write_failure(exc)}); make "
                           "room or fix the folder, then " + ("--resume from the state saved before" if saved_before
                                                              else "start the run again (no state was saved yet)"))
            else:
                problem = self._write_snapshot_logged()
            if problem:  # in the log too (a full disk may refuse this line as well)
                with contextlib.suppress(OSError):
                    self._log({"event": "error", "error": problem, "step": self.step, "kimg": self.cur_nimg / 1000})
        if distributed.all_max([float(bool(problem))], self.device)[0]:
            if getattr(self, "_aborted", None):  # a second signal inside torch.save (its zip writer wraps it)
                raise TrainingAborted(self._aborted, self.state_path)
            raise OSError(problem or "rank 0 could not write the training state or a snapshot (its error says why)")

    def _write_snapshot_logged(self) -> str:
        """Write this step's snapshots and log them (rank 0); returns "" or why they could not be written."""
        try:
            paths = self.write_snapshot()
        except Exception as exc:  # noqa: BLE001 (any failure: told to every rank before it is raised)
            advice = ("make room or fix the folder, then --resume" if isinstance(exc, OSError) else
                      "--resume writes the snapshot again")
            return (f"cannot write a snapshot into {self.out / 'snapshots'} ({_write_failure(exc)}); the training "
                    f"state at step {self.step} is saved: {advice}")
        self._log({"event": "snapshot", "step": self.step, "kimg": self.cur_nimg / 1000,
                   "files": [str(p) for p in paths]})
        if not getattr(self, "_disk_told", False):  # once per invocation, at its first snapshot
            self._disk_told = True
            with contextlib.suppress(OSError):  # (a warning: never the reason a run stops)
                self._note_disk_room(sum(p.stat().st_size for p in paths if p.is_file()))
        return ""

    def _snapshots_left(self) -> float | None:
        """About how many more snapshots the run writes on its clock: both lengths in images (steps count `batch`
        images) or both in seconds (a time duration: this invocation's, counted whole); None where they mix."""
        d, e = self.duration, self.snapshot_every

        def images(x: Duration) -> int | None:
            return x.nimg if x.nimg is not None else None if x.steps is None else x.steps * self.batch

        if images(d) is not None and images(e) is not None:
            return max(images(d) - self.cur_nimg, 0) / images(e)
        return d.seconds / e.seconds if d.seconds is not None and e.seconds is not None else None

    def _note_disk_room(self, snapshot_bytes: int) -> None:
        """Warn (stderr and the log) when the snapshots still to come would not fit the disk's free space: a tiny
        --snapshot interval filled 7.3 GB in 5 steps unwarned, and the run then stopped on a full disk."""
        import shutil

        left = self._snapshots_left()
        free = shutil.disk_usage(self.out).free
        state = self.out / "state.pt"  # each replacement is written beside the old one first: its size free again
        state_bytes = state.stat().st_size if state.is_file() else 0
        if left is None or left * snapshot_bytes + state_bytes <= free:
            return
        gib = 1024**3
        message = (f"at --snapshot {self.settings.get('snapshot', self.snapshot_every.describe())} the run writes "
                   f"about {math.ceil(left)} more snapshots of {snapshot_bytes / 1024**2:.0f} MiB "
                   f"({left * snapshot_bytes / gib:.2f} GiB) and needs {state_bytes / gib:.2f} GiB free to replace "
                   f"its state, and {self.out} has {free / gib:.2f} GiB free: a longer "
                   "--snapshot interval, or room, before the disk fills (the run would stop there, its state saved)")
        self._log({"event": "warning", "warning": message, "step": self.step})
        write_line(f"ncvsd: warning: {message}\n")  # (--quiet too: it drops the bar and status lines)

    def _snapshot_missing(self) -> bool:
        """Whether the saved step has no snapshot (its write failed after the state was saved)."""
        from ncvsd_cli.training.common import kimg_tag

        prefix = f"{self.snapshot_kind}-{kimg_tag(self.cur_nimg / 1000)}"
        expected = len(getattr(getattr(self, "ema", None), "sigma_rels", ())) or 1  # one file per EMA length
        return self.step > 0 and len(list(self.out.glob(f"snapshots/{prefix}-*.safetensors"))) < expected

    def _mean_losses(self, sums: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, float]:
        """The mean of each loss since the last log line, averaged over ranks (collective; one host sync)."""
        n = torch.tensor([counts[k] for k in sums], device=self.device, dtype=torch.float32)
        return dict(zip(sums, distributed.all_mean(torch.stack(list(sums.values())).float() / n).tolist()))

    def _log_losses(self, sums: dict[str, torch.Tensor], counts: dict[str, int], seconds: float, since_nimg: int,
                    reporter) -> dict:
        """Log the mean losses since the last log line (averaged over ranks: the only host sync); returns the record."""
        means = self._mean_losses(sums, counts)
        vals = list(means.values())
        rate = (self.cur_nimg - since_nimg) / max(seconds, 1e-9)
        record = {"step": self.step, "kimg": self.cur_nimg / 1000, **means,
                  "loss_steps": max(counts.values(), default=0),  # averaged over (after a resume: since it)
                  "img_per_s": round(rate, 2), "seconds": round(self.train_seconds, 2), **self.log_extras()}
        self._log(record)
        timed = self.duration.seconds is not None  # the bar counts seconds: show images and their rate here
        reporter.set_postfix({k: f"{v:.4g}" for k, v in zip(sums, vals)}
                             | ({"kimg": f"{self.cur_nimg / 1000:g}", "img/s": f"{rate:.1f}"} if timed else {}))
        return record

    def _checkpoint_shown(self, reporter) -> None:
        """`checkpoint()` with "saving=snapshot" after the progress while it writes (a bar at 100% does not seem
        stuck for the seconds the final snapshot takes)."""
        shown = dict(reporter.postfix)
        reporter.set_postfix({**shown, "saving": "snapshot"}, refresh=True)
        try:
            self.checkpoint()
        finally:
            reporter.set_postfix(shown)

    def _reporter(self):
        """Progress on stderr (rank 0): images against an image or step duration, seconds against a time one; a
        status line every $NCVSD_PROGRESS_INTERVAL (default 30) seconds when stderr is not a terminal."""
        from ncvsd_cli.progress import StatusReporter, default_interval

        d, desc = self.duration, f"ncvsd {self.name}"
        common = {"quiet": not (self.dist.is_main and self.progress), "interval": default_interval()}
        if d.seconds is not None:
            return StatusReporter(d.seconds, desc, unit="s", show_rate=False, **common)
        # a step duration: the images so far plus the steps left at this batch (a resume may change --batch)
        if d.nimg is not None:
            total = max(-(-d.nimg // self.batch) * self.batch, self.cur_nimg, 1)  # whole steps
        else:
            total = max(self.cur_nimg + max(d.steps - self.step, 0) * self.batch, 1)
        return StatusReporter(total, desc, unit="img", unit_scale=True, initial=self.cur_nimg, **common)

    def _install_signal_handlers(self) -> dict:
        """SIGINT/SIGTERM/SIGHUP set self._signal (training stops after the current step); a second one raises
        TrainingAborted at once (`finally` blocks still remove temporary files). Signals that were ignored (e.g.
        SIGINT of a background job) stay ignored. Returns the previous handlers."""
        self._signal = self._aborted = None
        previous = {}

        def on_signal(signum, frame):
            if self._signal is not None:
                self._aborted = signum  # torch's zip writer turns the exception into a RuntimeError: `checkpoint`
                raise TrainingAborted(signum, self.state_path)
            self._signal = signum
            if self.dist.is_main and self.progress:  # said at once: a CPU step of minutes looked like a hang;
                try:  # os.write, as a handler may interrupt a write to stderr (a bar's refresh); never to an fd 2
                    # that stderr does not own (started with 2>&-: fd 2 may be a state file being written)
                    if sys.stderr is not None:
                        os.write(sys.stderr.fileno(), f"\nncvsd: {signal.Signals(signum).name}: stopping after this "
                                 "step to save the state (again to stop at once, losing the step)\n".encode())
                except (OSError, ValueError, AttributeError):  # a closed terminal (SIGHUP), a replaced stderr
                    pass

        # SIGHUP: a closed terminal or a dropped ssh session, the likeliest end of a long run; SIGBREAK: Windows'
        # Ctrl-Break (each where the platform has it)
        for sig in (signal.SIGINT, signal.SIGTERM, *filter(None, [getattr(signal, n, None) for n in ("SIGHUP",
                                                                                                    "SIGBREAK")])):
            try:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    previous[sig] = signal.signal(sig, on_signal)
            except ValueError:  # not in the main thread
                pass
        return previous

    def _claim_run_folder(self, hold: bool) -> None:
        """Take the run folder's lock (`out/LOCK_NAME`) on rank 0, or only check it is free (hold=False):
        two processes training into one folder (a second --resume in another terminal) would overwrite each other's
        state and snapshots. Collective: every rank raises RunInUse when the folder is in use."""
        busy = float(self._try_lock(hold)) if self.dist.is_main else 0.0
        if distributed.all_max([busy], self.device)[0]:
            raise RunInUse.of(self.out)

    def _try_lock(self, hold: bool) -> bool:
        """True when another process holds the lock; otherwise `hold` takes and keeps it (False: only checks)."""
        from filelock import FileLock, Timeout

        if not hold:
            return folder_in_use(self.out)
        lock = FileLock(str(self.out / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        except (OSError, NotImplementedError) as exc:  # a file system without locks (some network mounts)
            print(f"ncvsd: {self.out}: cannot lock the run folder ({exc}); do not train into it from two "
                  "processes", file=sys.stderr, flush=True)
            return False
        self._lock = lock
        return False

    def run(self) -> dict:
        """Train until the duration is reached; returns the last logged record.

        Raises TrainingInterrupted after saving the state when SIGINT or SIGTERM stopped the run early, RunInUse
        when another process trains in the same folder.
        """
        try:
            return self._run()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _run(self) -> dict:
        self._prepare_run_dir()
        if self.resume:  # the saved step's snapshots that a failed write or a second signal cut short: written now
            problem = self._write_snapshot_logged() if self.dist.is_main and self._snapshot_missing() else ""
            if distributed.all_max([float(bool(problem))], self.device)[0]:
                raise OSError(problem or "rank 0 could not write the saved step's snapshots (its error says why)")
        if self._counts_done():  # nothing to do: the run's files, its log too, stay as they are
            if self.dist.is_main:  # even when quiet: the command did not do what it was asked
                print(f"ncvsd: nothing to do: the run is at step {self.step} ({self.cur_nimg / 1000:g} kimg), already "
                      f"past its duration {self.settings.get('duration')}; give a longer --duration to continue it",
                      file=sys.stderr, flush=True)
            return {"step": self.step, "kimg": self.cur_nimg / 1000, "nothing_to_do": True}
        source = getattr(getattr(self, "stream", None), "source", None)
        dropped = getattr(self, "_dropped_log_records", 0)
        self._log({"event": "resume" if self.resume else "start", "step": self.step, "kimg": self.cur_nimg / 1000,
                   "command": self.settings.get("command"), "device": str(self.device),
                   "world_size": self.dist.world_size, "data": getattr(source, "description", None) or None,
                   **({"log_records_dropped": dropped} if dropped else {})})
        if source is not None and self.dist.is_main:  # on a terminal (a pipe's short run prints nothing); in the log
            if source.description and self.progress and sys.stderr.isatty():
                print(f"ncvsd: training on {source.description}", file=sys.stderr, flush=True)
            if source.warning:  # even when quiet: it changes what the model learns
                print(f"ncvsd: warning: {source.warning}", file=sys.stderr, flush=True)
            nets = [m for m in vars(self).values() if isinstance(m, torch.nn.Module)]
            if source.labels and not any(getattr(m, "label_dim", 0) for m in nets):  # (dropped without a word)
                print(f"ncvsd: note: the dataset's class labels (dataset.json) are not used: --arch "
                      f"{self.settings.get('arch') or 'of this run'} is unconditional (a -cond architecture learns "
                      "them)", file=sys.stderr, flush=True)
            if 0 < len(source) < self.batch:  # (two images at --batch 300 ran without a word)
                print(f"ncvsd: warning: --batch {self.batch} is larger than the dataset's {len(source)} images: each "
                      "batch repeats every image (the model learns those images; a larger dataset generalises)",
                      file=sys.stderr, flush=True)
        reporter = self._reporter()
        previous = self._install_signal_handlers()
        start = last_snap_time = last_log_time = last_tick = time.time()
        last_snap_nimg, last_log_nimg = self.cur_nimg, self.cur_nimg
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        record: dict = {"step": self.step, "kimg": self.cur_nimg / 1000}  # where the run is, if no step runs
        first_step = self._first_step = self.step
        first_nimg = self.cur_nimg
        signum, done = 0, False
        try:
            while not done:
                t0 = time.time()
                drawn = self.stream.state_dict() if hasattr(self, "stream") else None
                try:
                    losses = self.train_step(self.step)
                except ImageError as exc:  # a file that decodes badly, met when first drawn: keep the steps so far
                    raise self._stopped_by_data(exc, first_step, drawn, (sums, counts)) from None
                self.step += 1
                self.cur_nimg += self.batch
                for k, v in losses.items():
                    sums[k] = sums[k] + v.detach() if k in sums else v.detach().clone()
                    counts[k] = counts.get(k, 0) + 1
                now = time.time()
                self.train_seconds += now - t0
                if self.step == first_step + 1:
                    self._note_step_time(now - t0)
                reporter.update(now - last_tick if self.duration.seconds is not None else self.batch)
                last_tick = now
                log_step = self.step % self.log_every == 0
                if log_step:
                    record = self._log_losses(sums, counts, now - last_log_time, last_log_nimg, reporter)
                    sums, counts, last_log_time, last_log_nimg = {}, {}, now, self.cur_nimg
                    if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
                        self._check_finite_weights("loss and weights not finite")
                    self._check_loss_size(record)
                signum, done, snapshot_due = self._events(start, last_snap_time, last_snap_nimg, log_step)
                if signum and not done:
                    break
                signum = 0  # a signal after the last step: the run is complete
                if snapshot_due and not done:
                    if sums:  # the steps since the last log line: no diverged state saved
                        self._check_loss_size(self._mean_losses(sums, counts))
                    self._checkpoint_shown(reporter)
                    last_snap_time, last_snap_nimg = time.time(), self.cur_nimg
            if sums:  # the steps since the last log line
                record = self._log_losses(sums, counts, time.time() - last_log_time, last_log_nimg, reporter)
                self._check_loss_size(record)
            if signum:
                self._log({"event": "interrupted", "signal": signal.Signals(signum).name, "step": self.step,
                           "kimg": self.cur_nimg / 1000})
            if self.step > first_step:  # (no step made: the run's files stay as they are)
                self._checkpoint_shown(reporter)  # still under the handlers: a first signal now does not cut the state short
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            reporter.close()
        if signum:
            raise TrainingInterrupted(signum, self.step, self.cur_nimg, self.state_path)
        # the summary's rate: this invocation's images over its wall clock (saves included, as a log line counts)
        rate = round((self.cur_nimg - first_nimg) / max(time.time() - start, 1e-9), 2)
        self._log({"event": "end", "step": self.step, "kimg": self.cur_nimg / 1000,
                   "seconds": round(self.train_seconds, 2), "img_per_s": rate})
        return {**record, "img_per_s": rate}

    def _stopped_by_data(self, exc: Exception, first_step: int, drawn: dict | None,
                         pending: tuple[dict, dict] = ({}, {})) -> DataError:
        """The error to raise when an image of the dataset cannot be read mid-run. Alone (one process) and after a
        step of this invocation, the state of the last finished step is saved first, with the data stream put back
        where that step left it (a step draws all its batches before it updates a network), so `--resume`
        continues exactly once the file is fixed or removed; under torchrun the last snapshot's state remains. The
        log records it. `pending`: the losses since the last log line (sums, counts), checked before the save as
        before any other (`_check_loss_size`)."""
        saved = self.dist.world_size == 1 and self.step > first_step
        if saved:
            if drawn is not None:
                self.stream.load_state_dict(drawn)
            if pending[0]:
                self._check_loss_size(self._mean_losses(*pending))
            self.checkpoint()
        self._log({"event": "error", "error": str(exc), "step": self.step, "kimg": self.cur_nimg / 1000})
        if not saved and not self.state_path.exists():
            return DataError(f"{exc} (a file of the dataset; fix or remove it, then run the same command again: "
                             "no training state was saved yet)")
        return DataError(f"{exc} (a file of the dataset; fix or remove it, then --resume: "
                         + (f"the state at step {self.step} is saved)" if saved else "the last saved state remains)"))

    def _note_step_time(self, seconds: float) -> None:
        """On rank 0 with progress: say so when the first step of this invocation (warm-up included) is over 5 % of
        a time duration (which counts this invocation's wall time), as the run stops only after the step that
        passes it."""
        total = self.duration.seconds
        if total is not None and seconds > 0.05 * total and self.dist.is_main and self.progress:
            write_line(f"ncvsd: the first step took {seconds:.0f} s (warm-up included), {100 * seconds / total:.0f} "
                       f"% of --duration {self.settings.get('duration')}: the run stops after the step that passes "
                       "it, so it may stop up to one step late\n")  # above the bar (it was written onto its line)

    def log_extras(self) -> dict:
        """Extra values for each log record (e.g. learning rates)."""
        return {}
