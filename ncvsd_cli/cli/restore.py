"""`ncvsd restore`: posterior sampling for degraded images (behaviour in `ncvsd_cli.restore`)."""

from __future__ import annotations

import re
from typing import Any

import typer

from ncvsd_cli.cli import common

EPILOG = """Examples:

  ncvsd restore --task sr4 small.png                      (writes small_sr4.png, 4x larger)

  ncvsd restore measured.png                              (a file from `ncvsd degrade`: task, kernel, mask and
                                                           the float measurement come from its sidecar)

  ncvsd restore --task deblur-gauss blurry/ -o restored/ --nfe 8 --batch-size 4 --json

  ncvsd restore --task inpaint-box photo.png --samples 8 --mean --std -o out/

  cat noisy.png | ncvsd restore --task denoise - > clean.png

Inputs of any size are padded to what the network needs and cropped back. Greyscale inputs are restored in
colour space (replicated) and written as greyscale; alpha is composited on white; 16-bit inputs keep 16-bit
precision. Outputs: <stem>_<task>.png beside each input (stdout for -), or in -o DIR as <stem>.png; with
--samples K the samples are <name>_s0..s<K-1>.png, plus <name>_mean.png and <name>_std.png (std on the [0, 1]
scale x4). The same --seed gives the same output whatever --batch-size. Exit codes: 0 ok, 1 some inputs failed
(the others are written), 2 usage error, 3 checkpoint missing or corrupt, 130 interrupted (no partial file is
left)."""


def restore_command(
    inputs: list[str] | None = typer.Argument(
        None, metavar="[INPUT]...", help="Degraded images: files, directories, globs, or - for stdin."
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        "-t",
        help="Operator name (sr4, deblur-gauss, inpaint-box, ...); optional for inputs with a sidecar.",
    ),
    out: str | None = typer.Option(None, "--output", "-o", help="Output file, directory, or - for stdout."),
    nfe: int | None = typer.Option(
        None, "--nfe", help="Network evaluations (default: the task preset's: 10 for pnp-gd-warm, 3 for its box "
                            "and mask inpainting, 4 for random inpainting; 1 for denoiser; 49 for pnp-gd). "
                            "pnp-gd below 49 switches to a few-step schedule (sigma_max 10, rho 7); 1 cannot use "
                            "the measurement there, use >= 2.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed; sample k of every image uses seed + k.", show_default=True
    ),
    samples: int = typer.Option(1, "--samples", "-k", help="Posterior samples per image.", show_default=True),
    mean: bool = typer.Option(False, "--mean", help="Also write the mean of the samples."),
    std: bool = typer.Option(
        False, "--std", help="Also write the per-pixel std of the samples (needs --samples >= 2)."
    ),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint name or path (default: the shipped default)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.", show_default=True),
    precision: str = typer.Option(
        "auto", "--precision", metavar="auto|fp32|bf16", show_default=True,
        help="Network precision. auto: the generator in bfloat16 on CPUs with native bfloat16 (AMX / "
             "AVX512-BF16: restores ~1.7x faster, same quality), else float32; the teacher (dps/daps) in float32.",
    ),
    batch_size: int = typer.Option(
        1, "--batch-size", "-b", help="Images (x samples) per network call.", show_default=True
    ),
    sigma_y: float | None = typer.Option(
        None, "--sigma-y", help="Measurement noise std on the [-1, 1] scale (default: preset / sidecar)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="YAML file overriding the task preset (beta, steps, ema, warm_start, ...)."
    ),
    measurement: list[str] | None = typer.Option(
        None,
        "--measurement",
        "-m",
        help="Sidecar (X.png.ncvsd.json or X.png) written by `ncvsd degrade` (repeatable).",
    ),
    method: str | None = typer.Option(
        None, "--method", help="Sampler (default: the task preset's: pnp-gd-warm; pnp-gd for phase retrieval; "
                               "denoiser for denoise): pnp-gd (the paper's start from noise), pnp-gd-warm (start "
                               "from the classical estimate), denoiser (G(y, sigma_y) alone; denoise only), dps, "
                               "daps, or a classical baseline."
    ),
    param: list[str] | None = typer.Option(
        None, "--param", "-p", help="Operator parameter key=value (repeatable)."
    ),
    class_label: int | None = typer.Option(
        None, "--class-label", help="Class for class-conditional checkpoints (default 0)."
    ),
    no_sidecar: bool = typer.Option(
        False, "--no-sidecar", help="Ignore X.png.ncvsd.json beside an input; treat X.png as the measurement."
    ),
    max_pixels: int = typer.Option(
        2048 * 2048,
        "--max-pixels",
        help="Refuse outputs with more pixels than this, before any work.",
        show_default=True,
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or notes on stderr."),
) -> None:
    """Restore degraded images by posterior sampling with the distilled generative denoiser (PnP-GD)."""
    with common.handle_errors():
        _run(**locals())


def _validate(
    samples: int, batch_size: int, std: bool, nfe: int | None, max_pixels: int, out, as_json, precision: str
) -> None:
    if samples < 1:
        raise common.UsageError(f"--samples must be >= 1, got {samples}")
    if batch_size < 1:
        raise common.UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if std and samples < 2:
        raise common.UsageError("--std needs --samples >= 2")
    if nfe is not None and nfe < 1:
        raise common.UsageError(f"--nfe must be >= 1, got {nfe}")
    if max_pixels < 1:
        raise common.UsageError(f"--max-pixels must be >= 1, got {max_pixels}")
    if out == "-" and as_json:
        raise common.UsageError("--json and -o - both use stdout; choose one")
    from ncvsd_cli.networks.inference import PRECISIONS

    if precision not in PRECISIONS:
        raise common.UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _run(
    inputs,
    task,
    out,
    nfe,
    seed,
    samples,
    mean,
    std,
    checkpoint,
    device,
    precision,
    batch_size,
    sigma_y,
    preset,
    measurement,
    method,
    param,
    class_label,
    no_sidecar,
    max_pixels,
    overwrite,
    as_json,
    quiet,
) -> None:
    from ncvsd_cli import restore as lib

    _validate(samples, batch_size, std, nfe, max_pixels, out, as_json, precision)
    specs = list(inputs or []) + list(measurement or [])
    explicit_sidecars = set(measurement or [])
    if task is None:  # the task comes from the sidecars
        first = next((s for s in specs if s != "-" and lib.find_sidecar(s) is not None), None)
        if first is None:
            raise common.UsageError("--task is required for inputs without a measurement sidecar")
        task = lib.sidecar_task(first)
    params = common.parse_params(param)
    from ncvsd_cli.sampling.presets import load_task_preset

    base = load_task_preset(task, preset_file=preset)  # unknown task / bad preset file: usage error now
    method = method or base.get("method", "pnp-gd")
    tag = task
    pattern = re.compile(rf"_{re.escape(tag)}(_s\d+|_mean|_std)?$")
    skip = (lambda p: bool(pattern.search(p.stem))) if out is None else None  # our own earlier outputs
    items, missing = common.expand_inputs(specs, skip=skip)
    mode = common.output_mode(out, items)
    report = common.Report(
        "restore", extra={"task": task, "method": method, "seed": seed, "samples": samples}
    )
    for spec, message in missing:
        report.failed(spec, message)

    planned: dict[Any, list[str]] = {}
    for item in items:
        named = item  # a .ncvsd.json given directly is named after its preview image
        if item.path is not None and item.path.name.endswith(lib.SIDECAR_SUFFIX):
            stem = item.path.name[: -len(lib.SIDECAR_SUFFIX)].rsplit(".", 1)[0]
            named = common.InputItem(item.name, item.path.with_name(stem + ".png"))
        main = common.output_path(named, out, mode, tag)
        paths = [main] if samples == 1 else [common.variant_path(main, f"_s{k}") for k in range(samples)]
        paths += [common.variant_path(main, "_mean")] if mean else []
        paths += [common.variant_path(main, "_std")] if std else []
        planned[item] = paths
    problems = common.check_outputs(planned, items, overwrite)

    # Load the model (exit 3 on checkpoint problems), then read every input (bad ones are reported and
    # skipped).
    dev = common.parse_device(device)
    restorer = (lib.Restorer.from_checkpoint(checkpoint, method=method, device=dev, precision=precision)
                if items else None)
    settings = (
        restorer.settings(task, nfe=nfe, preset_file=preset, sigma_y=sigma_y, params=params) if items else {}
    )
    good: list[tuple[Any, Any]] = []
    for item in items:
        if item in problems:
            report.failed(item.name, problems[item])
            continue
        try:
            m = _measurement(
                lib, item, task, settings, restorer.channels, no_sidecar, explicit_sidecars, max_pixels, quiet
            )
        except (ValueError, OSError) as exc:
            msg = str(exc)
            report.failed(item.name, msg if msg.startswith(item.name) else f"{item.name}: {msg}")
            continue
        good.append((item, m))
    if not good:
        report.finish(as_json)

    # Sidecars record the noise level of their measurement: each group of equal sigma_y runs with it (it is the
    # denoiser's input level and rescales beta); --sigma-y, or no sidecar, keeps `settings`.
    groups: dict[float | None, list[int]] = {}
    for i, (_, m) in enumerate(good):
        recorded = m.sigma_y if sigma_y is None and m.seed is not None else None
        groups.setdefault(None if recorded == settings.get("sigma_y") else recorded, []).append(i)

    def restored():
        for level, idx in groups.items():
            group_settings = settings if level is None else restorer.settings(
                task, nfe=nfe, preset_file=preset, sigma_y=level, params=params)
            for res in restorer.run([good[i][1] for i in idx], group_settings, nfe=nfe, seed=seed, samples=samples,
                                    batch_size=batch_size, class_label=class_label, on_batch=bar.update):
                yield idx[res.index], res

    bar = common.progress(len(good) * samples, f"restore {task}", quiet)
    try:
        for index, res in restored():
            item, m = good[index]
            if res.error:
                report.failed(
                    item.name, res.error if res.error.startswith(item.name) else f"{item.name}: {res.error}"
                )
                continue
            try:
                written = _write(lib, res, planned[item], samples, mean, std)
            except (ValueError, OSError) as exc:
                report.failed(item.name, f"{item.name}: cannot write output: {exc}")
                continue
            report.ok(
                item.name,
                written,
                size=list(res.samples.shape[-2:]),
                nfe=res.nfe,
                operator_evals=res.operator_evals,
                seconds=round(res.seconds, 3),
                notes=m.notes,
                sidecar=m.seed is not None,
            )
    finally:
        bar.close()
    used = {r["nfe"] for r in report.results if isinstance(r, dict) and r.get("nfe") is not None}
    report.extra.update(nfe=used.pop() if len(used) == 1 else (sorted(used) or nfe), device=str(dev),
                        precision=restorer.precision if restorer is not None else None)
    report.finish(as_json)


def _measurement(lib, item, task, settings, channels, no_sidecar, explicit, max_pixels, quiet):
    import operators
    from ncvsd_cli import images

    side = None if item.is_stdin else lib.find_sidecar(item.path)
    if side is not None and (not no_sidecar or str(item.path) in explicit):
        m = lib.load_measurement(side)
        if m.task != task:
            raise ValueError(f"its sidecar is for task {m.task}, not {task}")
        if m.image_shape[1] * m.image_shape[2] > max_pixels:
            raise ValueError(
                f"output {m.image_shape[2]}x{m.image_shape[1]} exceeds --max-pixels {max_pixels}"
            )
        common.note(f"{item.name}: using the measurement sidecar {side.name}", quiet)
        return m
    if str(item.name) in explicit:
        raise ValueError(f"no measurement sidecar {item.name}{lib.SIDECAR_SUFFIX} found")
    data = images.read_source_bytes("-" if item.is_stdin else item.path)[0]
    factor = int(getattr(operators.get(task), "factor", 1) or 1)
    h, w = images.image_size(data)
    if h * w * factor * factor > max_pixels:
        raise ValueError(
            f"a {w}x{h} input gives a {w * factor}x{h * factor} output, more than --max-pixels {max_pixels}"
        )
    decoded = images.read_image(data, channels, name=item.name)
    for n in decoded.notes:
        common.note(f"{item.name}: {n}", quiet)
    m = lib.measurement_from_image(
        decoded.tensor,
        task,
        settings.get("operator"),
        settings.get("sigma_y", 0.05),
        source=item.name,
        grey=decoded.grey,
    )
    m.notes = decoded.notes
    return m


def _write(lib, res, paths: list[str], samples: int, mean: bool, std: bool) -> list[str]:
    from ncvsd_cli import images

    tensors = [res.samples[k : k + 1] for k in range(samples)]
    if mean:
        tensors.append(res.mean())
    if std:
        tensors.append(res.std_image())
    for t, p in zip(tensors, paths):
        images.save_image(t, p)
    return paths


def register(app: typer.Typer) -> None:
    """Add `ncvsd restore` to the app."""
    app.command(name="restore", epilog=EPILOG, no_args_is_help=True)(restore_command)
