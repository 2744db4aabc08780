"""Strict configuration: ``problem.toml`` and run settings.

Every table is a frozen pydantic model with ``extra="forbid"`` and strict
types, so an unknown key or a wrong type is an error that names the file and
the key instead of being silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evolve.errors import UserError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- run settings -----------------------------------------------------------


class SandboxSettings(Strict):
    # Wall clock per instance: a run over N instances gets 2 s + N times this in
    # total (so eval on a large test split is not cut short by a train-sized limit).
    instance_timeout_s: float = Field(default=1.0, gt=0)
    memory_mb: int = Field(default=2048, ge=256)  # the warm worker alone maps ~150 MiB
    max_processes: int = Field(default=16, ge=1)
    file_size_mb: int = Field(default=16, ge=1)


class CascadeSettings(Strict):
    enabled: bool = True
    # A child reaches the train split only if its quick-split score is no worse
    # than its parent's by more than this fraction of |parent score| (min 1).
    tolerance: float = Field(default=0.5, ge=0)


class RunSettings(Strict):
    iterations: int = Field(default=200, ge=0)
    seed: int = 0
    llm: str = "stub"
    api_base: str | None = None
    temperature: float = Field(default=0.8, ge=0, le=2)
    max_tokens: int = Field(default=4096, ge=1)
    llm_timeout_s: float = Field(default=120.0, gt=0)
    llm_retries: int = Field(default=4, ge=0)
    # Iterations in flight (model call or evaluation); at least ``workers``.
    # 1 (with workers = 1) makes a run exactly reproducible from its seed.
    concurrency: int = Field(default=1, ge=1)
    workers: int = Field(default=1, ge=1)
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # an existing cluster; None starts a local Ray
    budget_usd: float | None = Field(default=None, ge=0)
    islands: int = Field(default=4, ge=1)
    migration_interval: int = Field(default=25, ge=1)
    exploitation: float = Field(default=0.7, ge=0, le=1)
    exploration: float = Field(default=0.2, ge=0, le=1)
    tournament: int = Field(default=3, ge=1)
    inspirations: int = Field(default=3, ge=0)
    edit_mode: Literal["diff", "rewrite", "mixed"] = "diff"
    rewrite_fraction: float = Field(default=0.1, ge=0, le=1)
    record: str | None = None
    # Overrides of the problem's [verifier.options] (``--option KEY=VALUE``).
    verifier_options: dict[str, Any] = {}
    sandbox: SandboxSettings = SandboxSettings()
    cascade: CascadeSettings = CascadeSettings()


# --- problem.toml -----------------------------------------------------------


class FunctionSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    signature: str
    contract: str


class ObjectiveSpec(Strict):
    name: str
    direction: Literal["minimize", "maximize"]
    # What the archive ranks by (higher score is better):
    # gap_mean  = -(mean per-instance gap to the reference, in %)
    # gap_ratio = -(ratio-of-sums gap, in %)
    # objective = -/+ sum of objectives (minimize/maximize)
    score: Literal["gap_mean", "gap_ratio", "objective"] = "gap_mean"


class VerifierSpec(Strict):
    entry: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = {}
    # A folder put on sys.path to import ``entry`` (absolute, or relative to the
    # problem folder): where a problem defined in Python keeps its verifier module.
    path: str | None = None


class FeatureSpec(Strict):
    """A MAP-Elites dimension: ``code_length`` or any evaluation metric name."""

    name: str
    bins: int = Field(ge=1, le=64)
    min: float
    max: float


class ProblemSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    description: str
    seed: str = "seed.py"
    context: str = "context.md"
    baselines: str = "baselines"
    function: FunctionSpec
    objective: ObjectiveSpec
    verifier: VerifierSpec
    features: list[FeatureSpec] = Field(min_length=1, max_length=3)
    run: dict[str, Any] = {}


# --- loading and error messages --------------------------------------------


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the sub-model at ``loc`` (for 'expected one of')."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            break
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        current = nested[0]
    return sorted(getattr(current, "model_fields", {}))


def describe_error(source: str, model: type[BaseModel], err: ValidationError, prefix: str = "") -> str:
    """One line naming the file and key of the first validation error."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    key = prefix + ".".join(str(part) for part in loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"{source}: unknown key '{key}'{hint}"
    if kind == "missing":
        return f"{source}: missing key '{key}'"
    got = first.get("input")
    return f"{source}: key '{key}': {first['msg'].rstrip('.')} (got {got!r})"


def validate(model: type[Strict], data: dict[str, Any], source: str, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise UserError(describe_error(source, model, err, prefix)) from None


def read_toml(path: Path) -> dict[str, Any]:
    from evolve.files import read_text

    try:
        return tomllib.loads(read_text(path, "TOML file"))
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: invalid TOML: {err}") from None


def load_problem_spec(path: Path) -> ProblemSpec:
    spec: ProblemSpec = validate(ProblemSpec, read_toml(path), str(path))
    # The [run] table holds default run settings: check it now, naming the file.
    validate(RunSettings, spec.run, str(path), prefix="run.")
    return spec


def resolve_settings(
    problem_defaults: dict[str, Any],
    config_file: Path | None,
    overrides: dict[str, Any],
    source: str = "run settings",
) -> RunSettings:
    """Defaults < problem.toml [run] < --config FILE < command-line flags."""
    merged: dict[str, Any] = {}
    _merge(merged, problem_defaults)
    if config_file is not None:
        _merge(merged, read_toml(config_file))
        source = str(config_file)
    _merge(merged, {k: v for k, v in overrides.items() if v is not None})
    return validate(RunSettings, merged, source)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
