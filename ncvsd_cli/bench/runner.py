"""The benchmark loop: every method on the same images and the same measurements, one CSV row per result.

For each task: the operator is built once from the task preset; for each image the measurement is made once
(bench/measurements.py: seeded from (seed, image index)) and every job (bench/methods.py) restores it. Images go
through the samplers in batches of --batch-size, each image with its own generators, so an image's result does not
depend on the batch it was in (up to the network's float rounding). Each result is scored (PSNR, SSIM, LPIPS on
[0, 1], docs/method.md §5), timed (its share of the batch's wall time) and appended to the CSV at once, after its
grid image: a row marks its files done. Rows whose key is already in DIR are skipped with --resume, unless a
grid image they own is missing (a run killed between the two is redone). Reports (bench/report.py) are written at
the end by rank 0.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ncvsd_cli.bench import datasets, distributed, methods, report, results
from ncvsd_cli.bench.measurements import make_measurement, measurement_preview, sampler_generators
from ncvsd_cli.bench.memory import RowCost
from operators.base import all_finite

log = logging.getLogger("ncvsd.bench")

DEFAULT_TASKS = ("sr4", "inpaint-box", "deblur-gauss", "deblur-motion", "phase-retrieval")
DEFAULT_NFE = (1, 2, 3, 4, 10, 25, 49)  # holds every task's default warm-start NFE (3, 4, 10)
DEFAULT_METHODS = ("pnp-gd", "pnp-gd-warm", "denoiser", "dps", "daps", "classical")
#: Resolution used when no network is loaded (classical methods only), --resolution is not given and the generator's
#: training size cannot be read (`_unloaded_resolution`).
DEFAULT_RESOLUTION = {"ffhq": 256}
FALLBACK_RESOLUTION = 64


@dataclass
class BenchConfig:
    """Everything a benchmark run depends on (the CLI flags of `ncvsd bench`).

    dataset: "ffhq", "builtin" or a folder / zip / image path; data: the FFHQ folder or zip (else $NCVSD_FFHQ).
    tasks: operator names with task presets. nfe: PnP-GD sweep (network evaluations, each >= 1).
    methods: sampler names in sampling.METHODS and/or "classical". limit: first N images (None = all).
    seed >= 0: measurement and sampler seeds derive from (seed, image index). out: output folder.
    generator / teacher: checkpoint names or paths (None = manifest defaults; the teacher defaults to the one named
    in the generator's provenance when it can be found). baseline_nfe: NFE of DPS / DAPS (default 1000).
    lpips: "alex" (default) or "vgg". best_of: K >= 1 runs per image (K > 1 adds a labelled best-of-K summary).
    resume: skip rows already in `out` (without it, an `out` holding results is refused). device: "cpu", "cuda",
    "cuda:N". resolution: image size (default: the networks' img_resolution). grid_images: how many images (by
    index) get their restorations saved for the grids. preset_file: user YAML over the task presets (PnP-GD).
    precision: network compute precision (networks.inference): "auto" runs the generator in bfloat16 on CPUs with
    native bfloat16 and the teacher in float32 (DPS differentiates through it); "fp32" / "bf16" apply to both.
    batch_size >= 1: images restored together in one sampler call (each row's seconds = the call's time / images,
    its peak_mem_mb = the call's peak).
    """

    dataset: str = "builtin"
    out: str = "bench"
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    nfe: list[int] = field(default_factory=lambda: list(DEFAULT_NFE))
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    data: str | None = None
    limit: int | None = None
    seed: int = 0
    generator: str | None = None
    teacher: str | None = None
    baseline_nfe: int = 1000
    lpips: str = "alex"
    best_of: int = 1
    resume: bool = False
    device: str = "cpu"
    resolution: int | None = None
    grid_images: int = 4
    preset_file: str | None = None
    precision: str = "auto"
    batch_size: int = 1
    preset: dict[str, Any] | None = None  # the preset file's mapping, read once by validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value (tasks and methods given as one comma list, as on the command
        line, are split)."""
        self.tasks, self.methods = ([n for n in v.replace(" ", "").split(",") if n] if isinstance(v, str) else v
                                    for v in (self.tasks, self.methods))
        if not self.tasks:
            raise ValueError("--tasks is empty")
        if not self.methods:
            raise ValueError("--methods is empty")
        self.tasks = list(dict.fromkeys(self.tasks))  # sr4,sr4 ran every row twice
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        from ncvsd_cli.networks.inference import PRECISIONS

        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.preset_file is not None and self.preset is None:
            from ncvsd_cli.sampling.presets import read_preset_file

            self.preset = read_preset_file(self.preset_file)
        if self.best_of < 1:
            raise ValueError(f"--best-of must be >= 1, got {self.best_of}")
        if self.baseline_nfe < 1 or any(n < 1 for n in self.nfe):
            raise ValueError(f"NFE values must be >= 1, got --nfe {self.nfe} --baseline-nfe {self.baseline_nfe}")
        problem = daps_budget_problem(self.baseline_nfe) if "daps" in self.methods else None
        if problem:  # refused before any image runs (the method's own budget rule)
            raise ValueError(problem)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.grid_images < 0:
            raise ValueError(f"--grid-images must be >= 0, got {self.grid_images}")
        results.lpips_column(self.lpips)


def daps_budget_problem(baseline_nfe: int) -> str | None:
    """Why daps cannot spend `baseline_nfe` teacher calls (its budget rule, worded with --baseline-nfe), or None."""
    from ncvsd_cli.sampling.methods import get_method

    try:
        get_method("daps").arguments({"sigma_y": 0.0}, baseline_nfe)
    except ValueError as exc:
        return str(exc).replace("--nfe", "--baseline-nfe")
    return None


@dataclass
class BenchOutcome:
    """What a run did: rows computed / skipped (resume), failures ("task/method/nfe/image: error"), and on rank 0
    the summary records and the files written."""

    out: Path
    computed: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    summary: list[dict[str, Any]] | None = None
    files: list[Path] = field(default_factory=list)


@dataclass
class _Networks:
    generator: Any = None
    teacher: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # "generator" / "teacher": checkpoint config


def _needs(cfg: BenchConfig) -> set[str]:
    return {methods.needs_of(m) for m in cfg.methods} - {"none"}


def _note_unused(cfg: BenchConfig) -> None:
    """A warning for each option this run does not use (--checkpoint nosuch with classical methods ran without a
    word, as if it had been read)."""
    need = _needs(cfg)
    for given, kind, option in ((cfg.generator, "generator", "--checkpoint"), (cfg.teacher, "teacher", "--teacher")):
        if given and kind not in need and not (kind == "generator" and "teacher" in need and not cfg.teacher):
            sized = kind == "generator" and not need and cfg.resolution is None  # (`_unloaded_resolution`)
            log.warning("%s %s is not used%s: none of --methods %s needs the %s", option, given,
                        " but for its training size, the images' (--resolution sets it)" if sized else "",
                        ",".join(cfg.methods), kind)
    if cfg.data and cfg.dataset != "ffhq":
        log.warning("--data %s is not used: it gives the ffhq set's folder (--dataset ffhq); this run reads "
                    "--dataset %s", cfg.data, cfg.dataset)


def _load_networks(cfg: BenchConfig, device: str, quiet: bool = False) -> _Networks:
    """Load the generator and/or teacher the methods need (CheckpointError propagates: CLI exit 3); quiet: no
    note naming a run folder's snapshot."""
    from ncvsd_cli import checkpoints, zoo
    from ncvsd_cli.networks.inference import prepare_for_inference

    nets = _Networks()
    need = _needs(cfg)

    def load(kind: str, name: str, shown: str | None = None) -> Any:
        path = checkpoints.resolve_checkpoint(name, kind=kind, quiet=quiet)
        net, config = checkpoints.load_checkpoint(path, device=device, kind=kind)
        nets.configs[kind] = config
        nets.info[kind] = {"name": shown or str(name), "path": str(path), "sha256": checkpoints.sha256_file(path),
                           "preset": config.get("preset"), "img_resolution": config.get("img_resolution"),
                           "precision": prepare_for_inference(net, cfg.precision, device, kind)}
        return net

    if "generator" in need:
        nets.generator = load("generator", cfg.generator or checkpoints.default_checkpoint("generator"))
    if "teacher" in need:
        gen_cfg, gen_path = nets.configs.get("generator"), nets.info.get("generator", {}).get("path")
        if gen_cfg is None and cfg.generator and not cfg.teacher:  # -c GEN names the teacher (DPS/DAPS only)
            entry = zoo.find(cfg.generator)  # (a published generator's teacher, without downloading it)
            if entry is not None:
                gen_cfg = {"provenance": {"teacher": entry.teacher}}
            else:
                gen_path = str(checkpoints.resolve_checkpoint(cfg.generator, kind="generator", quiet=quiet))
                gen_cfg = checkpoints.read_config(gen_path)
        found = None if cfg.teacher else _generators_teacher(gen_cfg or {}, gen_path)
        teacher = cfg.teacher or found
        if teacher is None:
            teacher = checkpoints.default_checkpoint("teacher")
            named = ((gen_cfg or {}).get("provenance") or {}).get("teacher")
            if named:  # a teacher of another architecture may differ in every way: say so
                log.warning("the generator's teacher %s is not found here (that name and sha256); DPS/DAPS use the "
                            "shipped %s (give --teacher FILE to use another)", named, teacher)
            elif cfg.generator:  # (-c GEN given for DPS/DAPS: it names no teacher)
                log.warning("--checkpoint %s names no teacher it was distilled from; DPS/DAPS use the shipped %s "
                            "(give --teacher FILE to use another)", cfg.generator, teacher)
        shown = Path(found).name if found else None  # (found: a path; the reports name the file, as given ones)
        nets.teacher = load("teacher", teacher, shown)
    res = {n: int(m.img_resolution) for n, m in (("generator", nets.generator), ("teacher", nets.teacher))
           if m is not None and hasattr(m, "img_resolution")}
    if len(set(res.values())) > 1 and cfg.resolution is None:
        raise ValueError(f"generator and teacher were trained at different resolutions {res}: pass --resolution")
    nets.info["trained_resolution"] = next(iter(res.values()), None)  # the images run at: config "resolution"
    return nets


def _unloaded_resolution(cfg: BenchConfig) -> int:
    """The image size of a run that loads no network (classical methods only): the generator's (--checkpoint, else
    the default) training size from its header or zoo entry, the size a network method of the same command runs at
    (classical ffhq rows ran at 256 px alone, 64 with the default model's rows: bicubic sr4 23.05 dB vs 19.13 on
    the same photos); the dataset's DEFAULT_RESOLUTION where it cannot be read."""
    from ncvsd_cli import checkpoints, zoo

    name = cfg.generator or checkpoints.default_checkpoint("generator")
    entry = zoo.find(str(name))
    try:
        if entry is not None:  # (not downloaded for a size)
            return int(entry.expect["img_resolution"])
        path = checkpoints.resolve_checkpoint(name, kind="generator", quiet=True)
        return int(checkpoints.read_config(path)["img_resolution"])
    except checkpoints.CheckpointError:
        if cfg.generator:  # a --checkpoint that names nothing: said (exit 3), not a size made up unsaid
            raise
    except (KeyError, TypeError, ValueError, OSError):
        pass
    size = DEFAULT_RESOLUTION.get(cfg.dataset, FALLBACK_RESOLUTION)
    log.warning("the generator's training size could not be read: the images run at %d px (--resolution sets it)",
                size)
    return size


def _generators_teacher(gen_cfg: dict[str, Any], gen_path: str | None = None) -> str | None:
    """The teacher a generator was distilled from, if a file of it is here: for a snapshot of a `distill` run the
    teacher file its run.json records, else the name its provenance gives (search locations). A candidate whose
    sha256 differs from the provenance's `teacher_sha256` is another teacher of the same (generic) name: not taken."""
    from ncvsd_cli import checkpoints, zoo
    from ncvsd_cli.training.common import run_record

    provenance = gen_cfg.get("provenance") or {}
    name, sha256 = provenance.get("teacher"), provenance.get("teacher_sha256")
    if not name:
        return None
    candidates = []
    if gen_path is not None and Path(gen_path).parent.name == "snapshots":
        recorded = run_record(Path(gen_path).parent.parent).get("teacher_path")
        if recorded and Path(recorded).name == name and Path(recorded).is_file():
            candidates.append(str(recorded))
    try:
        candidates.append(str(checkpoints.resolve_checkpoint(name, quiet=True)))
    except checkpoints.CheckpointError:
        if zoo.find(name) is not None and not candidates:  # a published teacher, damaged or not downloadable
            raise  # here: said (exit 3), not replaced by the shipped one, which would score DPS/DAPS with another prior
    return next((c for c in candidates if not sha256 or checkpoints.sha256_file(c) == sha256), None)


class _Scorer:
    """PSNR, SSIM and LPIPS of estimates against ground truth, both (B, C, H, W) in [-1, 1] (docs/method.md §5:
    mapped to [0, 1] by (x + 1) / 2 and clipped): one dict per image. The LPIPS network is built at once: missing
    backbone weights (metrics.LPIPSWeightsError) stop the run before any work, not every row."""

    def __init__(self, net: str, device: str):
        from ncvsd_cli import metrics

        self.net, self.device = net, device
        self._lpips = metrics.LPIPS(net=net).to(device).eval()

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> list[dict[str, float]]:
        from ncvsd_cli import metrics
        from ncvsd_cli.images import to_unit

        if not all_finite(x):  # clamped, +-inf would score as black or white
            raise ValueError("the method's output holds non-finite values (inf or NaN)")
        a, b = to_unit(x.float()).clamp(0, 1), to_unit(ref.float()).clamp(0, 1)
        with torch.no_grad():
            cols = {"psnr": metrics.psnr(a, b), "ssim": metrics.ssim(a, b),
                    results.lpips_column(self.net): self._lpips(a, b)}
        per_image = {k: v.flatten().tolist() for k, v in cols.items()}
        return [{k: float(v[i]) for k, v in per_image.items()} for i in range(x.shape[0])]


def _warm_up(nets: _Networks, shape: tuple[int, int, int], device: str) -> None:
    """One untimed generator call and one teacher forward + backward, so that one-off start-up costs (CUDA context,
    cuDNN / cuBLAS set-up, lazy kernels) are not billed to the first timed row."""
    x = torch.zeros(1, *shape, device=device)
    if nets.generator is not None:
        with torch.no_grad():
            nets.generator(x, 1.0, generator=sampler_generators(0, 0, device=device))
    if nets.teacher is not None:
        x.requires_grad_(True)
        with torch.enable_grad():
            nets.teacher(x, 1.0).sum().backward()


def _environment(device: str) -> dict[str, Any]:
    from ncvsd_cli import __version__

    env = {"ncvsd": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "platform": platform.platform(), "machine": platform.machine(), "cpu_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _check_writable(out: Path) -> None:
    """Create `out` and a file in it, or ValueError naming --out (read-only, /proc, a file in the way)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder: choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ncvsd-probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None


def _check_not_dataset(out: Path, source: str) -> None:
    """ValueError for an --out that is the folder the images are read from (`source`): its results mark the folder
    as bench outputs, which datasets leave out, and the images there would never load again as a dataset."""
    source = Path(source).expanduser()
    if source.is_dir() and out.expanduser().resolve() == source.resolve():
        raise ValueError(f"--out {out} is the dataset's folder (--dataset, or --data for ffhq): the results would "
                         "be written among its images and the folder, marked as bench results, would no longer load "
                         "as a dataset; choose another --out (a subfolder works: datasets leave bench results out)")


#: The lock a bench process holds on its --out folder while it runs (`filelock`): a run alone or rank 0 of torchrun's
#: (the one that writes per_image.csv) holds ".ncvsd-bench.lock", so the two exclude each other; rank r > 0 of W holds
#: ".ncvsd-bench-rank{r}-of-{W}.lock", the lock of the part file it writes (torchrun stops a refused run's others).
LOCK_NAME = ".ncvsd-bench{}.lock"


def _lock_out(out: Path, rank: int, world: int) -> Any:
    """The held lock of `out` for this process (rank `rank` of `world`); ValueError when another bench holds it: two
    runs on one folder each replaced the results file under the other, whose later rows were lost (exit 0)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(out / LOCK_NAME.format("" if rank == 0 else f"-rank{rank}-of-{world}")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ValueError(f"--out {out} is in use by another ncvsd bench (it holds {Path(lock.lock_file).name}); "
                         "wait for it to finish, or choose another --out") from None
    return lock


def _check_fresh(out: Path, resume: bool, rank: int, world: int) -> None:
    """Refuse an `out` that already holds results unless resuming (other ranks' parts of this run are ignored:
    they may already be writing)."""
    own = f"per_image.rank{rank}-of-{world}.csv"
    existing = [p for p in out.glob("per_image*.csv") if (p.name == own or not p.name.endswith(f"-of-{world}.csv")
                                                         or world == 1) and results.read_rows(p)]
    if existing and not resume:
        raise ValueError(f"{out} already holds results ({existing[0].name}); pass --resume to continue them "
                         "or choose another --out")


SETTINGS_JSON = datasets.OUTPUT_MARKER  # also marks the folder as bench results (not a dataset)


def _run_settings(cfg: BenchConfig, nets: _Networks, plan: _Plan) -> dict[str, Any]:
    """What the rows of a folder must share beyond their key: dataset and seed (its sample pictures and reports
    show one run's), resolution, networks, the precision they ran in and presets."""
    return {"dataset": plan.data.name, "seed": cfg.seed, "resolution": plan.shape[-1],
            **{f"{k}_precision": v["precision"] for k, v in nets.info.items()  # what ran (--precision auto and
               if isinstance(v, dict) and "precision" in v},  # bf16 may be one), per network: one added is none
            "preset": cfg.preset,  # the preset file's content (the same file at another path is no difference)
            **{kind: nets.info[kind]["path"] for kind in ("generator", "teacher") if kind in nets.info},
            # the file at that path replaced since: its rows would be shown under the new sha256 (an older folder
            # without the key is no difference)
            **{f"{kind}_sha256": nets.info[kind]["sha256"] for kind in ("generator", "teacher") if kind in nets.info}}


def _check_settings(out: Path, settings: dict[str, Any], rank: int, resume: bool,
                    digests: dict[str, str] | None = None, scored: set[str] = frozenset()) -> None:
    """On --resume, refuse to add rows to `out` that were computed with other settings than its earlier rows
    (ValueError naming the first difference), or beside rows of an image of `scored` (ids with rows in `out`)
    computed from another file of its name (`digests`: id -> content fingerprint; two folders both named
    photos/ had one run's numbers reported as the other's); rank 0 then records the union in
    out/run_settings.json (a file's newest fingerprint). A network an earlier run did not load (e.g. classical
    methods only) is no difference."""
    path = out / SETTINGS_JSON
    try:
        earlier = json.loads(path.read_text(encoding="utf-8")) if resume and path.is_file() else {}
    except (OSError, ValueError):
        earlier = {}
    for key, value in settings.items():
        if key in ("generator", "teacher") and earlier.get(f"{key}_sha256", "") == settings.get(f"{key}_sha256"):
            continue  # the same file by another path (another folder, its shipped name): its bytes decide
        if key in earlier and earlier[key] != value:
            why = (" (the folder's sample pictures and reports would become this run's, and a --resume of the "
                   "earlier run would compute its grid rows again)" if key in ("dataset", "seed") else "")
            same = f"--resolution {earlier[key]} computes more of them, or " if key == "resolution" else ""
            raise ValueError(f"{out} holds rows computed with {key} {earlier[key]!r}, this run uses {value!r}{why}; "
                             f"{same}choose another --out")
    seen = earlier.pop("image_digests", None) or {}
    changed = [i for i, d in (digests or {}).items() if i in scored and seen.get(i, d) != d]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise ValueError(f"{out} holds rows of {changed[0]}{more} computed from another file of that name (its "
                         "content differs: another folder, or the picture was replaced); choose another --out")
    if rank == 0:
        from ncvsd_cli.images import atomic_write_bytes

        record = {**earlier, **settings, "image_digests": {**seen, **(digests or {})}}
        atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())


def _digests(images: list[datasets.BenchImage]) -> dict[str, str]:
    """Each image's content fingerprint (`BenchImage.digest`), but built-in ones' and unreadable files' (those
    fail alone when loaded)."""
    found = {}
    for im in (i for i in images if i.digest is not None):
        try:
            found[im.id] = im.digest()
        except OSError:
            continue
    return found


def _note_skipped(cfg: BenchConfig, tasks: list[tuple]) -> None:
    """A warning for every method of --methods that runs on none of a task's images, or at fewer NFE values than
    --nfe gives (e.g. pnp-gd from 2, pnp-gd-warm not on phase retrieval), so that no column goes missing unsaid."""
    from ncvsd_cli.bench.methods import CLASSICAL_GROUP
    from ncvsd_cli.sampling.methods import get_method

    for task, settings, operator, jobs in tasks:
        for name in (m for m in cfg.methods if m != CLASSICAL_GROUP):
            ran = sorted(j.nfe for j in jobs if j.method == name)
            if not ran and get_method(name).applies(operator, settings):  # (plain pnp-gd at --nfe 1 only)
                log.warning("%s: method %s runs from --nfe 2 (one step from pure noise would be a prior draw that "
                            "ignores the measurement): skipped at --nfe %s", task, name, ",".join(map(str, cfg.nfe)))
            elif not ran:
                log.warning("%s: method %s does not apply to this task: skipped", task, name)
            elif name.startswith("pnp-gd") and len(ran) < len(set(cfg.nfe)) and tuple(cfg.nfe) != DEFAULT_NFE:
                # (the default sweep's 1 for pnp-gd: its --help says it runs from 2; a warning on every default run)
                k = getattr(get_method(name), "k", 1)  # a repeated method's rows count all its runs' NFE
                totals = f" ({k} runs: NFE {','.join(map(str, ran))} in all)" if k > 1 else ""
                log.warning("%s: %s runs at --nfe %s only%s, not at every --nfe value (pnp-gd's single step from "
                            "pure noise would be a prior draw that ignores the measurement)", task, name,
                            ",".join(str(n // k) for n in ran), totals)


def _check_same_images(out: Path, data: datasets.BenchDataset, rows: list[dict[str, Any]]) -> None:
    """ValueError when `rows` (`out`'s) for this dataset were computed with another image at an index (a photo
    added to or removed from the folder since): measurements are drawn from (seed, image index), so the methods
    of the old and the new rows would not see the same measurement of one image."""
    now = {im.id: im.index for im in data.images}
    for row in rows:
        if row["dataset"] == data.name and row["image"] in now and int(row["image_index"]) != now[row["image"]]:
            raise ValueError(f"{out} holds rows of {row['image']} as image #{row['image_index']} of {data.name}; it is "
                             f"#{now[row['image']]} now (images were added or removed): the measurements, drawn "
                             "from the seed and the image's index, would differ; choose another --out")


def _save_sample(out: Path, task: str, image: str, name: str, x: torch.Tensor, method: str | None = None) -> None:
    """Write one image of the run; a `method`'s restoration labelled as `xmp.labelled` says."""
    from ncvsd_cli import xmp
    from ncvsd_cli.images import save_image
    from ncvsd_cli.sampling.methods import source_type

    path = report.sample_path(out, task, image, name)
    label = None if method is None else xmp.labelled(None, source_type(method))
    if all_finite(x):
        save_image(x.detach().float().cpu().clamp(-1, 1), path, xmp=label)


@dataclass
class _Plan:
    """What one rank runs: its images and, per task, the task settings, the operator and the jobs."""

    data: datasets.BenchDataset
    images: list[datasets.BenchImage]
    shape: tuple[int, int, int]
    tasks: list[tuple[str, dict[str, Any], Any, list[methods.Job]]]


def _plan(cfg: BenchConfig, nets: _Networks, device: str, rank: int, world: int) -> _Plan:
    from ncvsd_cli.sampling.presets import build_operator, task_settings
    from operators.params import MissingParameter

    resolution = cfg.resolution or nets.info["trained_resolution"] or _unloaded_resolution(cfg)
    if cfg.dataset == "ffhq" and resolution != DEFAULT_RESOLUTION["ffhq"] and not cfg.resolution:
        log.warning("ffhq runs at the generator's %d px, not the paper's %d (--resolution %d, or -c "
                    "ncvsd-ffhq256-xs)", resolution, DEFAULT_RESOLUTION["ffhq"], DEFAULT_RESOLUTION["ffhq"])
    from ncvsd_cli.metrics import LPIPS_MIN_SIZE
    from ncvsd_cli.networks.build import network_multiple

    multiple = max([network_multiple(c) for c in nets.configs.values()] or [1])
    if resolution % multiple:  # the networks are convolutional: any size they can down-sample evenly
        below, above = resolution // multiple * multiple, -(-resolution // multiple) * multiple
        raise ValueError(f"--resolution {resolution} must be a multiple of {multiple} for these networks "
                         f"(trained at {nets.info['trained_resolution']} px): "
                         f"{f'{below} or ' if below >= max(multiple, LPIPS_MIN_SIZE.get(cfg.lpips, 0)) else ''}{above}")

    least = LPIPS_MIN_SIZE.get(cfg.lpips, 0)
    if resolution < least:  # every row would fail on its LPIPS
        fits = -(-least // multiple) * multiple
        raise ValueError(f"LPIPS-{cfg.lpips} needs images of at least {least} px per side, and these are "
                         f"{resolution} px{'' if cfg.resolution else ' (the networks were trained at that size)'}: "
                         f"pass --resolution {fits}")
    data = datasets.limit(datasets.load_dataset(cfg.dataset, resolution, cfg.data), cfg.limit)
    shape = (int(getattr(nets.generator or nets.teacher, "img_channels", 3)), resolution, resolution)
    tasks = []
    for task in cfg.tasks:
        settings = task_settings(task, preset_file=cfg.preset)
        try:
            operator = build_operator(settings, shape).to(device)
        except MissingParameter as exc:  # a parameter without default (inpaint-mask's mask): where bench takes it
            raise ValueError(f"--tasks {task}: {exc}; bench reads it from a --preset YAML file: "
                             f"`operator: {{{exc.name}: PATH}}`") from None
        jobs = methods.expand_jobs(cfg.methods, cfg.nfe, cfg.baseline_nfe, operator, settings)
        tasks.append((task, settings, operator, jobs))
    if rank == 0:
        _note_skipped(cfg, tasks)
    if not any(jobs for *_, jobs in tasks):
        raise ValueError(f"nothing to run: none of --methods {','.join(cfg.methods)} applies to --tasks "
                         f"{','.join(cfg.tasks)} (e.g. denoiser and teacher-mmse solve denoise only; pnp-gd-warm needs "
                         "a classical estimate, which phase-retrieval has not; pnp-gd runs from --nfe 2)")
    images = distributed.shard(data.images, rank, world)
    _check_memory(nets, (min(cfg.batch_size, max(len(images), 1)), *shape), [j for *_, jobs in tasks for j in jobs],
                  device)
    return _Plan(data, images, shape, tasks)


def _check_memory(nets: _Networks, shape: tuple[int, int, int, int], jobs: list[methods.Job], device: str) -> None:
    """ValueError before any row when a job's sampler call on `shape` (B, C, H, W) would not fit in the memory
    available now, with the networks already loaded (`ncvsd_cli.memory` estimate; bench does not tile), naming the
    estimate and what helps."""
    from ncvsd_cli import memory
    from ncvsd_cli.sampling.methods import get_method

    available = memory.available_memory_bytes(device)
    if available is None:
        return
    for job in dict.fromkeys(j for j in jobs if j.needs in nets.configs):
        net = nets.configs[job.needs]
        precision = "bf16" if nets.info[job.needs]["precision"] == "bf16" else "fp32"
        need = (memory.work_bytes(net, shape, get_method(job.method).backward, precision=precision, device=device)
                - memory.model_bytes(net))  # the weights are loaded: `available` already excludes them
        if need > available:
            raise ValueError(f"{job.method} on {shape[0]} image(s) of {shape[-1]}x{shape[-2]} needs an estimated "
                             f"{memory.format_bytes(need)} ({precision}, {device}) beyond the loaded networks but "
                             f"{memory.format_bytes(available)} is available; use a smaller --batch-size or "
                             "--resolution")


def run_bench(cfg: BenchConfig, progress: bool | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> BenchOutcome:
    """Run the benchmark described by `cfg` (see BenchConfig) and write its outputs into `cfg.out`.

    progress: runs, then the network evaluations of the run in flight, on stderr (`ncvsd_cli.progress`: bars on a
    terminal, status lines otherwise); False = none. on_row: called with each new row.
    Raises datasets.DatasetError / ValueError for bad input, checkpoints.CheckpointError for model problems.
    Failures of single rows are logged, listed in the outcome, and do not stop the run. A second bench on the same
    `out` while this one runs is refused (`_lock_out`).
    """
    cfg.validate()
    if cfg.dataset != "builtin":  # a missing or empty dataset is said before weights load or download (lazy images)
        source = datasets.load_dataset(cfg.dataset, cfg.resolution or 1, cfg.data).source
        _check_not_dataset(Path(cfg.out), source)  # (the folder read: --dataset PATH, or ffhq's --data)
    rank, world = distributed.rank_world()
    if rank == 0:
        _note_unused(cfg)
    device = distributed.local_device(cfg.device, world)
    scorer = _Scorer(cfg.lpips, device)
    out = Path(cfg.out)
    created = not out.exists()
    _check_writable(out)
    lock = None
    try:
        lock = _lock_out(out, rank, world)
        _check_fresh(out, cfg.resume, rank, world)
        nets = _load_networks(cfg, device, quiet=progress is False)
        plan = _plan(cfg, nets, device, rank, world)
        earlier = [r for p in sorted(out.glob("per_image*.csv")) for r in results.read_rows(p)] if cfg.resume else []
        scored = {r["image"] for r in earlier if r["dataset"] == plan.data.name}
        _check_same_images(out, plan.data, earlier)  # before run_settings.json records this run's images
        _check_settings(out, _run_settings(cfg, nets, plan), rank, cfg.resume, _digests(plan.data.images), scored)
    except BaseException:  # refused before any work: no empty --out folder left behind
        if lock is not None:  # (its own: a folder another bench holds keeps that one's)
            lock.release()
            if created or rank > 0:  # (its own folder's; a rank's part-file lock: never a plain run's)
                Path(lock.lock_file).unlink(missing_ok=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    try:
        return _run_plan(cfg, nets, plan, earlier, device, scorer, progress, on_row)
    finally:
        lock.release()


def _run_plan(cfg: BenchConfig, nets: _Networks, plan: _Plan, earlier: list[dict], device: str, scorer: _Scorer,
              progress: bool | None, on_row: Callable[[dict[str, Any]], None] | None) -> BenchOutcome:
    """`run_bench`'s work once its checks passed: the rows not in `earlier`, then (rank 0) the reports."""
    from ncvsd_cli.progress import NestedProgress

    rank, world = distributed.rank_world()
    out = Path(cfg.out)
    finished = {results.row_key(r) for r in earlier}
    part = out / (results.CSV_NAME if world == 1 else f"per_image.rank{rank}-of-{world}.csv")
    outcome = BenchOutcome(out=out)
    total = len(plan.images) * sum(_cost(j) * _runs(j, cfg.best_of) for *_, jobs in plan.tasks for j in jobs)
    if plan.images:
        _warm_up(nets, plan.shape, device)
    bar = NestedProgress(max(total, 1), f"bench rank {rank}" if world > 1 else "bench", "call",
                         quiet=progress is False)
    with results.RowWriter(part, results.columns(cfg.lpips)) as writer, bar:
        ctx = _Context(cfg, nets, device, scorer, plan, finished, writer, bar, outcome, on_row)
        for task, settings, operator, jobs in plan.tasks:
            for start in range(0, len(plan.images), cfg.batch_size):
                _run_batch(ctx, task, settings, operator, jobs, plan.images[start:start + cfg.batch_size])
    if world > 1 and rank > 0:  # rank 0 names them in the summary too
        from ncvsd_cli.images import atomic_write_bytes

        atomic_write_bytes(out / FAILED_PART.format(rank=rank, world=world), json.dumps(outcome.failed).encode())
    created = distributed.barrier(world)
    try:
        if rank == 0:
            _write_reports(cfg, nets, plan, device, world, outcome)
    finally:
        distributed.finish(created)
    return outcome


#: Under torchrun each rank but 0 writes the failures it met here (a JSON list) before the barrier of the reports.
FAILED_PART = ".failed.rank{rank}-of-{world}.json"


def _failures(failed: list[str], world: int, out: Path) -> str | None:
    """The summary's "failed": how many rows or images failed and the first (under torchrun every rank's: rank 0's
    and those the others wrote, FAILED_PART); None for none."""
    every = list(failed)
    for rank in range(1, world):
        part = out / FAILED_PART.format(rank=rank, world=world)
        try:
            every += [f"rank {rank}: {m}" for m in json.loads(part.read_text())]
            part.unlink()  # read once, into the summary
        except (OSError, ValueError):  # a rank that died before writing it: its stderr says why
            every.append(f"rank {rank}: its failures were not recorded (see its stderr)")
    where = "each rank's stderr lists its own" if world > 1 else "stderr lists every one"
    return f"{len(every)} (first: {every[0]}; {where})" if every else None


def _note_unequal_counts(rows: list[dict[str, Any]]) -> None:
    """A warning for each task whose methods were scored on different numbers of images (an earlier run's rows
    beside this one's, a failed image): their means are not comparable, and the reports bold the best only among
    the rows over the most images."""
    per: dict[str, dict[tuple, set]] = {}
    for r in rows:
        per.setdefault(r["task"], {}).setdefault((r["method"], int(r["nfe"])), set()).add(r["image"])
    for task, runs in per.items():
        most = max(len(v) for v in runs.values())
        fewer = [f"{m} at NFE {n} ({len(v)})" for (m, n), v in runs.items() if len(v) < most]
        if fewer:
            log.warning("%s: %s scored on fewer images than the others (%d): compare them on per_image.csv", task,
                        ", ".join(fewer), most)


def _runs(job: methods.Job, best_of: int) -> int:
    """Runs of `job` per image: --best-of, 1 for a deterministic method (its runs would be one image K times)."""
    from ncvsd_cli.sampling.methods import get_method

    return 1 if get_method(job.method).deterministic else best_of


def _cost(job: methods.Job) -> int:
    """A run's weight on the progress bar (so its ETA holds when DPS's 1000 calls sit beside PnP-GD's 4): its
    network calls per image, 1 for a classical baseline."""
    return max(job.nfe, 1)


@dataclass
class _Context:
    cfg: BenchConfig
    nets: _Networks
    device: str
    scorer: _Scorer
    plan: _Plan
    finished: set
    writer: results.RowWriter
    bar: Any
    outcome: BenchOutcome
    on_row: Callable[[dict[str, Any]], None] | None
    redone: set = field(default_factory=set)  # tasks whose finished rows were redone for their pictures (said once)
    miscounted: set = field(default_factory=set)  # (task, method) whose reported NFE differed from the calls


@dataclass
class _Item:
    """One image of a batch: its row fields, what it still needs, and (once loaded) x and its measurement y."""

    image: datasets.BenchImage
    base: dict[str, Any]
    in_grid: bool
    todo: set[tuple[methods.Job, int]]
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None


def _run_batch(ctx: _Context, task: str, settings: dict[str, Any], operator, jobs: list[methods.Job],
               images: list[datasets.BenchImage]) -> None:
    """Every pending (job, run) of a batch of images for one task, each image on its own measurement. A row is
    written after the grid image it owns (a kill between the two leaves the row to do), and a finished row whose
    grid image is missing is redone (results of older runs that wrote the row first)."""
    cfg, sigma_y = ctx.cfg, float(settings["sigma_y"])
    items = []
    for image in images:
        base = {"dataset": ctx.plan.data.name, "image": image.id, "image_index": image.index, "task": task,
                "seed": cfg.seed, "resolution": ctx.plan.shape[-1], "sigma_y": sigma_y}
        in_grid = image.index < cfg.grid_images
        if in_grid:  # its pictures are this dataset's and seed's (another run's of that name are removed)
            report.claim_samples(cfg.out, task, image.id, {"dataset": ctx.plan.data.name, "seed": cfg.seed})

        def missing(name: str) -> bool:
            return in_grid and not report.sample_path(cfg.out, task, image.id, name).is_file()

        todo = {(j, r) for j in jobs for r in range(_runs(j, cfg.best_of))
                if results.row_key({**base, "method": j.method, "nfe": j.nfe, "run": r}) not in ctx.finished
                or (r == 0 and missing(f"{j.method}-nfe{j.nfe}"))}
        again = sum(results.row_key({**base, "method": j.method, "nfe": j.nfe, "run": r}) in ctx.finished
                    for j, r in todo)
        if again and task not in ctx.redone:
            ctx.redone.add(task)
            log.warning("%s: finished rows are computed again for the sample pictures of the first --grid-images %d "
                        "images, which the earlier run did not save (the same numbers; --grid-images 0 skips them)",
                        task, cfg.grid_images)
        ctx.outcome.skipped += sum(_runs(j, cfg.best_of) for j in jobs) - len(todo)
        ctx.bar.skip(sum(_cost(j) for j in jobs for r in range(_runs(j, cfg.best_of)) if (j, r) not in todo))
        if todo or missing("ground_truth") or missing("measurement"):
            items.append(_Item(image, base, in_grid, todo))
    readable = []
    for it in items:
        try:
            it.x = it.image.load().to(ctx.device)
        except (ValueError, OSError) as exc:  # an unreadable image fails alone (exit 1); the others run
            msg = f"{task}/{it.image.id}: {exc} ({len(it.todo)} rows not computed)"
            log.error("%s", msg)
            ctx.outcome.failed.append(msg)
            ctx.bar.skip(sum(_cost(j) for j, _ in it.todo))
            continue
        readable.append(it)
        it.y = make_measurement(operator, it.x, sigma_y, cfg.seed, it.image.index)  # once, shared by every method
        if it.in_grid:
            _save_sample(cfg.out, task, it.image.id, "ground_truth", it.x)
            _save_sample(cfg.out, task, it.image.id, "measurement",
                         measurement_preview(operator, it.y, ctx.plan.shape))
    for job, run in [(j, r) for j in jobs for r in range(_runs(j, cfg.best_of))]:
        batch = [it for it in readable if (job, run) in it.todo]
        if not batch:
            continue
        ctx.bar.begin(_cost(job) * len(batch))  # its steps move the count: the ETA holds during a long run
        rows = _run_one(ctx, job, run, task, operator, batch)
        ctx.bar.update(_cost(job) * len(batch))
        for it, row in zip(batch, rows):
            if row is None:
                continue
            x_hat = row.pop("_x")
            if it.in_grid and run == 0:
                _save_sample(cfg.out, task, it.image.id, f"{job.method}-nfe{job.nfe}", x_hat, job.method)
            ctx.writer.write(row)
            ctx.outcome.computed += 1
            if ctx.on_row is not None:
                ctx.on_row(row)


def _write_reports(cfg: BenchConfig, nets: _Networks, plan: _Plan, device: str, world: int,
                   outcome: BenchOutcome) -> None:
    """Rank 0: merge the CSV parts into per_image.csv and write the reports of this dataset and seed."""
    out = Path(cfg.out)
    rows = results.merge(sorted(out.glob("per_image*.csv")), out / results.CSV_NAME, results.columns(cfg.lpips))
    chosen = {im.id for im in plan.data.images}  # this run's selection: a --resume with a smaller --limit or
    rows = [r for r in rows if r["dataset"] == plan.data.name and r["seed"] == cfg.seed  # other --tasks reports
            and r["image"] in chosen and r["task"] in cfg.tasks]  # its own (per_image.csv keeps every row)
    beyond = [r for r in rows if int(r["run"]) >= cfg.best_of]
    if beyond:  # an earlier --best-of K of more runs: mixed in, its best-of rows stood beside this run's settings
        log.warning("%s holds %d rows of runs beyond --best-of %d (an earlier run's): the reports show this run's "
                    "%d; per_image.csv keeps them", out, len(beyond), cfg.best_of, cfg.best_of)
        rows = [r for r in rows if int(r["run"]) < cfg.best_of]
    _note_unequal_counts(rows)
    if not rows:  # every image failed: no report of nothing (an earlier run's reports stay as they were)
        outcome.failed.append(f"no row of {plan.data.name} (seed {cfg.seed}) was computed: no report written")
        log.error("%s", outcome.failed[-1])  # said also under -q, which prints no recap
        outcome.files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
        return
    scored = {r["image"] for r in rows}  # a file that failed to load has no row to show
    grid_images = [im.id for im in plan.data.images if im.index < cfg.grid_images and im.id in scored]
    environment = _environment(device)
    config = {"dataset": plan.data.name, "dataset_source": plan.data.source, "images": len(plan.data),
              "failed": _failures(outcome.failed, world, out),
              "resolution": plan.shape[-1], "seed": cfg.seed, "device": device, "world_size": world,
              "batch_size": cfg.batch_size,
              "settings": asdict(cfg),
              "precision": ", ".join(f"{k} {v['precision']}" for k, v in nets.info.items()
                                     if isinstance(v, dict) and "precision" in v),
              "networks": nets.info, "environment": environment, "ncvsd": environment["ncvsd"],
              "command": shlex.join(sys.argv),  # and each task's merged settings (presets change between versions)
              "task_settings": {task: settings for task, settings, _, _ in plan.tasks},
              **{kind: f"{info['name']} (sha256 {info['sha256'][:12]})" for kind, info in nets.info.items()
                 if kind in ("generator", "teacher")}}
    done_here = {(task, j.method, j.nfe) for task, _, _, jobs in plan.tasks for j in jobs}
    earlier = sorted({f"{r['task']} {r['method']} nfe {r['nfe']}" for r in rows
                      if (r["task"], r["method"], int(r["nfe"])) not in done_here})
    if earlier:  # a --resume with fewer methods or NFEs: its settings do not describe those rows
        config["rows_of_earlier_runs"] = ", ".join(earlier)
    outcome.summary = report.write_summary(out, rows, cfg.lpips, config)
    for name, draw in (("plot", lambda: report.plot_nfe(outcome.summary, cfg.lpips, out / report.PLOT_PNG)),
                       ("grids", lambda: report.plot_grids(out, outcome.summary, images=grid_images)),
                       ("html", lambda: report.write_html(out, outcome.summary, cfg.lpips, config)),
                       ("page", lambda: report.write_report_png(out, outcome.summary, cfg.lpips, config=config))):
        try:  # a drawing problem must not cost the results, which are already on disk
            draw()
        except Exception as exc:
            log.error("bench %s: %s: %s", name, type(exc).__name__, exc)
            outcome.failed.append(f"report {name}: {type(exc).__name__}: {exc}")
    outcome.files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))


def _run_one(ctx: _Context, job: methods.Job, run: int, task: str, operator,
             batch: list[_Item]) -> list[dict[str, Any] | None]:
    """One timed restoration of a batch and its scores, a row per image (with its estimate under "_x"); None for
    every image of a failed call."""
    network = {"generator": ctx.nets.generator, "teacher": ctx.nets.teacher}.get(job.needs)
    gens = [g for it in batch for g in sampler_generators(ctx.cfg.seed, it.image.index, run, ctx.device)]
    images = [0]  # images through the network, counted per call: a plug-in's own account may be wrong

    def count(_module, args, kwargs) -> None:
        x = args[0] if args else next(iter(kwargs.values()), None)
        images[0] += int(x.shape[0]) if isinstance(x, torch.Tensor) and x.dim() == 4 else len(batch)

    hook = network.register_forward_pre_hook(count, with_kwargs=True) if isinstance(network, torch.nn.Module) \
        else None
    try:
        with RowCost(ctx.device) as cost:
            res = methods.run_job(job, task, operator, torch.cat([it.y for it in batch]), network, gens,
                                  preset_file=ctx.cfg.preset, on_step=ctx.bar.step)
        scores = ctx.scorer(res.x, torch.cat([it.x for it in batch]))
    except Exception as exc:  # one failed call must not lose the others (exit code 1 at the end)
        if len(batch) > 1:  # out of memory, or one bad image: each image alone
            log.warning("%s/%s/nfe%d: a call on %d images failed (%s: %s); one image at a time", task, job.method,
                        job.nfe, len(batch), type(exc).__name__, exc)
            if torch.device(ctx.device).type == "cuda":
                torch.cuda.empty_cache()
            return [row for it in batch for row in _run_one(ctx, job, run, task, operator, [it])]
        for it in batch:
            msg = f"{task}/{job.method}/nfe{job.nfe}/{it.image.id}/run{run}: {type(exc).__name__}: {exc}"
            log.error("%s", msg)
            ctx.outcome.failed.append(msg)
        return [None] * len(batch)
    finally:
        if hook is not None:
            hook.remove()
    # per image: a call on the whole batch is one evaluation of each; none counted (a plug-in that calls the
    # network's submodules directly): its own account
    evals = round(images[0] / len(batch)) if hook is not None and images[0] else int(res.nfe)
    if evals != int(res.nfe) and (task, job.method) not in ctx.miscounted:
        ctx.miscounted.add((task, job.method))
        log.warning("%s/%s/nfe%d: the method reports %d network evaluations per run, the %s was called %d times "
                    "per image; the evals column shows the calls", task, job.method, job.nfe, int(res.nfe), job.needs,
                    evals)
    share = {"network_evals": evals, "operator_evals": int(res.operator_evals),
             "seconds": cost.seconds / len(batch), "peak_mem_mb": cost.peak_mem_mb, "mem_kind": cost.mem_kind,
             "device": ctx.device}
    return [{**it.base, "method": job.method, "nfe": job.nfe, "run": run, **share, **score, "_x": res.x[i:i + 1]}
            for i, (it, score) in enumerate(zip(batch, scores))]
