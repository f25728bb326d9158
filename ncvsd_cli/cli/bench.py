"""`ncvsd bench`: parse the flags, run `ncvsd_cli.bench.run_bench`, print the summary. torch is imported lazily."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ncvsd_cli.cli import common, completion

HELP = """Measure PSNR, SSIM and LPIPS versus network evaluations (NFE): PnP-GD with the generator over an NFE sweep,
DPS and DAPS with the teacher, and classical baselines, all on the same images and the same measurements.

Outputs in --out: per_image.csv (one row per image x task x method x NFE, written as computed), summary.md and
summary.json (mean ± std over images), nfe_plot.png (LPIPS and PSNR versus NFE), grid_<task>.png, and the one-page
report: report.html (open it in a browser) and report.png. The summary table is printed on stdout (--json: the JSON
summary). Progress on stderr: network calls per image over all runs (a classical run counts 1), then those of the
run in flight (bars on a terminal, a status line every 30 s otherwise, $NCVSD_PROGRESS_INTERVAL seconds; --quiet:
none). Interrupted? Rerun with --resume.

Datasets: `ffhq` = the standard FFHQ-256 test split (first 100 images in sorted file-name order) from --data or
$NCVSD_FFHQ; `builtin` = the held-out photos of the built-in training set (5 crops each); or any folder / zip /
image (centre-cropped to a square and resized to --resolution, default the model's, with antialiased bicubic).

Examples:

  ncvsd bench --dataset builtin --tasks sr4 --nfe 2,4 --methods pnp-gd,pnp-gd-warm,classical --limit 4 --out bench/
  (the default --methods add dps and daps: 1000 teacher calls per image each, minutes per image on a CPU)

  ncvsd bench --dataset ffhq --data ffhq_val.zip --checkpoint ncvsd-ffhq256-xs --baseline-nfe 1000 --lpips vgg
      --out ffhq-bench/
  (the paper's setting: the authors' 256-px FFHQ model, downloaded once; the default model is 64 px)

  ncvsd bench --dataset photos/ --methods pnp-gd,classical --nfe 2,4,10,25,49 --out b/ --resume

  ncvsd bench --dataset photo.png --tasks sr4 --methods pnp-gd-warm,classical --nfe 4 --out b/
  (a quick look: one image of yours, then open b/report.html)

  torchrun --nproc-per-node 4 -m ncvsd_cli bench --dataset ffhq --device cuda --batch-size 16 --out b/
"""


def default_out(dataset: str) -> str:
    """`bench-NAME` in the working folder: NAME is ffhq / builtin or the dataset path's stem (bench-photos for
    photos/, bench-astronaut for astronaut.png)."""
    return f"bench-{Path(dataset.rstrip('/')).stem or 'data'}"


def _csv(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",")]
    if not any(items):
        raise common.UsageError(f"--{what} is empty")
    if not all(items):  # "2,,4": a value left out by mistake
        raise common.UsageError(f"--{what} {value!r} has an empty item between commas")
    return items


def _fit_default_methods(methods: list[str], baseline_nfe: int) -> list[str]:
    """The default --methods less daps where --baseline-nfe is below its budget rule (named with --methods, daps
    is refused instead, by BenchConfig.validate)."""
    from ncvsd_cli.bench.runner import daps_budget_problem

    problem = daps_budget_problem(baseline_nfe)
    if problem:
        common.note(f"warning: daps left out of the default methods: {problem}")  # said even with --quiet
        return [m for m in methods if m != "daps"]
    return methods


def _ints(value: str, what: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value, what)]
    except ValueError:
        raise common.UsageError(f"--{what} {value!r} must be a comma-separated list of integers") from None


def bench(
    ctx: typer.Context,
    out: str | None = typer.Option(None, "--out", "-o", metavar="DIR", callback=common.expand_home,
                                   help="Output folder (created; default bench-NAME here, NAME the dataset's)."),
    dataset: str = typer.Option("builtin", "--dataset", "-d", metavar="ffhq|builtin|PATH", show_default=True,
                                help="Image set: ffhq, builtin, or a folder / zip / image."),
    data: str | None = typer.Option(None, "--data", metavar="PATH",
                                       help="FFHQ test folder or zip (default $NCVSD_FFHQ)."),
    tasks: str = typer.Option("sr4,inpaint-box,deblur-gauss,deblur-motion,phase-retrieval", "--tasks",
                              metavar="T1,T2", autocompletion=completion.task_list, show_default=False,
                              help="Tasks (operator presets). Default: sr4, inpaint-box, deblur-gauss, deblur-motion, "
                                   "phase-retrieval."),
    nfe: str = typer.Option("1,2,3,4,10,25,49", "--nfe", metavar="N1,N2", show_default=True,
                            help="PnP-GD network evaluations to sweep (pnp-gd below the preset's 49: the "
                                 "few-step schedule, sigma_max 10, rho 7, from 2: its 1 is a prior draw that never "
                                 "sees the measurement; pnp-gd-warm: its warm_start schedule)."),
    methods: str = typer.Option("pnp-gd,pnp-gd-warm,denoiser,dps,daps,classical", "--methods", metavar="M1,M2",
                                autocompletion=completion.method_list,
                                show_default=False,
                                help="Methods (default: pnp-gd, pnp-gd-warm, denoiser, dps, daps, classical; dps and "
                                     "daps run the teacher about 1000 times per image): pnp-gd (the paper's start "
                                     "from noise), pnp-gd-warm (start from the "
                                     "classical estimate; not for phase retrieval), denoiser (the generator "
                                     "alone, G(y, sigma_y); denoise task only), dps, daps, teacher-mmse "
                                     "(D(y, sigma_y); denoise only), pnp-gd-warm-mean8 / denoiser-mean8 (the mean "
                                     "of 8 samples, at 8x each --nfe value: their NFE column is the total), "
                                     "pnp-gd-fit4 (the best-fitting of 4 pnp-gd samples, by |A(x) - y|, at 4x), "
                                     "classical (all classical baselines) or a classical method's name."),
    limit: int | None = typer.Option(None, "--limit", "-n", metavar="N", min=1, help="Use the first N images."),
    seed: int = typer.Option(0, "--seed", min=0, show_default=True,
                             help="Seed; measurements and samples derive from (seed, image index)."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", "-c", metavar="GEN",
                                          help="Generator checkpoint or distill run folder (default: the "
                                               "shipped default)."),
    teacher: str | None = typer.Option(None, "--teacher", metavar="TEACHER",
                                          help="Teacher checkpoint for DPS / DAPS (default: the generator's "
                                               "teacher, else the shipped default)."),
    baseline_nfe: int = typer.Option(1000, "--baseline-nfe", metavar="N", min=1, show_default=True,
                                     help="Teacher evaluations of DPS and DAPS (fewer for quick runs, "
                                          "which also degrade them: 100 gives speckled, mottled results)."),
    lpips: str = typer.Option("alex", "--lpips", metavar="alex|vgg", show_default=True,
                              help="LPIPS backbone (named in every output)."),
    best_of: int = typer.Option(1, "--best-of", metavar="K", min=1, show_default=True,
                                help="Runs per image; K > 1 adds a summary labelled best-of-K (methods that "
                                     "draw no noise, the classical baselines, run once)."),
    resume: bool = typer.Option(False, "--resume", help="Skip rows already in --out (the same dataset and image "
                                "files, seed, resolution, networks and presets; others are refused: choose another "
                                "--out). The reports cover this run's images and tasks; per_image.csv keeps every "
                                "row."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda|cuda:N", show_default=True),
    precision: str = typer.Option("auto", "--precision", metavar="auto|fp32|bf16", show_default=True,
                                  help="Network precision. auto: the generator in bfloat16 on CPUs with native "
                                       "bfloat16 (AMX / AVX512-BF16), else float32; the teacher in float32 "
                                       "(DPS differentiates through it)."
                                       " On CUDA, auto: the checkpoint's own (half precision where its config sets use_fp16). fp32 / bf16: both networks."),
    resolution: int | None = typer.Option(None, "--resolution", metavar="PX", min=1,
                                             help="Image size (default: the model's; the networks are "
                                                  "convolutional, so any multiple of their down-sampling "
                                                  "factor works, e.g. 256 with a 64-px model)."),
    grid_images: int = typer.Option(4, "--grid-images", metavar="N", min=0, show_default=True,
                                    help="Images (first N) whose restorations are saved for the grids."),
    preset: str | None = typer.Option(None, "--preset", metavar="YAML",
                                         help="YAML over the packaged task presets (PnP-GD settings)."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", metavar="N", min=1, show_default=True,
                                   help="Images per sampler call (faster on a GPU; each image keeps its own "
                                        "random stream; a row's seconds is its share of the call)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON summary instead of the Markdown table."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or notes."),
) -> None:
    with common.handle_errors(json_command="bench" if as_json else None):
        from ncvsd_cli.bench import BenchConfig, run_bench
        from ncvsd_cli.bench.datasets import DatasetError
        from ncvsd_cli.bench.report import SUMMARY_JSON, SUMMARY_MD

        from ncvsd_cli.metrics import LPIPS_MIN_SIZE

        common.refuse_option_like("--out", out)
        out = out or default_out(dataset)

        if resolution is not None and lpips in LPIPS_MIN_SIZE and resolution < LPIPS_MIN_SIZE[lpips]:
            raise common.UsageError(f"--resolution {resolution}: LPIPS-{lpips} needs images of at least "
                                    f"{LPIPS_MIN_SIZE[lpips]} px per side")
        for option, value in (("--checkpoint", checkpoint), ("--teacher", teacher)):
            common.refuse_empty(option, value, "name a checkpoint, or leave it out for the default")
        method_list = _csv(methods, "methods")
        if "methods" not in common.given_options(ctx):
            method_list = _fit_default_methods(method_list, baseline_nfe)
        cfg = BenchConfig(dataset=dataset, out=out, tasks=_csv(tasks, "tasks"), nfe=_ints(nfe, "nfe"),
                          methods=method_list, data=data, limit=limit, seed=seed, generator=checkpoint,
                          teacher=teacher, baseline_nfe=baseline_nfe, lpips=lpips, best_of=best_of, resume=resume,
                          device=str(common.parse_device(device)), resolution=resolution, grid_images=grid_images,
                          preset_file=preset, precision=precision, batch_size=batch_size)
        try:
            outcome = run_bench(cfg, progress=None if not quiet else False)
        except DatasetError as exc:
            common.fail(str(exc), common.EXIT_USAGE)
        except KeyboardInterrupt as exc:  # Ctrl-C 130; SIGTERM / SIGHUP (common.Terminated) 128 + signum
            code = 128 + exc.signum if isinstance(exc, common.Terminated) else common.EXIT_INTERRUPTED
            from ncvsd_cli.bench import results

            try:
                kept = any(results.read_rows(p) for p in Path(out).glob("per_image*.csv"))
            except (OSError, ValueError):  # the exit code stays the signal's
                kept = True
            common.fail(f"interrupted; finished rows are kept in {out}, rerun with --resume to continue" if kept
                        else "interrupted before any row was finished", code)
        rank = common.torchrun_rank()  # under torchrun every rank says what it computed
        common.note(f"{f'rank {rank}: ' if rank else ''}{outcome.computed} rows computed, {outcome.skipped} already "
                    f"done, {len(outcome.failed)} failed; results in {out}", quiet)
        if outcome.summary is not None:
            text = (outcome.out / (SUMMARY_JSON if as_json else SUMMARY_MD)).read_text(encoding="utf-8")
            sys.stdout.write(text if not as_json else json.dumps(json.loads(text)) + "\n")  # one line, as a failure's
            sys.stdout.flush()
        elif as_json and rank == 0:  # nothing computed: the summary line of a failed run
            failed = outcome.failed  # the last says no row was computed; the first, why (a plug-in's error)
            common.write_error_summary("bench", common.EXIT_PARTIAL, "" if not failed else failed[-1] if len(
                failed) == 1 else f"{failed[-1]}; first failure: {failed[0]}")
        for msg in outcome.failed if not quiet else ():  # a recap below the progress; -q: printed once, as it failed
            common.error(msg)
        raise typer.Exit(common.EXIT_PARTIAL if outcome.failed else common.EXIT_OK)


bench.__doc__ = HELP


def register(app: typer.Typer) -> None:
    """Add `ncvsd bench` to the app."""
    app.command(name="bench", help=common.epilog(HELP), no_args_is_help=True)(bench)
