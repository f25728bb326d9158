"""`ncvsd train`: train a teacher diffusion model with the EDM2 recipe (runs unchanged under torchrun)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ncvsd_cli import strict_json
from ncvsd_cli.cli.common import (
    EXIT_PARTIAL,
    EXIT_USAGE,
    UsageError,
    epilog,
    exit_code_for,
    expand_home,
    fail,
    given_options,
    handle_errors,
    note,
    seed_option,
)

DURATION_HELP = ("Length: training time of this invocation (30min, 2h; loading and the final snapshot come on top) "
                 "or total images/steps of the run (200kimg, 1Mimg, 64Mi, 500steps; a bare number is kimg; 2m is 2 "
                 "minutes; 2M is refused as ambiguous). --resume without it: the last one given to the "
                 "run.")

#: --arch of `train` (the names of ncvsd_cli.networks.PRESETS, written out: --help does not import torch).
ARCH_HELP = ("Network architecture: builtin64 (the default for a new run: 64 px, CPU or one GPU), photos128, "
             "tiny (16 px, to try things out in seconds), tiny-cond, ffhq256-xs, img64-s, img64-m, img64-l, "
             "img64-xl; on --resume the run's own.")

if TYPE_CHECKING:  # pragma: no cover
    from ncvsd_cli.training.common import RunSettings

HELP = """Train a teacher denoiser (EDM2 loss, lognormal sigma, Adam + EDM2 schedule, power-function EMA).

Writes RUN_DIR/log.jsonl, RUN_DIR/state.pt (atomic; continue with --resume) and
RUN_DIR/snapshots/teacher-<kimg>-<sigma_rel>.safetensors. --resume keeps the run's recipe (RUN_DIR/run.json:
data, batch, lr schedule, duration, ...); an option typed again with another value replaces it from then on. A JSON
summary goes to stdout (on an interruption too: "interrupted", "exit_code", "steps", "state"; on an error: "error",
"exit_code"; an option out of range, such as --lr, refused before any work, gives the error line only); progress goes to
stderr (a bar on a terminal, a status line every 30 s otherwise; --quiet: none). Ctrl-C, SIGTERM or SIGHUP
(a closed terminal) saves the state after the current step and exits 130, 143 or 129; a script's background job
(`ncvsd train ... &`) ignores SIGINT, as shells start it: stop it with `kill PID` (SIGTERM). Disk: state.pt is replaced
(a write needs its size again free), snapshots are all kept; builtin64: state.pt 117 MB, 47 MB per snapshot
pair (one file per EMA length, every --snapshot interval, default 5 min).

Examples:

  ncvsd train --data builtin --arch builtin64 --out runs/teacher --duration 30min

  ncvsd train --out runs/teacher --resume --duration 30min      (the run's own data, lr, batch, ...)

  ncvsd train --data my-photos/ --init-teacher builtin64-teacher --lr 0.004 --rampup-kimg 1 --out runs/ft

  python -m ncvsd_cli.training.photos photos.zip --cache /tmp/photo-packages      (builds the photos set)

  torchrun --nproc_per_node=2 -m ncvsd_cli train --data photos.zip --arch builtin64 --out runs/t --batch 64
  (a run resumes on another number of processes, torchrun's or none: --batch is the global batch, kept, and the
   data goes on from the next image)
"""


def arch_option(arch: str | None, preset: str | None) -> str | None:
    """--arch, or the deprecated --preset alias of train/distill (with a note on stderr). Raises UsageError
    when both are given and differ."""
    if preset is None:
        return arch
    note("deprecated: --preset on train/distill is now --arch and will be removed in the next version "
         "(--preset now names sampler settings on restore/bench)")
    if arch is not None and arch != preset:
        raise UsageError(f"--arch {arch} and --preset {preset} disagree; give --arch only")
    return preset


def with_recipe(settings: RunSettings, required: tuple[str, ...], ctx: typer.Context) -> RunSettings:
    """On --resume, `settings` with the run's recorded recipe (run.json) for every option not typed again;
    typed values that differ override it (a note each, recorded in run.json for later resumes). Raises
    UsageError when an option in `required` is missing for a new run (or a run without a record)."""
    from ncvsd_cli.training.common import resumed_settings

    try:
        settings.check()  # typed values; a resumed run's recorded ones were checked when it started
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    given = given_options(ctx)
    given |= {"arch"} if "preset" in given else set()
    changed = {}
    if settings.resume and not Path(settings.out, "state.pt").is_file():
        from ncvsd_cli.training.loop import RunInUse, folder_in_use, run_outputs

        if folder_in_use(settings.out):  # a run that has not written its first state yet
            raise UsageError(str(RunInUse.of(settings.out)))
        if made := run_outputs(Path(settings.out)):
            raise UsageError(f"--resume: {settings.out} holds a run's outputs ({made}) but no state.pt to continue "
                             "from; start a new run with another --out (--init-teacher / --init-generator "
                             f"{settings.out} start it from the newest snapshot there)")
        raise UsageError(f"--resume: {settings.out} holds no run to continue (no state.pt); leave --resume out to "
                         "start one there")
    if settings.resume and not hasattr(settings, "teacher"):  # `ncvsd train --resume` of a distillation
        from ncvsd_cli.checkpoints import run_snapshots
        from ncvsd_cli.training.common import run_record

        if (str(run_record(settings.out).get("command", "")).startswith("ncvsd distill")
                or any(kind == "generator" for kind, _, _ in run_snapshots(Path(settings.out)))):
            raise UsageError(f"{settings.out} holds an 'ncvsd distill' run (a generator), not a teacher run: continue "
                             f"it with ncvsd distill --resume --out {settings.out}")
    if settings.resume:
        settings, changed = resumed_settings(settings, given)
    missing = [f"--{k.replace('_', '-')}" for k in required if not getattr(settings, k)]
    if missing and settings.resume:
        from ncvsd_cli.checkpoints import run_snapshots
        from ncvsd_cli.training.common import run_record

        command = run_record(settings.out).get("command")
        record = Path(settings.out, "run.json")
        if record.exists() and not run_record(settings.out):
            raise UsageError(f"missing option {', '.join(missing)}: {record} is unreadable (not the JSON object a run "
                             "records); give the run's options again")
        if "--teacher" in missing and any(kind == "teacher" for kind, _, _ in run_snapshots(Path(settings.out))):
            raise UsageError(f"{settings.out} holds an 'ncvsd train' run (a teacher), not a distillation: distil it "
                             f"with ncvsd distill --teacher {settings.out} --out NEW_RUN")
        if not record.exists():  # a lost record: every option of the run must be typed again
            raise UsageError(f"missing option {', '.join(missing)}: {record}, the run's recorded options, is missing; "
                             "give the run's options again (--data, --batch, --lr, ...)")
        raise UsageError(f"missing option {', '.join(missing)}: the run in {settings.out} records none"
                         + (f" (it was started by: {command})" if command else ""))
    if missing:
        raise UsageError(f"missing option {', '.join(missing)} (needed unless --resume finds it in the run's "
                         "run.json)")
    if "seed" in changed:  # the state's random streams are the seed's
        raise UsageError(f"--seed {changed['seed'][1]} differs from the run's seed {changed['seed'][0]}: a run keeps "
                         "its seed; leave --seed out to continue it")
    data = getattr(settings, "data", None)
    if data not in (None, "builtin", "photos"):
        if Path(data).expanduser().exists():  # recorded absolute: a --resume from another folder finds it
            settings = dataclasses.replace(settings, data=str(Path(data).expanduser().absolute()))
        elif settings.resume and "data" not in given:
            where = ("" if Path(data).is_absolute()
                     else f" from {Path.cwd()} (runs started since record an absolute path)")
            raise UsageError(f"--data {data!r} (recorded in {Path(settings.out) / 'run.json'}) is not found{where}: "
                             "give --data again")
    return settings  # other typed changes: noted and recorded once the saved state loads with them (TrainLoop)


def run_training(run, settings, out: str) -> None:
    """Run `run(settings)` (teacher training or distillation; `with_recipe` merged the run's recipe with what was
    typed: every field is given) and print its JSON summary (rank 0 only).

    Exits 130/143 when SIGINT/SIGTERM stopped it (state saved; a second signal stops it at once), after a summary
    that says so ("interrupted": the signal, "exit_code", the steps done and the state file; "state" null when a
    second signal stopped it before the state was saved), 2 for a run directory in the wrong state.
    """
    from ncvsd_cli.training.loop import PeerLost, TrainingAborted, TrainingDiverged, TrainingInterrupted

    main = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints the summary
    fresh = main and not settings.resume and not Path(out).exists()
    try:
        try:
            record = run(settings, given={f.name for f in dataclasses.fields(settings)}
                         if dataclasses.is_dataclass(settings) else None)
        except Exception as exc:
            # a new run that failed at its start (e.g. tiny-cond on unlabelled data): no folder left; a diverged
            # run's log tells what happened; a folder another process made meanwhile (RunInUse, a
            # FileExistsError as every refusal of an occupied folder) is its own
            if fresh and not isinstance(exc, (TrainingDiverged, FileExistsError)):
                _remove_failed_start(Path(out))
            raise
    except (TrainingInterrupted, TrainingAborted, TrainingDiverged, PeerLost) as exc:
        _summary(main, {"out": out, **exc.summary})
        fail(str(exc), exc.exit_code)
    except (FileExistsError, FileNotFoundError) as exc:
        _summary(main, {"out": out, "error": str(exc), "exit_code": EXIT_USAGE})
        fail(str(exc))
    except OSError as exc:  # a snapshot or state that cannot be written (a full disk): one line, exit 1
        where = f": {exc.filename}" if exc.filename else ""
        message = str(exc) if not exc.errno else f"{exc.strerror}{where}"
        _summary(main, {"out": out, "error": message, "exit_code": EXIT_PARTIAL})
        fail(message, EXIT_PARTIAL)
    except Exception as exc:  # refused or failed otherwise (bad data, a state that does not fit): said, then mapped
        _summary(main, {"out": out, "error": str(exc), "exit_code": exit_code_for(exc)})  # as every command's
        raise
    if main:
        typer.echo(strict_json.dumps({"out": out, **record}))


@contextlib.contextmanager
def usage_summary(out: str) -> Iterator[None]:
    """A UsageError raised inside (the run folder in the wrong state for --resume, a changed --seed, ...) also
    gives the JSON summary line, as every other refusal of a run does ("error", "exit_code" 2)."""
    try:
        yield
    except UsageError as exc:
        _summary(os.environ.get("RANK", "0") == "0", {"out": out, "error": str(exc), "exit_code": EXIT_USAGE})
        raise


def _summary(main: bool, record: dict) -> None:
    """The run's JSON summary line on stdout (rank 0 only; nothing when stdout is gone: the error line says it)."""
    if main:
        try:
            typer.echo(strict_json.dumps(record))
        except (OSError, ValueError):
            pass


def _remove_failed_start(out: Path) -> None:
    """Remove the folder a new run made when it failed before its first state or snapshot: only when it holds
    nothing but run.json, log.jsonl, the run lock and empty folders (anything else is left as it is)."""
    from ncvsd_cli.training.loop import LOCK_NAME

    entries = list(out.iterdir()) if out.is_dir() else []
    if any(p.is_dir() and any(p.iterdir()) or p.is_file() and p.name not in ("run.json", "log.jsonl", LOCK_NAME)
           for p in entries):
        return
    try:
        for p in entries:
            p.rmdir() if p.is_dir() else p.unlink()
        out.rmdir()
    except OSError:
        pass


def register(app: typer.Typer) -> None:
    """Add `train` to the app."""
    app.command(name="train", help=epilog(HELP), no_args_is_help=True)(train)


def train(
    ctx: typer.Context,
    data: str = typer.Option(None, "--data", help="'builtin' (scikit-image photos, held-out ones excluded), "
                             "'photos' (the photos set, $NCVSD_PHOTOS; built as the examples show), an image folder "
                             "(subfolders included; ./photos for a folder of that name) "
                             "or a zip (EDM2 dataset-tool layout; every image format restore reads but GIF). Required for a "
                             "new run."),
    arch: str = typer.Option(None, "--arch", help=ARCH_HELP),
    preset: str = typer.Option(None, "--preset", hidden=True, help="Deprecated alias of --arch."),
    init_teacher: str = typer.Option(None, "--init-teacher", help="Start from this teacher checkpoint (name or "
                                     "path) instead of fresh weights: fine-tuning; give a lower --lr. Ignored on "
                                     "--resume."),
    out: str = typer.Option(..., "--out", "-o", callback=expand_home, help="Run directory."),
    batch: int = typer.Option(32, "--batch", help="Global batch size (split over torchrun processes)."),
    duration: str = typer.Option("30min", "--duration", help=DURATION_HELP),
    snapshot: str = typer.Option("5min", "--snapshot", help="Snapshot + state interval (time, kimg or steps)."),
    lr: float = typer.Option(0.01, "--lr", help="Reference learning rate of the EDM2 schedule."),
    ref_batches: float = typer.Option(2000.0, "--ref-batches", help="LR decay starts after this many batches "
                                      "(0: no decay)."),
    rampup_kimg: float = typer.Option(20.0, "--rampup-kimg", help="Linear LR warm-up length in kimg (0: none)."),
    p_mean: float = typer.Option(-0.8, "--p-mean", help="Mean of ln(sigma) (EDM2 pixel models: -0.8)."),
    p_std: float = typer.Option(1.6, "--p-std", help="Std of ln(sigma) (EDM2 pixel models: 1.6)."),
    loss_scaling: float = typer.Option(1.0, "--loss-scaling", help="Constant loss multiplier."),
    seed: int = typer.Option(0, "--seed", min=0, callback=seed_option,
                             help="Seed of weights, data order and noise."),
    xflip: bool = typer.Option(True, "--xflip/--no-xflip", help="Random horizontal flips."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 (autocast) or fp16 (CUDA autocast)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    log_every: int = typer.Option(20, "--log-every", help="Steps between log lines / progress updates."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its state.pt."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or status lines."),
) -> None:
    """Train a teacher (see HELP)."""
    with handle_errors():
        from ncvsd_cli.training.loop import command_line, parse_duration
        from ncvsd_cli.training.teacher import TeacherSettings, train_teacher

        parse_duration(duration, "--duration"), parse_duration(snapshot, "--snapshot")  # usage errors before anything heavy
        settings = TeacherSettings(
            data=data, arch=arch_option(arch, preset), init_teacher=init_teacher, out=out, batch=batch, duration=duration, snapshot=snapshot,
            lr=lr, ref_batches=ref_batches, rampup_kimg=rampup_kimg, p_mean=p_mean, p_std=p_std,
            loss_scaling=loss_scaling, seed=seed, xflip=xflip, precision=precision, channels_last=channels_last,
            device=device, log_every=log_every, resume=resume, progress=not quiet, command=command_line())
        with usage_summary(out):
            settings = with_recipe(settings, ("data",), ctx)
        run_training(train_teacher, settings, out)
