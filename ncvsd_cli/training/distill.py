"""NCVSD distillation (docs/method.md §1.3-§1.9): generator G_θ, auxiliary score model D_φ and discriminator C_ψ, all
initialised from a frozen teacher D_0, trained with three sequential updates per iteration, each on its own
fresh batch (§1.8 order: score, discriminator, generator).

- σ (generator conditioning): uniform over the 1000-point Karras grid (§1.7); t ~ lognormal(p_mean, p_std).
- Score model: EDM2 uncertainty-weighted DSM on generator samples, lr = ref_lr (§1.5).
- Discriminator: D · 0.5 · (softplus(ℓ_fake) + softplus(−ℓ_real)), same t for real and fake, lr × 0.01 (§1.6).
- Generator: Σ λ(t) e^(−u(σ̂)) (x − sg(x + s0 − sφ))² + u with s0 = D_0(y_eff, σ_eff) (Proposition 1) and
  sφ = D_φ(x_t, t, y, σ); plus D · softplus(−C_ψ(x_t, t, y, σ)) after the GAN warm-up; lr × 0.01 (§1.4).
- Power-function EMA of the generator (σ_rel 0.05, 0.10), saved as `generator` checkpoints; previews at snapshots.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ncvsd_cli.training import distributed
from ncvsd_cli.training.common import (
    ARCH_KEYS,
    MAX_LR,
    RunSettings,
    autocast,
    check_ranges,
    file_provenance,
    kimg_tag,
    labels_for,
    library_settings,
    load_init_weights,
    make_adam,
    recorded_setting,
    run_record,
    snapshot_path,
    training_rng,
    with_duration,
)
from ncvsd_cli.training.data import ImageStream, open_source
from ncvsd_cli.training.ema import PowerFunctionEMA
from ncvsd_cli.training.loop import TrainLoop, parse_duration, run_then_leave, step_generator
from ncvsd_cli.training.losses import karras_grid, lognormal_sigma, uniform_grid_sigma
from ncvsd_cli.training.ncvsd_step import NCVSDModels, add_noise, ncvsd_step

_CONFIG_KEYS = ("preset", *ARCH_KEYS)


@dataclass
class DistillSettings(RunSettings):
    """Settings of `ncvsd distill` (see RunSettings; paper values in docs/method.md §1.10).

    arch: None (the teacher's architecture) or a name in ncvsd_cli.networks.PRESETS that must match it;
    lr: ref_lr (score model); g_lr_scale/d_lr_scale: multipliers for generator/discriminator (0.01);
    init_generator: a generator checkpoint to start G_θ from instead of the teacher (continues an earlier
    distillation whose state.pt is gone; score model and discriminator still start from the teacher);
    gan_warmup_kimg: GAN term off before this many kimg; gan_loss_scaling: ζ (0: no GAN, no discriminator
    updates); p_mean/p_std: t lognormal;
    preview_ts: ts lists (docs/method.md §2.7) for the preview grids; preview_count: images per grid.
    """

    teacher: str = ""
    arch: str | None = None
    out: str = "runs/distill"
    g_lr_scale: float = 0.01
    d_lr_scale: float = 0.01
    init_generator: str | None = None
    gan_warmup_kimg: float = 100.0
    gan_loss_scaling: float = 1.0
    preview_ts: tuple[tuple[int, ...], ...] = ((10, 39), (0, 10, 20, 30, 39))
    preview_count: int = 16

    def check(self) -> None:
        """RunSettings.check, then the distillation's own ranges (ValueError naming the option)."""
        super().check()
        check_ranges(positive={"g_lr_scale": self.g_lr_scale, "d_lr_scale": self.d_lr_scale},
                     non_negative={"gan_warmup_kimg": self.gan_warmup_kimg, "gan_loss_scaling": self.gan_loss_scaling})
        if self.lr * max(self.g_lr_scale, self.d_lr_scale) > MAX_LR:  # the generator's and discriminator's rates
            raise ValueError(f"--lr x --g-lr-scale / --d-lr-scale must be <= {MAX_LR:g}, got "
                             f"{self.lr * max(self.g_lr_scale, self.d_lr_scale):g}")


def _net_config(teacher_cfg: dict, kind: str) -> dict:
    """The config of a student of `kind` with exactly the teacher's architecture."""
    return {"kind": kind, **{k: teacher_cfg[k] for k in _CONFIG_KEYS if k in teacher_cfg}}


def student_network(teacher: torch.nn.Module, teacher_cfg: dict, kind: str) -> tuple[torch.nn.Module, dict]:
    """A `kind` network ("generator", "score" or "discriminator") of the teacher's architecture, initialised
    from the teacher as in docs/method.md §1.9; returns (network on the teacher's device, its config)."""
    from ncvsd_cli.networks import build_network, init_from_teacher

    cfg = _net_config(teacher_cfg, kind)
    return init_from_teacher(build_network(cfg), teacher), cfg


#: The generator's own noise settings (docs/method.md §2.5), which a generator to continue from keeps.
GENERATOR_NOISE_KEYS = ("gamma", "init_sigma")


def init_generator_noise(source: str) -> dict:
    """{gamma, init_sigma} of the generator checkpoint `source` (a name, path or run folder): the values the student
    generator is built with when it continues from it (the shipped one has γ 0.1, not the teacher config's 0.414).
    {} when its config cannot be read here (`load_init_weights` reports the problem)."""
    from ncvsd_cli.checkpoints import CheckpointError, read_config, resolve_checkpoint

    try:
        cfg = read_config(resolve_checkpoint(source, kind="generator", quiet=True))
    except (CheckpointError, ValueError, OSError):
        return {}
    return {k: cfg[k] for k in GENERATOR_NOISE_KEYS if k in cfg}


def teacher_copy_generator(teacher: str, gamma: float | None = None) -> tuple[torch.nn.Module, dict]:
    """The generator G_θ at its initialisation, before any distillation step (docs/method.md §1.9): G(y, σ) =
    D_0(y + sqrt(σ̂² − σ²) z, σ̂), σ̂ = (1 + γ)σ, the teacher's posterior mean at a higher noise level: an
    approximate posterior sample, smoother than a true one. teacher: name, path or `ncvsd train` run
    directory. gamma > 0: γ (None: the teacher config's, 0.414 = the paper's; smaller is nearer the teacher's
    MMSE estimate D_0(y, σ)). Returns (generator on the CPU, config with provenance: teacher file and sha256,
    its data, 0 kimg)."""
    net, tcfg, path = load_teacher(teacher, torch.device("cpu"))
    if gamma is not None:
        tcfg = dict(tcfg, gamma=float(gamma))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the fresh log-variance head (unused by sampling): the same file every time
        gen, cfg = student_network(net, tcfg, "generator")
    tprov = tcfg.get("provenance") or {}
    prov = {k: tprov[k] for k in ("data", "data_licences", "data_files") if k in tprov}
    prov.update(**file_provenance("teacher", path), steps=0, kimg=0.0,
                trainer="teacher copy: the NCVSD generator at initialisation (docs/method.md §1.9), "
                        "not distilled")
    return gen, dict(cfg, provenance=prov)


def load_teacher(teacher: str, device: torch.device, quiet: bool = True) -> tuple[torch.nn.Module, dict, str]:
    """A teacher checkpoint (name, path, or a `ncvsd train` run directory -> its newest σ_rel 0.05 snapshot, named
    on stderr unless `quiet`); returns (frozen teacher in eval mode, its config, the resolved path)."""
    from ncvsd_cli.checkpoints import load_checkpoint, resolve_checkpoint

    teacher = str(resolve_checkpoint(teacher, kind="teacher", quiet=quiet))
    net, cfg = load_checkpoint(teacher, device=device, kind="teacher")
    return net.eval().requires_grad_(False), cfg, teacher


def mixing_max(net: torch.nn.Module) -> float:
    """The largest ControlNet mixing weight of `net` (0 at initialisation, in [0, 1]; 0 without a ControlNet):
    how much the decoder hears the condition y."""
    ws = [p.detach().clamp(0, 1).max() for n, p in net.named_parameters()
          if n.rsplit(".", 1)[-1].startswith("additional_")]
    return round(float(max(ws)), 6) if ws else 0.0


def teacher_data(data: str | None, main: bool = True, quiet: bool = False, photos_set: bool = False) -> str:
    """The --data of a distillation that did not give one: the teacher's training data (its provenance) where it
    is `builtin`, `photos` or a folder / zip still found here (a note unless quiet); where it is gone but was a
    `photos` set (`photos_set`: its provenance records the set's licences, e.g. the shipped teacher's, built at a
    path of its maker's), `photos` if that set is built here; else `builtin` with a warning (on the main rank,
    also when quiet) that says how to get the set."""
    from ncvsd_cli.training.data import PHOTOS_ENV, photos_path

    gone = data not in ("builtin", "photos") and not (data and Path(data).expanduser().exists())
    if gone and photos_set and photos_path().exists():
        if main and not quiet:
            print(f"ncvsd: the teacher's training data, a photos set at {data}, is not here: distilling on the "
                  f"photos set here, --data photos ({photos_path()}; --data sets another)", file=sys.stderr,
                  flush=True)
        return "photos"
    if data and data not in ("builtin", "photos") and Path(data).expanduser().exists():
        data = str(Path(data).expanduser().absolute())  # as `with_recipe` records a typed --data
    if data in ("builtin", "photos") or (data and Path(data).exists()):
        if main and not quiet:
            print(f"ncvsd: distilling on the teacher's training data, --data {data} (--data sets another)",
                  file=sys.stderr, flush=True)
        return data
    if main:
        hint = (f"; it was a photos set: build one with `python -m ncvsd_cli.training.photos {photos_path()} --cache "
                f"DIR` (or set {PHOTOS_ENV}) and give --data photos" if photos_set else "")
        print(f"ncvsd: warning: the teacher's training data ({data or 'not recorded'}) is not found here; "
              f"distilling on --data builtin (--data sets another){hint}", file=sys.stderr, flush=True)
    return "builtin"


def resumed_teacher_problem(out: str | Path) -> str | None:
    """Why a --resume of the distillation in `out` without --teacher typed again cannot go on against the teacher
    file the run began with (run.json's teacher_path: gone, or its sha256 changed), or None when it can."""
    from ncvsd_cli.checkpoints import sha256_file
    from ncvsd_cli.training.common import run_record

    record = run_record(out)
    pinned, before = record.get("teacher_path"), record.get("teacher_sha256")
    again = f"--teacher {record.get('teacher') or pinned}"
    if pinned and not Path(pinned).is_file():
        return (f"--resume: the run's teacher file {pinned} is not found; to distil on against another teacher, "
                f"type it again (e.g. {again}), or put the file back")
    if pinned and before and sha256_file(pinned) != before:
        return (f"--resume: the run's teacher file {pinned} changed since the run began (sha256 {before[:12]} then); "
                f"to distil on against it as it is now, type {again} again, or put the original back")
    return None


class Distiller(TrainLoop):
    """NCVSD distillation loop (three updates per step)."""

    name = "distill"
    snapshot_kind = "generator"

    def __init__(self, s: DistillSettings, dist_info: distributed.DistInfo):
        s = with_duration(s)
        super().__init__(s.out, dist_info, s.batch, parse_duration(s.duration), parse_duration(s.snapshot),
                         s.log_every, s.seed, settings=asdict(s), resume=s.resume, progress=s.progress)
        from ncvsd_cli.networks import network_config

        self.s = s
        dev = self.device
        quiet = not (s.progress and dist_info.is_main)
        self.teacher, tcfg, self.teacher_path = load_teacher(self._resumed_teacher(s, dist_info.is_main), dev, quiet)
        if s.arch is not None and network_config("teacher", s.arch)["arch"] != tcfg["arch"]:
            if s.resume:  # the run's recorded architecture (run.json), typed or not
                raise ValueError(f"the teacher {self.teacher_path} has the architecture {tcfg.get('preset')!r}, "
                                 f"the run in {s.out} {s.arch!r}: a run keeps its networks; distil this teacher "
                                 "into another --out")
            raise ValueError(f"--arch {s.arch} does not match the teacher's architecture "
                             f"({tcfg.get('preset')!r}); leave --arch out to use the teacher's")
        self.settings["teacher_path"] = str(Path(self.teacher_path).resolve())  # a resume from another folder
        self.recipe_keys |= {"teacher_path"}  # recorded again on --resume when another teacher file loads
        if s.data is None:  # not given: the teacher's own data, where it is still found
            prov = tcfg.get("provenance") or {}
            s.data = self.settings["data"] = teacher_data(prov.get("data"), dist_info.is_main, quiet,
                                                          photos_set=bool(prov.get("data_licences")))
        self.settings["arch"] = s.arch or tcfg.get("preset")
        torch.manual_seed(s.seed)
        nets, self.configs = {}, {}
        noise, init_provenance = self._generator_start(s)
        gen_cfg = {**tcfg, **noise}
        for kind in ("generator", "score", "discriminator"):
            net, self.configs[kind] = student_network(self.teacher.cpu(), gen_cfg if kind == "generator" else tcfg,
                                                      kind)
            net = net.to(dev)
            if s.channels_last:
                net = net.to(memory_format=torch.channels_last)
            distributed.broadcast_module(net)
            nets[kind] = net
        self.teacher.to(dev)
        self.source_files = file_provenance("teacher", self.teacher_path)  # hashed once, not per snapshot
        self._check_teacher_unchanged(s, dist_info.is_main)
        if s.init_generator and not s.resume:  # (on resume state.pt holds the weights)
            init_path = load_init_weights(nets["generator"], self.configs["generator"], s.init_generator,
                                          "generator", "--init-generator", quiet)
            init_provenance = file_provenance("init_generator", init_path)
        self.settings["generator_noise"], self.settings["init_provenance"] = noise, init_provenance
        self.source_files.update(init_provenance)
        self.gen, self.score, self.disc = nets["generator"], nets["score"], nets["discriminator"]
        self.opts = {k: make_adam(n, dev) for k, n in nets.items()}
        self.models = NCVSDModels(self.gen, self.score, self.disc, self.teacher, self.opts)
        self.ema = PowerFunctionEMA(self.gen, s.sigma_rels) if dist_info.is_main else None
        self.grid = karras_grid().to(dev)
        res = self.gen.img_resolution
        self.stream = ImageStream(open_source(s.data, res), res, self.batch_per_rank, s.seed, dist_info.rank,
                                  dist_info.world_size, xflip=s.xflip)
        taught = (tcfg.get("provenance") or {}).get("data_files")  # `files_fingerprint` of the teacher's data
        if (taught and self.stream.source.fingerprint and taught != self.stream.source.fingerprint and not s.resume
                and dist_info.is_main):  # told once, when the run starts
            print(f"ncvsd: note: the teacher was trained on other files ({taught}) than --data {s.data} holds "
                  f"({self.stream.source.fingerprint}): it is distilled towards its own data's prior",
                  file=sys.stderr, flush=True)

    @staticmethod
    def _generator_start(s: DistillSettings) -> tuple[dict, dict]:
        """({gamma, init_sigma} the generator is built with, {init_generator, init_generator_sha256}) of the run:
        the --init-generator checkpoint's for a new run ({} from the teacher, `init_generator_noise`); on resume
        the run's recorded ones (run.json; for runs of older versions its newest generator snapshot's config),
        so that a bare --resume of a run begun from another generator keeps that generator's γ."""
        if not s.resume:
            return (init_generator_noise(s.init_generator) if s.init_generator else {}), {}
        noise, provenance = recorded_setting(s.out, "generator_noise"), recorded_setting(s.out, "init_provenance")
        if noise is None:
            from ncvsd_cli.checkpoints import CheckpointError, read_config, run_snapshot

            try:
                cfg = read_config(run_snapshot(s.out, "generator"))
            except (CheckpointError, OSError):
                cfg = init_generator_noise(s.init_generator) if s.init_generator else {}
            noise = {k: cfg[k] for k in GENERATOR_NOISE_KEYS if k in cfg}
            made_from = cfg.get("provenance") or {}
            provenance = {k: made_from[k] for k in ("init_generator", "init_generator_sha256") if k in made_from}
        return dict(noise), dict(provenance or {})

    # -------------------------------------------------------------------------------------------- one step
    def _fresh(self, step: int, update: int):
        """A fresh batch for one update: images, labels, σ (Karras grid), y = x0 + σ n, and its generator."""
        dev = self.device
        images, labels = self.stream.next(dev)
        if self.s.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        gen = step_generator(self.seed, self.dist.rank, step, dev, stream=update)
        sigma = uniform_grid_sigma(images.shape[0], self.grid, gen, device=dev)
        y = add_noise(images, sigma, gen)
        return images, labels_for(self.gen, labels), sigma, y, gen

    def _t(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return lognormal_sigma(n, self.s.p_mean, self.s.p_std, gen, device=self.device)

    @staticmethod
    def _resumed_teacher(s: DistillSettings, main: bool) -> str:
        """The teacher to load: on --resume with the run's own --teacher (not another one typed), the very file
        the run began with (run.json's teacher_path), not a newer snapshot of a teacher run folder."""
        record = run_record(s.out) if s.resume else {}
        pinned = record.get("teacher_path")
        if not pinned or record.get("teacher") != s.teacher:
            return s.teacher
        if Path(pinned).is_file():
            return pinned
        if main:  # a warning: also when quiet
            print(f"ncvsd: warning: the run's teacher file {pinned} is not found; distilling on from {s.teacher}",
                  file=sys.stderr, flush=True)
        return s.teacher

    def _check_teacher_unchanged(self, s: DistillSettings, main: bool) -> None:
        """Records the teacher's sha256 in run.json (a new run, another --teacher typed); on --resume with the run's
        own --teacher warns (also when quiet) when the file that loaded is not the one the run began with (replaced at
        the same path, or a newer snapshot where the pinned file is gone)."""
        digest = self.source_files["teacher_sha256"]
        record = run_record(s.out) if s.resume else {}
        before = record.get("teacher_sha256")
        same_teacher = record.get("teacher") == s.teacher and record.get("teacher_path") == str(
            Path(self.teacher_path).resolve())  # not another --teacher typed, nor a newer snapshot for a lost file
        if before and same_teacher and before != digest and main:
            print(f"ncvsd: warning: the teacher {self.teacher_path} (sha256 {digest[:12]}) is not the file this run "
                  f"began with (sha256 {before[:12]}): the distillation goes on against another teacher",
                  file=sys.stderr, flush=True)
        if before and same_teacher:  # the run's teacher stays the reference
            self.settings["teacher_sha256"] = before
        else:  # a new run, another --teacher typed, a lost pinned file (warned of): recorded from now on
            self.settings["teacher_sha256"] = digest
            self.recipe_keys |= {"teacher_sha256"}

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        s = self.s
        base_lr = self.lr(s.lr)
        # Every batch of the step drawn before any update: an image that fails to decode leaves the networks as
        # the last finished step left them (`TrainLoop._stopped_by_data`); each update's generator is its own, so
        # drawing early changes no number.
        batches = {u: self._fresh(step, u) for u in ((0, 1, 2) if s.gan_loss_scaling > 0 else (0, 2))}
        losses = ncvsd_step(self.models, batches.__getitem__, self._t,
                            lrs={"score": base_lr, "discriminator": base_lr * s.d_lr_scale,
                                 "generator": base_lr * s.g_lr_scale},
                            gan=self.cur_nimg >= s.gan_warmup_kimg * 1000, gan_loss_scaling=s.gan_loss_scaling,
                            loss_norm=s.loss_scaling / self.batch_per_rank,
                            autocast_ctx=autocast(self.device, s.precision))
        if self.ema is not None:
            self.ema.update(self.gen, self.cur_nimg + self.batch, self.batch)
        return losses

    def log_extras(self) -> dict:
        return {"lr": self.lr(self.s.lr),
                "gan": self.s.gan_loss_scaling > 0 and self.cur_nimg >= self.s.gan_warmup_kimg * 1000,
                "mixing_max_generator": mixing_max(self.gen), "mixing_max_score": mixing_max(self.score)}

    # ------------------------------------------------------------------------------------ state / output
    def state_dict(self) -> dict:
        return {"gen": self.gen.state_dict(), "score": self.score.state_dict(), "disc": self.disc.state_dict(),
                "opts": {k: o.state_dict() for k, o in self.opts.items()}, "data": self.stream.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.gen.load_state_dict(state["gen"])
        self.score.load_state_dict(state["score"])
        self.disc.load_state_dict(state["disc"])
        for k, o in self.opts.items():
            o.load_state_dict(state["opts"][k])
        self.stream.load_state_dict(state["data"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    def provenance(self) -> dict:
        return {**super().provenance(), **self.source_files}

    def write_snapshot(self) -> list[Path]:
        from ncvsd_cli.checkpoints import save_checkpoint

        paths = []
        kimg = self.cur_nimg / 1000
        prov = self.provenance()
        for sigma_rel, ema in self.ema.models(self.gen):
            cfg = dict(self.configs["generator"], provenance={**prov, "ema_sigma_rel": sigma_rel})
            paths.append(save_checkpoint(ema, snapshot_path(self.out, "generator", kimg, sigma_rel), cfg))
        paths += self.write_previews(next(iter(self.ema.models(self.gen)))[1], kimg)
        return paths

    def _preview_paths(self, kimg: float) -> list[Path]:
        """previews/<kimg>-nfe<N>.png, one per `preview_ts`."""
        return [self.out / "previews" / f"{kimg_tag(kimg)}-nfe{len(ts) - 1}.png" for ts in self.s.preview_ts]

    def _snapshot_missing(self) -> bool:
        """The base class's check, and whether the saved step's previews are missing (a kill while they were
        written, after the snapshots: --resume writes them, and logs the snapshot, then)."""
        return super()._snapshot_missing() or (self.step > 0 and not all(
            p.is_file() for p in self._preview_paths(self.cur_nimg / 1000)))

    @torch.no_grad()
    def write_previews(self, gen: torch.nn.Module, kimg: float) -> list[Path]:
        """One grid per `preview_ts` (e.g. 1 and 4 steps) with fixed seeds: previews/<kimg>-nfe<N>.png."""
        from ncvsd_cli.images import make_grid, save_image
        from ncvsd_cli.sampling.generate import generate
        from operators.noise import generators_for_seeds

        paths = []
        r, c = gen.img_resolution, gen.img_channels
        for ts, path in zip(self.s.preview_ts, self._preview_paths(kimg)):
            gens = generators_for_seeds(range(self.s.preview_count), device=self.device)
            x = generate(gen, (self.s.preview_count, c, r, r), list(ts), gens, device=self.device).x
            path.parent.mkdir(parents=True, exist_ok=True)
            x = torch.nan_to_num(x.float().cpu(), nan=0.0).clamp(-1, 1)  # a diverging generator's range
            paths.append(save_image(make_grid(x), path))  # (the loss check stops such a run)
        return paths


def distill(settings: DistillSettings, given: Collection[str] | None = None) -> dict:
    """Run (or resume) NCVSD distillation; returns the last log record. Works under torchrun. As
    `teacher.train_teacher`: settings checked, a resume keeps the run's recipe but for `given`, the caller's random
    state kept."""
    settings = library_settings(replace(settings), given)  # (a copy: the caller's object is not changed)
    if not settings.teacher:
        raise ValueError("distillation needs --teacher (a teacher checkpoint or a `ncvsd train` run directory)")
    info = distributed.init(settings.device)
    with training_rng(info.device):
        return run_then_leave(lambda: Distiller(settings, info).run(), settings.out)
