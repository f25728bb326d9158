"""The `ncvsd` command: a Typer app with one module per command.

Command modules import torch and the library lazily (inside the command functions) so that
`ncvsd --help` stays fast.
"""

from __future__ import annotations

import typer

from ncvsd_cli import __version__
from ncvsd_cli.cli import bench, checkpoints, degrade, distill, restore, sample, train

app = typer.Typer(
    name="ncvsd",
    help=(
        "Solve image inverse problems with a generative denoiser distilled by NCVSD.\n\n"
        "Examples:\n\n"
        "  ncvsd restore --task sr4 input.png\n\n"
        "  ncvsd degrade --task deblur-gauss clean.png -o measured.png\n\n"
        "  ncvsd bench --dataset builtin --tasks sr4 --nfe 1,4 --methods pnp-gd,pnp-gd-warm,classical --limit 4 "
        "--out bench/\n\n"
        "  cat list.txt | xargs ncvsd restore --task deblur-gauss -o out/\n\n"
        "  ncvsd restore photos/ --task sr4 -o out/ --json | jq -c 'select(.status)'   (JSON Lines as each "
        "image finishes)\n\n"
        "  ncvsd sample --nfe 4 --seeds 0-15 -o grid.png\n\n"
        "  ncvsd --install-completion   (tab completion for bash, zsh, fish or PowerShell)\n\n"
        "Each command's --help has more examples."
    ),
    no_args_is_help=True,
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
    """Solve image inverse problems with a generative denoiser distilled by NCVSD."""


for _module in (restore, degrade, sample, bench, train, distill, checkpoints):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
