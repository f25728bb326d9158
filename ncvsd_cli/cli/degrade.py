"""`ncvsd degrade`: apply an operator plus noise to clean images and write restorable measurements.

Behaviour lives in `ncvsd_cli.measurement` (degrade, save_measurement) and `ncvsd_cli.images`; this module parses
and prints. No torch at import time.
"""

from __future__ import annotations

import math
import re

import typer

from ncvsd_cli.cli import common, completion

EPILOG = """Examples:

  ncvsd degrade --task sr4 clean.png -o measured.png

  ncvsd degrade --task deblur-motion --seed 3 --sigma-y 0.02 photos/ -o measured/

  ncvsd degrade --task deblur-gauss photos/ -o measured/ --sigma-y 0.02 -p boundary=reflect

  ncvsd degrade --task inpaint-box --param box_size=64 clean.png

  ncvsd degrade --task inpaint-mask --param mask=mask.png clean.png -o holes.png

  cat clean.png | ncvsd degrade --task denoise - > noisy.png

Writes OUT (a viewable 8-bit PNG: the small image for sr*, the masked image for inpainting, log|y| from its
median to its 99.9th percentile for phase retrieval) and beside it OUT.ncvsd.json + OUT.ncvsd.safetensors: the operator config (kernel, mask,
seeds), sigma_y and the unclipped float measurement, so that `ncvsd restore OUT` restores exactly this
measurement. Each image's noise is drawn from its own stream (measurement, --seed, hash of the image): inputs
of one call get independent noise, the same image the same noise; `ncvsd restore --seed` never draws from these
streams, so the same seed on both sides is fine. Random masks and motion kernels follow --seed (not the image), unless -p seed=N
sets theirs. The
source's ICC profile is kept in the preview and the sidecar, its bit depth in the sidecar (restorations of 16-bit
sources are written as 16-bit PNG); its EXIF, XMP and dpi are not (a test measurement carries no camera data).

Default OUT: <stem>_<task>_measured.png beside the input; existing files are never replaced without --overwrite.

Exit codes: 0 ok, 1 some inputs failed, 2 usage, 130 / 143 / 129 interrupted (no partial or temporary file)."""


#: The paper's phase-retrieval oversample: the canvas twice the image's size per side, the least at which the Fourier
#: magnitudes fix the image's autocorrelation (Hayes 1982); below it restorations are worse.
PAPER_OVERSAMPLE = 4.0


def _warn_low_oversample(task: str, params: dict) -> None:
    """A warning (printed with --quiet too) for phase retrieval with less oversampling than the paper's 4."""
    try:
        oversample = float(params.get("oversample", PAPER_OVERSAMPLE)) if task == "phase-retrieval" else None
    except (TypeError, ValueError):
        return  # refused by the operator, with its own message
    if oversample is not None and 0 <= oversample < PAPER_OVERSAMPLE:
        common.note(f"warning: -p oversample={oversample:g} pads the image less than the paper's {PAPER_OVERSAMPLE:g} "
                    "(a canvas twice its size per side): the Fourier magnitudes then no longer determine the "
                    "image's autocorrelation, and restorations are much worse (SciPy's raccoon at 64 px, default "
                    "restore, seeds 0-2: mean PSNR 12.8 dB with no padding, oversample 0, and 17.7 dB at 4)")


def degrade_command(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT", help="Clean images: files, directories, quoted globs (the subfolders they "
        "match are kept below -o DIR), or - for stdin."
    ),
    task: str = typer.Option(
        ...,
        "--task",
        "-t",
        autocompletion=completion.task,
        help="Operator: sr2, sr4, sr8, deblur-gauss, deblur-defocus, deblur-motion, deblur-kernel, inpaint-box, "
             "inpaint-random, inpaint-mask, denoise, phase-retrieval (or a plugin's).",
    ),
    out: str | None = typer.Option(
        None, "--output", "-o", callback=common.expand_home, help="Output image (.png; .jpg, .webp, .avif, .heic, .tif, .bmp, .gif also: the preview "
                                   "only, the sidecar keeps the exact measurement), directory (a name without a "
                                   "suffix is one), or - for stdout (preview only, no sidecar)."
    ),
    sigma_y: float = typer.Option(
        0.05, "--sigma-y", min=0.0, show_default=True,
        help="Measurement noise std on the [-1, 1] image scale (phase-retrieval: on its Fourier amplitudes, those "
             "of the [0, 1] image).",
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, show_default=True, callback=common.seed_option,
        help="Seed of the noise (and of random masks / motion kernels).",
    ),
    param: list[str] | None = typer.Option(
        None, "--param", "-p", help=common.PARAM_HELP
    ),
    channels: int = typer.Option(
        3,
        "--channels",
        help="1 or 3: colour policy of the decoded input (greyscale is replicated to 3).",
        show_default=True,
    ),
    max_pixels: int = typer.Option(
        2048 * 2048, "--max-pixels", min=1, help="Refuse inputs with more pixels than this.", show_default=True
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help=common.SKIP_HELP),
    as_json: bool = typer.Option(False, "--json", help=common.JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or notes on stderr (warnings still print)."),
) -> None:
    """Measure clean images with an operator plus Gaussian noise (y = A(x) + sigma_y n).

    Writes the measurement's preview PNG and a sidecar (.ncvsd.json + .ncvsd.safetensors) that `ncvsd restore`
    reads back exactly. Blurs wrap around the image's edges by default (the paper's circular model: a bright
    object at one edge shows as a faint band at the opposite one); -p boundary=reflect blurs as a camera does.
    """
    with common.handle_errors(json_command="degrade" if as_json else None, inputs=inputs or []):
        import operators
        from ncvsd_cli import images
        from ncvsd_cli.errors import debugging, described
        from ncvsd_cli.measurement import (
            PLAIN_IMAGE_REFUSALS,
            degrade,
            find_sidecar,
            save_measurement,
            sidecar_paths,
        )
        from ncvsd_cli.restore import WARNING_NOTES

        operators.get(task)  # unknown task: usage error, before any input is read
        if overwrite and skip_existing:
            raise common.UsageError("--overwrite and --skip-existing contradict each other: give one of them")
        if channels not in (1, 3):
            raise common.UsageError(f"--channels must be 1 or 3, got {channels}")
        if not (math.isfinite(sigma_y) and sigma_y >= 0):
            raise common.UsageError(f"--sigma-y must be >= 0 and finite, got {sigma_y}")
        common.warn_large_sigma(sigma_y)
        params = common.parse_params(param)
        _warn_low_oversample(task, params)
        needed = PLAIN_IMAGE_REFUSALS.get(task, (frozenset(), ""))[0]
        if needed and "seed" not in needed and not needed & params.keys():  # before any input is read
            name = min(needed)
            raise common.UsageError(f"--task {task} measures with your own {name}: give it as -p {name}=FILE "
                                    f"(an image{' or .npy' if name == 'kernel' else ', white = kept'})")
        tag = f"{task}_measured"
        pattern = re.compile(rf"_{re.escape(tag)}$")
        items, missing = common.expand_inputs(inputs, skip=lambda p: bool(pattern.search(p.stem)), quiet=quiet,
                                               out=out, params=params)
        mode = common.output_mode(out, items)
        report = common.Report("degrade", extra={"task": task, "sigma_y": sigma_y, "seed": seed}, json_lines=as_json)
        with report.summary_on_interrupt(as_json):
            for spec, message in missing:
                report.failed(spec, message)
            planned = {}
            for item in items:
                main = common.output_path(item, out, mode, tag)
                planned[item] = [main, *map(str, sidecar_paths(main))] if main != "-" else ["-"]
            report.inputs = [item.name for item in items]  # (an interruption's summary names those not done)
            common.check_stdout(planned, as_json)
            planned = common.leave_out_own_outputs(  # a measurement has its sidecar; a user's photo so named not
                planned, report, quiet, lambda p: bool(pattern.search(p.stem)) and find_sidecar(p) is not None)
            items = [i for i in items if i in planned]
            if skip_existing:
                planned = common.skip_earlier_outputs(planned, report, quiet, lambda p: bool(pattern.search(p.stem)))
                planned = common.skip_finished(planned, report, quiet)
                items = [i for i in items if i in planned]
            problems = common.check_outputs(planned, items, overwrite, skip_existing)
            if params:
                _check_params(task, channels, params, [i for i in items if i not in problems])
            bar = common.progress(len(items), "degrade", quiet)
            for item in items:
                if item in problems:
                    report.failed(item.name, problems[item])
                    bar.update(1)
                    continue
                try:
                    decoded = images.read_image(
                        "-" if item.is_stdin else item.path, channels, max_pixels=max_pixels, name=item.name
                    )
                    common.notes_of(item.name, decoded.notes, quiet, images.UNTAGGED_COLOUR)  # (as restore)
                    m = degrade(
                        decoded.tensor,
                        task,
                        sigma_y=sigma_y,
                        seed=seed,
                        params=params,
                        source=item.name,
                        grey=decoded.grey,
                        bit_depth=decoded.bit_depth,
                        icc_profile=decoded.icc_profile,
                    )
                    said = _operator_notes(task, params, m)
                    common.notes_of(item.name, said, quiet, WARNING_NOTES)
                    main = planned[item][0]
                    if main == "-":
                        common.note("writing the preview to stdout; no sidecar is written", quiet)
                    written = save_measurement(m, main, overwrite=overwrite)
                    if main != "-" and images.format_for_path(main) in (*images.OUTPUT_QUALITY, "GIF"):  # lossy
                        common.note(f"{main}: a lossy preview; restore reads the exact measurement from its sidecar",
                                    quiet)
                except (ValueError, OSError) as exc:
                    if not common.written_meanwhile(exc, item, planned[item], report, skip_existing, quiet):
                        report.failed(
                            item.name, str(exc) if str(exc).startswith(item.name) else f"{item.name}: {exc}"
                        )
                except Exception as exc:  # a plug-in operator's error of any type: this input's problem only
                    if debugging():
                        raise
                    report.failed(item.name, f"{item.name}: {described(exc)}")
                else:
                    report.ok(
                        item.name,
                        written,
                        image_shape=[1 if m.grey else m.image_shape[0], *m.image_shape[1:]],  # as the files hold
                        measurement_shape=[1 if m.grey else m.y.shape[1], *m.y.shape[2:]],
                        notes=[*decoded.notes, *said],
                    )
                bar.update(1)
            bar.close()
        report.finish(as_json, quiet)


def _operator_notes(task: str, params: dict, m) -> list[str]:
    """What restore would say of the user's operator, said when it is made: inpaint-mask, the notes on the mask
    (`restore.mask_notes`: nothing to fill, most of the picture missing, grey levels); a blur with -p kernel, the
    notes on the kernel file (`restore.kernel_file_notes`: its sum with normalize=false, negative taps, an even
    side, a black level). ValueError for a mask (a box, a random one) that keeps no pixel, which no restoration can
    use (restore refuses such a sidecar)."""
    from ncvsd_cli.restore import kernel_file_notes, refuse_empty_mask, user_mask_notes

    if task == "inpaint-mask":
        return user_mask_notes(m, params)
    refuse_empty_mask(m)
    if task in ("deblur-kernel", "deblur-motion") and "kernel" in params:
        return kernel_file_notes(params["kernel"], params.get("normalize", True))
    return []


def _check_params(task: str, channels: int, params: dict, items: list) -> None:
    """The --param values against the readable inputs' header sizes (`common.check_params_on_inputs`): a bad
    parameter is a usage error before any input is processed, and before any allocation it would cause."""
    from ncvsd_cli.measurement import check_operator_params

    common.check_params_on_inputs([i for i in items if not i.is_stdin],
                                  lambda h, w: check_operator_params(task, (channels, h, w), params), "--param")


def register(app: typer.Typer) -> None:
    """Add `ncvsd degrade` to the app."""
    app.command(name="degrade", epilog=common.epilog(EPILOG), no_args_is_help=True)(degrade_command)
