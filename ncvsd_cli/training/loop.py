"""Loop machinery shared by teacher training and distillation: durations, the EDM2 learning-rate schedule,
atomic training states, exact resume, snapshots on a time/kimg clock, JSONL logs and the progress bar.

A run directory holds:
  run.json                 the settings and exact command of the first invocation (+ one line per resume in log)
  log.jsonl                one JSON object per log interval: step, kimg, losses, lr, images/s, seconds
  state.pt                 the full training state (written atomically: temp file + os.replace)
  snapshots/*.safetensors  EMA networks in the project's checkpoint format
  previews/*.png           sample grids (distillation)

Randomness is counter based: update k of rank r draws from a generator seeded by (seed, r, k), and the data
stream is a pure function of its position (data.py), so a resumed run continues bit for bit (CPU).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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


def parse_duration(text: str) -> Duration:
    """'30min', '4min', '2h', '90s', '200kimg', '1.5Mimg', '64Mi' (2^20 images), '16Ki', '5000img', '300steps'.

    A bare number means kimg (EDM2 convention). Time lengths count this invocation only; image and step counts
    are totals over resumes. Raises ValueError naming the bad text.
    """
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"duration {text!r} not understood; use e.g. 30min, 2h, 200kimg, 64Mi or 500steps")
    value, unit = float(m.group(1)), (m.group(2) or "kimg").lower()
    if value <= 0:
        raise ValueError(f"duration {text!r} must be > 0")
    seconds = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    if unit in seconds:
        return Duration(seconds=value * seconds[unit])
    if unit in ("step", "steps"):
        return Duration(steps=int(value))
    per = {"img": 1, "kimg": 1000, "mimg": 1_000_000, "ki": 1 << 10, "mi": 1 << 20}[unit]
    return Duration(nimg=round(value * per))


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
    """torch.save to a temporary file in the same folder, then os.replace (never a half-written state)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def command_line() -> str:
    """The exact command of this process, shell-quoted."""
    return shlex.join([Path(sys.argv[0]).name] + sys.argv[1:])


class TrainLoop:
    """Base class: subclasses implement `train_step`, `state_dict`, `load_state_dict` and `write_snapshot`.

    `run()` repeats `train_step(step)` (which returns a dict of scalar loss tensors, *without* host syncs) until
    the duration is reached; every `log_every` steps it logs (the only host sync), every `snapshot_every`
    (a Duration: time or images) it writes snapshots and the training state, and it always does so at the end,
    and after the current step on Ctrl-C or SIGTERM (a second signal acts as usual).
    """

    name = "train"

    def __init__(self, out: str | Path, dist_info: distributed.DistInfo, batch: int, duration: Duration,
                 snapshot_every: Duration, log_every: int = 20, seed: int = 0, settings: dict | None = None,
                 resume: bool = False, progress: bool = True):
        if batch % dist_info.world_size:
            raise ValueError(f"--batch {batch} is not divisible by the {dist_info.world_size} processes")
        self.out = Path(out)
        self.dist = dist_info
        self.device = dist_info.device
        self.batch, self.batch_per_rank = batch, batch // dist_info.world_size
        self.duration, self.snapshot_every = duration, snapshot_every
        self.log_every, self.seed = max(1, int(log_every)), int(seed)
        self.settings = dict(settings or {})
        self.resume, self.progress = resume, progress
        self.cur_nimg, self.step, self.train_seconds = 0, 0, 0.0
        self.state_path = self.out / "state.pt"
        self.log_path = self.out / "log.jsonl"

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
        """Training provenance written into every checkpoint."""
        return {"data": self.settings.get("data"), "steps": self.step, "kimg": round(self.cur_nimg / 1000, 3),
                "wall_time_s": round(self.train_seconds, 1), "command": self.settings.get("command"),
                "batch": self.batch, "world_size": self.dist.world_size, "seed": self.seed,
                "trainer": f"ncvsd {self.name}"}

    def _full_state(self) -> dict:
        return {"loop": {"cur_nimg": self.cur_nimg, "step": self.step, "train_seconds": self.train_seconds,
                         "seed": self.seed, "batch": self.batch, "name": self.name},
                "rng": {"torch": torch.get_rng_state()}, "trainer": self.state_dict()}

    def save_state(self) -> None:
        if self.dist.is_main:
            atomic_torch_save(self._full_state(), self.state_path)

    def _prepare_run_dir(self) -> None:
        if self.state_path.exists() and not self.resume:
            raise FileExistsError(f"{self.out} already holds a training state; pass --resume to continue it "
                                  "or choose another --out")
        if self.resume and not self.state_path.exists():
            raise FileNotFoundError(f"--resume: no training state at {self.state_path}")
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not (self.out / "run.json").exists():
                (self.out / "run.json").write_text(json.dumps(self.settings, indent=2, default=str) + "\n")
        distributed.barrier()
        if self.resume:
            state = torch.load(self.state_path, map_location="cpu", weights_only=False)
            if state["loop"]["name"] != self.name:
                raise ValueError(f"{self.state_path} is a '{state['loop']['name']}' state, not '{self.name}'")
            if state["loop"]["seed"] != self.seed:
                raise ValueError(f"--seed {self.seed} differs from the saved run's seed {state['loop']['seed']}")
            self.cur_nimg = state["loop"]["cur_nimg"]
            self.step = state["loop"]["step"]
            self.train_seconds = state["loop"]["train_seconds"]
            torch.set_rng_state(state["rng"]["torch"])
            self.load_state_dict(state["trainer"])

    def _log(self, record: dict) -> None:
        if self.dist.is_main:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def _done(self, start_time: float) -> bool:
        d = self.duration
        if d.seconds is not None:
            return time.time() - start_time >= d.seconds
        if d.nimg is not None:
            return self.cur_nimg >= d.nimg
        return self.step >= d.steps

    def _snapshot_due(self, last_time: float, last_nimg: int) -> bool:
        e = self.snapshot_every
        if e.seconds is not None:
            return time.time() - last_time >= e.seconds
        if e.nimg is not None:
            return self.cur_nimg - last_nimg >= e.nimg
        return e.steps is not None and self.step % e.steps == 0

    def checkpoint(self) -> None:
        """Write the snapshots (rank 0) and the training state (once per step)."""
        if getattr(self, "_saved_step", None) == self.step:
            return
        self._saved_step = self.step
        if self.dist.is_main:
            paths = self.write_snapshot()
            self.save_state()
            self._log({"event": "snapshot", "step": self.step, "kimg": self.cur_nimg / 1000,
                       "files": [str(p) for p in paths]})
        distributed.barrier()

    def run(self) -> dict:
        """Train until the duration is reached; returns the last logged record."""
        self._prepare_run_dir()
        self._log({"event": "resume" if self.resume else "start", "step": self.step, "kimg": self.cur_nimg / 1000,
                   "command": self.settings.get("command"), "device": str(self.device),
                   "world_size": self.dist.world_size})
        bar = None
        if self.dist.is_main and self.progress:
            from tqdm import tqdm

            bar = tqdm(desc=f"ncvsd {self.name}", unit="img", unit_scale=True, file=sys.stderr,
                       initial=self.cur_nimg, total=self.duration.nimg, dynamic_ncols=True)
        self._stop = False
        handlers = {}

        def _on_signal(signum, frame):  # stop at the next step boundary; a second signal acts as usual
            self._stop = True
            signal.signal(signum, handlers.get(signum, signal.SIG_DFL))

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                handlers[sig] = signal.signal(sig, _on_signal)
            except ValueError:  # not in the main thread
                pass
        start = last_snap_time = last_log_time = time.time()
        last_snap_nimg, last_log_nimg = self.cur_nimg, self.cur_nimg
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        record: dict = {}
        try:
            while not self._done(start) and not self._stop:
                t0 = time.time()
                losses = self.train_step(self.step)
                self.step += 1
                self.cur_nimg += self.batch
                for k, v in losses.items():
                    sums[k] = sums[k] + v.detach() if k in sums else v.detach().clone()
                    counts[k] = counts.get(k, 0) + 1
                self.train_seconds += time.time() - t0
                if bar is not None:
                    bar.update(self.batch)
                if self.step % self.log_every == 0:
                    now = time.time()
                    n = torch.tensor([counts[k] for k in sums], device=self.device, dtype=torch.float32)
                    vals = distributed.all_mean(torch.stack(list(sums.values())).float() / n).tolist()
                    rate = (self.cur_nimg - last_log_nimg) / max(now - last_log_time, 1e-9)
                    record = {"step": self.step, "kimg": self.cur_nimg / 1000, **dict(zip(sums, vals)),
                              "img_per_s": round(rate, 2), "seconds": round(self.train_seconds, 2),
                              **self.log_extras()}
                    self._log(record)
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in zip(sums, vals)} | {"img/s": f"{rate:.1f}"})
                    sums, counts, last_log_time, last_log_nimg = {}, {}, now, self.cur_nimg
                if self._snapshot_due(last_snap_time, last_snap_nimg):
                    self.checkpoint()
                    last_snap_time, last_snap_nimg = time.time(), self.cur_nimg
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if bar is not None:
                bar.close()
        if self._stop:
            self._log({"event": "interrupted", "step": self.step, "kimg": self.cur_nimg / 1000})
        self.checkpoint()
        self._log({"event": "end", "step": self.step, "kimg": self.cur_nimg / 1000,
                   "seconds": round(self.train_seconds, 2)})
        return record

    def log_extras(self) -> dict:
        """Extra values for each log record (e.g. learning rates)."""
        return {}
