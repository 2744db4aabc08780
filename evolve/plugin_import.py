"""A plug-in problem's verifier, imported by file under a name of its folder's own.

Two problem folders may each hold a ``toy_verifier.py`` (a copy of a problem, edited): imported
by module name, the second would get the first's module from ``sys.modules``, and so the first's
verifier, sandbox side and source digest.  Here a folder's modules are imported as submodules of
a package named after the folder's resolved path (``evolve_plugin_<hash>``), and the plain-named
modules of another folder that this folder also provides (``from toy_side import solve``) step
aside from ``sys.modules`` before its import, so that it finds its own.  The sandbox's worker, a
fresh interpreter, loads the same files (``SandboxSide.files``, ``load_files``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
    resolved = str(Path(folder).resolve())
    package = package_name(resolved)
    ensure_package(package, resolved)
    for path in reversed(folders):  # sibling imports (from toy_side import solve) find this folder first
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    roots = [Path(p).resolve() for p in own]
    # A module of the same name from elsewhere (another folder's, imported by name) steps aside.
    provided = {f.stem if f.suffix == ".py" else f.name for root in roots if root.is_dir()
                for f in root.iterdir() if f.suffix == ".py" or (f / "__init__.py").is_file()} - {"evolve"}
    stash = {n: m for n, m in sys.modules.items() if n.partition(".")[0] in provided and not _within(m, roots)}
    for name in stash:
        del sys.modules[name]
    # They stay aside: the names are this folder's now (its classes must pickle by them), as they
    # were the other folder's after its own import.
    return importlib.import_module(f"{package}.{module}")


def _within(module: ModuleType, roots: list[Path]) -> bool:
    file = getattr(module, "__file__", None)
    return bool(file) and any(Path(file).resolve().is_relative_to(root) for root in roots)


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
