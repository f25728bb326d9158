"""`ncvsd restore`: posterior sampling for degraded images (behaviour in `ncvsd_cli.restore` and
`ncvsd_cli.measurement`; this module parses flags, reads inputs and writes outputs)."""

from __future__ import annotations

import glob
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ncvsd_cli.cli import common, completion
from ncvsd_cli.restore import BLUR_READ, WARNING_NOTES, RestoreOptions, reads_blur, reads_motion_kernel

if TYPE_CHECKING:
    from ncvsd_cli.restore import Restorer

EPILOG = """Examples:

  ncvsd restore --task sr4 small.png                      (writes small_sr4.png, 4x larger)

  ncvsd restore measured.png                              (a file from `ncvsd degrade`: task, kernel, mask and
                                                           the float measurement come from its sidecar)

  ncvsd restore --task deblur-gauss blurry/ -o restored/ --nfe 8 --batch-size 4 --json
                                                          (each photo's blur width is read from it; -p sigma=2
                                                           sets it for all)

  ncvsd restore --task deblur-defocus out-of-focus.jpg     (defocus: a disk, whose radius is read from the photo;
                                                           -p radius=5 sets it)

  ncvsd restore --task deblur-motion shaken.jpg            (camera shake: its kernel is read from the photo, a
                                                           path of up to 31 px, read again in 63 px where it
                                                           fills that; -p kernel_size=N sets the square)

  ncvsd restore --task inpaint-box photo.png --samples 8 --mean --std -o out/

  ncvsd restore --task inpaint-mask erased.png            (holes erased to transparency in an editor: no mask
                                                           needed; -p mask=M.png for a mask file)

  ncvsd restore --task sr4 large.png --tile 256            (large images: the generator in blended tiles)

  ncvsd restore --task sr4 -p kernel=bilinear-aliased small.png
                                                          (shrunk by cv2.resize's default or torch's bilinear
                                                           F.interpolate, without antialiasing: else jaggies)

  cat noisy.png | ncvsd restore --task denoise - > clean.png   (the noise level is estimated; --sigma-y sets it)

  ncvsd restore --task deblur-kernel -p kernel=psf.npy photo.png (your kernel; a plain photo's blur is taken not
                                                           to wrap around its edges: -p boundary=circular if it does)

Inputs of any size are padded to what the network needs and cropped back. Greyscale inputs are restored in
colour space (replicated) and written as greyscale; transparency is restored composited on white and its alpha
channel carried to PNG, WebP, AVIF, HEIC and TIFF outputs (upscaled for sr; --flatten: none); inputs
with more than 8 bits per sample (16-bit PNG / TIFF, 10- / 12-bit HEIC, float TIFF) give 16-bit PNG and TIFF
outputs, 10-bit HEIC (other formats: 8 bits, with a warning); an embedded ICC colour profile is copied into the
outputs (PNG, JPEG, TIFF, WebP, AVIF, HEIC; a HEIC's nclx colour tags and a camera's EXIF-named Adobe RGB as an
equivalent profile) and the pixel
values are restored as they are, in the input's colour space; a photo's EXIF (camera, dates,
exposure, GPS; not its orientation, applied to the pixels) is copied into JPEG, PNG, WebP, AVIF, HEIC and TIFF
outputs, and its XMP (title, caption, keywords, rating, creator, rights, place; not editors' develop settings
nor phones' embedded extras; a JPEG's IPTC-IIM captions and keywords and a PNG's title, author, description
and copyright text too) into the same (--strip-metadata: neither), with the AI label (IPTC Digital Source
Type) in every output whose format holds XMP, kept with --strip-metadata too; a scan's resolution (dpi) into JPEG, PNG and
TIFF outputs, at the same print size (sr4: 4x the dpi).

Outputs: <stem>_<task>.png beside each input (stdout for -), or in -o DIR as <stem>.png (--format jpg, heic, ...
for another format, --format same for each input's own: IMG_1.HEIC -> IMG_1.heic); with --samples K the samples
are <name>_s0..s<K-1>.png, plus <name>_mean.png, <name>_std.png (per-channel sample std, ddof 1, on the [0, 1] scale
x4, so 0.25 and above saturate; a 16-bit PNG whatever the format) and <name>_std_map.png (the uncertainty heat map with its colour bar; its scale is in --json).

--json prints JSON Lines: one object per image as it finishes, then the summary with every result, for one input as
for many (ncvsd restore dir/ --json | jq -c 'select(.status)'; tail -n 1 is the summary). Progress on stderr: the
images, then the network evaluations of the batch in flight (bars on a terminal; otherwise a status line every 30 s,
or $NCVSD_PROGRESS_INTERVAL seconds); --quiet silences it. Reproducibility: the same command gives the same bytes on
the same machine; with the default --batch-size 1 an output does not depend on the other inputs or their order;
a larger --batch-size is faster but changes the network's float rounding, so a few pixels can differ from
--batch-size 1 by one or two levels. Outputs are never replaced without --overwrite, also when another process
creates them meanwhile. Exit codes: 0 ok, 1 some inputs failed (the others are written), 2 usage error,
3 checkpoint missing or corrupt, 130 interrupted, 143 / 129 stopped by SIGTERM / SIGHUP (no partial or temporary
file is left)."""


def restore_command(
    inputs: list[str] | None = typer.Argument(
        None, metavar="INPUT", help="Degraded images: files, directories, quoted globs (the subfolders they "
        "match are kept below -o DIR), or - for stdin."
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        "-t",
        autocompletion=completion.task,
        help="Operator name (sr4, deblur-gauss, inpaint-box, ...); optional for inputs with a sidecar.",
    ),
    out: str | None = typer.Option(
        None, "--output", "-o", callback=common.expand_home, help="Output image (.png, .jpg, ...), directory (a name without a suffix is one), "
                                     "or - for stdout."),
    output_format: str | None = typer.Option(
        None, "--format", metavar="FORMAT", help="Format of the outputs ncvsd names (beside the inputs, in -o DIR, "
        "or on stdout): png (the default), jpg, webp, avif, heic, tif, bmp, gif, ppm, or same: each input's own (a "
        "folder of phone photos stays HEIC / JPEG, and IMG_1.HEIC and IMG_1.JPG get different names; standard input, whose format "
        "has no name, gets PNG). With -o FILE its suffix sets the format."),
    nfe: int | None = typer.Option(
        None, "--nfe", min=1, help="Network evaluations (default: the method's: 10 for pnp-gd-warm, 3 for its box "
                                   "and mask inpainting and its denoising; 1 for denoiser, "
                                   "denoise's default; "
                                   "49 for pnp-gd; 1000 for dps/daps; 8x the base for the -mean8 methods and 4x "
                                   "for pnp-gd-fit4, whose --nfe counts all their samples). pnp-gd below 49 "
                                   "switches to a few-step schedule (sigma_max 10, rho 7); its 1 is refused (a "
                                   "prior draw that never sees the measurement): use >= 2.",
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, show_default=True, callback=common.seed_option,
        help="Seed of the restoration's own random streams (sample k of an image: stream (restore, seed, k, hash "
             "of the image)); independent of the stream `ncvsd degrade --seed` drew the measurement noise from."
    ),
    samples: int = typer.Option(1, "--samples", "-k", min=1, help="Posterior samples per image.",
                                show_default=True),
    mean: bool = typer.Option(False, "--mean", help="Also write the mean of the samples (needs --samples >= 2; "
                              "--method pnp-gd-warm-mean8, denoiser-mean8 for denoise, gives it as the one output)."),
    std: bool = typer.Option(
        False, "--std", help="Also write the per-pixel std of the samples (needs --samples >= 2): raw values "
                             "(<name>_std.png) and a heat map with its colour bar (<name>_std_map.png). It shows "
                             "where the samples disagree; it is no error bar (the samples of a few-step sampler "
                             "differ less than they miss the truth)."
    ),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint name or path, or a train/distill run folder (its newest "
        "snapshot; default: the shipped default)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.", show_default=True),
    precision: str = typer.Option(
        "auto", "--precision", metavar="auto|fp32|bf16", show_default=True,
        help="Network precision. auto: the generator in bfloat16 on CPUs with native bfloat16 (AMX / "
             "AVX512-BF16: restores ~1.6x faster, same quality), else float32; the teacher (dps/daps) in float32."
             " On CUDA, auto: the checkpoint's own (half precision where its config sets use_fp16).",
    ),
    batch_size: int = typer.Option(
        1, "--batch-size", "-b", min=1, help="Images (x samples) per network call.", show_default=True
    ),
    sigma_y: float | None = typer.Option(
        None, "--sigma-y", min=0.0, help="Measurement noise std on the [-1, 1] scale (phase-retrieval: of its "
                                         "amplitudes; default: each sidecar's recorded value; for a plain image to "
                                         "denoise, deblur or super-resolve, read from the image (a note says the "
                                         "value; blurs restored with a network at 0.7x it, a shake read from the "
                                         "photo at 1x up to 0.02; blurs and sr within 0.01-0.2; a camera's grain on "
                                         "fur or foliage, shrunk photos most, can read low: give it); else the task "
                                         "preset's, 0.05)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="YAML file over the task preset (beta, steps, ema, warm_start, ...); complete on its "
                               "own for a task without a preset."
    ),
    measurement: list[str] | None = typer.Option(
        None,
        "--measurement",
        "-m",
        help="Sidecar (X.png.ncvsd.json or X.png) written by `ncvsd degrade` (repeatable).",
    ),
    method: str | None = typer.Option(
        None, "--method", autocompletion=completion.method,
        help="Sampler (default: the task preset's: pnp-gd-warm; pnp-gd for phase retrieval; "
             "denoiser for denoise): pnp-gd (the paper's start from noise), pnp-gd-warm (start "
             "from the classical estimate), denoiser (G(y, sigma_y) alone; denoise only), dps, "
             "daps, teacher-mmse (D(y, sigma_y); denoise only), pnp-gd-warm-mean8 / denoiser-mean8 "
             "(the mean of 8 samples: higher PSNR, smoother), pnp-gd-fit4 (of 4 pnp-gd samples "
             "the one whose A(x) fits the measurement best: phase retrieval's restarts), or a "
             "classical baseline (bicubic, wiener, tikhonov, biharmonic, nl-means, pseudo-inverse, "
             "classical)."
    ),
    param: list[str] | None = typer.Option(
        None, "--param", "-p", help=common.PARAM_HELP
    ),
    class_label: int | None = typer.Option(
        None, "--class-label", min=0, help="Class for class-conditional checkpoints (default 0)."
    ),
    no_sidecar: bool = typer.Option(
        False, "--no-sidecar", help="Ignore X.png.ncvsd.json beside an input; treat X.png as the measurement."
    ),
    max_pixels: int | None = typer.Option(
        None, "--max-pixels", min=1,
        help="Refuse outputs with more pixels than this, before any work (default: whatever the memory estimate of "
             "the work admits: task, method, batch, precision, device and tiles).",
    ),
    compile_net: bool = typer.Option(
        False, "--compile", help="Run the network through torch.compile (CUDA, many images: faster after a slow "
                                 "start; on a CPU minutes of compiling and slower, with a note).",
    ),
    tile: int | None = typer.Option(
        None, "--tile", min=0,
        help="Compute the generator in overlapping tiles of N px (a multiple of the network's size multiple, 8 for "
             "the shipped model, e.g. 64), blended smoothly; the likelihood step stays global and exact. Default: "
             "automatic from a 4 GiB budget per call (at most 512 px), so images up to 512 px are computed whole; 0: "
             "never tile.",
    ),
    flatten: bool = typer.Option(
        False, "--flatten", help="Write no alpha channel: an input's transparency stays composited on white (default: "
                                 "its alpha is carried to PNG, WebP, AVIF, HEIC and TIFF outputs)."),
    strip_metadata: bool = typer.Option(
        False, "--strip-metadata", help="Write no EXIF nor XMP into the outputs but the AI label, e.g. to share "
                                        "them without the place a photo was taken (default: a photo's camera, "
                                        "dates, exposure and GPS position, its title, caption, keywords and rights "
                                        "are copied from its input; the colour profile, resolution and the label "
                                        "of how the output was made, AI or algorithm, are kept either way)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help=common.SKIP_HELP),
    as_json: bool = typer.Option(False, "--json", help=common.JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or notes on stderr (warnings still print)."),
) -> None:
    """Restore degraded images by posterior sampling with the NCVSD generative denoiser (PnP-GD)."""
    with common.handle_errors(json_command="restore" if as_json else None,
                              inputs=[*(inputs or []), *(measurement or [])]):
        mean8 = "denoiser-mean8" if task == "denoise" else "pnp-gd-warm-mean8"
        mean_why = f"of one sample it is the sample itself; --method {mean8} gives the mean of 8 as one image"
        if std and method:  # a mean method never gives --std, whatever --samples: said first
            _check_std_method(method)
        for flag, wanted, why in (("--mean", mean, mean_why), ("--std", std, "the std of one sample is 0")):
            if wanted and samples < 2:
                raise common.UsageError(f"{flag} needs --samples >= 2 ({why})")
        specs = list(inputs or []) + list(measurement or [])
        if no_sidecar and task is None:
            raise common.UsageError("--no-sidecar needs --task (the inputs are then plain images)")
        if no_sidecar and measurement:
            raise common.UsageError("--no-sidecar contradicts --measurement (a sidecar to use): give one of them")
        options = _valid_options([task] if task else _tasks_from_sidecars(specs), {
            "method": method, "nfe": nfe, "seed": seed, "samples": samples, "batch_size": batch_size,
            "sigma_y": sigma_y, "preset_file": preset, "params": common.parse_params(param),
            "class_label": class_label, "checkpoint": checkpoint, "device": str(common.parse_device(device)),
            "precision": precision, "max_pixels": max_pixels, "tile": tile, "compile": compile_net})
        if overwrite and skip_existing:
            raise common.UsageError("--overwrite and --skip-existing contradict each other: give one of them")
        if std:
            _check_std_method(options.method)
        common.warn_large_sigma(options.sigma_y)
        if compile_net and options.device == "cpu":
            common.note("--compile on a CPU: compiling takes minutes, and the sampler's changing noise levels and "
                        "random draws split the network into many graphs, so expect it slower than without", quiet)
        outputs = Outputs(out, mean, std, overwrite, skip_existing, flatten, _format_suffix(output_format),
                          strip_metadata)
        _run(options, specs, set(measurement or []), outputs, no_sidecar, as_json, quiet, task_given=task is not None,
             method_given=method is not None)


def _check_std_method(method: str) -> None:
    """UsageError for --std over a method whose output is a mean of k samples: their spread is the std of those
    means, about sqrt(k) below the posterior's, and the map would be titled the posterior std."""
    from ncvsd_cli.sampling.methods import MeanMethod, get_method

    chosen = get_method(method)
    if isinstance(chosen, MeanMethod):
        raise common.UsageError(f"--std with --method {method}: each output is the mean of {chosen.k} samples, and "
                                f"the spread of such means is about sqrt({chosen.k}) times smaller than the "
                                f"posterior's; for the posterior std give --method {chosen.base} --samples "
                                f"{chosen.k} --mean --std (the same kind of mean, of other draws, and their std)")


@dataclass(frozen=True)
class Outputs:
    """What `restore` writes: -o (file, directory, - or None: beside each input), --mean, --std, --overwrite,
    --skip-existing, --flatten, --format, --strip-metadata."""

    out: str | None
    mean: bool
    std: bool
    overwrite: bool
    skip_existing: bool = False
    flatten: bool = False
    suffix: str | None = None  # --format: ".png", ".jpg", ..., "same" (each input's) or None (PNG; -o FILE's own)
    strip_metadata: bool = False  # --strip-metadata: no EXIF nor XMP


def _format_suffix(output_format: str | None) -> str | None:
    """The outputs' suffix for --format: None (not given), ".<format>", or "same"; UsageError for a format this
    installation does not write."""
    from ncvsd_cli import images

    if output_format is None:
        return None
    name = output_format.strip().lower().lstrip(".")
    if name == "same":
        return "same"
    problem = images.output_format_problem("." + name)
    if problem:
        raise common.UsageError(f"--format {output_format}: {problem.replace('; use', '; use same, or')}")
    return "." + name


def _output_suffix(item, outputs: Outputs) -> str:
    """The suffix of `item`'s outputs: --format's (.png without it), or with "same" the input's own where this
    installation writes that format (a measurement sidecar: its image's; else .png, stdin too)."""
    from ncvsd_cli import images
    from ncvsd_cli.measurement import SIDECAR_SUFFIX

    if outputs.suffix != "same":
        return outputs.suffix or ".png"
    path = getattr(item, "path", None)
    if path is not None and path.name.endswith(SIDECAR_SUFFIX):
        path = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
    if path is None or images.output_format_problem(path.suffix or "."):
        return ".png"
    return path.suffix.lower()


def _out_format(path: str, outputs: Outputs) -> str:
    """The format an output is written in: its suffix's, or for standard output ("-") --format's (PNG without it
    or with same)."""
    from ncvsd_cli import images

    if path != "-":
        return images.format_for_path(path)
    return images.format_for_path("-" if outputs.suffix in (None, "same") else "out" + outputs.suffix)


def _valid_options(tasks: Iterable[str], fields: dict) -> RestoreOptions:
    """The validated options of the first of `tasks` they suit (`RestoreOptions.validate`); the first one's error
    where none does. Without --task the run's task is a sidecar's, each sidecar input then restoring with its own:
    `--method wiener` over an inpaint-box measurement and then a blur's refused the whole batch, while in the other
    order the inpainting failed alone."""
    first: Exception | None = None
    for task in tasks:
        try:
            return RestoreOptions(task=task, **fields).validate()
        except (ValueError, common.UsageError) as exc:
            first = first or exc
    assert first is not None  # `tasks` yields one at least, or raises
    raise first


def _tasks_from_sidecars(specs: list[str]) -> Iterator[str]:
    """The tasks recorded by the inputs (files, directories and globs expanded) with a readable sidecar, each once,
    in order, read as needed; UsageError naming the cause when there is none."""
    from ncvsd_cli import measurement as meas

    items, missing = common.expand_inputs(specs, quiet=True, identity=meas.input_identity) if specs else ([], [])
    unreadable, seen = [], set()
    for item in items:
        if not item.is_stdin and meas.find_sidecar(item.path) is not None:
            try:
                task = meas.sidecar_task(item.path)
            except meas.MeasurementError as exc:
                unreadable.append(common.one_line(exc))
                continue
            if task not in seen:
                seen.add(task)
                yield task
    if seen:
        return
    if unreadable:
        raise common.UsageError(f"{unreadable[0]} (and --task is required for inputs without a readable sidecar)")
    if missing and not items:  # nothing to restore: a missing input's failure (exit 1), as with --task
        common.fail(missing[0][1] + ("" if len(missing) == 1 else f" (and {len(missing) - 1} more)"),
                    common.EXIT_PARTIAL)
    raise common.UsageError("--task is required for inputs without a (readable) measurement sidecar: it says what "
                            f"happened to the photo ({TASK_GUIDE}; every task in --help)" +
                            (f"; also {missing[0][1]}" if missing else ""))


#: The common tasks by what happened to a photo, for the error of a plain image restored without --task.
TASK_GUIDE = ("shrunk: sr2, sr4 or sr8; blurred: deblur-gauss, out of focus: deblur-defocus, camera shake: "
              "deblur-motion; grainy: denoise; holes or scratches: inpaint-mask -p mask=M.png")


def _sidecar(item, no_sidecar: bool, explicit: set[str]):
    """The sidecar an input is restored from (None: a plain image): its own, unless --no-sidecar (which a file
    given with -m overrides)."""
    from ncvsd_cli import measurement as meas

    side = None if item.is_stdin else meas.find_sidecar(item.path)
    return side if side is not None and (not no_sidecar or str(item.path) in explicit) else None


def _item_task(item, task: str, task_given: bool, no_sidecar: bool, explicit: set[str]) -> str:
    """The task an input restores with: its sidecar's when --task was not given, else --task."""
    from ncvsd_cli import measurement as meas

    if task_given or _sidecar(item, no_sidecar, explicit) is None:
        return task
    try:
        return meas.sidecar_task(item.path)
    except meas.MeasurementError:
        return task  # reported with its input


def _holes_may_be_transparent(task: str, given: dict[str, Any], plain: list) -> bool:
    """inpaint-mask without -p mask and a plain input with an alpha channel (or standard input, unread yet): its
    transparent pixels may be the holes (`Restorer.measurement`), so an opaque input is refused alone."""
    from ncvsd_cli import images

    return task == "inpaint-mask" and "mask" not in given and any(
        i.is_stdin or images.may_be_transparent(i.path) for i in plain)


def _check_params(restorer, items: list, no_sidecar: bool, explicit: set[str]) -> None:
    """The -p / preset file operator parameters against the plain-image inputs' header sizes
    (`common.check_params_on_inputs`): a bad parameter is a usage error before the model loads and before any
    allocation it would cause; one that suits some inputs only (a mask of one size) fails the others alone."""
    from ncvsd_cli import measurement as meas

    plain = [i for i in items if not i.is_stdin and str(i.path) not in explicit
             and _sidecar(i, no_sidecar, explicit) is None]
    if not plain:
        return
    task = restorer.options.task
    params = restorer.prepare(task, restorer.options.sigma_y).settings.get("operator") or {}
    f = restorer.plain_factor(task, 3)
    holes = task == "inpaint-mask" and "mask" not in params  # an input's own transparency: any mask checks the rest

    def check(h: int, w: int) -> None:
        import numpy as np

        meas.check_operator_params(task, (3, h * f, w * f), {**params, "mask": np.ones((h, w))} if holes else params)

    common.check_params_on_inputs(plain, check, _params_flag(restorer.options))


def _params_flag(options: RestoreOptions) -> str:
    """Where the operator parameters came from, for messages: -p (--param) or the --preset file's operator."""
    return "--param" if options.params else "--preset operator"


def _run(options: RestoreOptions, specs: list[str], explicit: set[str], outputs: Outputs, no_sidecar: bool,
         as_json: bool, quiet: bool, task_given: bool = True, method_given: bool = True) -> None:
    import operators
    from ncvsd_cli import images
    from ncvsd_cli import measurement as meas
    from ncvsd_cli.checkpoints import CheckpointError
    from ncvsd_cli.errors import debugging, described
    from ncvsd_cli.restore import Restorer

    task = options.task
    tags = [task] if task_given else sorted(operators.names())  # without --task: any task's earlier outputs
    pattern = re.compile(rf"_({'|'.join(map(re.escape, tags))})(_s\d+|_mean|_std|_std_map)?$")
    out_dir = None if outputs.out in (None, "-") else Path(outputs.out).expanduser().resolve()

    def skip(p: Path) -> bool:
        """Our own earlier outputs: tagged files beside their inputs, or anywhere below -o DIR."""
        tag = pattern.search(p.stem)
        if not tag:
            return False
        if out_dir is None or out_dir in p.resolve().parents:
            return images.made_by_ncvsd(p)  # (a photo of the user's so named stays an input)
        source = p.stem[: tag.start()]  # X_sr4_s1.png beside X.png (any extension) or X's sidecar
        return (source != "" and any(q.stem == source and q != p for q in p.parent.glob(glob.escape(source) + ".*"))
                and images.made_by_ncvsd(p))

    preset = options.preset_file if isinstance(options.preset_file, dict) else {}
    items, missing = common.expand_inputs(specs, skip=skip, quiet=quiet, identity=meas.input_identity,
                                           out=outputs.out, params={**(preset.get("operator") or {}),
                                                                    **(options.params or {})})
    mode = common.output_mode(outputs.out, items)
    if mode == "file" and outputs.suffix is not None:
        raise common.UsageError(f"--format names the outputs ncvsd names (beside the inputs, in -o DIR, or on "
                                f"stdout); -o {outputs.out} names one file, whose suffix sets its format")
    report = common.Report("restore", extra={"task": task, "method": options.method, "seed": options.seed,
                                             "samples": options.samples})
    report.json_lines = as_json  # one JSON line per image as it finishes, then the summary
    with report.summary_on_interrupt(as_json):
        for spec, message in missing:
            report.failed(spec, message)
        tasks = {item: _item_task(item, task, task_given, no_sidecar, explicit) for item in items}
        planned = {item: _planned_paths(item, outputs, mode, tasks[item], options.samples) for item in items}
        report.inputs = [item.name for item in items]  # (an interruption's summary names those not done)
        common.check_stdout(planned, as_json)
        planned = common.leave_out_own_outputs(planned, report, quiet,  # (a user's photo so named stays an input)
                                               lambda p: bool(pattern.search(p.stem)) and images.made_by_ncvsd(p))
        items = [i for i in items if i in planned]
        if outputs.skip_existing:
            planned = common.skip_earlier_outputs(planned, report, quiet, skip)
            planned = common.skip_finished(planned, report, quiet, other_work=lambda item, path: _other_task(
                path, tasks.get(item)))
            items = [i for i in items if i in planned]
        hint = "" if outputs.suffix == "same" else " (--format same keeps each one's own format and suffix)"
        problems = common.check_outputs(planned, items, outputs.overwrite, outputs.skip_existing, format_hint=hint)
        plain = [i for i in items if i not in problems and str(i.name) not in explicit
                 and _sidecar(i, no_sidecar, explicit) is None]
        probe = Restorer(None, None, options)  # settings only: no checkpoint read yet
        given = probe.given_params()  # -p and a preset file's operator parameters
        # Every input plain and none usable (e.g. deblur-motion without its kernel): a usage error before the model
        # loads; among sidecar inputs a plain image fails alone (Restorer.measurement).
        if given and task_given:  # a mistyped -p Mask=M is named, not taken for a missing mask
            try:
                operators.registry.check_parameter_names(task, given)
            except ValueError as exc:
                raise common.UsageError(f"{_params_flag(options)}: {exc}") from None
        if plain and len(plain) == len(items) - len(problems) and task_given and not _holes_may_be_transparent(
                task, given, plain):
            refusal = meas.plain_image_refusal(task, given)
            if refusal:
                raise common.UsageError(refusal)
        if given and task_given:
            _check_params(probe, [i for i in items if i not in problems], no_sidecar, explicit)

        # Read the network's config (exit 3 on checkpoint problems), then every input (bad or too large for the
        # memory estimate: reported and skipped), then the weights.
        needed = any(item not in problems for item in items) or bool(options.tile and problems)  # a bad --tile
        # is said before "output exists" (it was found only after --overwrite); all skipped: no model is read
        restorer = Restorer.from_options(options, load=False, quiet=quiet) if needed else None
        if restorer is not None:  # without --task the options come from one sidecar's task and serve every task
            restorer.any_task = not task_given
        shake = reads_motion_kernel(task, given)  # a blur is read in seconds, a shake in 1.6 s to minutes
        blurred = [i for i in plain if task_given and (shake or reads_blur(task, given))]
        what = "the camera shake" if shake else "the blur"
        reading = common.progress(len(blurred), f"read {what} ({task})", quiet or not blurred)
        run = _Restoration(restorer, options, planned, outputs, report, quiet, method_given)
        window: list[tuple[Any, meas.Measurement]] = []
        window_bytes = 0
        try:
            for n, item in enumerate(items):
                if item in problems:
                    report.failed(item.name, problems[item])
                    continue
                if item in blurred:
                    run.reading(f"{what} of {item.name}")
                try:
                    kept = planned[item][: options.samples + int(outputs.mean)]  # the images (std: no alpha)
                    formats = {p: _out_format(p, outputs) for p in kept}
                    started = time.perf_counter()
                    m = _read_measurement(restorer, item, no_sidecar, explicit, quiet, task_given,
                                          None if outputs.flatten else formats)
                    m.read_seconds = time.perf_counter() - started  # the file and its noise, blur or shake
                    for path, fmt in formats.items():  # a format's size limit, said before the work (its encoder
                        problem = images.size_problem(fmt, *m.image_shape[-2:])  # fails at the end)
                        if problem:
                            raise ValueError(f"{path}: {problem}")
                except (CheckpointError, BrokenPipeError):
                    raise
                except Exception as exc:  # this input's problem only (a plug-in operator's error of any type)
                    if debugging():
                        raise
                    msg = described(exc) if not isinstance(exc, MemoryError) else (
                        "ran out of memory preparing it (the estimate let it through): restore a crop, or give "
                        "--max-pixels to refuse such sizes up front")
                    report.failed(item.name, msg if msg.startswith(item.name) else f"{item.name}: {msg}")
                    run.skip_input()
                    continue
                finally:
                    reading.update(int(item in blurred))
                    run.reading(None)
                tiles = restorer.tile_note(m.image_shape)  # plain image or sidecar alike
                if tiles:
                    common.note(f"{item.name}: {tiles}", quiet)
                    m.notes = [*m.notes, tiles]
                window.append((item, m))
                window_bytes += m.y.numel() * m.y.element_size()
                if window_bytes >= WINDOW_BYTES or len(window) >= max(WINDOW_IMAGES, options.batch_size):
                    reading.close()  # the first window's reading bar; later ones read under the restore bar
                    reading = common.progress(0, "", True)
                    run.restore(window, sum(i not in problems for i in items[n + 1:]))
                    window, window_bytes = [], 0
            reading.close()
            run.restore(window, 0)
        finally:
            reading.close()
            run.close()
            _record_what_ran(report, run, restorer, options)  # an interrupted run's summary says it too
    report.finish(as_json, quiet)


def _record_what_ran(report: common.Report, run: _Restoration, restorer: Restorer | None,
                     options: RestoreOptions) -> None:
    """The summary's task, method, nfe, device and precision: what ran (sidecars of several tasks or methods: all of
    them; the first read named one before), else what was asked."""
    tasks = sorted(run.tasks)
    if tasks:
        report.extra["task"] = tasks if len(tasks) > 1 else tasks[0]
    if len(run.methods) > 1:
        report.extra["method"] = run.methods
    elif run.methods:
        report.extra["method"] = run.methods[0]
    used = {r["nfe"] for r in report.results if isinstance(r, dict) and r.get("nfe") is not None}
    precision = None if restorer is None else restorer.precision if restorer.model is not None \
        else restorer.work_precision()  # nothing loaded (all refused): the precision the refusals name
    report.extra.update(nfe=used.pop() if len(used) == 1 else (sorted(used) or options.nfe),
                        device=options.device, precision=precision)


def _other_task(path: str, task: str | None) -> str | None:
    """Why the existing output `path` is not this run's: its label names another task than `task` (None where the
    task is not known before the input is read, or the file has no label)."""
    from ncvsd_cli import images

    made = images.labelled_task(path) if task else None
    return None if made in (None, task) else f"{path} exists, made by --task {made}, not {task}"


#: The decoded inputs restored together at most (bytes of their measurements): inputs are read up to this, then
#: restored, then the next are read (a batch of 30 photos of 1 MP held 12 MB each before the first began; 500 phone
#: photos would have needed ~70 GB). Batching across inputs (--batch-size) happens within such a window.
WINDOW_BYTES = 1 << 29
#: ... and inputs at most (or --batch-size, if more): 45 photos of 256 px were all read (blur and noise, 79 s) before
#: the first was restored, so a Ctrl-C then left nothing for --skip-existing to keep.
WINDOW_IMAGES = 8

PHASE_TWIN_NOTE = ("phase retrieval recovers an image only up to a shift and a 180-degree turn (the Fourier "
                   "magnitudes do not tell them apart), and one run can settle on a poor mix of the two: "
                   "--method pnp-gd-fit4 keeps the best-fitting of 4 runs (4x the time), --samples K writes K tries "
                   "and names the best-fitting one")

#: A box at least this many px a side is filled smoothly by the default model: said once (and in each --json record).
LARGE_BOX = 48
LARGE_BOX_NOTE = (f"a box of {LARGE_BOX} px or more is filled smoothly from its edges: the default model, trained on "
                  "few photos, invents no face, fur or lettering there (README, \"The default model\"), and its "
                  "samples "
                  "(--samples K) differ little there; --method pnp-gd, from noise, varies more but fills such a box "
                  "darker and flatter with this model, not better")


class _Restoration:
    """The restoration of a run's inputs, window by window (`WINDOW_BYTES`, `WINDOW_IMAGES`): one progress bar over
    all of them,
    started after the first window is read and the weights are loaded (its clock times the restoration); each
    window's inputs grouped by their own task's sampler unless --method (`_method_groups`)."""

    def __init__(self, restorer, options: RestoreOptions, planned: dict, outputs: Outputs, report, quiet: bool,
                 method_given: bool) -> None:
        self.restorer, self.options, self.planned, self.outputs = restorer, options, planned, outputs
        self.report, self.quiet, self.method_given = report, quiet, method_given
        self.bar, self.tasks, self.methods, self.twin_said, self.box_said = None, set(), [], False, False
        self.restorers: dict[tuple, Any] = {}  # (method, task): one per run, not per window (a teacher loads once)
        self.tasks_shown: set[str] = set()  # the tasks the bar's label names

    def reading(self, what: str | None) -> None:
        """Say on the restore bar what is being read between windows (a camera shake takes minutes; the reading
        bar covers the first window only), or nothing (None)."""
        if self.bar is not None:
            self.bar.items.set_postfix({"reading": what} if what else {}, refresh=True)

    def skip_input(self) -> None:
        """An input that failed to read once the bar runs: its samples given up."""
        if self.bar is not None:
            self.bar.skip(self.options.samples)

    def restore(self, window: list, remaining: int) -> None:
        """Restore `window` [(item, measurement)]; `remaining`: inputs still to read after it (the bar's total)."""
        from ncvsd_cli.sampling.methods import get_method

        o = self.options
        if self.outputs.skip_existing:  # another worker of a shared queue made some meanwhile: not done twice
            made = [(i, m) for i, m in window if self.planned[i] and "-" not in self.planned[i]
                    and all(Path(p).is_file() for p in self.planned[i])]
            for item, _ in made:
                self.report.skipped(item.name, self.planned[item])
                common.note(f"{item.name}: skipped: its outputs were written meanwhile (by another process?)",
                            self.quiet)
            window = [w for w in window if w not in made]
            if self.bar is not None:
                self.bar.skip(len(made) * o.samples)
        self.tasks |= {m.task for _, m in window}
        if any(m.task == "phase-retrieval" for _, m in window) and o.method != "pnp-gd-fit4":
            if not self.twin_said:
                common.note(PHASE_TWIN_NOTE, self.quiet)  # once; and in each such image's --json notes
                self.twin_said = True
            for _, m in window:
                m.notes = [*m.notes, PHASE_TWIN_NOTE] if m.task == "phase-retrieval" else m.notes
        shipped = o.checkpoint is None and o.method in ("pnp-gd-warm", "pnp-gd-warm-mean8")  # (its smooth start)
        large = [m for _, m in window
                 if shipped and m.task == "inpaint-box" and min(m.operator().box_size) >= LARGE_BOX]
        if large and not self.box_said:
            common.note(LARGE_BOX_NOTE, self.quiet)  # once, as the twin note
            self.box_said = True
        for m in large:
            m.notes = [*m.notes, LARGE_BOX_NOTE]
        groups = [g for g in ([(o, window)] if self.method_given else _method_groups(o, window, self.report))
                  if g[1]]
        members = sum(len(g[1]) for g in groups)
        tasks = self.tasks_shown | {m.task for g in groups for _, m in g[1]}
        if self.bar is None:
            if not groups and not remaining:
                return
            if groups and get_method(groups[0][0].method).needs == self.restorer.method.needs:
                self.restorer.load()  # before the bar starts: its clock (and ETA) times the restoration
            self.bar = common.progress((members + remaining) * o.samples, f"restore {','.join(sorted(tasks))}",
                                       self.quiet or not (members + remaining),
                                       unit="sample" if o.samples > 1 else "img")
        else:
            self.bar.skip((len(window) - members) * o.samples)  # inputs whose task refused the options
            if tasks != self.tasks_shown:  # a later window's sidecars of other tasks (the label named the first's)
                self.bar.describe(f"restore {','.join(sorted(tasks))}")
        self.tasks_shown = tasks
        for opts, group in groups:
            if opts.method not in self.methods:
                self.methods.append(opts.method)
            key = (opts.method, opts.task)
            if opts is not o and key not in self.restorers:  # one copy of a shared network
                self.restorers[key] = self.restorer.with_options(opts)
            each = self.restorer if opts is o else self.restorers[key]
            each.load()
            _restore(each, group, self.planned, self.outputs, self.report, self.bar, self.quiet)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _planned_paths(item, outputs: Outputs, mode: str, task: str, samples: int) -> list[str]:
    from ncvsd_cli.measurement import SIDECAR_SUFFIX

    named = item  # a .ncvsd.json given directly is named after its preview image
    if item.path is not None and item.path.name.endswith(SIDECAR_SUFFIX):
        stem = item.path.name[: -len(SIDECAR_SUFFIX)].rsplit(".", 1)[0]
        named = replace(item, path=item.path.with_name(stem + ".png"))
    main = common.output_path(named, outputs.out, mode, task, _output_suffix(item, outputs))
    paths = [main] if samples == 1 else [common.variant_path(main, f"_s{k}") for k in range(samples)]
    paths += [common.variant_path(main, "_mean")] if outputs.mean else []
    paths += [common.variant_path(main, v, ".png") for v in ("_std", "_std_map")] if outputs.std else []  # values
    return paths


def _method_groups(options: RestoreOptions, good: list, report) -> list[tuple[RestoreOptions, list]]:
    """The inputs grouped by the default sampler of their own task (sidecars of several tasks, no --method):
    [(options for that sampler, [(item, measurement), ...])], the group of `options.task` first. An input whose
    task refuses these options (e.g. --samples with a deterministic default) is reported failed."""
    groups: dict[str, tuple[RestoreOptions, list]] = {options.method: (options, [])}
    per_task: dict[str, RestoreOptions | ValueError] = {options.task: options}
    for item, m in good:
        if m.task not in per_task:  # validated once per task
            try:
                per_task[m.task] = replace(options, task=m.task, method=None).validate()
            except ValueError as exc:
                per_task[m.task] = exc
        opts = per_task[m.task]
        if isinstance(opts, ValueError):
            report.failed(item.name, f"{item.name}: {opts}")
            continue
        groups.setdefault(opts.method, (opts, []))[1].append((item, m))
    return [g for g in groups.values() if g[1]]


def _restore(restorer, good: list, planned: dict, outputs: Outputs, report, bar, quiet: bool = False) -> None:
    """Restore the measurements `good` [(item, measurement)] with `restorer`, writing and reporting each; `bar`
    (`common.progress`, shared by the groups of one run) advances per image."""
    def checked(show: Callable) -> Callable:  # stdout's reader gone (`--json | head -1`): stop at the next step
        return (lambda *a: (common.raise_if_stdout_closed(), show(*a))) if report.json_lines else show

    results = restorer.run([m for _, m in good], on_batch=bar.update, on_step=checked(bar.step),
                           on_begin=checked(bar.begin), on_skip=bar.skip)
    try:
        for res in results:
            _written(res, good, planned, outputs, report, restorer, quiet)
    except KeyboardInterrupt:
        if restorer.options.samples > 1:  # (all of an input's outputs are written together: --skip-existing)
            common.note("the samples of an input in progress are not written: an input's samples, mean and std "
                        "are written together, once its last sample is done")
        raise


def _written(res, good: list, planned: dict, outputs: Outputs, report, restorer, quiet: bool) -> None:
    """Write and report the restoration `res` of `good[res.index]` (or its error)."""
    item, m = good[res.index]
    if res.error:
        report.failed(item.name, res.error if res.error.startswith(item.name) else f"{item.name}: {res.error}")
        return
    for note in (twin := _twin_notes(res, outputs)):
        common.note(f"{item.name}: {note}", quiet)
    if poor := _poor_fit(res):  # a likely mistake: said even with --quiet
        common.note(f"warning: {item.name}: {poor}")
    m.notes = [*m.notes, *twin, *([poor] if poor else [])]
    try:
        written, scale = _write(res, planned[item], outputs, m, restorer.options.method,
                                _made_with(restorer, m, res))
    except (ValueError, OSError) as exc:
        if not common.written_meanwhile(exc, item, planned[item], report, outputs.skip_existing, quiet):
            report.failed(item.name, f"{item.name}: cannot write output: {exc}")
        return
    report.ok(item.name, written, task=m.task, method=restorer.options.method,  # (sidecars: each its own)
              size=list(res.samples.shape[-2:]), nfe=res.nfe,
              operator_evals=res.operator_evals, seconds=round(res.seconds, 3),
              read_seconds=round(m.read_seconds, 3), sigma_y=res.sigma_y,
              notes=m.notes, sidecar=_from_sidecar(m), **_blur_width(m), **scale, **_fit(res))


def _from_sidecar(m) -> bool:
    """Whether measurement `m` was read from a sidecar (`degrade`'s, or one `save_measurement` wrote of a real
    measurement: no noise seed), not made from a plain image."""
    from ncvsd_cli.measurement import SIDECAR_SUFFIX

    return bool(m.source) and str(m.source).endswith(SIDECAR_SUFFIX)


def _fit(res) -> dict:
    """--json fields of a phase retrieval: `fit_residuals`, each sample's RMS ||A(x) - y||, and `turned`, the
    samples turned 180° before --mean / --std (`restore.twin_fit`)."""
    if res.residuals is None:
        return {}
    return {"fit_residuals": [round(r, 6) for r in res.residuals], "turned": list(res.turned)}


#: A phase retrieval whose best RMS fit ||A(x) - y|| exceeds this many times sigma_y (or POOR_FIT_FLOOR) is warned
#: of: runs that succeed or stall fit within 1.0-1.25x (five 48-px photos, 4 samples each, sigma_y 0.05), amplitudes
#: in another convention (intensities, a raw FFT's scale, the zero frequency in a corner) 5-700x, those of x on
#: [-1, 1] instead of (x + 1) / 2 2.9x.
POOR_FIT_RATIO, POOR_FIT_FLOOR = 2.0, 0.05


def _poor_fit(res) -> str | None:
    """The warning of a phase retrieval none of whose samples fits its measurement within POOR_FIT_RATIO x
    sigma_y: a measurement not in the operator's convention (docs/method.md §4.5); None otherwise."""
    if not res.residuals or res.sigma_y is None:
        return None
    best, level = min(res.residuals), float(res.sigma_y)
    if best <= max(POOR_FIT_RATIO * level, POOR_FIT_FLOOR):
        return None
    return (f"the restoration fits its measurement poorly (RMS residual {best:.3g} against the noise level "
            f"{level:g}): amplitudes measured another way than the operator's restore as a blank or noise "
            "(intensities |F|² rather than |F|; a raw FFT's, to divide by √(pixels of the padded image); the zero "
            "frequency not in the middle; the image on [-1, 1] rather than [0, 1]; README, \"amplitudes measured "
            "elsewhere\"), as does noise above the level given (--sigma-y)")


def _twin_notes(res, outputs: Outputs) -> list[str]:
    """Phase retrieval with --samples K > 1: which sample fits its measurement best, and which were turned 180°
    for --mean / --std."""
    if res.residuals is None or len(res.residuals) < 2:
        return []
    best = min(range(len(res.residuals)), key=res.residuals.__getitem__)
    notes = [(f"sample s{best} fits the measurement best (RMS residual {res.residuals[best]:.4g}; the others' in "
              "--json's fit_residuals)")]
    if res.turned and (outputs.mean or outputs.std):
        which = ", ".join(f"s{i}" for i in res.turned)
        notes.append(f"{which} turned 180° to s{best}'s orientation before --mean / --std (a twin that fits as "
                     "well; averaged as it is, the two would ghost); the sample files are as sampled")
    return notes


def _made_with(restorer, m, res) -> tuple[tuple[str, str], ...]:
    """The settings that made a restoration, for its XMP (`xmp.labelled`): task, method, NFE, seed, the noise
    level it ran at, and for a network's method the model file (its name, not its folder) and the precision."""
    from pathlib import Path

    settings = [("Task", m.task), ("Method", restorer.options.method), ("NFE", str(res.nfe)),
                ("Seed", str(restorer.options.seed))]
    if res.sigma_y is not None:
        settings.append(("SigmaY", f"{res.sigma_y:.4g}"))
    if restorer.method.needs != "none" and restorer.checkpoint_path is not None:
        settings += [("Model", Path(restorer.checkpoint_path).name), ("Precision", str(restorer.precision))]
    return tuple(settings)


def _blur_width(m) -> dict:
    """{"blur_sigma": px} for a Gaussian deblurring, {"blur_radius": px} for a defocus one (given, recorded or
    estimated), {"blur_kernel": rows} for a motion kernel read from the image (to 6 decimals: save it with
    numpy.save and pass -p kernel=K.npy), else {}."""
    if m.kernel_read:
        return {"blur_kernel": [[round(float(v), 6) for v in row] for row in m.operator().kernel]}
    key = BLUR_READ.get(m.task)
    value = (m.operator_config or {}).get(key) if key else None
    return {f"blur_{key}": value} if value is not None else {}


#: A plain photo to deblur-motion larger than this (pixels) is told its shake is being read: 10 s at 1024x768,
#: 45 s at 2048x1536 on 2 cores (about 3x for a path checked on the photo's halves, 6x read again at 63 px), while the
#: reading bar counts whole photos.
SHAKE_NOTE_PIXELS = 1_000_000


def _read_measurement(restorer, item, no_sidecar: bool, explicit: set[str], quiet: bool, task_given: bool = True,
                      alpha_paths: dict[str, str] | None = None):
    """The measurement of one input: its sidecar (unless --no-sidecar; its own task unless --task was given), else
    the decoded image as a measurement of --task. alpha_paths: the outputs a plain image's alpha is carried to,
    with their formats (`_alpha_note`; None: --flatten). ValueError / OSError with a one-line message for a bad input."""
    import operators
    from ncvsd_cli import images
    from ncvsd_cli import measurement as meas
    from operators.inpainting import MaskOperator

    task, max_pixels = restorer.options.task, restorer.options.max_pixels
    side = _sidecar(item, no_sidecar, explicit)
    if side is not None:
        m = meas.load_measurement(side, max_pixels=max_pixels)
        if task_given and m.task != task:
            raise ValueError(f"its sidecar is for task {m.task}, not --task {task}")
        refusal = restorer.memory_refusal(m.image_shape, m.operator_config, None if task_given else m.task)
        if refusal:
            raise ValueError(refusal)
        masked = issubclass(operators.get(m.task), MaskOperator)  # (a mask: cheap to build; an sr's matrices wait)
        if masked and not bool(m.operator().mask.any()):  # as a plain image's mask is refused
            raise ValueError("the sidecar's mask keeps no pixel: nothing to restore from (`ncvsd sample` draws "
                             "images from nothing)")
        if m.task == "phase-retrieval" and not bool((m.y > 0).any()):  # (noise makes some < 0, never all)
            raise ValueError("the sidecar's Fourier amplitudes are all <= 0: nothing to restore from")
        common.note(f"{item.name}: using the measurement sidecar {side.name}", quiet)
        ignored = sorted(restorer.given_params())
        unused = (f"{', '.join(ignored)} not used: the sidecar records the operator the measurement was made with "
                  + ("(phase retrieval has no plain-image form: degrade the clean image again with them)"
                     if m.task == "phase-retrieval" else "(--no-sidecar restores the image as a plain one)")
                  ) if ignored else None
        if unused:
            common.note(f"{item.name}: {unused}", quiet)
        for n in m.notes:
            common.note(f"warning: {item.name}: {n}")  # an edited preview is worth a word even with --quiet
        grey = restorer.grey_level_notes(m)
        for n in grey:
            common.note(f"{item.name}: {n}", quiet)
        m.notes = [*m.notes, *([unused] if unused else []), *grey]  # in its --json record too
        return m
    if str(item.name) in explicit:
        raise ValueError(f"no measurement sidecar {item.name}{meas.SIDECAR_SUFFIX} found")
    data = images.read_source_bytes("-" if item.is_stdin else item.path)[0]
    h, w = images.image_size(data, name=item.name)  # not an image: said before the missing task
    if not task_given:
        raise ValueError("--task is required for an input without a measurement sidecar (the other inputs' "
                         "sidecars say their own tasks)")
    restorer.check_plain_size(task, h, w, "--max-pixels")
    decoded = images.read_image(data, restorer.channels, name=item.name)
    decoded.notes = [n for n in decoded.notes if n != images.ALPHA_NOTE]  # said below, with what became of it
    common.notes_of(item.name, decoded.notes, quiet, images.UNTAGGED_COLOUR)  # (colour the outputs cannot tag)
    if reads_motion_kernel(task, restorer.given_params()) and h * w > SHAKE_NOTE_PIXELS:
        common.note(f"{item.name}: reading the camera shake of this {w}x{h} photo (about 15 s per megapixel on "
                    "2 cores, 3-6x that for a long shake, which is checked and may be read again) ...", quiet)
    m = restorer.measurement(decoded.tensor, task, source=item.name, grey=decoded.grey,
                            jpeg_sigma=decoded.jpeg_sigma, jpeg_coding=decoded.jpeg_coding, alpha=decoded.alpha)
    common.notes_of(item.name, m.notes, quiet, WARNING_NOTES)  # e.g. the estimated noise level; likely mistakes
    if m.alpha is not None:  # (None for inpaint-mask's transparency holes: the output is opaque)
        m.notes.insert(0, _alpha_note(alpha_paths, upscaled=m.image_shape[-1] > decoded.tensor.shape[-1],
                                      extended=m.matte is not None))
        common.note(f"{item.name}: {m.notes[0]}", quiet)
        m.alpha = None if alpha_paths is None else m.alpha
    m.notes, m.bit_depth, m.icc_profile = [*decoded.notes, *m.notes], decoded.bit_depth, decoded.icc_profile
    m.exif, m.xmp, m.lossless_webp = decoded.exif, decoded.xmp, decoded.lossless_webp
    if decoded.dpi:  # the same print size: an sr output has factor x the pixels per inch
        (h, w), (out_h, out_w) = decoded.tensor.shape[-2:], m.image_shape[-2:]
        m.dpi = (decoded.dpi[0] * out_w / w, decoded.dpi[1] * out_h / h)
    return m


def _alpha_note(paths: dict[str, str] | None, upscaled: bool = False, extended: bool = False) -> str:
    """What happens to a transparent input's alpha channel: restored composited on white (`extended`: restored
    extended under its transparency, then composited on white: blurs, super-resolution), the alpha carried to the
    outputs of `paths` ({path: format}) whose formats hold one (`images.ALPHA_FORMATS`; a GIF's clear colour,
    `images.CLEAR_FORMATS`; None: --flatten, to none);
    `upscaled`: the output is larger than the input (sr)."""
    from ncvsd_cli import images

    how = " (upscaled bicubically)" if upscaled else ""
    restored = ("restored extended under its transparency (its outline is no edge of the photo), composited on white"
                if extended else "restored composited on white")
    if paths is None:
        return f"{restored if extended else images.ALPHA_NOTE} (--flatten: the outputs have no alpha channel)"
    lost = ["stdout" if p == "-" else p for p, fmt in paths.items()
            if fmt not in (*images.ALPHA_FORMATS, *images.CLEAR_FORMATS)]
    clear = [p for p, fmt in paths.items() if fmt in images.CLEAR_FORMATS]
    how += (f" ({', '.join(map(str, clear))}: a GIF's one clear colour where under half opaque, no partial "
            "transparency)") if clear else ""
    if not lost:
        return f"{restored}, its alpha channel carried to the outputs{how}"
    return (f"{images.ALPHA_NOTE}: {', '.join(map(str, lost))} {'has' if len(lost) == 1 else 'have'} no alpha channel "
            f"({images.suffix_choice(images.ALPHA_FORMATS)} keeps it; --flatten says you want none)")


def _write(res, paths: list[str], outputs: Outputs, m, method: str,
           made_with: tuple[tuple[str, str], ...] = ()) -> tuple[list[str], dict[str, float]]:
    """Write the outputs of one result all-or-nothing (`images.atomic_write_all`: an interruption leaves none of
    them, so --skip-existing sees the input as not done; no-clobber unless --overwrite; samples and mean with the
    source's bit depth, 8 or 16, ICC profile and alpha channel, and labelled as made by `method` with the settings
    `made_with` and which sample it is, `xmp.labelled`); return the paths and, with --std, the heat map's scale."""
    from ncvsd_cli import images, xmp
    from ncvsd_cli import measurement as meas
    from ncvsd_cli.sampling.methods import source_type
    from ncvsd_cli.uncertainty import std_map_png

    k = res.samples.shape[0]
    which = [f"{i + 1} of {k}" for i in range(k)] + [f"mean of {k}"] * outputs.mean
    labels = [xmp.labelled(None if outputs.strip_metadata else m.xmp, source_type(method),  # (--strip-metadata:
                           (*made_with, ("Sample", w)) if k > 1 else made_with) for w in which]  # the label only)

    tensors = [res.samples[i : i + 1] for i in range(k)]
    if outputs.mean:
        tensors.append(res.mean())
    images_kept = len(tensors)
    if outputs.std:
        tensors.append(res.std_image())
        clipped = float((tensors[-1] >= 1).float().mean())  # std x STD_SCALE above 1: those values read 0.25
        if clipped:
            common.note(f"warning: {paths[len(tensors) - 1]}: {clipped:.2%} of its values saturate (a std of 0.25 or "
                        "more on the [0, 1] scale); the heat map and --json's std_max show their size")
    bits = 16 if m.bit_depth > 8 else 8
    formats = [_out_format(p, outputs) for p in paths]
    kept_formats = dict(zip(paths[:images_kept], formats))
    fewer = [f"{'stdout' if p == '-' else p} with {images.DEEP_BITS.get(f, 8)}" for p, f in kept_formats.items()
             if bits == 16 and images.DEEP_BITS.get(f, 8) < min(m.bit_depth, 16)]  # (a float input: 16 at most)
    gifs = [str(p) for p, f in kept_formats.items() if f == "GIF"]  # Pillow quantises to an adaptive palette
    bits_note = (f"the input has {m.bit_depth} bits per sample; written {', '.join(fewer)} (a .png or .tif "
                 "output keeps 16)")
    gif_note = (f"{', '.join(gifs)}: a GIF holds 256 colours, so the restoration is written reduced to a palette "
                "(a .png output keeps every colour)")
    for said, note in ((fewer, bits_note), (gifs, gif_note)):
        if said:  # less than the input holds: said even with --quiet
            m.notes = [*m.notes, note]
            common.note(f"warning: {note}")
    alpha = None if m.alpha is None else meas.output_alpha(m.alpha, m.operator())
    files = []
    for i, (t, p, fmt) in enumerate(zip(tensors, paths, formats)):
        kept = i < images_kept  # the std image holds values, not colours
        files.append((p, images.encode_image(t, fmt, bit_depth=bits if kept else 16,  # std values: 16 bits
                                             icc_profile=m.icc_profile if kept else None,
                                             alpha=alpha if kept else None,
                                             exif=m.exif if kept and not outputs.strip_metadata else None,
                                             xmp=labels[i] if kept else None,
                                             dpi=m.dpi if kept else None, lossless=m.lossless_webp)))
    scale = {}
    if outputs.std:
        data, scale = std_map_png(res.aligned())
        files.append((paths[-1], data))
    if [p for p, _ in files] == ["-"]:
        images.write_stdout(files[0][1])
    else:
        images.atomic_write_all(files, overwrite=outputs.overwrite)
    return paths, scale


def register(app: typer.Typer) -> None:
    """Add `ncvsd restore` to the app."""
    app.command(name="restore", epilog=common.epilog(EPILOG), no_args_is_help=True)(restore_command)
