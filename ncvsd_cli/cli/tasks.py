"""`ncvsd tasks`: the tasks (operators) this installation knows, built-in and plug-in, with what each measures, its
parameters and their defaults, its default method and what a plain image needs. No torch at import."""

from __future__ import annotations

import inspect
from typing import Any

import typer

from ncvsd_cli import strict_json
from ncvsd_cli.cli import common

EPILOG = """Examples:

  ncvsd tasks

  ncvsd tasks --json | jq -r '.[] | select(.plain_image == "yes") | .task'

Parameters are given to degrade and restore as -p NAME=VALUE (YAML values: -p box_size=[64,48], -p invert=true);
"-" marks a default computed from the image (a box of half its side) or a parameter that has none. A plain image
(not a sidecar of `ncvsd degrade`) is restored with the parameters said beside it."""


def _first_sentence(text: str | None) -> str:
    line = " ".join((text or "").split())
    return line.split(". ")[0].rstrip(".")


def task_record(name: str) -> dict[str, Any]:
    """What `ncvsd tasks` says of the registered operator `name`: {"task", "summary", "parameters" {name: default
    or None} (degrade's), "method" (the task preset's default; None without a preset), "plain_image" ("yes", or
    what it needs), "plain_image_parameters" (those a plain image is restored with instead: a blur's reflect)}."""
    import operators
    from ncvsd_cli.measurement import PLAIN_IMAGE_REFUSALS, plain_image_params
    from ncvsd_cli.sampling.presets import task_settings

    cls = operators.get(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # (self, image_shape)
    defaults = {p.name: None if p.default is inspect.Parameter.empty else p.default for p in params
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    try:
        settings = task_settings(name)
    except ValueError:  # a plug-in without a default preset: --preset FILE gives one
        settings = {}
    defaults |= {k: v for k, v in (settings.get("operator") or {}).items() if k in defaults}  # (the preset's)
    needs, _ = PLAIN_IMAGE_REFUSALS.get(name, (frozenset(), ""))
    plain = ("sidecar only" if name in PLAIN_IMAGE_REFUSALS and not needs else
             "needs " + " or ".join(f"-p {n}=..." for n in sorted(needs)) if needs else "yes")
    other = {k: v for k, v in plain_image_params(name, settings.get("operator")).items() if defaults.get(k) != v}
    return {"task": name, "summary": cls.summary or _first_sentence(cls.__doc__), "parameters": defaults,
            "method": settings.get("method"), "plain_image": plain, "plain_image_parameters": other}


def _value(v: Any) -> str:
    return "-" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def tasks_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array, one object per task."),
) -> None:
    """List the tasks (operators) degrade and restore take, plug-ins' included: what each measures, its -p parameters
    with their defaults, its default method, and whether a plain image can be restored (or what it needs)."""
    with common.handle_errors():
        import operators

        records = [task_record(n) for n in operators.names()]
    if as_json:
        typer.echo(strict_json.dumps(records, indent=2))
        return
    width = max(len(r["task"]) for r in records) + 2
    for r in records:
        params = " ".join(f"{k}={_value(v)}" for k, v in r["parameters"].items()) or "none"
        other = " ".join(f"{k}={_value(v)}" for k, v in r["plain_image_parameters"].items())
        typer.echo(f"{r['task']:<{width}}{r['summary']}")
        typer.echo(f"{'':<{width}}-p {params}")
        typer.echo(f"{'':<{width}}method {r['method'] or 'none: --preset FILE'}; plain image: {r['plain_image']}"
                   + (f" (restored with {other})" if other else ""))


def register(app: typer.Typer) -> None:
    """Add `ncvsd tasks` to the app."""
    app.command(name="tasks", epilog=common.epilog(EPILOG))(tasks_command)
