"""A verifier's sandbox side: what of it the warm worker imports, named by where solve/respond live.

The rule (stated in the Verifier Protocol, evolve/verifier.py): the sandbox side
of a verifier is the module that defines its ``solve`` (and ``respond``), plus
what that module imports, plus any ``sandbox_modules``.  The trusted process
reads this off the class (``solve = staticmethod(candidate_side.solve)`` names
``candidate_side``); the worker imports only those modules, never the verifier's
own module unless ``solve`` is defined in it.  Whatever the worker has not
imported before it isolates itself does not exist for a candidate: the view
holds none of our code.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from typing import Any

PLUGIN_PREFIX = "evolve_plugin_"  # evolve.plugin_import.PREFIX, not imported: the worker holds none of it for built-in problems

RECORDS = "evolve.verifier"  # Instance and Reference: how instance sets reach the worker


@dataclass(frozen=True)
class SandboxSide:
    """What the worker imports and calls; ``module:qualname`` entries, picklable."""

    solve: str | None
    respond: str | None
    modules: tuple[str, ...]  # imported before isolation, in this order
    packages: tuple[str, ...]  # installed packages besides numpy that candidates may import
    verifier_module: str = ""  # where the verifier class is defined (trusted, unless solve is there too)
    # A problem folder's modules, loaded from the files the trusted process used (plugin_import):
    # (module, file) and (synthetic package, its folder).
    files: tuple[tuple[str, str], ...] = ()
    folders: tuple[tuple[str, str], ...] = ()


def side_of(cls: type) -> SandboxSide:
    """The sandbox side the verifier class declares by where its solve/respond are defined."""
    solve, respond = (_entry(cls, name) for name in ("solve", "respond"))
    if solve is None and respond is None:
        raise TypeError(f"{cls.__qualname__} defines neither solve() nor respond()")
    modules = [RECORDS]
    for entry in (solve, respond):
        if entry is not None and entry.partition(":")[0] not in modules:
            modules.append(entry.partition(":")[0])
    extra = tuple(_own_name(cls, name) for name in getattr(cls, "sandbox_modules", ()))
    packages = tuple(getattr(cls, "sandbox_packages", ()))
    files, folders = _files(cls, [*modules[1:], *extra])
    return SandboxSide(solve, respond, (*modules, *extra), packages, cls.__module__, files, folders)


def _own_name(cls: type, name: str) -> str:
    """A ``sandbox_modules`` entry naming the verifier's own module by its file's name: the name it
    was imported under (``evolve_plugin_<hash>.NAME``), which its classes pickle by."""
    package, _, tail = cls.__module__.partition(".")
    return cls.__module__ if package.startswith(PLUGIN_PREFIX) and tail == name else name


def _files(cls: type, modules: list[str]) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """Where the side's modules come from, when a fresh interpreter would not find them by name:
    a problem folder's modules under their synthetic package, and the plain-named modules of the
    folder whose names another folder's import has taken since."""
    files: list[tuple[str, str]] = []
    folders: list[tuple[str, str]] = []
    for name in modules:
        fn = next((getattr(cls, n) for n in ("solve", "respond")
                   if getattr(getattr(cls, n, None), "__module__", None) == name), None)
        file = getattr(fn, "__globals__", {}).get("__file__") or getattr(sys.modules.get(name), "__file__", None)
        if not file:
            continue
        top = name.partition(".")[0]
        if top.startswith(PLUGIN_PREFIX):
            folders.append((top, sys.modules[top].__path__[0]))
            files.append((name, file))
        elif "." not in name and getattr(sys.modules.get(name), "__file__", None) != file:
            files.append((name, file))
    return tuple(files), tuple(dict.fromkeys(folders))


def _entry(cls: type, name: str) -> str | None:
    """``module:qualname`` of ``cls.<name>``: its own definition if it can be imported by that
    name (a module-level function, or a method of a module-level class), else via the class."""
    fn = inspect.getattr_static(cls, name, None)
    if fn is None:
        return None
    fn = getattr(cls, name)
    if not callable(fn):
        raise TypeError(f"{cls.__qualname__}.{name} is not callable")
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module and module != "__main__" and qualname and "<" not in qualname:
        return f"{module}:{qualname}"
    return f"{cls.__module__}:{cls.__qualname__}.{name}"


def load_side(side: SandboxSide) -> tuple[Any, Any]:
    """In the worker, before isolation: import the side's modules; its (solve, respond)."""
    if side.files or side.folders:
        from evolve.plugin_import import load_files

        load_files(side.files, side.folders)
    for name in side.modules:
        importlib.import_module(name)
    return _resolve(side.solve), _resolve(side.respond)


def _resolve(entry: str | None) -> Any:
    if entry is None:
        return None
    module, _, qualname = entry.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{entry} is not callable")
    return target


def whole_module_warning(entry: str, side: SandboxSide) -> str | None:
    """One line when the sandbox side is the verifier's own module (``solve`` written in the
    class): that module and all it imports then sit in every candidate's process."""
    module = side.verifier_module
    if not module or module not in (e.partition(":")[0] for e in (side.solve, side.respond) if e is not None):
        return None
    return (f"sandbox: verifier {entry} defines solve/respond in its own module, so all of "
            f"{entry.partition(':')[0]} (and what "
            "it imports: references, solvers) is in every candidate's process; move them to a module of "
            "their own (docs/add-a-problem.md)")
