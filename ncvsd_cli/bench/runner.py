"""The benchmark loop: every method on the same images and the same measurements, one CSV row per result.

For each task: the operator is built once from the task preset; for each image the measurement is made once
(bench/measurements.py: seeded from (seed, image index)) and every job (bench/methods.py) restores it; each
result is scored (PSNR, SSIM, LPIPS on [0, 1], method §5), timed, and appended to the CSV at once. Rows whose key is
already in DIR are skipped with --resume. Reports (bench/report.py) are written at the end by rank 0.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ncvsd_cli.bench import datasets, distributed, methods, report, results
from ncvsd_cli.bench.measurements import make_measurement, measurement_preview, sampler_generators
from ncvsd_cli.bench.memory import RowCost

log = logging.getLogger("ncvsd.bench")

DEFAULT_TASKS = ("sr4", "inpaint-box", "deblur-gauss", "deblur-motion", "phase-retrieval")
DEFAULT_NFE = (1, 2, 4, 10, 25, 49)
DEFAULT_METHODS = ("pnp-gd", "dps", "daps", "classical")
#: Resolution used when no network is loaded (classical methods only) and --resolution is not given.
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

    def validate(self) -> None:
        """Raise ValueError naming the first bad value."""
        if not self.tasks:
            raise ValueError("--tasks is empty")
        if not self.methods:
            raise ValueError("--methods is empty")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        if self.best_of < 1:
            raise ValueError(f"--best-of must be >= 1, got {self.best_of}")
        if self.baseline_nfe < 1 or any(n < 1 for n in self.nfe):
            raise ValueError(f"NFE values must be >= 1, got --nfe {self.nfe} --baseline-nfe {self.baseline_nfe}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.grid_images < 0:
            raise ValueError(f"--grid-images must be >= 0, got {self.grid_images}")
        results.lpips_column(self.lpips)


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


def _needs(cfg: BenchConfig) -> set[str]:
    return {methods.needs_of(m) for m in cfg.methods} - {"none"}


def _load_networks(cfg: BenchConfig, device: str) -> _Networks:
    """Load the generator and/or teacher the methods need (CheckpointError propagates: CLI exit 3)."""
    from ncvsd_cli import checkpoints

    nets = _Networks()
    need = _needs(cfg)
    gen_cfg: dict[str, Any] = {}
    if "generator" in need:
        name = cfg.generator or checkpoints.default_checkpoint("generator")
        nets.generator, gen_cfg = checkpoints.load_checkpoint(name, device=device, kind="generator")
        nets.info["generator"] = {"name": str(name), "path": str(checkpoints.resolve_checkpoint(name)),
                                  "preset": gen_cfg.get("preset"), "img_resolution": gen_cfg.get("img_resolution")}
    if "teacher" in need:
        name = cfg.teacher or _generators_teacher(gen_cfg) or checkpoints.default_checkpoint("teacher")
        nets.teacher, t_cfg = checkpoints.load_checkpoint(name, device=device, kind="teacher")
        nets.info["teacher"] = {"name": str(name), "path": str(checkpoints.resolve_checkpoint(name)),
                                "preset": t_cfg.get("preset"), "img_resolution": t_cfg.get("img_resolution")}
    res = {n: int(getattr(m, "img_resolution")) for n, m in (("generator", nets.generator), ("teacher", nets.teacher))
           if m is not None and hasattr(m, "img_resolution")}
    if len(set(res.values())) > 1:
        raise ValueError(f"generator and teacher resolutions differ: {res}")
    nets.info["resolution"] = next(iter(res.values()), None)
    return nets


def _generators_teacher(gen_cfg: dict[str, Any]) -> str | None:
    """The teacher named in a generator's provenance, if it resolves to a file."""
    from ncvsd_cli import checkpoints

    name = (gen_cfg.get("provenance") or {}).get("teacher")
    if not name:
        return None
    try:
        checkpoints.resolve_checkpoint(name)
    except checkpoints.CheckpointError:
        return None
    return str(name)


class _Scorer:
    """PSNR, SSIM and LPIPS of an estimate against ground truth, both (B, C, H, W) in [-1, 1] (method §5: mapped to
    [0, 1] by (x + 1) / 2 and clipped). The LPIPS network is built on first use."""

    def __init__(self, net: str, device: str):
        self.net, self.device, self._lpips = net, device, None

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
        from ncvsd_cli import metrics
        from ncvsd_cli.images import to_unit

        if self._lpips is None:
            self._lpips = metrics.LPIPS(net=self.net).to(self.device).eval()
        a, b = to_unit(x.float()).clamp(0, 1), to_unit(ref.float()).clamp(0, 1)
        with torch.no_grad():
            return {"psnr": float(metrics.psnr(a, b).flatten()[0]), "ssim": float(metrics.ssim(a, b).flatten()[0]),
                    results.lpips_column(self.net): float(self._lpips(a, b).flatten()[0])}


def _warm_up(nets: _Networks, shape: tuple[int, int, int], device: str) -> None:
    """One untimed generator call and one teacher forward + backward, so that one-off start-up costs (CUDA context,
    cuDNN / cuBLAS set-up, lazy kernels) are not billed to the first timed row."""
    x = torch.zeros(1, *shape, device=device)
    if nets.generator is not None:
        with torch.no_grad():
            nets.generator(x, 1.0, generator=sampler_generators(0, 0))
    if nets.teacher is not None:
        x.requires_grad_(True)
        with torch.enable_grad():
            nets.teacher(x, 1.0).sum().backward()


def _environment(device: str) -> dict[str, Any]:
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
           "machine": platform.machine(), "cpu_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _check_fresh(out: Path, resume: bool) -> None:
    existing = [p for p in out.glob("per_image*.csv") if results.read_rows(p)]
    if existing and not resume:
        raise ValueError(f"{out} already holds results ({existing[0].name}); pass --resume to continue them "
                         "or choose another --out")


def _save_sample(out: Path, task: str, image: str, name: str, x: torch.Tensor) -> None:
    from ncvsd_cli.images import save_image

    path = report.sample_path(out, task, image, name)
    if torch.isfinite(x).all():
        save_image(x.detach().float().cpu().clamp(-1, 1), path)


def run_bench(cfg: BenchConfig, progress: bool | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> BenchOutcome:
    """Run the benchmark described by `cfg` (see BenchConfig) and write its outputs into `cfg.out`.

    progress: tqdm bar on stderr (None = only on a terminal). on_row: called with each new row.
    Raises datasets.DatasetError / ValueError for bad input, checkpoints.CheckpointError for model problems.
    Failures of single rows are logged, listed in the outcome, and do not stop the run.
    """
    from ncvsd_cli.sampling.presets import build_operator, load_task_preset

    cfg.validate()
    rank, world = distributed.rank_world()
    device = distributed.local_device(cfg.device, world)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_fresh(out, cfg.resume)
    nets = _load_networks(cfg, device)
    resolution = cfg.resolution or nets.info["resolution"] or DEFAULT_RESOLUTION.get(cfg.dataset, FALLBACK_RESOLUTION)
    if nets.info["resolution"] and resolution != nets.info["resolution"]:
        raise ValueError(f"--resolution {resolution} differs from the networks' resolution {nets.info['resolution']}")
    data = datasets.limit(datasets.load_dataset(cfg.dataset, resolution, cfg.data), cfg.limit)
    channels = int(getattr(nets.generator or nets.teacher, "img_channels", 3))
    shape = (channels, resolution, resolution)
    mine = distributed.shard(data.images, rank, world)
    finished = results.finished_keys(sorted(out.glob("per_image*.csv"))) if cfg.resume else set()
    cols = results.columns(cfg.lpips)
    part = out / (results.CSV_NAME if world == 1 else f"per_image.rank{rank}-of-{world}.csv")
    scorer = _Scorer(cfg.lpips, device)
    outcome = BenchOutcome(out=out)

    plans = []
    for task in cfg.tasks:
        preset = load_task_preset(task, preset_file=cfg.preset_file)
        operator = build_operator(preset, shape).to(device)
        jobs = methods.expand_jobs(cfg.methods, cfg.nfe, cfg.baseline_nfe, operator)
        plans.append((task, preset, operator, jobs))
    total = len(mine) * sum(len(j) for *_, j in plans) * cfg.best_of
    if mine:
        _warm_up(nets, shape, device)

    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"bench rank {rank}" if world > 1 else "bench", unit="run", file=sys.stderr,
               disable=(not sys.stderr.isatty()) if progress is None else not progress)
    with results.RowWriter(part, cols) as writer, bar:
        for task, preset, operator, jobs in plans:
            sigma_y = float(preset["sigma_y"])
            for image in mine:
                base = {"dataset": data.name, "image": image.id, "image_index": image.index, "task": task,
                        "seed": cfg.seed, "resolution": resolution, "sigma_y": sigma_y}
                todo = [(j, r) for j in jobs for r in range(cfg.best_of)
                        if results.row_key({**base, "method": j.method, "nfe": j.nfe, "run": r}) not in finished]
                outcome.skipped += len(jobs) * cfg.best_of - len(todo)
                bar.update(len(jobs) * cfg.best_of - len(todo))
                if not todo:
                    continue
                x = image.load().to(device)
                y = make_measurement(operator, x, sigma_y, cfg.seed, image.index)
                in_grid = image.index < cfg.grid_images
                if in_grid:
                    _save_sample(out, task, image.id, "ground_truth", x)
                    _save_sample(out, task, image.id, "measurement", measurement_preview(operator, y, shape))
                for job, run in todo:
                    row = _run_one(job, run, task, operator, x, y, nets, cfg, device, scorer, preset, base,
                                   image.index, outcome)
                    bar.update(1)
                    if row is None:
                        continue
                    x_hat = row.pop("_x")
                    writer.write(row)
                    outcome.computed += 1
                    if on_row is not None:
                        on_row(row)
                    if in_grid and run == 0:
                        _save_sample(out, task, image.id, f"{job.method}-nfe{job.nfe}", x_hat)
    created = distributed.barrier(world)
    try:
        if rank == 0:
            rows = results.merge(sorted(out.glob("per_image*.csv")), out / results.CSV_NAME, cols)
            rows = [r for r in rows if r["dataset"] == data.name and r["seed"] == cfg.seed]
            config = {"dataset": data.name, "dataset_source": data.source, "images": len(data), "seed": cfg.seed,
                      "device": device, "world_size": world, "settings": asdict(cfg), "networks": nets.info,
                      "environment": _environment(device)}
            outcome.summary = report.write_reports(out, rows, cfg.lpips, config)
            outcome.files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    finally:
        distributed.finish(created)
    return outcome


def _run_one(job, run, task, operator, x, y, nets, cfg, device, scorer, preset, base, index, outcome):
    network = {"generator": nets.generator, "teacher": nets.teacher}.get(job.needs)
    try:
        with RowCost(device) as cost:
            res = methods.run_job(job, task, operator, y, network, sampler_generators(cfg.seed, index, run),
                                  sigma_y=float(preset["sigma_y"]), preset_file=cfg.preset_file)
        scores = scorer(res.x, x)
    except Exception as exc:  # one failed row must not lose the others (exit code 1 at the end)
        msg = f"{task}/{job.method}/nfe{job.nfe}/{base['image']}/run{run}: {type(exc).__name__}: {exc}"
        log.error("%s", msg)
        outcome.failed.append(msg)
        return None
    return {**base, "method": job.method, "nfe": job.nfe, "run": run, "network_evals": int(res.nfe),
            "operator_evals": int(res.operator_evals), **scores, "seconds": cost.seconds,
            "peak_mem_mb": cost.peak_mem_mb, "mem_kind": cost.mem_kind, "device": device, "_x": res.x}
