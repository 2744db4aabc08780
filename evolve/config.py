"""Strict configuration: ``problem.toml`` and run settings.

Every table is a frozen pydantic model with ``extra="forbid"`` and strict
types, so an unknown key or a wrong type is an error that names the file and
the key instead of being silently ignored.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evolve.errors import UserError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- run settings -----------------------------------------------------------


class SandboxSettings(Strict):
    # Wall clock per instance: a run over N instances gets 2 s + N times this in
    # total (so eval on a large test split is not cut short by a train-sized limit).
    # At most a day: a larger (or infinite) limit overflowed the sandbox's integer clocks.
    instance_timeout_s: float = Field(default=1.0, gt=0, le=86_400)
    # At most 1 TiB: more was an OverflowError in the sandbox's setup, not naming the key.
    memory_mb: int = Field(default=2048, ge=256, le=1 << 20)  # the warm worker alone maps ~150 MiB
    max_processes: int = Field(default=1, ge=1)  # 1: a candidate may not fork (nor start threads)
    file_size_mb: int = Field(default=16, ge=1)


class CascadeSettings(Strict):
    enabled: bool = True
    # A child reaches the train split only if its quick-split score is no worse
    # than its parent's by more than this fraction of |parent score| (min 1).
    tolerance: float = Field(default=0.5, ge=0)


class GPSettings(Strict):
    """The offline search (``llm = "gp"``): typed expression-tree GP on the islands."""

    # Attempts per island that start from a random tree: the initial population, and
    # again after a restart.
    init: int = Field(default=24, ge=0)
    # Children made from one tournament winner before the island draws a new parent.
    children: int = Field(default=3, ge=1)
    # An island whose best has not improved for this many of its attempts starts over
    # (0: never). Migration skips an island for the first half of that after its restart.
    restart_after: int = Field(default=150, ge=0)
    max_depth: int = Field(default=7, ge=1, le=20)
    max_size: int = Field(default=40, ge=3, le=400)
    init_depth: int = Field(default=4, ge=1, le=10)
    # Children made per proposal when the problem's verifier can screen trees in-process
    # (gp_screen): the best on train goes to the sandbox (evolve/gp/screen.py); 1: no screen.
    brood: int = Field(default=32, ge=1, le=1000)
    # With a screen, further broods made from the best child while they improve on it (at
    # most this many): one proposal is then a short hill-climb on train.
    climb: int = Field(default=0, ge=0, le=50)
    # With a screen, sweeps of a coordinate search over the answered child's constants on
    # train (evolve/gp/constants.py; 0: none).
    fit_constants: int = Field(default=0, ge=0, le=20)
    # With a screen that has a cheaper first cut (SMTT: the train instances up to n = 50), the
    # trials of each constant are ranked on it and only the best this many are screened on all
    # of train (racing; 0: every trial on all of train).
    fit_race: int = Field(default=0, ge=0, le=20)
    # Weight of insertion mutation next to the other operators' (evolve/gp/operators.py, WEIGHTS
    # sum to 1; 0: off): T -> T * (1 + c * g) or T + c * g, with g a small new term and c small.
    insert: float = Field(default=0.0, ge=0.0, le=10.0)
    # Weight of gated insertion (0: off; needs [rule] gates): T -> T + where(G > 0, c1, c2) * g,
    # a new term whose coefficient the constant fit tunes on each side of a declared gate G.
    gate: float = Field(default=0.0, ge=0.0, le=10.0)
    # Weight of a split at a gate (0: off; needs [rule] gates): the whole rule T becomes
    # where(G > 0, T + c1 * g, T + c2 * g), and from then on its children vary only the side
    # below the gate: the rule above it is kept from mutation (evolve/gp/operators.py).
    split: float = Field(default=0.0, ge=0.0, le=10.0)
    # Which constants the fit tunes: "all", or "gated": only the two coefficients of each gated
    # term (c1, c2 of where(G > 0, c1, c2)), so the fit leaves the rest of the rule (a start's
    # constants, the gate's threshold) as selection and mutation left them; a tree without a
    # gated term is not fitted. "sides": a rule split at a gate has c1 above the gate and every
    # constant below it fitted; any other tree as "gated".
    fit_scope: Literal["all", "gated", "sides"] = "all"
    # With racing, also screen on all of train the trials that tie at the race's cut (a
    # coefficient acting only above a gate ties on every trial; without this only its x 0.5 and
    # x 0.8 trials are screened). Off: the shipped searches repeat as before.
    fit_ties: bool = False
    # Whether trees may reduce an array over the candidates (np.max, np.min, np.mean of p, d or
    # any array term). Off for a problem whose rule must be an index rule, each job's priority a
    # function of its own inputs and the scalar arguments only (smtt_rule's audit asks the rule
    # again with a subset of the jobs): random trees, point mutation and crossover then never
    # make a reduction, and a [rule] start or terminal that holds one is an error.
    reductions: bool = True


class RunSettings(Strict):
    iterations: int = Field(default=200, ge=0)
    seed: int = Field(default=0, ge=0)  # numpy's generators take no negative seed
    # "auto": the GP for problems with a [rule] table, else the blind mutator ("mutate").
    llm: str = "auto"
    api_base: str | None = None
    temperature: float = Field(default=0.8, ge=0, le=2)
    max_tokens: int = Field(default=4096, ge=1)
    llm_timeout_s: float = Field(default=120.0, gt=0)
    llm_retries: int = Field(default=4, ge=0)
    # Stop after this many consecutive model calls that failed in a way that
    # repeats for every call (wrong key, unknown model, nothing listening).
    llm_fail_fast: int = Field(default=3, ge=1)
    # Stop when every model call has failed for this long (outage, stalled server).
    llm_outage_minutes: float = Field(default=10.0, gt=0)
    # The one-request check of every model before the run starts (--no-preflight skips it).
    llm_preflight_timeout_s: float = Field(default=15.0, gt=0)
    # --llm files:DIR: a reply is read once its size and time held still this long (an editor or
    # an agent writing in parts is not read half-way); an agent that writes at once may lower it.
    files_settle_s: float = Field(default=1.0, ge=0)
    # Iterations in flight (model call or evaluation); at least ``workers``.
    # 1 (with workers = 1) makes a run exactly reproducible from its seed.
    concurrency: int = Field(default=1, ge=1)
    workers: int = Field(default=1, ge=1)
    # One more request built and sent while every slot evaluates, so that a slot that frees
    # finds its next child ready. With concurrency 1 and workers 1 the request sees the
    # child being evaluated as in flight (not its result), in a fixed order: a run still
    # repeats exactly from its seed. Not with the GP backend, tune_every or files: (a person
    # answers; its record and replay follow); false: a request waits for a free slot (loop.py).
    lookahead: bool = True
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
    # Offline backends (gp, mutate) are asked again, for the same iteration, when they propose
    # a program already in the archive, at most this many times; a model's duplicate costs
    # its iteration.
    duplicate_retries: int = Field(default=50, ge=0)
    # Every tune_every iterations, a new best program with constants in its EVOLVE-BLOCK is
    # tuned (CMA-ES, tune_budget programs evaluated on train); 0: never (evolve/autotune.py).
    tune_every: int = Field(default=0, ge=0)
    tune_budget: int = Field(default=30, ge=2)
    # The reported best (best.py, review, studies) chosen at the end of a run among the
    # select_among best on train by their score on this split, which the search never scores
    # (None: the best on train). Only a problem's validation split, never test (evolve/selection.py).
    select_on: Literal["valid"] | None = None
    select_among: int = Field(default=8, ge=2)
    # Once the reported best is chosen, fit the coefficients that act only above the rule's gate
    # (c1 of a rule split at a gate, or of its gated terms) on this split's gaps against the
    # references themselves, the floor left out, and report the refitted rule (evolve/refit.py).
    # Only a problem's "fit" split (smtt_rule), never test; None: no refit.
    refit_on: Literal["fit"] | None = None
    # Sweeps of the coordinate search over those coefficients (evolve/gp/constants.py).
    refit_sweeps: int = Field(default=4, ge=1, le=20)
    # With refit_on, then also fit the constants that act only below the gate (every constant of
    # the side below a split, or c2 of gated terms), after those above it: on the fit split ("fit",
    # where it holds sizes below the gate: smtt_rule's n = 20 and 50), or on the mean of its score
    # and train's, both against the references themselves ("fit+train"). None: above only.
    refit_below: Literal["fit", "fit+train"] | None = None
    # Overrides of the problem's [verifier.options] (``--option KEY=VALUE``).
    verifier_options: dict[str, Any] = {}
    sandbox: SandboxSettings = SandboxSettings()
    cascade: CascadeSettings = CascadeSettings()
    gp: GPSettings = GPSettings()

    @model_validator(mode="after")
    def _shares_of_parent_choice(self) -> RunSettings:
        # the rest, 1 - exploitation - exploration, is the share of the best overall
        if self.exploitation + self.exploration > 1 + 1e-9:
            raise ValueError(f"exploitation ({self.exploitation:g}) + exploration ({self.exploration:g}) is above 1; "
                             "they are shares of the parent choices, the rest going to the best overall")
        return self


# --- problem.toml -----------------------------------------------------------


IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class FunctionSpec(Strict):
    name: str = Field(pattern=IDENTIFIER)
    signature: str
    contract: str


class ObjectiveSpec(Strict):
    name: str
    direction: Literal["minimize", "maximize"]
    # What the archive ranks by (higher score is better):
    # gap_mean  = -(mean per-instance gap to the reference, in %)
    # gap_group_mean = -(mean over instance groups of each group's mean gap, in %): every
    #             group weighs the same, whatever its number of instances
    # gap_ratio = -(ratio-of-sums gap, in %)
    # objective = -/+ sum of objectives (minimize/maximize)
    score: Literal["gap_mean", "gap_group_mean", "gap_ratio", "objective"] = "gap_mean"
    # What the gaps are measured against when it is a baseline's value, not an optimum (serving:
    # "FCFS's mean E2E latency"): review, report and the run's last line then say "12.65% below
    # FCFS's mean E2E latency" instead of "gap -12.65%". Empty: a reference (optimal, best known).
    reference: str = ""
    # The search's fitness only (the archive's score, the GP's screen, the choice on a validation
    # split), never a reported gap: with gap_mean or gap_group_mean, each group's mean gap is
    # blended with its median gap, (1 - median_weight) * mean + median_weight * median (0: the
    # mean alone), so a few instances with tiny references carry the score less.
    median_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    # The search's fitness only, as median_weight: instance group -> floor. In a group named here an
    # instance's gap is measured against max(|reference|, floor) instead of its reference, so an
    # instance whose reference is tiny (a few units of tardiness) cannot carry its group's mean.
    reference_floor: dict[str, float] = {}

    @model_validator(mode="after")
    def _blend_needs_mean_gaps(self) -> ObjectiveSpec:
        if self.median_weight and self.score not in ("gap_mean", "gap_group_mean"):
            raise ValueError(f"median_weight blends mean gaps with medians; score '{self.score}' has none "
                             "(use gap_mean or gap_group_mean, or remove median_weight)")
        if self.reference_floor and self.score not in ("gap_mean", "gap_group_mean"):
            raise ValueError(f"reference_floor changes the gaps of mean-gap scores; score '{self.score}' has none "
                             "(use gap_mean or gap_group_mean, or remove reference_floor)")
        for group, floor in self.reference_floor.items():
            if not (math.isfinite(floor) and floor > 0):
                raise ValueError(f"reference_floor['{group}'] = {floor:g}: a floor must be a positive number")
        return self


ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class VerifierSpec(Strict):
    entry: str
    options: dict[str, Any] = {}
    # A folder put on sys.path to import ``entry`` (absolute, or relative to the
    # problem folder): where a problem defined in Python keeps its verifier module.
    path: str | None = None

    @field_validator("entry")
    @classmethod
    def _module_and_class(cls, entry: str) -> str:  # the pattern itself was the message
        if not ENTRY.match(entry):
            raise ValueError(f"'{entry}' is not 'module:ClassName' (e.g. 'my_verifier:MyVerifier', "
                             "the module a .py file beside problem.toml)")
        return entry


DEFAULT_FEATURE: dict[str, Any] = {"name": "code_length", "bins": 8, "min": 0, "max": 4000}


class FeatureSpec(Strict):
    """A MAP-Elites dimension: ``code_length`` or any evaluation metric name."""

    name: str
    bins: int = Field(ge=1, le=64)
    min: float
    max: float

    @model_validator(mode="after")
    def _a_range(self) -> FeatureSpec:
        # max <= min gave every program bin 0 (a zero or negative bin width), silently: one cell
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.max > self.min):
            raise ValueError(f"feature '{self.name}': max ({self.max:g}) must be a number above min ({self.min:g})")
        return self


def _first_repeated(names: list[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


class RuleInput(Strict):
    """One argument of a rule: its name, whether it is per candidate or per decision, its meaning."""

    name: str = Field(pattern=IDENTIFIER)
    # array: one value per candidate (the rule's last axis); scalar: one value per decision
    # (a number, or a column that broadcasts against the arrays, e.g. [layers, 1]).
    kind: Literal["array", "scalar"]
    doc: str = Field(min_length=1, pattern=r"^[^\n]+$")  # one line


class RuleSpec(Strict):
    """A function inside the EVOLVE-BLOCK whose body the offline search (GP) writes.

    The rule maps its inputs to one value per candidate (``returns = "array"``)
    and only the order of those values matters to the frame that calls it.
    """

    function: str = Field(pattern=IDENTIFIER)
    returns: Literal["array", "scalar"] = "array"
    doc: str = Field(default="", pattern=r"^[^\n]*$")
    inputs: list[RuleInput] = Field(min_length=1)
    # Known rules as expressions over the inputs (``np.maximum(d, t + p)``): the GP's fresh
    # starts try them next to random trees (checked against the inputs by ``check_rules``).
    starts: list[str] = []
    # Derived terminals, expressions over the inputs (``(d_max - d_min) / remaining_work``): a
    # random leaf of the GP may be one of them, written out in full (checked by ``check_rules``).
    terminals: list[str] = []
    # Gates, scalar expressions over the inputs whose sign splits the decisions (``n - 75``: the
    # instances above 75 jobs from the others): gated insertion gives a new term one coefficient
    # on each side (checked by ``check_rules``; used only where [run.gp] gate > 0).
    gates: list[str] = []

    @model_validator(mode="after")
    def _check_inputs(self) -> RuleSpec:
        repeated = _first_repeated([i.name for i in self.inputs])
        if repeated:
            raise ValueError(f"input '{repeated}' is declared twice")
        if self.returns == "array" and not any(i.kind == "array" for i in self.inputs):
            raise ValueError("returns one value per candidate but has no input of kind 'array'")
        return self


class PromptSpec(Strict):
    """``[prompt]`` in problem.toml: what the model's prompt says beyond the defaults."""

    # How the score is computed, when the verifier's own aggregate defines it
    # (the default text covers gap_mean, gap_ratio and objective sums).
    score: str = ""
    # One direction per island for its first prompts (from the seed), so islands
    # start on different ideas; the defaults are generic.
    directions: list[str] = []


class ExportSpec(Strict):
    """``[export]`` in problem.toml: what ``evolve export`` appends after the program."""

    # Numpy-only sources, in order: an importable module (the trusted dispatcher itself, by
    # name) or a .py file beside problem.toml (e.g. a ``schedule`` entry point calling it),
    # so that a rule-only problem's export schedules without evolve (evolve/export_sources.py).
    append: list[str] = []


class ProblemSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    description: str
    seed: str = "seed.py"
    context: str = "context.md"
    baselines: str = "baselines"
    # Baselines outside the class of program the problem admits (smtt_rule: orders that keep
    # state, not dispatching rules): scored and shown like the others, but a run's best is never
    # held against one as "the strongest baseline", which would compare across classes.
    other_class_baselines: list[str] = []
    function: FunctionSpec
    objective: ObjectiveSpec
    verifier: VerifierSpec
    # MAP-Elites dimensions; without [[features]], one: the length of the evolved code.
    features: list[FeatureSpec] = Field(default_factory=lambda: [FeatureSpec(**DEFAULT_FEATURE)], min_length=1, max_length=3)
    # [rule] (one table) or [[rule]] (several): what the offline search evolves; optional.
    rule: list[RuleSpec] = []
    prompt: PromptSpec = PromptSpec()
    export: ExportSpec = ExportSpec()
    run: dict[str, Any] = {}

    @field_validator("rule", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _distinct_rules(self) -> ProblemSpec:
        repeated = _first_repeated([r.function for r in self.rule])
        if repeated:
            raise ValueError(f"rule function '{repeated}' is declared twice")
        return self


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
        if key == "run" and model.__name__ == "RunSettings":  # problem.toml's [run] table, copied as it is
            hint += "; a config file holds run settings at its top level: drop the [run] line"
        return f"{source}: unknown key '{key}'{hint}"
    if kind == "missing":
        return f"{source}: missing key '{key}'"
    if kind == "value_error":  # our own cross-field checks: the message says it all
        where = f"key '{key}'" if key else "top level"
        return f"{source}: {where}: {first['msg'].removeprefix('Value error, ')}"
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


def offline_default(has_rules: bool) -> str:
    """What ``llm = "auto"`` means for a problem: the GP when it declares rules."""
    return "gp" if has_rules else "mutate"


def resolve_settings(
    problem_defaults: dict[str, Any],
    config_file: Path | None,
    overrides: dict[str, Any],
    source: str = "run settings",
) -> RunSettings:
    """Defaults < problem.toml [run] < --config FILE < command-line flags.

    The file is checked before the flags go over it: a wrong value in it is named with the file
    even where a flag overrides that key (it was silently replaced), and a wrong flag is named as
    ``source`` (the command line), not as the file (a good file was blamed for ``--iterations -1``)."""
    merged: dict[str, Any] = {}
    _merge(merged, problem_defaults)
    if config_file is not None:
        _merge(merged, read_toml(config_file))
        validate(RunSettings, merged, str(config_file))
    _merge(merged, {k: v for k, v in overrides.items() if v is not None})
    return validate(RunSettings, merged, source)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
