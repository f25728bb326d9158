"""`ncvsd checkpoints list|info|download|import`: what weights are available (here and in the model zoo), their
config and hash, download of the published models and conversion of the authors' pickles. torch is imported only
inside `download` and `import` (list/info read safetensors headers only)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import typer

from ncvsd_cli import strict_json
from ncvsd_cli.cli.common import EXIT_MODEL, EXIT_USAGE, epilog, expand_home, fail, handle_errors, note

checkpoints_app = typer.Typer(
    name="checkpoints",
    help=epilog(
        "List, inspect and import model checkpoints (safetensors with a JSON config).\n\n"
        "Lookup order for a NAME: an existing path, $NCVSD_CHECKPOINTS, the shipped checkpoints, "
        "the model zoo (downloaded and converted on first use), the user cache (~/.cache/ncvsd). "
        "A .pkl path is converted once into the cache by the safe importer.\n\n"
        "Examples:\n\n"
        "  ncvsd checkpoints list\n\n"
        "  ncvsd checkpoints download ncvsd-ffhq256-xs\n\n"
        "  ncvsd checkpoints info builtin64-generator\n\n"
        "  ncvsd checkpoints import ncvsd-ffhq256-xs.pkl -o ~/.cache/ncvsd/ncvsd-ffhq256-xs.safetensors"
    ),
    no_args_is_help=True,
)


def _human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@checkpoints_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List every checkpoint in every search location (earlier locations shadow later ones), then the model zoo.

    Columns: name, kind, preset, resolution, size, sha256 prefix, licence, location, status (for the zoo:
    downloaded or not; the size is the published file's until it is downloaded, "?" when unknown). On a terminal
    narrower than the table, sha256, licence, preset, size and location give way in that order (a note says which);
    a pipe or file gets them all.

    Examples:

      ncvsd checkpoints list

      NCVSD_CHECKPOINTS=runs/exp1 ncvsd checkpoints list --json
    """
    from ncvsd_cli import zoo
    from ncvsd_cli.checkpoints import env_location_problem, list_checkpoints

    with handle_errors():
        if problem := env_location_problem():  # a file or a typo: said, not silently skipped
            note(f"NCVSD_CHECKPOINTS={os.environ['NCVSD_CHECKPOINTS']} is {problem}: not searched (it names a "
                 "folder of checkpoints or a training run)")
        rows_json = [i.to_dict() for i in list_checkpoints()] + [zoo.status(e) for e in zoo.load_zoo().values()]
    if as_json:
        typer.echo(strict_json.dumps(rows_json, indent=2))
        return
    rows = [("NAME", "KIND", "PRESET", "RES", "SIZE", "SHA256", "LICENCE", "LOCATION", "STATUS")]
    for i in rows_json:
        status = "; ".join(p.strip() for p in (i.get("status") or "").split(":")[0].split(";")
                           if "not a network" not in p)  # (--json and info say the rest)
        size = _human_size(i["size"]) if i.get("size") is not None else "?"
        licence = (i.get("licence") or "-").split(" (")[0]
        rows.append((i["name"], i.get("kind") or "-", i.get("preset") or "-", str(i.get("img_resolution") or "-"),
                     size, (i.get("sha256") or "-")[:12], licence, i["location"], status))
    rows, hidden = _fit_columns(rows, _terminal_width())
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if hidden:
        note(f"{', '.join(hidden)} left out to fit {_terminal_width()} columns (--json, or a wider terminal, shows "
             "them)")


DROPPED_FIRST = ("SHA256", "LICENCE", "PRESET", "SIZE", "LOCATION")  # the order columns give way to a narrow terminal


def _terminal_width() -> int | None:
    """The terminal's width in columns ($COLUMNS first), or None when stdout is not a terminal (a pipe or file
    gets every column, whatever $COLUMNS says)."""
    import sys

    with contextlib.suppress(AttributeError, OSError, ValueError):
        if sys.stdout.isatty():
            columns = os.environ.get("COLUMNS", "")
            return int(columns) if columns.isdigit() else os.get_terminal_size(sys.stdout.fileno()).columns
    return None


def _fit_columns(rows: list[tuple[str, ...]], width: int | None) -> tuple[list[tuple[str, ...]], list[str]]:
    """rows without the columns of DROPPED_FIRST, in that order, until a line fits `width` (None: all kept);
    returns them and the names of the columns left out."""
    hidden: list[str] = []
    for name in (() if width is None else DROPPED_FIRST):
        if sum(max(len(r[c]) for r in rows) for c in range(len(rows[0]))) + 2 * (len(rows[0]) - 1) <= width:
            break
        keep = [c for c, head in enumerate(rows[0]) if head != name]
        rows, hidden = [tuple(r[c] for c in keep) for r in rows], [*hidden, name]
    return rows, hidden


@checkpoints_app.command("download")
def download_command(
    name: str = typer.Argument(..., help="Model-zoo name (see `ncvsd checkpoints list`)."),
    force: bool = typer.Option(False, "--force", help="Download and convert again even if it is in the cache."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notes or progress bar."),
) -> None:
    """Download a published model, verify its sha256, convert it once into the ncvsd cache; print its path.

    Hub files go through huggingface_hub (its cache; HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME honoured), other files
    through a resumable HTTP download. The licence is printed before downloading. Later runs only verify the
    conversion's sha256. Using a zoo name with --checkpoint / --teacher does the same on first use.
    Exit codes: 0 ok, 2 unknown name, 3 download, checksum or conversion problem.

    Examples:

      ncvsd checkpoints download ncvsd-ffhq256-xs

      ncvsd checkpoints download edm2-img64-s --force
    """
    from ncvsd_cli import zoo

    with handle_errors():
        entry = zoo.find(name)
        if entry is None:
            fail(f"{name!r} is not in the model zoo; available: {', '.join(zoo.names()) or 'none'}", EXIT_USAGE)
        path = zoo.ensure(entry.name, force=force, quiet=quiet)
    typer.echo(str(path))


@checkpoints_app.command("info")
def info_command(
    name: str = typer.Argument(..., help="Checkpoint name (\".safetensors\" optional) or path."),
) -> None:
    """Show a checkpoint's path, size, sha256, manifest verification and stored config as JSON.

    Exit code 3 when the file's hash differs from the manifest, it cannot be found, it is not a readable
    safetensors checkpoint or its weights hold NaN or inf values (as `restore -c` refuses it).

    Examples:

      ncvsd checkpoints info builtin64-generator

      ncvsd checkpoints info runs/exp1/generator.safetensors | jq .config.arch
    """
    from ncvsd_cli import zoo
    from ncvsd_cli.checkpoints import checkpoint_info

    with handle_errors():
        entry = zoo.find(name) if not Path(name).expanduser().is_file() else None
        status = zoo.status(entry) if entry is not None else None
        if status is not None and not status["downloaded"]:
            typer.echo(strict_json.dumps(status, indent=2))  # not downloaded: what the zoo says
            if status["status"].startswith("MISMATCH"):  # another network imported under the zoo's name
                fail(status["status"][len("MISMATCH: "):], EXIT_MODEL)
            return
        info = checkpoint_info(name)
    typer.echo(strict_json.dumps(info.to_dict(), indent=2))
    if info.status.startswith("MISMATCH"):
        fail(info.status[len("MISMATCH: "):], EXIT_MODEL)
    if "unreadable" in info.status:
        fail(f"{name}: not a readable checkpoint ({info.status})", EXIT_MODEL)


@checkpoints_app.command("import")
def import_command(
    src: Path = typer.Argument(..., help="The authors' pickle, e.g. ncvsd-ffhq256-xs.pkl or edm2-img64-s-*.pkl."),
    output: Path = typer.Option(..., "-o", "--output", callback=expand_home, help="Safetensors file to write (atomically)."),
    ema: str = typer.Option("ema", "--ema", help="Entry of the pickled dict that holds the network."),
    data: str = typer.Option(None, "--data", help="Training data, recorded in the provenance (e.g. FFHQ-256)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Convert an EDM2/NCVSD persistence pickle into an ncvsd checkpoint WITHOUT executing it.

    The pickle is read by a restricted unpickler that records objects instead of building them (the embedded
    module source is never run); any other global it asks for is refused. The architecture comes from the recorded
    constructor arguments; weights are loaded strictly and stored in their original dtype.

    Examples:

      ncvsd checkpoints import ncvsd-ffhq256-xs.pkl -o ffhq256-xs.safetensors

      ncvsd checkpoints import edm2-img64-s.pkl --ema ema -o edm2-s.safetensors
    """
    if src.is_dir():
        run = " (a training run: its snapshots are ncvsd checkpoints already, used as they are: -c " \
              f"{src})" if (src / "snapshots").is_dir() else ""
        fail(f"{src} is a folder; give the pickle file to import{run}", EXIT_USAGE)
    if not src.is_file():
        fail(f"source pickle {src} " + ("is not a regular file" if src.exists() else "does not exist"), EXIT_USAGE)
    if src.suffix.lower() == ".safetensors":
        fail(f"{src} is a safetensors file, not a pickle to import: an ncvsd checkpoint is used as it is (-c "
             f"{src}; `ncvsd checkpoints info {src}` shows it)", EXIT_USAGE)
    if output.is_dir():
        fail(f"-o {output} is a folder; name the file to write, e.g. -o {output / src.with_suffix('.safetensors').name}",
             EXIT_USAGE)
    if output.suffix != ".safetensors":
        fail(f"output must end in .safetensors, got {output}", EXIT_USAGE)
    if output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it", EXIT_USAGE)
    made = [p for p in (output.parent, *output.parent.parents) if not p.exists()]  # removed again on failure
    try:  # before the conversion: a folder that cannot be written is a usage error, not an internal one
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"-o {output}: cannot create its folder: {exc.strerror or exc}", EXIT_USAGE)
    if not os.access(output.parent, os.W_OK):
        fail(f"-o {output}: the folder {output.parent} is not writable", EXIT_USAGE)
    command = f"ncvsd checkpoints import {src.name} -o {output.name} --ema {ema}"
    with handle_errors():
        from ncvsd_cli.images import OutputExistsError
        from ncvsd_cli.pickle_import import import_pickle

        try:
            path, config = import_pickle(src, output, ema_key=ema, command=command, data=data, overwrite=force)
        except OutputExistsError:  # written by another process during the conversion
            fail(f"{output} was created meanwhile (another process?); pass --force to overwrite it", EXIT_USAGE)
        except BaseException:
            for folder in made:  # innermost first; only the empty folders this command made
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
    typer.echo(f"wrote {path} ({config['kind']}, {config['img_resolution']} px)", err=True)
    for key, value in config["provenance"].get("assumed", {}).items():
        typer.echo(f"note: the pickle does not record the generator's {key}; the paper's {value} is assumed "
                   "(recorded in the checkpoint's provenance)", err=True)
    typer.echo(strict_json.dumps({"path": str(path), "kind": config["kind"], "arch": config["arch"]}))


def register(app: typer.Typer) -> None:
    """Add the `checkpoints` command group to the app."""
    app.add_typer(checkpoints_app, name="checkpoints")
