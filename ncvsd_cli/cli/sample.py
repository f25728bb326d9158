"""`ncvsd sample`: unconditional / class-conditional samples from the generator, or from the teacher by EDM's Heun
sampler (behaviour in `ncvsd_cli.sampling.generate.sample_batches`). No torch at import."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import typer

from ncvsd_cli.cli import common

EPILOG = """Examples:

  ncvsd sample --nfe 1 --seeds 0-15 -o grid.png

  ncvsd sample --nfe 4 --seeds 0-63,100 -o samples/          (one PNG per seed: samples/000000.png, ...)

  ncvsd sample --checkpoint my-generator.safetensors --class-label 3 --seeds 0-7 -o cls3.png   (a class-conditional generator; the shipped one is not)

  ncvsd sample --teacher --seeds 0-15 -o teacher.png        (the teacher's prior: 32 Heun steps, 63 calls)

-o ending in an image suffix (.png, .jpg) writes one grid; a name without a suffix or ending in / is a directory of
<seed:06d>.png (a folder with a dot in its name: -o run.v2/).

--nfe 1, 2, 4 use the paper's ts = [10,39], [10,22,39], [0,10,20,30,39] (docs/method.md §2.7); --ts sets indices into
the 40-point grid directly (--nfe, if given too, must be its length - 1). --teacher samples the teacher D(x, sigma) instead (the shipped one, or -c a teacher
checkpoint or training run): EDM's deterministic Heun sampler from sigma 80 to 0, --nfe = 2N - 1 calls for N steps
(odd; default 63), not an NCVSD method; with a generator that is a teacher copy, as the shipped default is, it
shows what the prior learnt, which the generator's few steps blur (docs/method.md §2.8). A sample depends only
on its seed (0 <= seed < 2^63); with --batch-size 1 the bytes do not depend on the other seeds, a larger batch
changes the network's float rounding (a few pixels by a level).
Outputs are never replaced without --overwrite, also when another process creates them meanwhile (a seed whose
PNG exists fails, exit 1, and the others are made); --skip-existing samples only the seeds whose PNG is missing in
-o DIR/ (rerun an interrupted run with the same options).

Exit codes: 0 ok, 1 some outputs failed, 2 usage error, 3 checkpoint missing or corrupt (or NaN weights),
130 / 143 / 129 interrupted (with -o DIR/ the samples finished so far are kept; a grid is written only once
every sample is drawn; no partial or temporary file)."""


#: Fewer teacher calls give noise: 3 calls left 99 % of the builtin teacher's pixels at 0 or 255, 7 calls 40 %,
#: 9 calls 28 %, 13 calls 21 % as 21 calls (8 seeds, 64 px); Heun's last correction then divides by a tiny sigma.
TEACHER_MIN_NFE = 13


def sample_command(
    out: str = typer.Option(
        "samples", "--output", "-o", callback=common.expand_home, help="Grid image (e.g. grid.png) or output directory.", show_default=True
    ),
    nfe: int | None = typer.Option(
        None, "--nfe", help="Denoiser calls per sample (default 1; 1, 2, 4 use the paper's ts). With --teacher: "
        "teacher calls, odd (2N - 1 for N Heun steps; default 63)."
    ),
    seeds: str = typer.Option("0-15", "--seeds", help="Seeds, e.g. 0-15,20.", show_default=True),
    ts: str | None = typer.Option(None, "--ts", help="Explicit ts indices, e.g. 10,22,39 (instead of --nfe; with "
                                  "it, --nfe must be its length - 1)."),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", "-c", help="Generator checkpoint, or a distill run folder (its newest snapshot; "
        "default: the shipped default); with --teacher a teacher checkpoint or training run."
    ),
    teacher: bool = typer.Option(
        False, "--teacher", help="Sample the teacher D(x, sigma) with EDM's Heun sampler instead of the generator "
        "(slower: 63 calls by default; the prior's own samples)."
    ),
    class_label: int | None = typer.Option(
        None, "--class-label", help="Class for conditional checkpoints (default: random per seed)."
    ),
    resolution: int | None = typer.Option(
        None, "--resolution", min=1, help="Sample size in pixels (default: the model's)."
    ),
    batch_size: int = typer.Option(
        8, "--batch-size", "-b", help="Samples per network call.", show_default=True
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.", show_default=True),
    precision: str = typer.Option(
        "auto", "--precision", metavar="auto|fp32|bf16", show_default=True,
        help="Network precision. auto: bfloat16 on CPUs with native bfloat16 (AMX / AVX512-BF16), else float32"
             " (--teacher: float32 off CUDA). On CUDA, auto: the checkpoint's own (half precision where its config"
             " sets use_fp16).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="With -o DIR/: skip the seeds whose PNG exists (status \"skipped\", exit 0): "
        "rerun an interrupted run to sample only the rest."),
    as_json: bool = typer.Option(False, "--json", help=common.SAMPLE_JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar on stderr."),
) -> None:
    """Draw samples from the generator in 1-31 steps (1, 2, 4: the paper's ts), or from the teacher
    (--teacher), as one grid or one PNG per seed."""
    with common.handle_errors(json_command="sample" if as_json else None):
        from ncvsd_cli import images, xmp
        from ncvsd_cli.checkpoints import default_checkpoint

        seed_list = common.parse_int_list(seeds, "--seeds")
        repeated = sorted(s for s, n in collections.Counter(seed_list).items() if n > 1)
        if repeated:
            seed_list = list(dict.fromkeys(seed_list))
            common.note(f"seeds given more than once, sampled once: {', '.join(map(str, repeated[:10]))}"
                        + (" ..." if len(repeated) > 10 else ""), quiet)
        common.refuse_empty("--ts", ts, "give indices such as 10,22,39, or leave --ts out for --nfe")
        ts_list = common.parse_int_list(ts, "--ts") if ts else None
        kind = "teacher" if teacher else "generator"
        if teacher and ts_list:
            raise common.UsageError("--ts sets the generator's steps; with --teacher give --nfe (odd, e.g. 63)")
        if ts_list and nfe is not None and nfe != len(ts_list) - 1:
            raise common.UsageError(f"--ts {ts} makes {len(ts_list) - 1} denoiser call(s), --nfe says {nfe}: give "
                                    "one of them")
        nfe = nfe if nfe is not None else 63 if teacher else 1
        if teacher:
            from ncvsd_cli.sampling.generate import heun_steps

            try:
                heun_steps(nfe)  # odd: 2N - 1 teacher calls
            except ValueError as exc:
                raise common.UsageError(f"--nfe with --teacher: {exc}") from None
            if nfe < TEACHER_MIN_NFE:
                looks = ("flat patches of colour (one call returns the teacher's mean at sigma 80)" if nfe == 1 else
                         "coloured noise (3 calls) or saturated, over-contrasted texture (5-11)")
                common.note(f"warning: --teacher --nfe {nfe}: {(nfe + 1) // 2} Heun step(s) from sigma 80 are too "
                            f"coarse, the samples come out as {looks} (from {TEACHER_MIN_NFE} calls they settle; "
                            "default 63)")
        if nfe < 1 or batch_size < 1:
            raise common.UsageError(f"--nfe must be >= 1, got {nfe}" if nfe < 1 else
                                    f"--batch-size must be >= 1, got {batch_size}")
        from ncvsd_cli.sampling.generate import MAX_MULTISTEP_NFE

        if not teacher and ts_list is None and nfe > MAX_MULTISTEP_NFE:  # (--ts: its own rule)
            raise common.UsageError(f"--nfe: the generator samples in 1 to {MAX_MULTISTEP_NFE} steps, got {nfe} (the "
                                    "teacher takes more: --teacher --nfe 63)")
        bad = [s for s in seed_list if not 0 <= s < 2**63]
        if bad:
            raise common.UsageError(f"--seeds: {bad[0]} is out of range 0..2^63-1")
        common.refuse_empty("-o", out, "name a grid image, a folder, or - for stdout")
        common.refuse_option_like("-o", out)
        folder = out.endswith(("/", os.sep))  # -o dir.png/ : a folder, as the help says (Path drops the slash)
        grid = out == "-" or (Path(out).suffix.lower() in common.IMAGE_SUFFIXES and not Path(out).is_dir()
                              and not folder)
        if not grid and Path(out).suffix and not Path(out).is_dir() and not folder:
            raise common.UsageError(f"-o {out}: not an image suffix ({', '.join(common.IMAGE_SUFFIXES)}); for a "
                                    f"directory with a dot in its name write -o {out}/")
        if not grid:  # a folder: one usage error for a file in its place, not one failure per seed
            common.writable_dir(out)
        if overwrite and skip_existing:
            raise common.UsageError("--overwrite and --skip-existing contradict each other: give one of them")
        if grid and skip_existing:
            raise common.UsageError("--skip-existing skips seeds whose files exist in -o DIR/; a grid is one "
                                    "picture of all seeds (an existing one may hold other seeds): use -o DIR/")
        if grid and images.format_for_path(out) == "GIF":  # (an unknown suffix: a usage error before any work)
            common.note(f"warning: {out}: a GIF holds 256 colours, so the grid is written reduced to a palette "
                        "(a .png output keeps every colour)")  # as restore says it, even with --quiet
        planned = ({common.InputItem("grid"): [out]} if grid else
                   {common.InputItem(f"seed {s}"): [str(Path(out) / f"{s:06d}.png")] for s in seed_list})
        common.check_stdout(planned, as_json)
        common.refuse_empty("--checkpoint", checkpoint, "name a checkpoint, or leave it out for the default")
        checkpoint = checkpoint or default_checkpoint(kind)
        if Path(checkpoint).expanduser().is_dir():  # a run folder: its snapshot, named once (and in --json)
            from ncvsd_cli.checkpoints import CheckpointError, resolve_checkpoint

            try:
                checkpoint = str(resolve_checkpoint(checkpoint, kind=kind, quiet=quiet))
            except CheckpointError as exc:
                if kind == "generator" and "run of a teacher" in str(exc):
                    raise CheckpointError(f"{exc}, or sample the teacher itself with --teacher") from None
                raise
        report = common.Report("sample", extra={"nfe": len(ts_list) - 1 if ts_list else nfe, "seeds": seed_list,
                                                "checkpoint": checkpoint, "sampler": "heun" if teacher else "ts",
                                                **({} if teacher else {"ts": ts_list or _default_ts(nfe)})},
                               json_lines=as_json, inputs=[item.name for item in planned])
        with report.summary_on_interrupt(as_json):
            if skip_existing:
                planned = common.skip_finished(planned, report, quiet, noun="seed(s)")
                left = {item.name for item in planned}
                seed_list = [s for s in seed_list if ("grid" if grid else f"seed {s}") in left]
            problems = common.check_outputs(planned, [], overwrite, can_skip=not grid)  # before any work
            for item, message in problems.items():  # an existing or unwritable output fails its seed (exit 1)
                report.failed(item.name, message)
            failed = {item.name for item in problems}
            seed_list = [s for s in seed_list if ("grid" if grid else f"seed {s}") not in failed]
            if not seed_list:  # everything was there already, or no output can be written
                report.finish(as_json, quiet)
                return

            from ncvsd_cli.checkpoints import load_checkpoint
            from ncvsd_cli.sampling.generate import sample_batches, sample_images

            dev = common.parse_device(device)
            from ncvsd_cli.networks.inference import prepare_for_inference, resolve_precision

            work = resolve_precision(precision, dev, kind)  # a usage error before loading (a teacher's: fp32 off CUDA)
            side = _check_memory(checkpoint, min(batch_size, len(seed_list)), resolution,
                                 "fp32" if work == "checkpoint" else work, str(dev), kind)
            problem = grid and images.size_problem(images.format_for_path(out),
                                                   *images.grid_shape(len(seed_list), side, side))
            if problem:
                raise common.UsageError(f"-o {out}: the grid of {len(seed_list)} samples: {problem} (or -o DIR/ "
                                        "for one PNG per seed)")
            report.extra.update(resolution=side, device=str(dev), precision=work)  # what made the samples
            model, config = load_checkpoint(checkpoint, device=dev, kind=kind)
            prepare_for_inference(model, precision, dev, kind)  # (the precision `work` names)
            bar = common.progress(len(seed_list), "sample", quiet)
            made_with = (("Sampler", "heun" if teacher else "ts"), ("NFE", str(report.extra["nfe"])),
                         *(() if teacher else (("Ts", ",".join(map(str, report.extra["ts"] or []))),)),
                         *((("ClassLabel", str(class_label)),) if class_label is not None else ()),
                         ("Model", Path(checkpoint).name), ("Resolution", str(side)),
                         ("Precision", str(work)))  # (+ each one's seed: `xmp.labelled`)
            kwargs = {"nfe": nfe, "ts": ts_list, "class_label": class_label, "batch_size": batch_size,
                      "resolution": resolution, "device": dev, "on_batch": bar.update, "teacher": teacher,
                      "on_step": bar.step if teacher else None}
            try:
                if grid:
                    x = sample_images(model, config, seed_list, **kwargs)  # NaN/inf: exit 1, no grid written
                else:  # each batch is written as it comes: an interruption keeps the samples finished so far
                    for chunk, x in sample_batches(model, config, seed_list, **kwargs):
                        for s, xi in zip(chunk, x):
                            _write_sample(xi, str(Path(out) / f"{s:06d}.png"), s, overwrite, report,
                                          skip_existing, quiet, made_with)
            finally:
                bar.close()
            if grid:
                sheet = images.make_grid(x)
                try:
                    label = xmp.labelled(None, xmp.GENERATED, (*made_with, ("Seeds", common.format_int_list(seed_list))))
                    images.save_image(sheet, out, overwrite=overwrite, xmp=label)
                except OSError as exc:
                    report.failed("grid", f"cannot write {out}: {exc}")
                else:  # the grid's size (each sample's is --resolution)
                    report.ok("grid", [out], size=list(sheet.shape[-2:]))
            report.finish(as_json, quiet)


def _default_ts(nfe: int) -> list[int] | None:
    """The ts indices `--nfe` stands for (the paper's for 1, 2, 4); None where the sampler's rule is not a list."""
    from ncvsd_cli.sampling.generate import default_ts

    try:
        return [int(t) for t in default_ts(nfe)]
    except (TypeError, ValueError):
        return None


def _check_memory(checkpoint: str, batch: int, resolution: int | None, precision: str, device: str,
                  kind: str = "generator") -> int:
    """The samples' side in px; UsageError when a network call on `batch` samples of `resolution` px would not fit
    in the memory available now (`ncvsd_cli.memory`: from the checkpoint's config, before the weights load)."""
    from ncvsd_cli import memory
    from ncvsd_cli.checkpoints import read_network_config, resolve_checkpoint

    config = read_network_config(resolve_checkpoint(checkpoint, kind=kind, quiet=True))
    res = int(resolution or config.get("img_resolution", 64))
    need = memory.work_bytes(memory.network_shape(config), (batch, int(config.get("img_channels", 3)), res, res),
                             precision=precision, device=device)
    available = memory.available_memory_bytes(device)
    if available is not None and need > available:
        raise common.UsageError(f"{batch} sample(s) of {res}x{res} px need an estimated {memory.format_bytes(need)} "
                                f"but {memory.format_bytes(available)} is available; use a smaller --resolution or "
                                "--batch-size")
    return res


def _write_sample(x, path: str, seed: int, overwrite: bool, report, skip_existing: bool = False,
                  quiet: bool = False, made_with: tuple[tuple[str, str], ...] = ()) -> None:
    """Write one sample (C, H, W), labelled with the settings `made_with` and its seed (`xmp.labelled`), and record
    it in `report` (a failure is that seed's only; with --skip-existing, a file another process wrote meanwhile
    makes it "skipped", `common.written_meanwhile`)."""
    from ncvsd_cli import images, xmp
    from operators.base import all_finite

    if not all_finite(x):
        report.failed(f"seed {seed}", f"seed {seed}: the network produced NaN/inf values; {path} not written")
        return
    try:
        images.save_image(x[None], path, overwrite=overwrite,
                          xmp=xmp.labelled(None, xmp.GENERATED, (*made_with, ("Seed", str(seed)))))
    except (ValueError, OSError) as exc:
        item = common.InputItem(f"seed {seed}", None)
        if not common.written_meanwhile(exc, item, [path], report, skip_existing, quiet):
            report.failed(f"seed {seed}", f"seed {seed}: cannot write {path}: {exc}")
    else:
        report.ok(f"seed {seed}", [path], size=list(x.shape[-2:]))


def register(app: typer.Typer) -> None:
    """Add `ncvsd sample` to the app."""
    app.command(name="sample", epilog=common.epilog(EPILOG))(sample_command)
