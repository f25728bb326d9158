"""What every command shares: exit codes, one-line messages, device parsing, input expansion, output naming,
progress bars and JSON summaries (docs/architecture.md, "Command-line conventions").

Exit codes: 0 all done; 1 some inputs failed (the other outputs are kept); 2 usage error; 3 model or checksum
problem (`ncvsd_cli.checkpoints.CheckpointError`); 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM,
129 SIGHUP), after removing every temporary file. Errors are one line on stderr
("ncvsd: error: ...", also for options that do not parse: `cli._OneLineErrors`), never a traceback for bad input; set NCVSD_DEBUG=1 to see tracebacks of internal
errors. No torch at import time: this module is imported by `ncvsd --help`.
"""

from __future__ import annotations

import collections
import glob
import io
import os
import re
import signal
import stat
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import typer

from ncvsd_cli import strict_json
from ncvsd_cli.errors import debugging, one_line
from ncvsd_cli.images import (  # (IMAGE_SUFFIXES: also a folder input's image files, any case)
    IMAGE_SUFFIXES,
    suffix_choice,
)
from ncvsd_cli.progress import write_line as _write_line  # a line on stderr above a progress bar

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_INTERRUPTED = 130

#: `--skip-existing` help of restore and degrade.
SKIP_HELP = ("Skip the inputs whose outputs all exist (status \"skipped\", exit 0): rerun an interrupted batch to "
             "make only the rest.")
#: `--json` help of the commands with per-input results (restore, degrade; sample's: `SAMPLE_JSON_HELP`; `Report`).
JSON_HELP = ("JSON Lines on stdout: one object per input as it finishes (with \"status\"; restore's size is height, "
             "width; degrade's shapes are channels, height, width), then the summary (with \"results\") as the "
             "last line; the same for one input or many, also when stopped early, even before the first input "
             "(\"error\" or \"interrupted\", with \"exit_code\" and the inputs not done, \"not_done\").")
SAMPLE_JSON_HELP = ("JSON Lines on stdout: one object per seed as it is written (a grid: one object at the end; "
                    "size is height, width), then the summary (with \"results\") as the last line, also when "
                    "stopped early (\"error\" or \"interrupted\", with \"exit_code\").")
#: `--param` help for degrade and restore: each task's operator parameters (kept equal to the registry by a test).
PARAM_HELP = (
    "Operator parameter key=value (repeatable), e.g. -p sigma=1.5 (a milder Gaussian blur). Parameters: "
    "deblur-gauss sigma (px, read from a plain image by restore, else 3), kernel_size, boundary "
    "(circular|reflect), shift; deblur-defocus radius (px, read from a plain image by restore, else 4), boundary, "
    "shift; deblur-motion kernel_size, intensity (0-1), seed, kernel, boundary, shift; "
    "deblur-kernel kernel (.npy or image), normalize, boundary, shift; inpaint-box box_size (px, or \\[h,w]); "  # (\\[:
    # Rich takes a bare [...] for markup and drops it)
    "inpaint-random fraction (0-1, of missing pixels), seed; inpaint-mask mask (image, white = known), invert "
    "(true: white = hole), grow (px to widen the holes by); sr2/sr4/sr8 "
    "likelihood (exact|langevin), kernel (the resizer that shrank the image: bicubic, the default, antialiased; "
    "bilinear; box = area; bilinear-aliased / bicubic-aliased = torch F.interpolate bilinear / bicubic (no "
    "antialias) and OpenCV INTER_LINEAR (its default) / INTER_CUBIC; nearest = Pillow's, torch nearest-exact; "
    "nearest-floor = torch's default nearest, OpenCV INTER_NEAREST); phase-retrieval oversample; denoise none."
)


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM or SIGHUP (see `handle_errors`), so that every `finally` and
    `except BaseException` on the way out runs (temporary files are deleted); exit code 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: operators.noise.MAX_SEED, here without importing torch (5 s) while options are parsed (tab completion, Ctrl-C).
MAX_SEED = 2**63 - 1


def seed_option(value: int) -> int:
    """--seed's callback: at most 2^63 - 1 (the streams' range), said as a usage error; typer's max= printed the
    range as "[0<=x<=9223372036854775807]" in the option table, squeezing the help text to 25 columns at 80."""
    if value is not None and value > MAX_SEED:
        raise typer.BadParameter(f"{value} is above the largest seed, {MAX_SEED} (2^63 - 1)")
    return value


def _raise_terminated(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the clean-up
    raise Terminated(signum)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP (Windows: SIGBREAK, Ctrl-Break) raise Terminated in the main thread
    (signals left at SIG_IGN, e.g. under nohup, stay ignored); the previous handlers are put back on the way out."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP", "SIGBREAK"):
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------------------------------ messages
_EXAMPLE_COMMENT = re.compile(r"^(  \S.*?)\s+(\(.*)$")


def epilog(text: str) -> str:
    """A command's help epilog, written hard-wrapped in the source, made to wrap at any terminal width (Typer's
    rich help keeps every newline): prose paragraphs become one line each; in an example paragraph (indented two
    spaces) a command's trailing "(comment)" and its continuation lines move under the command, as one line."""
    out = []
    for para in text.split("\n\n"):
        lines = para.split("\n")
        if not para.startswith("  "):
            out.append(" ".join(line.strip() for line in lines))
            continue
        block: list[list[str]] = []  # [kind, text]: a command, or a comment under it
        for line in lines:
            match = _EXAMPLE_COMMENT.match(line)
            if match:
                block += [["command", match.group(1).rstrip()], ["comment", match.group(2)]]
            elif line.strip().startswith("(") and block:  # a comment on a line of its own
                block.append(["comment", line.strip()])
            elif line.startswith("   ") and block:  # the continuation of a command or a comment
                block[-1][1] += " " + line.strip()
            else:
                block.append(["command", line.rstrip()])
        out.append("\n".join(_shell_lines(text) if kind == "command" else textwrap.fill(
            text, EXAMPLE_WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 7) for kind, text in block))
    return "\n\n".join(out)


#: Example commands longer than this are continued on the next line with " \" (help at 80 columns wrapped them
#: at column 80 with nothing to say so: the first line, copied, failed as "--batch-size requires an argument");
#: their comments are wrapped to it (rich's help adds a 1-column margin on each side).
EXAMPLE_WIDTH = 76


def _shell_lines(command: str, width: int = EXAMPLE_WIDTH) -> str:
    """`command` (an example line, indented) as shell lines of at most `width` characters where its words allow,
    broken between words outside quotes with " \\" and indented 4 more spaces: a copy of them runs as one."""
    if len(command) <= width:
        return command
    indent = command[: len(command) - len(command.lstrip())]
    words, word, quote = [], "", ""
    for ch in command.strip():
        if ch == " " and not quote:
            if word:
                words.append(word)
            word = ""
            continue
        quote = ("" if ch == quote else quote) if quote else (ch if ch in "'\"" else "")
        word += ch
    words.append(word)
    units: list[str] = []  # an option and its value stay on one line ("-o \\" above "out/" read as broken)
    for w in words:
        joins = units and units[-1].startswith("-") and " " not in units[-1] and "=" not in units[-1]
        units[-1:] = [f"{units[-1]} {w}"] if joins and not w.startswith(("-", "|")) else [*units[-1:], w]
    words = units
    lines, line = [], indent + words[0]
    for w in words[1:]:
        if len(line) + 1 + len(w) + 2 > width:
            lines.append(line + " \\")
            line = indent + "    " + w
        else:
            line += " " + w
    return "\n".join([*lines, line])


def torchrun_rank() -> int:
    """This process's rank when torchrun started it (WORLD_SIZE > 1 and LOCAL_RANK set), else 0."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
            return int(os.environ.get("RANK", "0"))
    except ValueError:
        pass
    return 0


def error(message: str) -> None:
    """Print `ncvsd: error: message` (one line, written at once: processes of one job do not interleave it;
    `ncvsd: rank N: error: ...` on torchrun's other ranks) on stderr."""
    rank = torchrun_rank()
    _write_line(f"ncvsd: {f'rank {rank}: ' if rank else ''}error: {one_line(message)}\n")


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (a person reads it), not a file, pipe or closed stream."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def note(message: str, quiet: bool = False) -> None:
    """Print an informational line on stderr unless `quiet` (written at once, as `error`; above a progress bar)."""
    if not quiet:
        _write_line(f"ncvsd: {one_line(message)}\n")


def notes_of(name: str, notes: list[str], quiet: bool, warnings: str | tuple[str, ...]) -> None:
    """Print each of an input's `notes` as "NAME: note" (`note`); those starting with `warnings` (likely mistakes)
    as warnings, said even when `quiet`."""
    for n in notes:
        warn = n.startswith(warnings)
        note(f"{'warning: ' if warn else ''}{name}: {n}", quiet and not warn)


def warn_large_sigma(sigma_y: float | None) -> None:
    """A warning (printed with --quiet too) for a --sigma-y above 1 on the [-1, 1] scale
    (`measurement.large_sigma_warning`: most likely a level meant on the 0-255 scale)."""
    from ncvsd_cli.measurement import large_sigma_warning

    if message := large_sigma_warning(sigma_y, "--sigma-y"):
        note(f"warning: {message}")


#: Commands whose `--json` output always ends with a summary object holding "exit_code".
JSON_SUMMARY_COMMANDS = ("restore", "degrade", "sample", "bench")
#: The `--json` command (one of JSON_SUMMARY_COMMANDS) whose summary line is still owed: set by
#: `handle_errors(json_command=...)`, cleared once a summary is written (`Report`); `fail` writes a bare one.
_summary_owed: str | None = None
#: The inputs as given to that command (`handle_errors(inputs=...)`): a summary written before any result lists
#: them under "not_done".
_inputs_owed: list[str] = []
#: Whether this process wrote a --json summary line (`Report`, `write_error_summary`): `main` writes one for a run
#: stopped by a signal before its command owed one (Ctrl-C while it loads: stdout was empty).
summary_written = False


def write_error_summary(command: str, code: int, message: str) -> None:
    """The summary line of a `--json` run that stopped before it had one (a parse or usage error, a missing model,
    Ctrl-C while loading): {"command", "exit_code", "error" or "interrupted"}, and for the commands of JSON Lines
    (not bench) their summary's "ok": 0, "failed": 0, "skipped": 0 (`Report.summary`'s schema), "results": [] and
    the inputs given, "not_done". Nothing
    when stdout is closed."""
    global _summary_owed, summary_written
    _summary_owed, summary_written = None, True
    if torchrun_rank() != 0:  # under torchrun rank 0 alone writes stdout's summary
        return
    lines = command != "bench"
    doc: dict[str, Any] = {"command": command, **({"ok": 0, "failed": 0, "skipped": 0} if lines else {}),
                           "exit_code": code}
    if code - 128 in {int(s) for s in signal.Signals}:
        doc["interrupted"] = signal.Signals(code - 128).name
    else:
        doc["error"] = one_line(message)
    try:
        left = {"not_done": list(_inputs_owed)} if lines and _inputs_owed else {}
        sys.stdout.write(strict_json.dumps(doc | ({"results": []} if lines else {}) | left) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def log_lines() -> Iterator[None]:
    """While inside, the library's log records (logger "ncvsd": bench's skipped methods, enlarged images, failed
    rows) are lines like the command's own, `ncvsd: warning: ...` / `ncvsd: error: ...`, written above a progress
    bar; without it Python's last-resort handler printed them bare. Records propagate as before (pytest's caplog)."""
    import logging

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                level = "error" if record.levelno >= logging.ERROR else "warning"
                rank = torchrun_rank()  # as `error`: which process of a torchrun job says it
                _write_line(f"ncvsd: {f'rank {rank}: ' if rank else ''}{level}: {one_line(record.getMessage())}\n")
            except Exception:  # a log line is never worth failing for
                self.handleError(record)

    logger, handler = logging.getLogger("ncvsd"), Lines(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error and exit with `code` (default 2, usage); a `--json` run without its summary line yet
    gets one (`write_error_summary`). A signal's message comes from torchrun's rank 0 only (every rank gets the
    signal)."""
    if torchrun_rank() == 0 or code not in (EXIT_INTERRUPTED, 129, 143):
        try:
            error(message)
        except OSError:  # a terminal that hung up (SIGHUP): the exit code still tells
            pass
    if _summary_owed and code != EXIT_OK:
        write_error_summary(_summary_owed, code, message)
    raise typer.Exit(code)


@contextmanager
def handle_errors(json_command: str | None = None, inputs: Sequence[str] = ()) -> Iterator[None]:
    """Map exceptions escaping a command to one line and an exit code: UsageError/ValueError -> 2,
    CheckpointError -> 3, NonFiniteOutputError -> 1, KeyboardInterrupt -> 130, SIGTERM / SIGHUP (raised as
    Terminated while inside) -> 143 / 129, anything else -> 1 ("internal error"; traceback with NCVSD_DEBUG=1).
    typer.Exit passes through. `json_command`: the command's name when it runs with `--json`, whose stdout then
    ends with a summary line on every exit path (`fail`); `inputs`: its input arguments, listed there as
    "not_done" when it stops before the inputs' own report."""
    from ncvsd_cli.checkpoints import CheckpointError
    from ncvsd_cli.errors import NonFiniteOutputError

    global _summary_owed, _inputs_owed
    _summary_owed, _inputs_owed = json_command, [str(i) for i in inputs]
    try:
        with _signals_raise(), log_lines():  # the library's warnings (a plug-in left out, ...) as ncvsd's lines
            yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except (CheckpointError, UsageError, ValueError, NonFiniteOutputError) as exc:
        fail(str(exc), exit_code_for(exc))
    except Terminated as exc:
        fail(f"stopped by {signal.Signals(exc.signum).name}; outputs finished so far are kept, no partial output is "
             "left", exit_code_for(exc))
    except KeyboardInterrupt as exc:
        fail("interrupted; outputs finished so far are kept, no partial output is left", exit_code_for(exc))
    except BrokenPipeError:  # `ncvsd ... --json | head -1`: the reader went away
        try:  # Python's final flush must not print a traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        fail("standard output was closed (broken pipe); outputs finished so far are kept, no partial output is left",
             EXIT_PARTIAL)
    except Exception as exc:  # a bug: one line unless debugging
        if debugging():  # (NCVSD_DEBUG=0 turns it off)
            raise
        internal = f"internal error: {type(exc).__name__}: {exc} (set NCVSD_DEBUG=1 for a traceback)"
        fail(shadowed_operators() or internal, exit_code_for(exc))
    finally:
        _summary_owed = None


def shadowed_operators() -> str | None:
    """Why the imported module `operators` is not ncvsd's operator package (a local operators.py, or another
    distribution's top-level `operators` installed over it: "module 'operators' has no attribute 'get'"), or None."""
    module = sys.modules.get("operators")
    if module is None or hasattr(module, "registry"):
        return None
    return (f"the module 'operators' imported from {getattr(module, '__file__', None) or 'somewhere else'} is not "
            "ncvsd's: a file or folder named operators in the current folder or on PYTHONPATH shadows it (rename it "
            "or run elsewhere), or another package installed its own; `pip install --force-reinstall ncvsd` "
            "restores ncvsd's")


def raise_if_stdout_closed() -> None:
    """BrokenPipeError when standard output is a pipe whose reader has gone (`--json | head -1` after its line), so
    a command stops before its next piece of work instead of at its next write; nothing for other outputs or where
    poll is missing. A pipe's write end reports POLLERR once no reader is left (Linux, macOS)."""
    import select

    try:
        fd = sys.stdout.fileno()
        if not hasattr(select, "poll") or not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # no real stdout (a test's capture)
        return
    if any(ev & select.POLLERR for _, ev in events):
        raise BrokenPipeError("standard output was closed")


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an exception escaping a command (`handle_errors`, `Report.summary_on_interrupt`):
    CheckpointError 3, UsageError / ValueError 2, Terminated 128 + its signal, KeyboardInterrupt 130, else 1."""
    from ncvsd_cli.checkpoints import CheckpointError

    if isinstance(exc, CheckpointError):
        return EXIT_MODEL
    if isinstance(exc, (UsageError, ValueError)):
        return EXIT_USAGE
    if isinstance(exc, Terminated):
        return 128 + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL


# --------------------------------------------------------------------------------------------- option parsing
def given_options(ctx: typer.Context) -> set[str]:
    """Names of the command's parameters the user gave (command line or environment), not left at defaults."""
    return {name for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}


def parse_device(spec: str = "auto") -> Any:
    """`auto|cpu|cuda|cuda:N` -> torch.device (`networks.inference.resolve_device`); UsageError naming --device."""
    from ncvsd_cli.networks.inference import resolve_device

    try:
        return resolve_device(spec, "--device")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """`["key=value", ...]` -> dict; values are read as YAML scalars/lists (3, 0.5, 1e-3, true, [1, 2], text)."""
    import yaml

    from ncvsd_cli.sampling.presets import safe_load

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param {item!r} must look like key=value")
        try:
            if raw.strip() == "-":  # YAML's list [None]
                raise UsageError(f"--param {item!r}: '-' is no value here (standard input holds an input image, "
                                 "not a parameter: a mask or kernel is given by its file's path)")
            out[key] = safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


#: Longest integer list `parse_int_list` expands (a typo like 0-99999999999 must not exhaust memory).
MAX_LIST_ITEMS = 1_000_000


def parse_int_list(spec: str, flag: str = "") -> list[int]:
    """EDM2-style integer list: "0-15,20,30-31" -> [0, ..., 15, 20, 30, 31], at most MAX_LIST_ITEMS long.
    Raises UsageError, its message led by `flag` (e.g. "--seeds") when given."""
    try:
        return _int_list(spec)
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc}" if flag else str(exc)) from None


def _int_list(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(-?\d+)(?:-(\d+))?", part)
        if not m:
            raise UsageError(f"{spec!r} is not a list of integers or ranges like 0-15,20")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UsageError(f"range {part!r} is empty (end before start)")
        if len(out) + hi - lo + 1 > MAX_LIST_ITEMS:
            raise UsageError(f"{spec!r} lists more than {MAX_LIST_ITEMS} integers")
        out.extend(range(lo, hi + 1))
    return out


def format_int_list(values: Sequence[int]) -> str:
    """`parse_int_list`'s inverse, in the given order: [0, 1, 2, 5, 3] -> "0-2,5,3" (runs of consecutive integers
    as ranges)."""
    parts: list[str] = []
    start = prev = None
    for v in [*values, None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    return ",".join(parts)


# ------------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class InputItem:
    """One input: `path` is None for standard input. `name` is what messages show. `subdir`: the folders a glob's
    wildcards matched (below its fixed part), kept below `-o DIR` ("" for files and folders named directly)."""

    name: str
    path: Path | None = None
    subdir: str = ""

    @property
    def is_stdin(self) -> bool:
        return self.path is None

    @property
    def stem(self) -> str:
        return "stdin" if self.path is None else self.path.stem


def expand_inputs(
    specs: Sequence[str], skip: Callable[[Path], bool] | None = None, quiet: bool = False,
    identity: Callable[[Path], tuple[Path, Path]] | None = None, out: str | None = None,
    params: dict | None = None,
) -> tuple[list[InputItem], list[tuple[str, str]]]:
    """Files, directories (their image files, sorted, not recursive), globs (`**` recursive) and "-" (stdin,
    at most once) -> (inputs in order without duplicates, [(spec, message)] for specs that matched nothing).

    skip: optional predicate on Path; files of a directory listing or glob for which it is true are left out (e.g.
    the command's own earlier outputs), unless they are all a glob matches (`'in/*_sr4.png'` means them). A file
    matched more than once is kept once, with a note on stderr unless `quiet`. identity: optional Path -> (path
    to read, what it stands for); files standing for the same thing are one input, silently (restore: an image
    and its measurement sidecar files). out: the -o argument; when it is an existing folder below the folder a
    glob searches, the files the glob finds inside it are left out with a note (a rerun of `'photos/**/*.png'
    -o photos/restored/` does not take the earlier outputs for inputs; a file named on its own is kept). params:
    the -p parameters; files they name (a mask, a kernel image) are left out of directory listings and globs with a
    note. Raises UsageError when no spec is given or "-" appears twice.
    """
    if not specs:
        raise UsageError("no input given (files, directories, globs, or - for stdin)")
    items: list[InputItem] = []
    missing: list[tuple[str, str]] = []
    seen: set[tuple | str] = set()
    repeated: list[str] = []

    files: set[tuple | str] = set()
    out_dir = Path(out).expanduser().resolve() if out not in (None, "-") and _is_dir(Path(out).expanduser()) else None
    in_out: list[Path] = []
    param_files = {Path(v).expanduser().resolve(): k for k, v in (params or {}).items()
                   if isinstance(v, str) and Path(v).expanduser().is_file()}
    from ncvsd_cli.measurement import SIDECAR_SUFFIX, TENSORS_SUFFIX

    as_params: list[Path] = []
    not_images: list[Path] = []  # in the folders given: other files (raw photos, arrays, ...), said in a note

    def not_params(found: list[Path]) -> list[Path]:
        """found without the files -p names (a mask or kernel in the folder of the photos)."""
        named = [f for f in found if f.resolve() in param_files]
        as_params.extend(f for f in named if f not in as_params)
        return [f for f in found if f not in named]

    def outside_out(found: list[Path], root: Path) -> list[Path]:
        """The files a glob searching below `root` found outside the -o folder when that folder lies below `root`
        (-o into the searched folder itself keeps them: outputs there carry the task's tag)."""
        if out_dir is None or root.resolve() not in out_dir.parents:
            return found
        inside = [f for f in found if out_dir in f.resolve().parents]
        in_out.extend(inside)
        return [f for f in found if f not in inside]

    def add(p: Path, root: Path | None = None) -> None:
        use, same = identity(p) if identity else (p, p)
        key, file = _file_identity(same), _file_identity(p)
        if key not in seen:
            seen.add(key)
            subdir = "." if root is None else Path(os.path.relpath(use.parent, root)).as_posix()
            flat = subdir == "." or subdir.split("/")[0] == ".."  # `photos/*/../../x/*.png`: never above -o DIR
            items.append(InputItem(str(use) if str(use) != "-" else "./-", use, "" if flat else subdir))  # a file "-"
        elif file in files and str(p) not in repeated:  # the very same file again (not a companion)
            repeated.append(str(p))
        files.add(file)

    carriage_returns = 0
    for spec in specs:
        if spec.endswith("\r") and not Path(spec).exists() and spec.rstrip("\r"):  # a list with CRLF line ends
            spec = spec.rstrip("\r")
            carriage_returns += 1
        if spec == "-":
            if "-" in seen:
                raise UsageError("'-' (stdin) can be given only once")
            if _stdin_is_terminal():  # it waited for typed bytes without a word (image bytes to a terminal: refused)
                raise UsageError("'-' reads the image from standard input, which is a terminal: pipe or redirect "
                                 "one (cat photo.png | ncvsd ... -, or ... - < photo.png)")
            seen.add("-")
            items.append(InputItem("<stdin>", None))
            continue
        if len(spec) > 2 and spec[0] == spec[-1] == "'" and not Path(spec).expanduser().exists():
            spec = spec[1:-1]  # cmd.exe passes the quotes of a glob quoted as the README shows ('photos/*.png') on
        p = Path(spec).expanduser()
        try:
            p.exists()  # (Python's is_dir / is_file raise for a name the file system refuses, e.g. over 255 bytes)
        except OSError as exc:
            missing.append((spec, f"{spec}: {exc.strerror or exc}"))
            continue
        if p.is_dir():
            listed = [f for f in sorted(p.iterdir()) if not f.name.startswith(".")]  # (the folder read once)
            found = not_params([
                f
                for f in listed
                if f.is_file()
                and f.suffix.lower() in IMAGE_SUFFIXES
                and not (skip and skip(f))
            ])
            broken = [f for f in listed if f.is_symlink() and not f.exists() and f.suffix.lower() in IMAGE_SUFFIXES]
            not_images.extend(f for f in listed if f.is_file() and f.suffix.lower() not in IMAGE_SUFFIXES
                              and f.resolve() not in param_files
                              and not f.name.endswith((SIDECAR_SUFFIX, TENSORS_SUFFIX)))  # (-p kernel=k.npy)
            for f in broken:  # an image the folder lists but cannot give (was left out without a word, exit 0)
                missing.append((str(f), f"{f}: a broken symbolic link (to {os.readlink(f)}, which does not exist)"))
            if not found and not broken:
                missing.append((spec, f"{spec}: directory has no image files" + (
                    " but the -p file" if as_params and as_params[-1].parent.resolve() == p.resolve() else
                    f" ({', '.join(IMAGE_SUFFIXES[:4])}, ...)")))
            for f in found:
                add(f)
        elif p.is_file():
            add(p)
        elif glob.has_magic(spec):
            pattern = os.path.expanduser(spec)
            matched = [Path(f) for f in sorted(glob.glob(pattern, recursive=True)) if Path(f).is_file()]
            found = not_params([f for f in matched if not (skip and skip(f))] or matched)  # only outputs: meant
            if not found:
                missing.append((spec, f"{spec}: no file matches this pattern" + (
                    " but the -p file" if matched and all(f.resolve() in param_files for f in matched) else "")))
            for f in outside_out(found, _glob_root(pattern)):
                add(f, _glob_root(pattern))
        elif p.exists():  # /dev/stdin, <(cat x.png), a named pipe, a device: read once, not as a file is
            why = "not a regular file (a pipe, device or socket); for standard input give - (cat x.png | ncvsd ... -)"
            missing.append((spec, f"{spec}: {why}"))
        elif os.path.islink(spec):
            missing.append((spec, f"{spec}: a broken symbolic link (to {os.readlink(spec)}, which does not exist)"))
        elif Path(spec).as_posix().endswith("ncvsd_cli/examples/astronaut.png"):  # the README's, outside a clone
            from ncvsd_cli.images import example_path

            where = f"outside a clone of the repository the bundled example is {example_path()}"
            missing.append((spec, f"{spec}: no such file or directory ({where})"))
        else:
            missing.append((spec, f"{spec}: no such file or directory"))
    for f in as_params:
        note(f"{f}: the -p {param_files[f.resolve()]} file, left out of the inputs (name it on its own to read it)",
             quiet)
    if not_images:
        kinds = collections.Counter(f.suffix.lower() or "(no suffix)" for f in not_images)
        note(f"{len(not_images)} file(s) in the folder(s) given left out, not of an image type read here ("
             + ", ".join(f"{k} x{n}" for k, n in kinds.most_common(5)) + (", ..." if len(kinds) > 5 else "")
             + f"; read: {', '.join(IMAGE_SUFFIXES)})", quiet)
    if in_out:
        note(f"{len(in_out)} file(s) found in the -o folder {out} left out (earlier outputs; name one on its own "
             "to read it)", quiet)
    if repeated:
        shown = ", ".join(repeated[:3]) + (f" and {len(repeated) - 3} more" if len(repeated) > 3 else "")
        note(f"{shown}: given more than once, read once", quiet)
    if carriage_returns:
        note(f"{carriage_returns} input name(s) ended with a carriage return (a list with Windows line ends?), read "
             "without it", quiet)
    return items, missing


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, AttributeError):  # closed or replaced (a test's runner)
        return False


def _glob_root(pattern: str) -> Path:
    """The fixed folders of a glob before its first wildcard: `photos/**/*.png` -> `photos`, `*/x.png` -> `.`."""
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    return Path(*parts[:fixed]) if fixed else Path(".")


def check_params_on_inputs(items: Sequence[InputItem], check: Callable[[int, int], None], source: str) -> None:
    """Run check(h, w) (raises ValueError) on the header sizes of the image files `items` until one passes:
    parameters that fit no input are a usage error naming `source` (e.g. "--param") before any work and any
    allocation they would cause; parameters that fit some inputs (a mask of one size) fail the others alone
    later, whatever their order. An unreadable header is left to be reported with its input."""
    from ncvsd_cli import images

    refused, tried = None, set()
    for item in items:
        try:
            size = images.image_size(item.path, name=item.name)
        except ValueError:
            continue
        if size in tried:  # refused already (the operator is built once per size)
            continue
        tried.add(size)
        try:
            check(*size)
        except ValueError as exc:
            refused = refused or exc
            continue
        return
    if refused is not None:
        raise UsageError(f"{source}: {refused}")


# ------------------------------------------------------------------------------------------------ outputs
def refuse_empty(option: str, value: str | None, instead: str) -> None:
    """UsageError when an option was given an empty value (`-o "$DIR"` with DIR unset), which would otherwise read
    as "here" or as the default: `instead` says what to give."""
    if value is not None and not value.strip():
        raise UsageError(f"{option} is empty; {instead}")


def refuse_option_like(option: str, value: str | None) -> None:
    """UsageError for an output name that is an option the value of `option` swallowed (`-o --json` made a folder
    "--json"), or `-o=NAME` read as "=NAME": a name starting with "-", without a suffix or a trailing "/", that does
    not exist."""
    if value is None or value == "-":
        return
    if value.startswith("="):
        raise UsageError(f"{option} {value}: {option}=NAME is read as a name starting with '=': write {option} NAME")
    if value.startswith("-") and not Path(value).suffix and not value.endswith(("/", os.sep)) and \
            not Path(value).exists():
        raise UsageError(f"{option} {value}: an option, not an output name ({option} needs a value; ./{value} names "
                         "a folder of that name)")


def output_mode(out: str | None, items: Sequence[InputItem]) -> str:
    """How `-o` is read: "beside" (no -o: next to each input, stdout for stdin), "stdout", "dir" or "file".

    -o DIR when it is an existing directory, ends with a path separator, has no suffix, or there are several
    inputs. Raises UsageError for "-o FILE" or "-o -" with several inputs, for a file that is not an image, and
    for an existing regular file without a suffix (a typo must not replace it; a link such as /dev/stdout is
    written as given).
    """
    if out is None:
        return "beside"
    refuse_empty("-o", out, "name a file, a folder, or - for stdout (leave -o out to write beside each input)")
    if out == "-":
        if len(items) > 1:
            raise UsageError(f"-o - (stdout) takes one input, got {len(items)}")
        return "stdout"
    try:
        Path(out).exists()  # (Python's exists / is_dir raise for a name the file system refuses: over 255 bytes)
    except OSError as exc:
        raise UsageError(f"-o {out}: {exc.strerror or exc}") from None
    refuse_option_like("-o", out)
    if Path(out).suffix == "" and not Path(out).exists():
        return writable_dir(out)  # `-o results`: a folder (an image file needs its format's suffix)
    if Path(out).is_dir() or out.endswith(("/", os.sep)) or len(items) > 1:
        if Path(out).exists() and not Path(out).is_dir():
            why = "several inputs need an output directory" if len(items) > 1 else "a name ending in / is a directory"
            raise UsageError(f"-o {out}: {why}, but this is a file")
        named_dir = out.endswith(("/", os.sep))
        if not Path(out).exists() and not named_dir and Path(out).suffix.lower() in IMAGE_SUFFIXES:
            raise UsageError(f"-o {out} names one image but {len(items)} inputs were given; use -o DIR/ "
                             "(a directory, created if needed)")
        return writable_dir(out)
    if Path(out).suffix == "" and Path(out).is_file() and not Path(out).is_symlink():  # /dev/stdout is a link
        raise UsageError(f"-o {out}: an existing file without an image suffix (a name without one is a folder); "
                         f"name the image, e.g. -o {out}.png")
    if Path(out).suffix and Path(out).suffix.lower() not in IMAGE_SUFFIXES:  # a device (/dev/stdout) may have none
        raise UsageError(f"-o {out}: unknown image format {Path(out).suffix!r}; use {suffix_choice()}, or "
                         f"for a folder end it with a slash: -o {out.rstrip(os.sep + '/')}/")  # several inputs make it a folder anyway
    return "file"


def _file_identity(path: Path) -> tuple | str:
    """What makes two names of existing files one file: device and inode (a.png and A.png are one file on a
    case-insensitive volume, two on a case-sensitive one; hard links are one), else the resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return str(path.resolve())
    return (st.st_dev, st.st_ino) if st.st_ino else str(path.resolve())


def path_key(path: str | os.PathLike) -> str:
    """The key by which two paths name one file: the resolved path, without case where file systems ignore it by
    default (Windows' NTFS, macOS's APFS: out/photo.png and out/Photo.png are one file there)."""
    key = os.path.normcase(str(Path(path).resolve()))
    return key.casefold() if sys.platform in ("darwin", "win32") else key


def expand_home(value: Any) -> Any:
    """Typer callback of the output options (-o, --out): `~` and `~user` expanded, as a POSIX shell does before a
    program sees them (cmd.exe, PowerShell and a quoted '~/out' leave them to the program); "-" and None as given."""
    if value is None or str(value) == "-":
        return value
    expanded = os.path.expanduser(str(value))
    return type(value)(expanded) if isinstance(value, Path) else expanded


def writable_dir(out: str) -> str:
    """ "dir" when files can be made in the -o folder `out` (created if needed, as a probe shows), else a
    UsageError before any input is read (every input would fail on it)."""
    problem = _folder_problem(Path(out).expanduser(), {})
    if problem is not None:
        raise UsageError(f"-o {out}: {problem}")
    return "dir"


def output_path(item: InputItem, out: str | None, mode: str, tag: str, ext: str = ".png") -> str:
    """The main output of `item`: "-" for stdout, else a path.

    beside: `<input dir>/<stem>_<tag><ext>` (stdin -> stdout); dir: `<DIR>/<subdir>/<stem><ext>` (`subdir`: the
    folders a glob matched), or `<stem>_<tag><ext>` when that is the input's own folder; file: `out` itself.
    """
    if mode == "stdout" or (mode == "beside" and item.is_stdin):
        return "-"
    if mode == "file":
        return str(out)
    if mode == "dir":
        folder = Path(str(out)) / item.subdir
        same = item.path is not None and folder.exists() and folder.resolve() == item.path.parent.resolve()
        return str(folder / (f"{item.stem}_{tag}{ext}" if same else f"{item.stem}{ext}"))
    assert item.path is not None
    return str(item.path.parent / f"{item.stem}_{tag}{ext}")


def variant_path(path: str, suffix: str, ext: str | None = None) -> str:
    """`out/x.png` + "_s1" -> `out/x_s1.png` (samples, mean and std images); `ext` replaces the extension."""
    if path == "-":
        raise UsageError("several outputs per input cannot go to stdout; use -o DIR")
    p = Path(path)
    return str(p.with_name(f"{p.stem}{suffix}{p.suffix if ext is None else ext}"))


def check_stdout(planned: dict[Any, list[str]], as_json: bool) -> None:
    """UsageError when standard output is needed twice (an image for "-" and --json, or two images) or is
    closed, before any work."""
    images_out = sum(p == "-" for paths in planned.values() for p in paths)
    if images_out and as_json:
        raise UsageError("--json and an image on standard output (-o -, or - as input without -o) both use stdout; "
                         "choose one (e.g. -o FILE)")
    if images_out > 1:
        raise UsageError("several images cannot all go to standard output; use -o DIR")
    if (images_out or as_json) and (sys.stdout is None or sys.stdout.closed):
        raise UsageError("standard output is closed; use -o FILE (and no --json)")
    if images_out and sys.stdout.isatty():
        raise UsageError("refusing to write image bytes to a terminal; redirect standard output "
                         "(e.g. > out.png) or use -o FILE")


def _folder_problem(folder: Path, probed: dict[Path, str | None]) -> str | None:
    """Why files cannot be created in `folder` (None when they can): it, or its nearest existing ancestor when it
    does not exist yet, must be a directory where a temporary file can be made (read-only, /proc, ...). Folders
    the probe makes are removed again; another process probing the same new folder at once (xargs -P) is no
    problem: a folder it made is used, one it removed meanwhile is probed again."""
    from ncvsd_cli.images import nearest_existing

    for attempt in range(3):
        if folder in probed:
            break
        created: list[Path] = []
        try:
            existing = nearest_existing(folder)
            if not existing.is_dir():
                raise NotADirectoryError(f"{existing} is not a directory")
            for d in reversed([folder, *folder.parents][: len(folder.parts) - len(existing.parts)]):
                try:
                    d.mkdir()
                    created.append(d)
                except FileExistsError:
                    if os.path.islink(d) and not d.exists():
                        raise NotADirectoryError(f"{d} is a broken symbolic link") from None
                    if not d.exists():  # made and removed again by another probe meanwhile: probed again
                        raise FileNotFoundError(2, "removed meanwhile", str(d)) from None
                    if not d.is_dir():
                        raise NotADirectoryError(f"{d} is not a directory") from None
            fd, tmp = tempfile.mkstemp(prefix=".ncvsd-probe.", dir=folder)
            os.close(fd)
            os.unlink(tmp)
            probed[folder] = None
        except NotADirectoryError as exc:
            probed[folder] = str(exc)
        except FileNotFoundError as exc:  # a folder on the way removed meanwhile (another probe's clean-up)
            if attempt == 2:
                probed[folder] = f"cannot write in {folder}: {exc.strerror or exc}"
        except OSError as exc:
            probed[folder] = f"cannot write in {folder}: {exc.strerror or exc}"
        finally:
            for d in reversed(created):  # the probe leaves nothing behind
                try:
                    d.rmdir()
                except OSError:  # something else was put there meanwhile: keep it
                    break
    return probed[folder]


def leave_out_own_outputs(planned: dict[InputItem, list[str]], report: Report, quiet: bool,
                          named_as_output: Callable[[Path], bool]) -> dict[InputItem, list[str]]:
    """Inputs named as the command names its outputs (`named_as_output`: a_sr4.png) that another input of this
    run writes (`f/*.png` typed again after a run into f/ matches f/a_sr4.png beside f/a.png) are reported
    "skipped" and left out, with a note: they were restored again (a_sr4_sr4.png) and made their source fail as
    "output is an input", --skip-existing too. A photo that merely has the name of another's output (o2/a.png
    with -o o2/) stays an input (`check_outputs` refuses the other). Returns the planned outputs of the others."""
    writers = {path_key(p): item for item, paths in planned.items() for p in paths if p != "-"}
    own = {item: writers[key] for item in planned if item.path is not None
           and writers.get(key := path_key(item.path), item) is not item and named_as_output(item.path)}
    for item, writer in own.items():
        report.skipped(item.name, [])
        note(f"{item.name}: left out: {writer.name} writes it in this run (an earlier run's output, matched again)",
             quiet)
    return {item: paths for item, paths in planned.items() if item not in own}


def skip_earlier_outputs(planned: dict[InputItem, list[str]], report: Report, quiet: bool,
                         earlier_output: Callable[[Path], bool]) -> dict[InputItem, list[str]]:
    """--skip-existing: inputs that are earlier runs' outputs (`earlier_output`: a_sr4.png beside a.png), named one
    by one as `ls *.png | xargs ncvsd restore --skip-existing` names them on a rerun, are reported "skipped" and
    left out with a note (they were restored again: a_sr4_sr4.png; folders and globs leave them out anyway).
    Returns the planned outputs of the others."""
    earlier = [item for item in planned if item.path is not None and earlier_output(item.path)]
    for item in earlier:
        report.skipped(item.name, [])
    if earlier:
        note(f"--skip-existing: left out {len(earlier)} input(s) named as an earlier run's outputs ({earlier[0].name}"
             f"{', ...' if len(earlier) > 1 else ''}); name them without --skip-existing to restore them", quiet)
    return {item: paths for item, paths in planned.items() if item not in earlier}


def written_meanwhile(exc: BaseException, item: InputItem, outputs: Sequence[str], report: Report,
                      skip_existing: bool, quiet: bool) -> bool:
    """An output that appeared during the run (another process of a shared queue wrote it; `images.OutputExistsError`)
    is, with --skip-existing, this input "skipped" with a note (it was a failure, exit 1, advising --overwrite);
    returns whether `exc` was so handled."""
    from ncvsd_cli.images import OutputExistsError

    if not (skip_existing and isinstance(exc, OutputExistsError)
            and all(Path(p).is_file() for p in outputs if p != "-")):  # (what this run wrote is rolled back)
        return False
    report.skipped(item.name, list(outputs))
    note(f"{item.name}: skipped: {exc.target or 'an output'} was written meanwhile (by another process?)", quiet)
    return True


def skip_finished(planned: dict[InputItem, list[str]], report: Report, quiet: bool,
                  noun: str = "input(s)", other_work: Callable[[InputItem, str], str | None] | None = None,
                  ) -> dict[InputItem, list[str]]:
    """--skip-existing: the inputs whose every planned output exists are reported "skipped" (a rerun after an
    interruption makes only the rest, exit 0) and left out; returns the planned outputs of the others. An output
    that another input would also write, or that is an input, skips nothing (`check_outputs` refuses it).
    other_work(item, path): why an existing output is not what this run would make (e.g. another task's, by its
    label), or None: such an input fails with that reason instead (an sr4 run kept deblur outputs as "skipped")."""
    keys = {item: [path_key(p) for p in paths if p != "-"] for item, paths in planned.items()}
    owners = collections.Counter(k for item_keys in keys.values() for k in set(item_keys))
    inputs = {path_key(i.path) for i in planned if i.path is not None}
    done = [item for item, paths in planned.items() if paths and len(keys[item]) == len(paths) and all(
        Path(p).is_file() and owners[k] == 1 and k not in inputs for p, k in zip(paths, keys[item]))]
    others = {item: why for item in done if other_work is not None
              and (why := next(filter(None, (other_work(item, p) for p in planned[item])), None))}
    for item, why in others.items():
        report.failed(item.name, f"{item.name}: {why}: rerun with --overwrite instead of --skip-existing to replace "
                                 "it, or give another -o")
    done = [item for item in done if item not in others]
    for item in done:
        report.skipped(item.name, planned[item])
    if done:
        note(f"--skip-existing: skipped {len(done)} {noun} whose outputs exist", quiet)
    return {item: paths for item, paths in planned.items() if item not in done and item not in others}


def check_outputs(
    planned: dict[InputItem, list[str]], inputs: Sequence[InputItem], overwrite: bool, skip_existing: bool = False,
    can_skip: bool = True, format_hint: str = "",
) -> dict[InputItem, str]:
    """Problems with planned outputs, per input, found before any work: an output that is an input (refused
    unless --overwrite), that exists (refused unless --overwrite; `can_skip`: the message offers --skip-existing;
    a folder of its name always),
    that two inputs would both write, whose suffix is not an image format (sidecars' .json / .safetensors aside),
    or whose folder cannot be written (read-only, /proc, a file in the way). `format_hint`: added to the message of
    inputs of different suffixes that claim one output (restore: --format same). Returns {item: message}."""
    from ncvsd_cli import images

    input_paths = {path_key(i.path) for i in inputs if i.path is not None}
    claims: dict[str, list[InputItem]] = {}  # output -> the inputs that would write it (several: all refused)
    for item, paths in planned.items():
        for key in {path_key(p) for p in paths if p != "-"}:
            claims.setdefault(key, []).append(item)
    problems: dict[InputItem, str] = {}
    probed: dict[Path, str | None] = {}
    for item, paths in planned.items():
        for p in paths:
            if p == "-":
                continue
            key = path_key(p)
            suffix = Path(p).suffix.lower()
            folder = _folder_problem(Path(p).resolve().parent, probed)
            unwritable = suffix and suffix not in (".json", ".safetensors") and images.output_format_problem(suffix)
            long_name = folder is None and _name_too_long(Path(p))
            if unwritable:
                problems[item] = f"{item.name}: output {p}: {unwritable}"
            elif long_name:
                problems[item] = f"{item.name}: output {p}: {long_name}"
            elif folder is not None:
                problems[item] = f"{item.name}: output {p}: {folder}"
            elif len(claims[key]) > 1:  # none of them is written: a rerun meets the same refusal, not a half
                others = ", ".join(i.name for i in claims[key] if i != item)
                folders = {str(Path(i.path).resolve().parent) for i in claims[key] if getattr(i, "path", None)}
                glob = (", or name files of several folders by a quoted glob ('photos/**/*.png'), whose matched "
                        "subfolders are kept below -o DIR") if len(folders) > 1 else ""
                suffixes = {Path(i.path).suffix.lower() for i in claims[key] if getattr(i, "path", None)}
                same = format_hint if len(suffixes) > 1 else ""
                problems[item] = (f"{item.name}: output {p} would also be written for {others} (the same name stem; "
                                  f"none of them is written): rename one of them or run them separately{glob}{same}")
            elif Path(p).is_dir():  # also with --overwrite: a folder is never replaced by a file
                problems[item] = f"{item.name}: output {p} is a folder; remove it or choose another -o"
            elif Path(p).exists() and not Path(p).is_file():  # --overwrite replaced /dev/null, a FIFO with a file
                problems[item] = (f"{item.name}: output {p} is not a regular file (a device, pipe or socket), never "
                                  "replaced: -o - writes to standard output")
            elif key in input_paths and (item.path is None or key != path_key(item.path)):  # --overwrite too
                problems[item] = (f"{item.name}: output {p} is another input of this run; refusing to replace it "
                                  "(rename one of them, or write the outputs elsewhere: -o DIR/)")
            elif not overwrite and key in input_paths:
                problems[item] = (
                    f"{item.name}: output {p} is an input; refusing to overwrite it (use --overwrite)"
                )
            elif not overwrite and not Path(p).exists() and os.path.lexists(p):  # (found after the work)
                problems[item] = (f"{item.name}: output {p} is a symbolic link to a missing file (--overwrite "
                                  "replaces the link with the output; or choose another -o)")
            elif not overwrite and Path(p).exists():
                problems[item] = (f"{item.name}: output {p} exists, beside outputs still to make (remove it, or "
                                  "rerun without --skip-existing and with --overwrite)" if skip_existing else
                                  f"{item.name}: output {p} exists (--overwrite replaces it" + (
                                      ", --skip-existing keeps it and makes the rest)" if can_skip and all(
                                          Path(q).exists() for q in paths if q != "-") else
                                      "; --skip-existing skips an input only where all its outputs exist)"
                                      if can_skip else ")"))
            if item in problems:
                break
    return problems


def _is_dir(path: Path) -> bool:
    """path.is_dir(), False for a name the file system refuses (is_dir raises OSError for one over 255 bytes)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _name_too_long(path: Path) -> str | None:
    """Why `path`'s name cannot be made in its (existing or creatable) folder: longer than the file system's limit
    (NAME_MAX, 255 bytes on most); None when it fits."""
    from ncvsd_cli.images import nearest_existing

    try:
        limit = os.pathconf(nearest_existing(path.resolve().parent), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # Windows: no pathconf (its limit is 255 characters)
        limit = 255
    size = len(path.name.encode("utf-16-le")) // 2 if os.name == "nt" else len(os.fsencode(path.name))
    unit = "characters" if os.name == "nt" else "bytes"  # (NTFS counts UTF-16 units, the others bytes)
    return (f"its name is {size} {unit} long, over this file system's {limit}: shorten the input's name or name "
            "the output (-o FILE)") if size > limit else None


# -------------------------------------------------------------------------------------- progress and report
def progress(total: int, desc: str, quiet: bool = False, unit: str = "img"):
    """Progress of `total` items on stderr (`ncvsd_cli.progress.NestedProgress`): a bar that stays on screen at the
    end on a terminal, a periodic status line otherwise, nothing when `quiet`. `.update(n)` after n items,
    `.step(done, total)` for the network evaluations of the batch in flight, `.close()` at the end."""
    from ncvsd_cli.progress import NestedProgress

    return NestedProgress(max(total, 1), desc, unit, quiet=quiet)


@dataclass
class Report:
    """Per-input results of a command: errors go to stderr as they happen. With `json_lines` (`--json`), stdout
    is JSON Lines whatever the number of inputs: one object per input as it finishes (with "status"), then the
    summary (with "command" and every result under "results") as the last line, also after an interruption
    ("interrupted": the signal; `summary_on_interrupt`). So `ncvsd restore dir/ --json | jq -c 'select(.status)'`
    shows each image while the rest run, and `tail -n 1` is the summary, for one input as for a thousand.
    `inputs`: the names of every input the command will handle; the summary of an interrupted run lists those with
    no result yet under "not_done"."""

    command: str
    results: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    json_lines: bool = False
    inputs: list[str] = field(default_factory=list)

    def _add(self, record: dict[str, Any]) -> None:
        self.results.append(record)
        if self.json_lines:
            sys.stdout.write(strict_json.dumps(record) + "\n")
            sys.stdout.flush()

    def ok(self, name: str, outputs: Sequence[str], **info: Any) -> None:
        self._add({"input": name, "status": "ok", "outputs": list(outputs), **info})

    def failed(self, name: str, message: str) -> None:
        error(message)
        self._add({"input": name, "status": "failed", "error": one_line(message)})

    def skipped(self, name: str, outputs: Sequence[str]) -> None:
        self._add({"input": name, "status": "skipped", "outputs": list(outputs)})

    @property
    def n_failed(self) -> int:
        return sum(r["status"] == "failed" for r in self.results)

    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.n_failed else EXIT_OK

    def summary(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "ok": sum(r["status"] == "ok" for r in self.results),
            "failed": self.n_failed,
            "skipped": sum(r["status"] == "skipped" for r in self.results),  # (always: one schema for scripts)
            "exit_code": self.exit_code(),
            **self.extra,
            "results": self.results,
        }

    def finish(self, as_json: bool, quiet: bool = False) -> NoReturn:
        """Print the JSON summary line on stdout when asked, else (unless `quiet`) the `recap` line on stderr: on a
        terminal, and in a log file for several inputs (the tally); then exit with 0 or 1."""
        if as_json:
            self._write_summary(self.summary())
        elif not quiet and (stderr_is_terminal() or len(self.results) > 1) and (line := self.recap()):
            note(line)
        raise typer.Exit(self.exit_code())

    def recap(self) -> str | None:
        """Where the outputs went, for a person (names are made from the inputs'): one input, the files written;
        several, how many were done, skipped and failed, and their folder. None when nothing was written to a
        file (all failed, or stdout)."""
        files = [str(o) for r in self.results if r["status"] == "ok" for o in r.get("outputs", []) if str(o) != "-"]
        if not files:
            return None
        if len(self.results) == 1:
            return "wrote " + ", ".join(files)
        counts = ", ".join(f"{n} {status}" for status in ("ok", "skipped", "failed")
                           if (n := sum(r["status"] == status for r in self.results)))
        folders = sorted({str(Path(f).parent) for f in files})
        return f"{self.command}: {counts}; outputs in " + (folders[0] if len(folders) == 1 else
                                                          f"{len(folders)} folders")

    def _write_summary(self, doc: dict[str, Any]) -> None:
        global _summary_owed, summary_written
        _summary_owed, summary_written = None, True
        sys.stdout.write(strict_json.dumps(doc) + "\n")
        sys.stdout.flush()

    @contextmanager
    def summary_on_interrupt(self, as_json: bool) -> Iterator[None]:
        """Inside: a run stopped early still ends its `--json` output with the summary of the inputs finished so
        far, so that a consumer tells a finished stream from a cut one: by Ctrl-C or SIGTERM / SIGHUP
        ("interrupted": the signal's name, "exit_code": 128 + N), or by an error that `handle_errors` turns into
        an exit code ("error": its one line, "exit_code": 2 usage, 3 model, 1 otherwise). The exception goes on."""
        try:
            yield
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BaseException as exc:
            if as_json:
                end: dict[str, Any] = {"exit_code": exit_code_for(exc)}
                if isinstance(exc, KeyboardInterrupt):
                    end["interrupted"] = signal.Signals(int(getattr(exc, "signum", signal.SIGINT))).name
                else:
                    end["error"] = one_line(exc)
                done = {r["input"] for r in self.results}
                end |= {"not_done": left} if (left := [n for n in self.inputs if n not in done]) else {}
                try:
                    self._write_summary(self.summary() | end)
                except (OSError, ValueError, AttributeError):  # stdout closed or gone (None): nothing to tell
                    pass
            raise
