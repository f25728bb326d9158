"""`ncvsd checkpoints list|info|import`: what weights are available, their config and hash, and conversion of the
authors' pickles. torch is imported only inside `import` (list/info read safetensors headers only)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ncvsd_cli.cli.common import EXIT_MODEL, EXIT_USAGE, fail, handle_errors

checkpoints_app = typer.Typer(
    name="checkpoints",
    help=(
        "List, inspect and import model checkpoints (safetensors with a JSON config).\n\n"
        "Lookup order for a NAME: an existing path, $NCVSD_CHECKPOINTS, the shipped checkpoints, "
        "the user cache (~/.cache/ncvsd).\n\n"
        "Examples:\n\n"
        "  ncvsd checkpoints list\n\n"
        "  ncvsd checkpoints info builtin64-generator\n\n"
        "  ncvsd checkpoints import ncvsd-ffhq256-xs.pkl -o ~/.cache/ncvsd/ncvsd-ffhq256-xs.safetensors"
    ),
    no_args_is_help=True,
)


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@checkpoints_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List every checkpoint in every search location (earlier locations shadow later ones).

    Columns: name, kind, preset, resolution, size, sha256 prefix, location, status.

    Examples:

      ncvsd checkpoints list

      NCVSD_CHECKPOINTS=runs/exp1 ncvsd checkpoints list --json
    """
    from ncvsd_cli.checkpoints import list_checkpoints

    with handle_errors():
        infos = list_checkpoints()
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    if not infos:
        typer.echo("no checkpoints found (see `ncvsd checkpoints --help` for where they are looked up)", err=True)
        return
    rows = [("NAME", "KIND", "PRESET", "RES", "SIZE", "SHA256", "LOCATION", "STATUS")]
    for i in infos:
        status = i.status.split(":")[0] if i.status else ""
        rows.append((i.name, i.kind or "-", i.preset or "-", str(i.img_resolution or "-"), _human_size(i.size),
                     i.sha256[:12], i.location, status))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@checkpoints_app.command("info")
def info_command(
    name: str = typer.Argument(..., help="Checkpoint name (\".safetensors\" optional) or path."),
) -> None:
    """Show a checkpoint's path, size, sha256, manifest verification and stored config as JSON.

    Exit code 3 when the file's hash differs from the manifest or it cannot be found.

    Examples:

      ncvsd checkpoints info builtin64-generator

      ncvsd checkpoints info runs/exp1/generator.safetensors | jq .config.arch
    """
    from ncvsd_cli.checkpoints import checkpoint_info

    with handle_errors():
        info = checkpoint_info(name)
    typer.echo(json.dumps(info.to_dict(), indent=2))
    if info.status.startswith("MISMATCH"):
        fail(info.status[len("MISMATCH: "):], EXIT_MODEL)


@checkpoints_app.command("import")
def import_command(
    src: Path = typer.Argument(..., help="The authors' pickle, e.g. ncvsd-ffhq256-xs.pkl or edm2-img64-s-*.pkl."),
    output: Path = typer.Option(..., "-o", "--output", help="Safetensors file to write (atomically)."),
    ema: str = typer.Option("ema", "--ema", help="Entry of the pickled dict that holds the network."),
    data: str = typer.Option(None, "--data", help="Training data, recorded in the provenance (e.g. FFHQ-256)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Convert an EDM2/NCVSD persistence pickle into an ncvsd checkpoint WITHOUT executing it.

    The pickle is read by a restricted unpickler that records objects instead of building them (the embedded
    module source is never run); any other global it asks for is refused. The architecture comes from the recorded
    constructor arguments; weights are loaded strictly and stored in their original dtype.

    Examples:

      ncvsd checkpoints import ncvsd-ffhq256-xs.pkl -o ncvsd-ffhq256-xs.safetensors

      ncvsd checkpoints import edm2-img64-s-1073741-0.075.pkl -o ~/.cache/ncvsd/edm2-img64-s.safetensors --ema ema
    """
    if not src.is_file():
        fail(f"source pickle {src} does not exist", EXIT_USAGE)
    if output.suffix != ".safetensors":
        fail(f"output must end in .safetensors, got {output}", EXIT_USAGE)
    if output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it", EXIT_USAGE)
    command = f"ncvsd checkpoints import {src.name} -o {output.name} --ema {ema}"
    with handle_errors():
        from ncvsd_cli.pickle_import import import_pickle

        path, config = import_pickle(src, output, ema_key=ema, command=command, data=data)
    typer.echo(f"wrote {path} ({config['kind']}, {config['img_resolution']} px)", err=True)
    typer.echo(json.dumps({"path": str(path), "kind": config["kind"], "arch": config["arch"]}))


def register(app: typer.Typer) -> None:
    """Add the `checkpoints` command group to the app."""
    app.add_typer(checkpoints_app, name="checkpoints")
