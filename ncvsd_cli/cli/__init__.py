"""The `ncvsd` command: a Typer app with one module per command.

Command modules import torch and the library lazily (inside the command functions) so that
`ncvsd --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _quiet_early_interrupt(signum, frame) -> None:  # pragma: no cover (a signal during start-up)
    """Ctrl-C while the command's modules load: end by the signal, without Python's import traceback; with --json,
    after the summary line a consumer tells a cut stream by (stdout was empty: an early abort looked like a crash)."""
    signal.signal(signum, signal.SIG_DFL)
    command = _json_command()
    if command in ("restore", "degrade", "sample", "bench"):  # (common's JSON_SUMMARY_COMMANDS)
        import json

        line = {"command": command, **({"ok": 0, "failed": 0} if command != "bench" else {}),
                "exit_code": 128 + signum, "interrupted": signal.Signals(signum).name,
                **({"results": []} if command != "bench" else {})}  # (as `common.write_error_summary`)
        with contextlib.suppress(OSError):
            os.write(1, (json.dumps(line) + "\n").encode())
    os.kill(os.getpid(), signum)


def _json_command() -> str:
    """The command (its first argument that is no option) when the command line asks for --json, else ""."""
    args = sys.argv[1:sys.argv.index("--")] if "--" in sys.argv else sys.argv[1:]
    return next((a for a in args if not a.startswith("-")), "") if "--json" in args else ""


_ARGV0 = Path(sys.argv[0] if sys.argv else "")
_RUN_AS_COMMAND = _ARGV0.name in ("ncvsd", "ncvsd.exe") or _ARGV0.parent.name == "ncvsd_cli"
# (imported as a library or by tests, or SIGINT ignored, as for a shell's background job: handlers left alone)
if _RUN_AS_COMMAND and os.name == "posix" and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _quiet_early_interrupt)

import typer
from typer.core import TyperCommand, TyperGroup

from ncvsd_cli import __version__
from ncvsd_cli.cli import bench, checkpoints, common, degrade, distill, restore, sample, tasks, train

#: click's ClickException (typer >= 0.25 vendors click as typer._click).
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _UntypedFlags:
    """A command whose --help shows no Typer type labels: `<bool>` on the flags Typer adds itself (--help,
    --install-completion, --show-completion) and on the root's --version, which `plain_metavars` does not reach,
    and `<str>`, `<list[str]>` beside arguments (their name already says what they take: NAME, INPUT...)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            elif getattr(param, "param_type_name", "") == "argument":
                param.display_type_rich = _no_type
        return params


def _no_type(ctx: Any = None) -> None:
    """An argument's type column in Rich help: empty (None)."""


class _PlainCommand(_UntypedFlags, TyperCommand):
    pass


class _PlainGroup(_UntypedFlags, TyperGroup):
    pass


#: Options of other tools (deepinv, diffusers, image CLIs) and what ncvsd calls them: said instead of click's
#: guesses by spelling (--model offered --mean and --method).
OTHER_TOOLS_OPTIONS = {
    "--model": "--checkpoint (-c)", "--weights": "--checkpoint (-c)", "--ckpt": "--checkpoint (-c)",
    "--network": "--checkpoint (-c)", "--steps": "--nfe (network evaluations)", "--num-steps": "--nfe (network "
    "evaluations)", "--noise": "--sigma-y (the noise std on the [-1, 1] scale)", "--noise-level": "--sigma-y (the "
    "noise std on the [-1, 1] scale)", "--sigma": "--sigma-y (the noise std; a blur's width: -p sigma=S)",
    "--scale": "--task sr2, sr4 or sr8", "--upscale": "--task sr2, sr4 or sr8", "--factor": "--task sr2, sr4 or sr8",
    "--kernel": "-p kernel=K (an image or .npy)", "--mask": "-p mask=M.png (white = known)",
    "--gpu": "--device cuda", "--cpu": "--device cpu", "--out": "-o (--output)", "--output-dir": "-o DIR/",
}


class _OneLineErrors(_PlainGroup):
    """Errors found while parsing the command line (`--seed -1`, an unknown option, a missing value) as one line,
    `ncvsd: error: ... (see 'ncvsd restore --help')`, exit 2, like every error a command finds itself (Typer's
    framed box otherwise); with --json the summary line too (`common.write_error_summary`)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # its help is already printed
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            path = ctx.command_path if ctx is not None else "ncvsd"  # `python -m ncvsd_cli restore` under -m
            command = ""  # the command (restore, ...) whose parse failed: its --json summary line
            if ctx is not None and ctx.parent is not None and ctx.parent.parent is None:
                command = ctx.info_name or ""
            elif (ctx is None or ctx.parent is None) and argv and argv[0] in self.commands:  # a value missing
                command = argv[0]  # after the last option is found at the root
                path += f" {command}"
            message = exc.format_message().rstrip(".")
            said = OTHER_TOOLS_OPTIONS.get(str(getattr(exc, "option_name", "")), "")
            known = {o for p in getattr(getattr(ctx, "command", None), "params", ()) for o in getattr(p, "opts", ())}
            if type(exc).__name__ == "NoSuchOption" and said.split(" ")[0] in known:  # another tool's name for it
                message = f"No such option: {exc.option_name}: here it is {said}"
            common.error(f"{message} (see '{path} --help')")
            if command in common.JSON_SUMMARY_COMMANDS and "--json" in argv:
                common.write_error_summary(command, exc.exit_code, message)
            sys.exit(exc.exit_code)
        except typer.Abort:
            common.error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="ncvsd",
    help=common.epilog(
        "Solve image inverse problems with an NCVSD generative denoiser (the shipped default: the teacher copy, not "
        "distilled; the paper's distilled models: ncvsd checkpoints download).\n\n"
        "Examples:\n\n"
        "  ncvsd restore --task sr4 input.png\n\n"
        "  ncvsd degrade --task deblur-gauss clean.png -o measured.png\n\n"
        "  ncvsd bench --dataset builtin --tasks sr4 --nfe 2,4 --methods pnp-gd,pnp-gd-warm,classical --limit 4 "
        "--out bench/\n\n"
        "  cat list.txt | xargs ncvsd restore --task deblur-gauss -o out/   (names with spaces: xargs -d '\\n')\n\n"
        "  ncvsd restore photos/ --task sr4 -o out/ --json | jq -c 'select(.status)'   (JSON Lines as each "
        "image finishes)\n\n"
        "  ncvsd sample --nfe 4 --seeds 0-15 -o grid.png\n\n"
        "  ncvsd tasks   (each task: what it measures, its -p parameters, its default method)\n\n"
        "  ncvsd --install-completion   (tab completion for bash, zsh, fish or PowerShell)\n\n"
        "Each command's --help has more examples."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # (every command, -h as Unix tools take it)
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ncvsd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Solve image inverse problems with an NCVSD generative denoiser."""


def unwrapped_help(doc: str | None) -> str | None:
    """A docstring for Rich help: the source's line breaks inside a prose paragraph joined with spaces (Rich wraps
    to the terminal; kept breaks left ragged half-lines), blocks of indented lines (examples) kept as they are."""
    import inspect

    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith((" ", "\b")) else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)


def plain_metavars(typer_app: typer.Typer) -> None:
    """Help reads `--seed SEED` and `[INPUT]...` (the argparse convention), not Typer's `<int range>` and
    `[[INPUT]...]...` type labels: every option or argument without a metavar of its own gets its name in
    capitals; flags get none (Typer's own too: `_UntypedFlags`). Their docstrings' prose paragraphs are unwrapped
    (`unwrapped_help`). Applies to the commands of `typer_app` and of its groups."""
    import inspect

    from typer.models import ArgumentInfo, OptionInfo

    for command in typer_app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = _PlainCommand
        command.callback.__doc__ = unwrapped_help(command.callback.__doc__)
        for name, param in inspect.signature(command.callback).parameters.items():
            info = param.default
            if not isinstance(info, (OptionInfo, ArgumentInfo)) or info.metavar is not None:
                continue
            long = [d for d in getattr(info, "param_decls", None) or () if d.startswith("--")]
            flag = str(param.annotation).startswith("bool")
            info.metavar = "" if flag else (long[0][2:] if long else name).upper().replace("-", "_")
    for group in typer_app.registered_groups:
        if not isinstance(group.typer_instance.info.cls, type) or group.typer_instance.info.cls is TyperGroup:
            group.typer_instance.info.cls = _PlainGroup  # Typer's default (None, or its Default(None) marker)
        plain_metavars(group.typer_instance)


for _module in (restore, degrade, sample, bench, train, distill, checkpoints, tasks):
    _module.register(app)
plain_metavars(app)


def main() -> None:
    """Console-script entry point. A command stopped by signal N exits 128 + N after its clean-up; here, at the
    top, it then ends by that signal itself (POSIX), the convention that lets a calling shell or `xargs` see the
    interruption: a `for` loop over images stops at Ctrl-C instead of going on with the next one."""
    if signal.getsignal(signal.SIGINT) is _quiet_early_interrupt:  # loaded: Ctrl-C is the commands' to handle
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(sys.stdout, "reconfigure"):  # a text no code page holds (a Windows pipe's cp1252 has no ↑ nor
        sys.stdout.reconfigure(errors="replace")  # ζ) is written with "?", not an error after the work is done
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
        stops = {int(getattr(signal, n)) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}
        if code - 128 in stops and not common.summary_written:  # stopped before its command owed a summary
            command = _json_command()
            if command in common.JSON_SUMMARY_COMMANDS:
                common.write_error_summary(command, code, "interrupted while loading")
        if os.name == "posix" and code - 128 in stops:
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(code - 128, signal.SIG_DFL)
            os.kill(os.getpid(), code - 128)
        if _RUN_AS_COMMAND:  # done and reported (--json's exit_code): a Ctrl-C during the interpreter's
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # tear-down (0.5 s with torch) must not change the status
        raise
