"""Teacher training with the EDM2 recipe (docs/method.md §1.5 loss form, §1.7 lognormal σ, §1.8 Adam + schedule + EMA).

Loss per sample: Σ_dims [λ(σ) e^(−u(σ)) (D(x0 + σn, σ) − x0)² + u(σ)], λ(σ) = (σ² + σ_d²)/(σ σ_d)², reduced as
sum · loss_scaling / per-rank batch. Snapshots: the power-function EMAs as `teacher` checkpoints.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ncvsd_cli.training import distributed
from ncvsd_cli.training.common import (
    RunSettings,
    autocast,
    build,
    file_provenance,
    labels_for,
    library_settings,
    load_init_weights,
    make_adam,
    optimiser_step,
    recorded_setting,
    snapshot_path,
    training_rng,
    with_duration,
)
from ncvsd_cli.training.data import ImageStream, open_source
from ncvsd_cli.training.ema import PowerFunctionEMA
from ncvsd_cli.training.loop import TrainLoop, parse_duration, run_then_leave, step_generator
from ncvsd_cli.training.losses import lognormal_sigma, uncertainty_loss
from operators.noise import randn


@dataclass
class TeacherSettings(RunSettings):
    """Settings of `ncvsd train` (see RunSettings; EDM2 pixel-space ImageNet-64 lognormal σ, −0.8/1.6; EDM2's latent
    ImageNet-512 models use −0.4/1.0).

    arch: the network architecture (a name in ncvsd_cli.networks.PRESETS); None means DEFAULT_ARCH for a new
    run (or the architecture of init_teacher) and the run's own architecture on resume.
    init_teacher: a teacher checkpoint (name or path) to start from instead of fresh weights (fine-tuning, e.g.
    on your own photos; give a lower --lr); ignored on --resume, where state.pt holds the weights.
    """

    arch: str | None = None
    init_teacher: str | None = None
    out: str = "runs/teacher"
    ref_batches: float = 2000.0
    extra: dict = field(default_factory=dict)


DEFAULT_ARCH = "builtin64"


def resolve_arch(s: TeacherSettings) -> str:
    """The architecture to build: --arch, else the resumed run's (run.json; older versions called it 'preset'),
    else that of --init-teacher, else DEFAULT_ARCH. Raises ValueError when --arch differs from the resumed run's."""
    recorded = recorded_setting(s.out, "arch", "preset") if s.resume else None
    recorded = recorded if isinstance(recorded, str) else None
    if s.arch is not None and recorded is not None and s.arch != recorded:
        raise ValueError(f"--arch {s.arch} differs from the architecture {recorded} of the run in {s.out}; "
                         "leave --arch out to continue it")
    if s.arch is None and recorded is None and s.init_teacher:
        from ncvsd_cli.checkpoints import read_config, resolve_checkpoint

        config = read_config(resolve_checkpoint(s.init_teacher, kind="teacher", quiet=True))
        recorded = config.get("preset") or preset_of(config)
        if recorded is None:  # (an imported network of a size no preset has)
            raise ValueError(f"--init-teacher {s.init_teacher}: its architecture is none of the presets; ncvsd "
                             "trains preset architectures only (--arch)")
    return s.arch or recorded or DEFAULT_ARCH


def preset_of(config: dict) -> str | None:
    """The preset whose network has exactly `config`'s architecture (e.g. of an imported checkpoint), else None."""
    from ncvsd_cli.networks import PRESETS, network_config
    from ncvsd_cli.networks.build import architecture

    wanted = architecture(config)
    return next((p for p in PRESETS if architecture(network_config(config["kind"], p)) == wanted), None)


class TeacherTrainer(TrainLoop):
    """Teacher training loop (one update per step)."""

    name = "train"

    def __init__(self, s: TeacherSettings, dist_info: distributed.DistInfo):
        s = with_duration(s)
        super().__init__(s.out, dist_info, s.batch, parse_duration(s.duration), parse_duration(s.snapshot),
                         s.log_every, s.seed, settings=asdict(s), resume=s.resume, progress=s.progress)
        self.s = s
        self.arch = self.settings["arch"] = resolve_arch(s)
        torch.manual_seed(s.seed)  # identical fresh weights on every rank (also broadcast below)
        self.net, self.config = build("teacher", self.arch, self.device, s.channels_last)
        self.init_provenance = self._init_from_teacher(s, self.net, self.config, not (s.progress and dist_info.is_main))
        self.settings["init_provenance"] = self.init_provenance
        distributed.broadcast_module(self.net)
        self.net.train()
        self.opt = make_adam(self.net, self.device)
        self.ema = PowerFunctionEMA(self.net, s.sigma_rels) if dist_info.is_main else None
        res = self.net.img_resolution
        self.stream = ImageStream(open_source(s.data, res), res, self.batch_per_rank, s.seed, dist_info.rank,
                                  dist_info.world_size, xflip=s.xflip)

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        s, dev = self.s, self.device
        images, labels = self.stream.next(dev)
        if s.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        gen = step_generator(self.seed, self.dist.rank, step, dev)
        sigma = lognormal_sigma(images.shape[0], s.p_mean, s.p_std, gen, device=dev)
        noise = randn(images.shape, gen, device=dev)
        with autocast(dev, s.precision):
            denoised, logvar = self.net(images + sigma.view(-1, 1, 1, 1) * noise, sigma,
                                        labels_for(self.net, labels), return_logvar=True)
        loss = uncertainty_loss(denoised, images, logvar, sigma)
        optimiser_step(self.net, self.opt, loss.sum() * (s.loss_scaling / images.shape[0]), self.lr(s.lr))
        if self.ema is not None:
            self.ema.update(self.net, self.cur_nimg + self.batch, self.batch)
        return {"loss": loss.mean() / images[0].numel()}

    def log_extras(self) -> dict:
        return {"lr": self.lr(self.s.lr)}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "data": self.stream.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.stream.load_state_dict(state["data"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    @staticmethod
    def _init_from_teacher(s: TeacherSettings, net: torch.nn.Module, config: dict, quiet: bool) -> dict:
        """Load --init-teacher into `net` (new runs) and return its provenance {init_teacher: file name,
        init_teacher_sha256}, hashed once; on resume the run's recorded one (state.pt holds the weights); {}
        when the run started from fresh weights."""
        if s.resume:
            recorded = recorded_setting(s.out, "init_provenance")
            return recorded if isinstance(recorded, dict) else {}
        if not s.init_teacher:
            return {}
        return file_provenance("init_teacher", load_init_weights(net, config, s.init_teacher, "teacher",
                                                                 "--init-teacher", quiet))

    def provenance(self) -> dict:
        return {**super().provenance(), **self.init_provenance}

    def write_snapshot(self) -> list[Path]:
        from ncvsd_cli.checkpoints import save_checkpoint

        paths = []
        for sigma_rel, ema in self.ema.models(self.net):
            cfg = dict(self.config, provenance={**self.provenance(), "ema_sigma_rel": sigma_rel})
            paths.append(save_checkpoint(ema, snapshot_path(self.out, "teacher", self.cur_nimg / 1000, sigma_rel),
                                         cfg))
        return paths


def train_teacher(settings: TeacherSettings, given: Collection[str] | None = None) -> dict:
    """Run (or resume) teacher training; returns the last log record. Works under torchrun. Settings are checked,
    and a resume keeps the run's recorded recipe for every field not in `given` (None: the fields that differ from
    their defaults; `library_settings`); the caller's random state is left as it was (`training_rng`). Ctrl-C
    saves the state and raises TrainingInterrupted, an Exception (a second one TrainingAborted, a
    KeyboardInterrupt)."""
    settings = library_settings(settings, given)
    info = distributed.init(settings.device)
    with training_rng(info.device):
        return run_then_leave(lambda: TeacherTrainer(settings, info).run(), settings.out)
