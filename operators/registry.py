"""Operators by name. Built-ins register with `@register`; other packages add theirs through the entry-point
group `ncvsd.operators` (`name = "package.module:OperatorClass"`), loaded on first lookup."""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from operators.base import Operator

ENTRY_POINT_GROUP = "ncvsd.operators"


class EntryPointGroup:
    """The entry points of one group, handed to `add(entry_point, loaded_object)` once, on the first `load()`.
    One that fails to import or to register (not an Operator, a name taken) is left out with a warning naming its
    package, and `failed` keeps why by name: one broken plug-in stopped every command, built-in tasks too. Shared
    by the operator and the method registries; tests reset `loaded` to read a new plug-in."""

    def __init__(self, group: str, add: Callable[[EntryPoint, Any], None]) -> None:
        self.group, self.add, self.loaded = group, add, False
        self.failed: dict[str, str] = {}
        self.lock, self.here = threading.Lock(), threading.local()

    def load(self) -> None:
        """Import every entry point, then register them under the lock: a thread asking meanwhile waits for all (it
        saw half the plug-ins: "unknown task"), and no import runs under the lock (a plug-in module that asks the
        registry while another thread imports it deadlocked). A plug-in's import asking for names gets the
        built-ins (`here.loading`: this thread is in `load`)."""
        if self.loaded or getattr(self.here, "loading", False):
            return
        self.here.loading = True
        try:
            imported = []
            for ep in entry_points(group=self.group):
                try:
                    imported.append((ep, ep.load(), None))
                except (Exception, SystemExit) as exc:  # noqa: BLE001 (a plug-in's own error, whatever it is, even
                    imported.append((ep, None, exc))  # a sys.exit or an argparse run at import, is named and skipped)
            with self.lock:
                if not self.loaded:
                    self.failed = {}
                    for ep, obj, exc in imported:
                        self._add(ep, obj, exc)
                    self.loaded = True
        finally:
            self.here.loading = False

    def _add(self, ep: EntryPoint, obj: Any, exc: BaseException | None) -> None:
        """Register `obj`, or name why `ep` is left out (its import's `exc`, or the registration's refusal)."""
        if exc is None:
            try:
                self.add(ep, obj)
                return
            except (Exception, SystemExit) as refused:  # noqa: BLE001 (the built-ins keep working)
                exc = refused
        package = getattr(getattr(ep, "dist", None), "name", None) or "an unnamed package"
        self.failed[ep.name] = (f"the plug-in {ep.name} = {ep.value} of {package} ({self.group}) was left out: "
                                f"{type(exc).__name__}: {exc}")
        logging.getLogger("ncvsd.plugins").warning("%s", self.failed[ep.name])

    def unknown(self, name: str, known: list[str], what: str) -> ValueError:
        """The error for a name not registered: a failed plug-in's reason where one had that name."""
        if name in self.failed:
            return ValueError(self.failed[name])
        folded, typed = {k.casefold(): k for k in known}, str(name).casefold()
        close = [typed] if typed in folded else difflib.get_close_matches(typed, list(folded), n=3, cutoff=0.6)
        if not close and len(typed) >= 3:  # a prefix: deblur, inpaint
            close = [k for k in folded if k.startswith(typed)][:3]
        hint = f" (did you mean {' or '.join(folded[k] for k in close)}?)" if close else ""
        return ValueError(f"unknown {what} '{name}'{hint}; known: {', '.join(sorted(known))}")


_REGISTRY: dict[str, type[Operator]] = {}


#: What a task or method name may be: it becomes part of file names (x_<task>.png) and of comma lists (--tasks).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name: Any, what: str, registered: Iterable[str] = ()) -> None:
    """ValueError unless `name` is made of letters, digits, ".", "_" and "-" (NAME_PATTERN: a "/" or ".." in a
    plug-in's name wrote outputs outside their folder, a "," could not be given to bench) and differs from every
    `registered` name in more than case (their output files would clash on case-insensitive volumes)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{what} name {name!r} must be letters, digits, '.', '_' and '-' (it names output files and "
                         "is given in comma lists)")
    twin = next((n for n in registered if n != name and n.casefold() == name.casefold()), None)
    if twin is not None:
        raise ValueError(f"{what} name '{name}' differs only in case from the registered '{twin}'")


def register(cls: type[Operator]) -> type[Operator]:
    """Class decorator: make `cls` available as `cls.name` (`check_name`)."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no `name`")
    check_name(cls.name, "operator", _REGISTRY)
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        taken = _REGISTRY[cls.name]
        raise ValueError(f"operator name '{cls.name}' is already registered by {taken.__module__}.{taken.__qualname__}"
                         + (" (a built-in operator)" if taken.__module__.startswith("operators.") else ""))
    _REGISTRY[cls.name] = cls
    return cls


def _add_plugin(ep: EntryPoint, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Operator)):
        raise TypeError(f"entry point {ep.name} = {ep.value} is not an operators.Operator subclass")
    if ep.name != cls.name:
        raise ValueError(f"entry point '{ep.name}' names class {cls.__qualname__} whose name is '{cls.name}'")
    register(cls)


PLUGINS = EntryPointGroup(ENTRY_POINT_GROUP, _add_plugin)


def names() -> list[str]:
    """All registered operator names, sorted."""
    PLUGINS.load()
    return sorted(_REGISTRY)


def get(name: str) -> type[Operator]:
    """The operator class called `name`; ValueError listing the known names otherwise."""
    PLUGINS.load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PLUGINS.unknown(name, list(_REGISTRY), "task/operator") from None


def check_parameter_names(name: str, params: Any) -> None:
    """ValueError naming the parameters (names in `params`) operator `name` does not take."""
    import inspect

    signature = inspect.signature(get(name).__init__).parameters
    known = [k for k in signature if k not in ("self", "image_shape")]
    unknown = sorted(set(params) - set(known))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in signature.values()):
        raise ValueError(f"operator '{name}' has no parameter {', '.join(unknown)}; its parameters: "
                         f"{', '.join(known) or 'none'}")


def create(name: str, image_shape: Sequence[int], **params: Any) -> Operator:
    """Build operator `name` for images of shape (C, H, W) with its parameters (ValueError for unknown ones)."""
    cls = get(name)
    check_parameter_names(name, params)
    try:
        return cls(tuple(image_shape), **params)
    except TypeError as exc:  # a missing keyword: a usage error, not an internal one
        raise ValueError(f"operator '{name}': {exc}") from None


def from_config(config: dict[str, Any]) -> Operator:
    """Rebuild an operator from `Operator.to_config()` output (ValueError for unknown or missing parameters)."""
    try:
        return get(config["name"]).from_config(config)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"operator config {config.get('name')!r}: {exc}") from None
