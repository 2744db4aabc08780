"""A plug-in problem's verifier, imported by file under a name of its folder's own.

Two problem folders may each hold a ``toy_verifier.py`` (a copy of a problem, edited): imported
by module name, the second would get the first's module from ``sys.modules``, and so the first's
verifier, sandbox side and source digest.  Here a folder's modules are imported as submodules of
a package named after the folder's resolved path (``evolve_plugin_<hash>``), and the plain-named
modules of another folder that this folder also provides (``from toy_side import solve``) step
aside from ``sys.modules`` before its import, so that it finds its own.  The sandbox's worker, a
fresh interpreter, loads the same files (``SandboxSide.files``, ``load_files``).

An import that runs later (``import helper`` inside ``score()``) must find its own folder's file
too, whichever folder was loaded last: every module loaded from a problem's folders gets an
``__import__`` of that problem's (a builtins dict of its own, set before the module runs, so its
functions keep it) that does the same stepping aside for its folders' plain names first.
``importlib.import_module("helper")`` bypasses ``__import__``: such a module's ``import importlib``
(or ``from importlib import import_module``) gets an ``importlib`` whose ``import_module`` steps
aside first too.

Every other spelling (``sys.modules["importlib"].import_module``, ``builtins.__import__``,
``importlib.__import__``, ``sys.modules["helper"]``) reaches the process's one ``sys.modules``,
which cannot know who asks.  So the names are switched where evolve reaches a problem's code:
``Problem.verifier`` calls ``activate``, which steps the other folders' same-named modules aside
and brings this folder's back (the very module objects loaded before, not fresh copies, so their
classes still pickle and their state stays), with its folders first on ``sys.path``.

Threads (the Python API called from two threads): stepping aside and the import that follows it
are one step under ``_LOCK``, in ``import_by_file``, ``activate`` and the folders' own
``__import__``/``import_module``, so a folder's import never gets the module another thread's
folder just put under the shared name (it did: two folders' verifiers loaded at once, the second
got the first's ``toy_side``).  What stays shared is ``sys.modules`` itself: a verifier that reaches
a plain-named module through it at score time (``sys.modules["helper"]``, ``builtins.__import__``,
``importlib.__import__``, ``sys.modules["importlib"].import_module``) while another thread scores a
same-named folder's problem may get the other's (evolve's own commands never do that: a trusted
worker process scores one problem; an import statement or ``importlib.import_module`` is safe).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

PREFIX = "evolve_plugin_"  # also evolve.sandbox.side.PLUGIN_PREFIX


def package_name(folder: str) -> str:
    """The package a folder's modules are imported under: one per resolved path."""
    return PREFIX + hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:12]


def ensure_package(name: str, folder: str) -> None:
    """Register the synthetic package ``name`` whose modules are the files of ``folder``."""
    if name in sys.modules:
        return
    package = ModuleType(name, f"evolve: the modules of {folder}")
    package.__path__ = [folder]
    package.__package__ = name
    package.__spec__ = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    package.__spec__.submodule_search_locations = [folder]
    sys.modules[name] = package


def module_file(module: str, folders: list[str]) -> str | None:
    """The first of ``folders`` that holds ``module`` (dotted) as a file or a package."""
    parts = module.split(".")
    for folder in folders:
        base = Path(folder, *parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return folder
    return None


def import_by_file(module: str, folders: list[str], own: list[str]) -> ModuleType | None:
    """``module`` from the first of ``folders`` holding it, as ``evolve_plugin_<hash>.module``;
    None when no folder holds it (an installed module: import it by name).  Plain-named modules
    that the ``own`` folders (the problem's) provide and that ``sys.modules`` holds from elsewhere
    (another folder's import) step aside first, so its sibling imports find its own files."""
    folder = module_file(module, folders)
    if folder is None:
        return None
    with _LOCK:  # another thread's folder must not swap the shared names mid-import
        return _import_by_file(module, folder, folders, own)


def _import_by_file(module: str, folder: str, folders: list[str], own: list[str]) -> ModuleType:
    resolved = str(Path(folder).resolve())
    package = package_name(resolved)
    ensure_package(package, resolved)
    roots = [Path(p).resolve() for p in own]
    _register(roots, folders)
    # Sibling imports (from toy_side import solve) find this folder's files first.
    _prefer(_provided(roots), roots, folders)
    # The stepped-aside modules stay aside: the names are this folder's now (its classes must
    # pickle by them), as they were the other folder's after its own import.
    return importlib.import_module(f"{package}.{module}")


def _provided(roots: list[Path]) -> frozenset[str]:
    """The plain module names that files or packages of ``roots`` provide."""
    return frozenset({f.stem if f.suffix == ".py" else f.name for root in roots if root.is_dir()
                      for f in root.iterdir() if f.suffix == ".py" or (f / "__init__.py").is_file()} - {"evolve"})


def _prefer(names: frozenset[str], roots: list[Path], folders: list[str]) -> None:
    """The next import of any of ``names`` finds the ``roots``' own file: modules of those names
    from elsewhere (another folder's import) step aside, and ``folders`` go first on sys.path."""
    for path in reversed(folders):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    # A copy: another thread's import (numpy's, say) may add to sys.modules meanwhile.
    stash = [n for n, m in list(sys.modules.items()) if n.partition(".")[0] in names and not _within(m, roots)]
    for name in stash:
        _ASIDE.setdefault(name, []).append(sys.modules.pop(name))
    # This folder's own modules stepped aside earlier come back as they were.
    for name in [n for n in _ASIDE if n.partition(".")[0] in names and n not in sys.modules]:
        own = next((m for m in _ASIDE[name] if _within(m, roots)), None)
        if own is not None:
            _ASIDE[name].remove(own)
            sys.modules[name] = own


# Plain name -> the modules of other folders stepped aside under it, until their folder's turn.
_ASIDE: dict[str, list[ModuleType]] = {}
# Held while plain names are switched and the import that wanted them runs (re-entrant: a module
# being imported imports its siblings).
_LOCK = threading.RLock()


def activate(own: list[str], folders: list[str]) -> None:
    """Plain names that ``own`` folders provide are theirs again, in ``sys.modules`` and on
    ``sys.path`` (``folders`` first): called where evolve reaches the problem's verifier, so that
    an import inside it finds its folder's module whichever way it is spelt."""
    roots, names = _own(tuple(own))
    with _LOCK:
        _activate(roots, names, folders)


def _activate(roots: list[Path], names: frozenset[str], folders: list[str]) -> None:
    if sys.path[:len(folders)] == folders and not any(
            (m := sys.modules.get(n)) is not None and not _within(m, roots) or
            (m is None and any(_within(a, roots) for a in _ASIDE.get(n, ()))) for n in names):
        return  # already this folder's: nothing to step aside, nothing to bring back
    _prefer(names, roots, folders)


# Resolved folder -> the builtins of the modules loaded from it (their own __import__).
_BUILTINS: dict[Path, dict[str, Any]] = {}


def _register(roots: list[Path], folders: list[str]) -> None:
    """Modules loaded from ``roots`` from now on import plain names of ``roots`` from ``roots``."""
    names = _provided(roots)

    def step_aside(name: str) -> None:
        top = name.partition(".")[0]
        if top in names:
            present = sys.modules.get(top)
            if present is None or not _within(present, roots):
                _prefer(frozenset({top}), roots, folders)

    def own_import_module(name: str, package: str | None = None) -> ModuleType:
        with _LOCK:
            if not name.startswith("."):
                step_aside(name)
            return importlib.import_module(name, package)

    # importlib.import_module("helper") bypasses __import__: the folder's modules get an importlib
    # whose import_module steps aside first too (the rest is the real importlib's).
    own_importlib = ModuleType("importlib", importlib.__doc__)
    own_importlib.import_module = own_import_module  # type: ignore[attr-defined]
    own_importlib.__getattr__ = lambda attribute: getattr(importlib, attribute)  # type: ignore[attr-defined]

    def own_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        with _LOCK:
            if level == 0:
                step_aside(name)
            module = builtins.__import__(name, globals, locals, fromlist, level)
        if level == 0 and module is importlib:
            return own_importlib  # import importlib, from importlib import import_module, import importlib.util
        return module

    table = dict(builtins.__dict__, __import__=own_import)
    for root in roots:
        _BUILTINS.setdefault(root, table)
    if not any(isinstance(f, _OwnBuiltins) for f in sys.meta_path):
        # Just before PathFinder: built-in and frozen modules keep precedence, as without it.
        at = next((k for k, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder), len(sys.meta_path))
        sys.meta_path.insert(at, _OwnBuiltins())


class _OwnBuiltins(importlib.abc.MetaPathFinder):
    """Finds what PathFinder finds; a module whose file lies in a registered folder gets that
    folder's builtins before it runs."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None or not spec.origin or not spec.has_location:
            return None
        origin = Path(spec.origin).resolve()
        roots = [root for root in _BUILTINS if origin.is_relative_to(root)]
        if not roots:
            return None
        spec.loader = _WithBuiltins(spec.loader, _BUILTINS[max(roots, key=lambda r: len(r.parts))])
        return spec


class _WithBuiltins(importlib.abc.Loader):
    def __init__(self, loader: Any, table: dict[str, Any]) -> None:
        self.loader = loader
        self.table = table

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__builtins__ = self.table  # type: ignore[attr-defined]
        self.loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ...: the file's loader's
        return getattr(self.loader, name)


@lru_cache(maxsize=64)
def _own(own: tuple[str, ...]) -> tuple[list[Path], frozenset[str]]:
    """The resolved folders and the plain names they provide (read once, as ``_register`` does):
    ``activate`` runs at every ``Problem.verifier``, ~460 us a time without this."""
    roots = [Path(p).resolve() for p in own]
    return roots, _provided(roots)


@lru_cache(maxsize=4096)
def _resolved(file: str) -> Path:
    return Path(file).resolve()


def _within(module: ModuleType, roots: list[Path]) -> bool:
    file = getattr(module, "__file__", None)
    return bool(file) and _file_within(file, tuple(roots))


@lru_cache(maxsize=4096)
def _file_within(file: str, roots: tuple[Path, ...]) -> bool:
    """Whether ``file`` (resolved once, ``_resolved``) lies in one of ``roots``: asked for each of a
    folder's names at every ``Problem.verifier`` (six times per evaluation), where
    ``is_relative_to`` was most of the ~5 us each took."""
    return any(_resolved(file).is_relative_to(root) for root in roots)


def load_files(files: tuple[tuple[str, str], ...], packages: tuple[tuple[str, str], ...]) -> None:
    """In the sandbox's worker: the side's modules from the files the trusted process used."""
    for name, folder in packages:
        ensure_package(name, folder)
    for name, file in files:
        if name in sys.modules:
            continue
        if name.startswith(PREFIX):
            importlib.import_module(name)
            continue
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {name} from {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
