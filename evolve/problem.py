"""Problem plug-ins: discovery and loading.

A problem is a folder with ``problem.toml``, a seed program, ``baselines/*.py``
and a context text.  Problems are found in three places, in this order:

1. a path given directly (``evolve run ./my_problem``);
2. the built-in ``problems/`` folder of this repository;
3. installed packages that declare an entry point in the group
   ``evolve.problems``; the entry point loads a module (or package) whose folder
   holds ``problem.toml``, or a callable returning that folder.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from evolve import problems as builtin_problems
from evolve.config import ProblemSpec, load_problem_spec
from evolve.errors import UserError
from evolve.files import read_text
from evolve.options import OptionError
from evolve.plugin_import import activate, import_by_file
from evolve.user_code import plugin_code, where_raised
from evolve.verifier import Instance, LoadsInstances, Verifier

ENTRY_POINT_GROUP = "evolve.problems"
SPLITS = ("quick", "train", "test")
# A split a verifier may add: instances drawn like train, disjoint from train and test, on which a
# run can choose its reported best (``select_on``, evolve/selection.py); the search never scores it.
VALID = "valid"
# Another such split, on which a run refits its reported best's coefficients (``refit_on``,
# evolve/refit.py); the search never scores it either.
FIT = "fit"
SIGNED_FILES = 2000  # a problem folder with more files has its splits built at every call


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` flags; VALUE is read as a TOML value when it is one, else a string."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option {pair!r}: expected KEY=VALUE, e.g. --option scheme=active")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        options[key.strip()] = value
    return options


@dataclass
class Problem:
    spec: ProblemSpec
    dir: Path
    origin: str  # "builtin", "path" or "entry point <dist>"
    sys_path: list[str] = field(default_factory=list)
    # Keys of spec.verifier.options that override problem.toml, and who gave them ("--option").
    overrides: dict[str, Any] = field(default_factory=dict)
    override_source: str = "--option"
    # split -> (the problem folder's files as found then, the split's instances pickled): see
    # ``_split_instances``. Never compared, printed or passed on by ``with_options``.
    _built: dict[str, tuple[tuple[Any, ...], bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def plugin(self) -> bool:
        """A problem folder or an installed plug-in: its own code failing is the user's error."""
        return self.origin != "builtin"

    @property
    def toml_path(self) -> Path:
        return self.dir / "problem.toml"

    @cached_property
    def seed_code(self) -> str:
        return _read(self.dir / self.spec.seed, "seed")

    @cached_property
    def context(self) -> str:
        """The context file's text; "" if the default context.md is absent (it is optional).

        A ``context`` that problem.toml names and that does not exist is a mistake, not an
        empty context."""
        path = self.dir / self.spec.context
        if not path.exists() and "context" in self.spec.model_fields_set:
            raise UserError(f"{self.toml_path}: context = {self.spec.context!r}: {path} does not exist; "
                            "expected a Markdown file beside problem.toml (or leave the key out: "
                            "context.md is optional)")
        return _read(path, "context") if path.exists() else ""

    @cached_property
    def baselines(self) -> dict[str, Path]:
        folder = self.dir / self.spec.baselines
        if not folder.is_dir():
            # A folder that problem.toml names is a mistake when it is not there (its baselines
            # were silently left out); the default baselines/ is optional, as context.md is.
            if "baselines" in self.spec.model_fields_set:
                raise UserError(f"{self.toml_path}: baselines = {self.spec.baselines!r}: {folder} is not a folder; "
                                "expected a folder of baseline programs beside problem.toml (or leave the key "
                                "out: baselines/ is optional)")
            return {}
        found = {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}
        for name in self.spec.other_class_baselines:
            if name not in found:
                raise UserError(f"{self.toml_path}: other_class_baselines: {name!r} is not a baseline; expected "
                                f"one of {sorted(found)} (the .py files in {folder})")
        return found

    @cached_property
    def verifier_class(self) -> type:
        """The verifier's class; a problem folder's is imported from its own files (plugin_import)."""
        own = self._own_folders if self.origin == "path" else None
        return import_entry(self.spec.verifier.entry, self.sys_path, str(self.toml_path), own)

    @property
    def verifier_entry(self) -> str:
        """``module:Class`` of the class actually used, importable in this process by that name."""
        cls = self.verifier_class
        return f"{cls.__module__}:{cls.__qualname__}"

    @property
    def verifier(self) -> Verifier:
        """The verifier, built; a problem folder's plain module names are its own again (so an
        import inside the verifier finds its folder's module however it is spelt)."""
        verifier = self._verifier
        if self.origin == "path":
            activate(self._own_folders, self.sys_path)
        return verifier

    @cached_property
    def _own_folders(self) -> list[str]:
        return [p for p in self.sys_path if Path(p).resolve() != self.dir.parent]

    @cached_property
    def _verifier(self) -> Verifier:
        """The verifier, built; a bad option is one line naming where it came from."""
        cls = self.verifier_class
        if not isinstance(cls, type):  # it was "building verifier ... raised TypeError" at our line
            raise UserError(f"{self.toml_path}: verifier.entry '{self.spec.verifier.entry}' is a "
                            f"{type(cls).__name__}, not a class; expected the verifier class")
        direction = self.spec.objective.direction  # the one source; a class may only agree
        declared = getattr(cls, "direction", None)
        if declared is not None and declared != direction:
            raise UserError(f"{self.toml_path}: objective.direction is '{direction}' but verifier "
                            f"{self.spec.verifier.entry} declares direction = '{declared}'; make them agree "
                            "(a mismatch would invert every gap)")
        if self.spec.objective.median_weight and callable(getattr(cls, "aggregate", None)):
            raise UserError(f"{self.toml_path}: objective.median_weight = {self.spec.objective.median_weight:g}, but "
                            f"verifier {self.spec.verifier.entry} computes its own score (aggregate), "
                            "which the blend would not reach; remove median_weight")
        if self.spec.objective.reference_floor and callable(getattr(cls, "aggregate", None)):
            raise UserError(f"{self.toml_path}: objective.reference_floor is set, but verifier "
                            f"{self.spec.verifier.entry} computes its own score (aggregate), "
                            "which the floor would not reach; remove reference_floor")
        try:
            with plugin_code(f"{self.toml_path}: building verifier {self.spec.verifier.entry}", self.plugin):
                verifier = cls(self.dir, dict(self.spec.verifier.options))
        except OptionError as err:
            overridden = any(key in self.overrides for key in err.keys)
            raise err.at(self.override_source if overridden else f"{self.toml_path} [verifier.options]") from None
        if declared is None:
            verifier.direction = direction
        return verifier

    def baseline_programs(self) -> list[tuple[str, str]]:
        """(name, code) of every baseline, in name order."""
        return [(name, read_text(path, "baseline program")) for name, path in self.baselines.items()]

    def with_options(self, overrides: dict[str, Any], source: str = "--option") -> Problem:
        """The same problem with ``[verifier.options]`` overridden by ``source`` (``--option``)."""
        if not overrides:
            return self
        options = {**self.spec.verifier.options, **overrides}
        verifier = self.spec.verifier.model_copy(update={"options": options})
        spec = self.spec.model_copy(update={"verifier": verifier})
        return Problem(spec=spec, dir=self.dir, origin=self.origin, sys_path=list(self.sys_path),
                       overrides={**self.overrides, **overrides}, override_source=source)

    def configured(self, overrides: dict[str, Any], source: str = "--option") -> Problem:
        """``with_options`` checked now: the verifier is built, so a bad ``problem.toml``
        option names that file and a bad override names ``source``, before any work."""
        self.verifier  # noqa: B018 - building it validates [verifier.options]
        if not overrides:
            return self
        problem = self.with_options(overrides, source)
        try:
            problem.verifier  # noqa: B018
        except OptionError:
            raise  # located already
        except UserError as err:  # a verifier that checks its options by hand
            raise UserError(as_override_error(str(err), source)) from None
        return problem

    def instances(
        self, split: str, instances_file: Path | None = None, names: list[str] | None = None
    ) -> list[Instance]:
        if instances_file is not None:
            if instances_file.is_dir():
                raise UserError(f"{instances_file}: is a folder, expected a file of instances")
            if not instances_file.exists():
                raise UserError(f"{instances_file}: file not found")
            if not instances_file.is_file():  # /dev/null, a pipe (<(gunzip -c ...)): was "file not found"
                raise UserError(f"{instances_file}: not a regular file (a device, pipe or socket); save it to a file first")
            if not isinstance(self.verifier, LoadsInstances):
                raise UserError(f"{instances_file}: problem '{self.name}' reads no instance files "
                                "(its verifier defines no load_instances)")
            try:
                with plugin_code(f"{instances_file}: the verifier's load_instances", self.plugin):
                    found = self.verifier.load_instances(instances_file)
            except UnicodeDecodeError:  # whichever reader the verifier uses (pandas' offset is in its buffer)
                raise UserError(f"{instances_file}: not UTF-8 text ({_first_bad_byte(instances_file)})") from None
        elif split not in (*SPLITS, VALID, FIT):
            raise UserError(f"unknown split '{split}' (expected one of: {', '.join(self.split_names())})")
        else:
            found = self._split_instances(split)
        if not found:
            raise UserError(f"problem '{self.name}': split '{split}' has no instances")
        odd = next((x for x in found if not isinstance(x, Instance)), None) if isinstance(found, (list, tuple)) else found
        if odd is not None:  # it failed later, as a traceback
            what = "load_instances" if instances_file is not None else f"instances('{split}')"
            raise UserError(f"problem '{self.name}': the verifier's {what} returned "
                            + ("a list holding " if isinstance(found, (list, tuple)) else "")
                            + f"{type(odd).__name__} {_short(odd)}; expected a list of evolve.verifier.Instance")
        seen: dict[str, int] = {}
        for k, instance in enumerate(found):  # results, tables and paired tests go by name
            if instance.name in seen:
                where = instances_file if instances_file is not None else f"problem '{self.name}': split '{split}'"
                raise UserError(f"{where}: instance name '{instance.name}' appears twice (instances "
                                f"{seen[instance.name]} and {k}); expected unique names")
            seen[instance.name] = k
        if names:
            by_name = {i.name: i for i in found}
            missing = [n for n in names if n not in by_name]
            if missing:
                sample = ", ".join(list(by_name)[:8])
                raise UserError(f"no instance named '{missing[0]}' in {instances_file or split} (e.g. {sample})")
            found = [by_name[n] for n in names]
        return found


    def split_names(self) -> list[str]:
        """The splits this problem has: quick, train, test, and ``valid`` and ``fit`` where its
        verifier makes them (asked, so only for a message: an error listed them for every problem)."""
        extra = []
        for split in (VALID, FIT):
            with contextlib.suppress(UserError, KeyError):  # the verifier has no such split
                if self._split_instances(split):
                    extra.append(split)
        return [*SPLITS, *extra]

    def _split_instances(self, split: str) -> Any:
        """The verifier's ``instances(split)``, built once per ``Problem`` (a run asks for its
        splits several times; smtt_rule's train costs ~40 ms, serving_router's test ~170 ms) and
        again whenever a file in the problem's folder changed (``data/seeds.json``,
        ``data/references.json``, ``problem.toml``). Every call gets its own copy, unpickled from
        the first build (0.1-5 ms), so no caller can change the instances the next one gets.
        The options cannot change under a ``Problem`` (``with_options`` makes a new one, with
        its own verifier). A verifier whose instances depend on anything else (files outside its
        folder, the clock) is rebuilt only with a new ``Problem``; one whose instances do not
        pickle is never cached (the sandbox could not take them either), nor are those of a
        folder of more than SIGNED_FILES files (looking at them all would cost what it saves)."""
        files = _folder_signature(self.dir)
        built = self._built.get(split)
        if built is not None and files is not None and built[0] == files:
            return pickle.loads(built[1])
        with plugin_code(f"problem '{self.name}': the verifier's instances('{split}')", self.plugin):
            found = self.verifier.instances(split)
        if files is None:
            return found
        try:
            self._built[split] = (files, pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:  # noqa: BLE001 - whatever pickling raises, the instances are still good
            self._built.pop(split, None)
        return found


def _folder_signature(folder: Path) -> tuple[Any, ...] | None:
    """(path, inode, size, mtime) of every file below ``folder`` but ``__pycache__``: what a
    change shows in (a file replaced, grown or written); None past SIGNED_FILES files."""
    out: list[tuple[str, int, int, int]] = []
    stack = [str(folder)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__":
                    stack.append(entry.path)
            else:
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                out.append((entry.path, stat.st_ino, stat.st_size, stat.st_mtime_ns))
                if len(out) > SIGNED_FILES:
                    return None
    return tuple(sorted(out))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read(path: Path, what: str) -> str:
    return read_text(path, f"the problem's {what} file")


OPTIONS_SOURCE = "problem.toml: verifier.options"


def as_override_error(message: str, source: str) -> str:
    """A hand-written option error (``OPTIONS_SOURCE...``: verifiers that do not use
    ``evolve.options``), re-aimed at where the override came from (``--option``)."""
    # The scaffold's verifier names its problem.toml by path (".../problem.toml: verifier.options"),
    # which blamed the file for a value --option gave.
    at = message.find(OPTIONS_SOURCE)
    if at >= 0 and (at == 0 or message[:at].endswith("/")):
        rest = message[at + len(OPTIONS_SOURCE):]
        return f"{source} {rest[1:]}" if rest.startswith(".") else source + rest
    return f"{source}: {message}"


def import_entry(entry: str, extra_path: list[str], source: str, own: list[str] | None = None) -> Any:
    """Import ``module:attr``; a failure is a one-line error naming the source.  With ``own``
    (a problem folder's folders), a module that ``extra_path`` holds is imported from that file
    under a name of its folder's own, so that two folders' same-named verifiers never mix."""
    module_name, _, attr = entry.partition(":")
    try:
        module = import_by_file(module_name, extra_path, own) if own is not None else None
        if module is None:
            for path in extra_path:
                if path not in sys.path:
                    sys.path.insert(0, path)
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"{source}: verifier.entry '{entry}': cannot import {module_name} ({err})") from None
    except Exception as err:  # noqa: BLE001 - a syntax error or a failing statement of the module
        raise UserError(f"{source}: verifier.entry '{entry}': importing {module_name} raised "
                        f"{where_raised(err)}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"{source}: verifier.entry '{entry}': {module_name} has no '{attr}'") from None


def builtin_dir() -> Path:
    return Path(builtin_problems.__file__).resolve().parent


def _from_dir(folder: Path, origin: str) -> Problem:
    spec = load_problem_spec(folder / "problem.toml")
    # Verifiers shipped inside a plug-in folder import from that folder.
    sys_path = [] if origin == "builtin" else [str(folder), str(folder.parent)]
    if spec.verifier.path:
        where = (folder / spec.verifier.path).resolve()
        if not where.is_dir():  # it was put on sys.path as it was, and the import failed elsewhere or not at all
            raise UserError(f"{folder / 'problem.toml'}: verifier.path = '{spec.verifier.path}': {where} is not a "
                            "folder; expected the folder that holds the verifier's module")
        sys_path.insert(0, str(where))
    return Problem(spec=spec, dir=folder.resolve(), origin=origin, sys_path=sys_path)


def _entry_point_dirs() -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "?"
        try:
            target = ep.load()
        except Exception as err:  # a broken plug-in must not break discovery
            raise UserError(f"entry point '{ep.name}' ({ep.value}, package {dist}): cannot load: {err}") from None
        if isinstance(target, ModuleType):
            folder = Path(target.__file__ or "").resolve().parent
        elif callable(target):
            folder = Path(target()).resolve()
        else:
            folder = Path(target).resolve()
        found[ep.name] = (folder, f"entry point ({dist})")
    return found


def discover() -> dict[str, Problem]:
    """Every available problem by name: built-in first, then plug-ins."""
    problems: dict[str, Problem] = {}
    for toml in sorted(builtin_dir().glob("*/problem.toml")):
        problem = _from_dir(toml.parent, "builtin")
        problems[problem.name] = problem
    for name, (folder, origin) in _entry_point_dirs().items():
        if name not in problems:
            problems[name] = _from_dir(folder, origin)
    return problems


def load_problem(name_or_path: str) -> Problem:
    """A problem by name, or by the path of its folder or its problem.toml."""
    path = Path(name_or_path)
    if path.name == "problem.toml":
        path = path.parent
    if (path / "problem.toml").is_file() and (len(path.parts) > 1 or not _is_known(name_or_path)):
        return _from_dir(path, "path")
    builtin = builtin_dir() / name_or_path / "problem.toml"
    if builtin.is_file():
        return _from_dir(builtin.parent, "builtin")
    plugins = _entry_point_dirs()
    if name_or_path in plugins:
        folder, origin = plugins[name_or_path]
        return _from_dir(folder, origin)
    if path.is_dir():  # a folder that is not a problem's (names were tried first)
        raise UserError(f"{path}: no problem.toml in this folder (a problem folder holds problem.toml, seed.py, "
                        "...; evolve new-problem NAME makes one)")
    known = sorted({p.parent.name for p in builtin_dir().glob("*/problem.toml")} | set(plugins))
    if path.is_file():  # a program or another file where the problem goes (evolve run rule.py)
        raise UserError(f"{path}: a file, not a problem; expected a problem name ({', '.join(known) or 'none'}) "
                        "or a folder with problem.toml")
    if len(path.parts) > 1 or name_or_path.startswith("."):  # a path, not a name: say it is missing
        raise UserError(f"{name_or_path}: no such folder; expected a problem folder with problem.toml, or a problem "
                        f"name ({', '.join(known) or 'none'})")
    raise UserError(f"unknown problem '{name_or_path}' (known: {', '.join(known) or 'none'}; or give a folder with problem.toml)")


def _is_known(name: str) -> bool:
    return (builtin_dir() / name / "problem.toml").is_file()


def _first_bad_byte(path: Path) -> str:
    """Where ``path`` stops being UTF-8: line and byte offset in the file (the error path only)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return f"line {line}, byte {err.start}: {raw[err.start:err.start + 1]!r}"
    return "a byte the reader refused"
