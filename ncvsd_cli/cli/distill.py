"""`ncvsd distill`: distil a teacher into a generative denoiser with NCVSD (runs unchanged under torchrun)."""

from __future__ import annotations

import typer

from ncvsd_cli.cli.common import UsageError, epilog, expand_home, given_options, handle_errors, seed_option
from ncvsd_cli.cli.train import DURATION_HELP, arch_option, run_training, usage_summary, with_recipe

HELP = """Distil a teacher into a one/few-step generative denoiser with NCVSD (score model, discriminator and
generator updated in turn; VSD through the posterior-score identity; GAN term after its warm-up).

Writes RUN_DIR/log.jsonl, RUN_DIR/state.pt (atomic; continue with --resume),
RUN_DIR/snapshots/generator-<kimg>-<sigma_rel>.safetensors and RUN_DIR/previews/<kimg>-nfe<N>.png. --resume
keeps the run's recipe (RUN_DIR/run.json); an option typed again with another value replaces it from then on. A JSON
summary goes to stdout (on an interruption too: "interrupted", "exit_code", "steps", "state"; on an error: "error",
"exit_code"; an option out of range, such as --lr, refused before any work, gives the error line only); progress goes to
stderr (a bar on a terminal, a status line every 30 s otherwise; --quiet: none). Ctrl-C, SIGTERM or SIGHUP
(a closed terminal) saves the state after the current step and exits 130, 143 or 129.

Examples:

  ncvsd distill --teacher runs/teacher --data builtin --out runs/distill --duration 30min

  ncvsd distill --out runs/distill --resume --duration 1h

  ncvsd distill --teacher builtin64-teacher --init-generator builtin64-generator --out runs/more --duration 1h
"""


def register(app: typer.Typer) -> None:
    """Add `distill` to the app."""
    app.command(name="distill", help=epilog(HELP), no_args_is_help=True)(distill)


def distill(
    ctx: typer.Context,
    teacher: str = typer.Option(None, "--teacher", help="Teacher checkpoint (name or path) or a `ncvsd train` run "
                                "directory (its newest sigma_rel 0.050 snapshot). Required for a new run."),
    data: str = typer.Option(None, "--data", help="'builtin', 'photos' ($NCVSD_PHOTOS), an image folder (subfolders "
                             "included) or a zip "
                             "(default: the teacher's training data where it is found here, else builtin)."),
    init_generator: str = typer.Option(None, "--init-generator", help="Start the generator from this generator "
                                       "checkpoint (name or path) instead of the teacher, e.g. to continue an "
                                       "earlier distillation without its state.pt."),
    arch: str = typer.Option(None, "--arch", help="Network architecture; default and requirement: the "
                             "teacher's."),
    preset: str = typer.Option(None, "--preset", hidden=True, help="Deprecated alias of --arch."),
    out: str = typer.Option(..., "--out", "-o", callback=expand_home, help="Run directory."),
    batch: int = typer.Option(32, "--batch", help="Global batch per update (three updates per step)."),
    duration: str = typer.Option("30min", "--duration", help=DURATION_HELP),
    snapshot: str = typer.Option("5min", "--snapshot", help="Snapshot + state + preview interval."),
    lr: float = typer.Option(0.01, "--lr", help="Reference LR (score model); see the two scales below."),
    g_lr_scale: float = typer.Option(0.01, "--g-lr-scale", help="The generator's LR, times --lr."),
    d_lr_scale: float = typer.Option(0.01, "--d-lr-scale", help="The discriminator's LR, times --lr."),
    ref_batches: float = typer.Option(0.0, "--ref-batches", help="LR decay after this many batches (0: none)."),
    rampup_kimg: float = typer.Option(20.0, "--rampup-kimg", help="Linear LR warm-up in kimg."),
    gan_warmup_kimg: float = typer.Option(100.0, "--gan-warmup-kimg", help="GAN term off before this many kimg."),
    gan_loss_scaling: float = typer.Option(1.0, "--gan-loss-scaling", metavar="ZETA", help="Weight of the GAN "
                                           "term; 0: no GAN, and the discriminator is not trained (a faster step)."),
    p_mean: float = typer.Option(-0.8, "--p-mean", help="Mean of ln(t)."),
    p_std: float = typer.Option(1.6, "--p-std", help="Std of ln(t)."),
    loss_scaling: float = typer.Option(1.0, "--loss-scaling", help="Constant loss multiplier."),
    seed: int = typer.Option(0, "--seed", min=0, callback=seed_option,
                             help="Seed of weights, data order and noise."),
    xflip: bool = typer.Option(True, "--xflip/--no-xflip", help="Random horizontal flips."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 (CUDA)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    log_every: int = typer.Option(20, "--log-every", help="Steps between log lines / progress updates."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its state.pt."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or status lines."),
) -> None:
    """Distil a teacher (see HELP)."""
    with handle_errors():
        from ncvsd_cli.training.distill import DistillSettings
        from ncvsd_cli.training.distill import distill as run_distill
        from ncvsd_cli.training.loop import command_line, parse_duration

        parse_duration(duration, "--duration"), parse_duration(snapshot, "--snapshot")
        settings = DistillSettings(
            teacher=teacher, init_generator=init_generator, data=data, arch=arch_option(arch, preset), out=out,
            batch=batch, duration=duration, snapshot=snapshot,
            lr=lr, g_lr_scale=g_lr_scale, d_lr_scale=d_lr_scale, ref_batches=ref_batches, rampup_kimg=rampup_kimg,
            gan_warmup_kimg=gan_warmup_kimg, gan_loss_scaling=gan_loss_scaling, p_mean=p_mean, p_std=p_std,
            loss_scaling=loss_scaling, seed=seed, xflip=xflip, precision=precision, channels_last=channels_last,
            device=device, log_every=log_every, resume=resume, progress=not quiet, command=command_line())
        with usage_summary(out):
            settings = with_recipe(settings, ("teacher",), ctx)
            if resume and "teacher" not in given_options(ctx):  # the run's own teacher file, or a --teacher typed
                from ncvsd_cli.training.distill import resumed_teacher_problem

                problem = resumed_teacher_problem(out)
                if problem:
                    raise UsageError(problem)
        run_training(run_distill, settings, out)
