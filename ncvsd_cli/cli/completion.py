"""Tab completion of task and method names (typer's `autocompletion`), plug-ins included, each with its one-line
summary where the shell shows one (zsh, fish). The registries import torch, so a TAB on these options takes about
2 s; everything else completes as before (files, choices)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

Candidates = list[tuple[str, str]]


def _quietly(candidates: Callable[[], Candidates]) -> Candidates:
    """`candidates()`, or none: a TAB must not print a broken plug-in's warning or a traceback over the command
    line being typed."""
    plugins = logging.getLogger("ncvsd.plugins")
    was = plugins.disabled
    plugins.disabled = True
    try:
        return candidates()
    except (Exception, SystemExit):  # noqa: BLE001 (no completion rather than an error in the terminal)
        return []
    finally:
        plugins.disabled = was


def _summary(text: str | None, width: int = 60) -> str:
    """The first sentence of `text` on one line, cut to `width` characters."""
    line = " ".join((text or "").split()).split(". ")[0].rstrip(".")
    return line if len(line) <= width else line[: width - 1] + "…"


def _task_candidates() -> Candidates:
    import operators

    return [(name, _summary(operators.get(name).__doc__)) for name in operators.names()]


def _method_candidates() -> Candidates:
    from ncvsd_cli.sampling.methods import get_method, method_names

    return [(name, _summary(get_method(name).summary)) for name in method_names()]


def _matching(candidates: Iterable[tuple[str, str]], incomplete: str, before: str = "") -> Candidates:
    """The candidates starting with `incomplete`, each prefixed by `before` (the finished part of a comma list)."""
    return [(before + name, summary) for name, summary in candidates if name.startswith(incomplete)]


def _one(candidates: Callable[[], Candidates]) -> Callable[[str], Candidates]:
    def complete(incomplete: str) -> Candidates:
        return _matching(_quietly(candidates), incomplete)
    return complete


def _comma_list(candidates: Callable[[], Candidates]) -> Callable[[str], Candidates]:
    """Completion of "a,b,c": the last element, leaving out the names already listed."""
    def complete(incomplete: str) -> Candidates:
        before, _, last = incomplete.rpartition(",")
        given = set(before.split(",")) if before else set()
        return _matching([c for c in _quietly(candidates) if c[0] not in given], last, before + "," if before else "")
    return complete


task = _one(_task_candidates)
method = _one(_method_candidates)
task_list = _comma_list(_task_candidates)
method_list = _comma_list(_method_candidates)
