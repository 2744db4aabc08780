"""``evolve report``: one self-contained HTML file about a run.

Figures are inline PNG data URIs and the CSS is inline, so the file opens
anywhere without a network.  The test comparison is computed now, on the
held-out split, through the same evaluation path as ``review --test``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from evolve import instance_plots
from evolve import report_plots as plots
from evolve.compare import StepProgress, evaluate_programs
from evolve.errors import UserError
from evolve.evalcache import EvalCache
from evolve.evaluation import Evaluation
from evolve.formats import pct, side_of
from evolve.history import History
from evolve.holdout import Holdout, evaluate_holdout
from evolve.problem import Problem
from evolve.review import RunReview, problem_of, review_run
from evolve.runs import RunInfo, load_run
from evolve.sandbox.outcome import printable
from evolve.scoring import headline_gap, headline_gap_keys, natural_key
from evolve.verifier import Instance

TEMPLATES = Path(__file__).resolve().parent / "templates"
PICTURE_INSTANCES = 2  # one from the first instance group, one from the middle one


@dataclass(frozen=True)
class Figure:
    id: str
    title: str
    uri: str | None
    caption: str = ""


def build_report(
    run_dir: Path, output: Path, split: str = "test", workers: int = 1, progress: StepProgress | None = None,
) -> float:
    """Write the report; returns the seconds it took."""
    started = time.perf_counter()
    review = review_run(run_dir, top=10)
    info = load_run(run_dir)
    problem = problem_of(info)
    holdout = evaluate_holdout(run_dir, split, workers, progress)
    score_kind = problem.spec.objective.score
    with History(info.archive_path) as history:
        points = history.programs(headline_gap_keys(score_kind))
        run_started = history.started_at() or 0.0
    seed_score = review.seed.score if review.seed else None
    best_id = review.best.id if review.best else None
    by_score = plots.plots_by_score(problem)
    references, not_drawn = _train_references(run_dir, problem, info, score_kind, progress, by_score)
    grid_uri, grid_caption = plots.grid_figure(points, list(problem.spec.features), best_id)
    drawn = "score" if by_score or not plots.axis_is_gap(points) else "gap"
    figures = [
        Figure("progress", f"Progress: the train {drawn} over iterations and over time",
               plots.progress_figure(points, run_started, seed_score, references, review.gap(review.seed), by_score),
               "Dots: every evaluated program (train split), coloured by island. Black: the best so far "
               f"by score (the archive's ranking), drawn at its {drawn}. "
               "Horizontal lines: the seed and every baseline on the same split."
               + (f" Not drawn, failed on train: {'; '.join(not_drawn)}." if not_drawn else "")),
        Figure("islands", "Score distribution per island", plots.islands_figure(points, seed_score)),
        Figure("grid", "MAP-Elites feature space", grid_uri, grid_caption),
        Figure("lineage", "Lineage of the best program",
               plots.lineage_figure(points, [s.id for s in review.lineage], seed_score)),
    ]
    strongest = holdout.strongest_baseline() or "seed"
    best_eval = holdout.evaluations[holdout.best]
    opponents = {name: e.instances for name, e in holdout.evaluations.items() if name != holdout.best}
    scatter = instance_plots.instance_scatters(best_eval.instances, opponents, holdout.best)
    picture = _picture(problem, holdout, strongest)
    context = {
        "title": f"{review.problem}: evolve run report",
        "problem": problem.spec,
        "review": review,
        "holdout": holdout,
        "strongest": strongest,
        "glance": _glance(review, holdout, strongest),
        "figures": figures,
        "scatter": Figure("scatter", f"{holdout.best} against the seed and every baseline, per instance", scatter),
        "picture": picture,
        "lineage_rows": _lineage_rows(review),
        "programs_table": _programs_table(holdout),
        "best_code": highlight(printable(review.best.code if review.best else ""), PythonLexer(), HtmlFormatter(noclasses=True)),
        "best_diff": highlight(printable(review.diff() or "(the best program is the seed)"), DiffLexer(), HtmlFormatter(noclasses=True)),
        "generated": time.strftime("%Y-%m-%d %H:%M"),
        "run_dir": str(run_dir.resolve()),
    }
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    against = problem.spec.objective.reference  # serving: a baseline's latency, which a good policy is below
    environment.filters.update(pct=_pct, num=_num, pval=_pval, p_phrase=_p_phrase,
                               side=lambda v: "–" if v is None else side_of(v),
                               gap=lambda v: _pct(v) if not against or v is None else side_of(v))
    context["gap_header"] = f"vs {against}" if against else "gap"
    page = environment.get_template("report.html.jinja").render(**context, seconds=time.perf_counter() - started)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(page)
    except OSError as err:
        raise UserError(f"{output}: cannot write the report ({err.strerror})") from None
    return time.perf_counter() - started


def _train_references(
    run_dir: Path, problem: Problem, info: RunInfo, score_kind: str, progress: StepProgress | None,
    by_score: bool = False,
) -> tuple[dict[str, float], list[str]]:
    """Every baseline's headline gap (or score; always with ``by_score``) on the train split, for the progress plot:
    evaluated through the same path as the run's programs, cached in the run's archive; and
    the baselines that failed there, each with its status (their lines were silently missing)."""
    if not problem.baselines:
        return {}, []
    instances = problem.instances("train")
    cache = EvalCache(info.archive_path, problem, info.settings.sandbox, "train", instances)
    evaluations = evaluate_programs(problem, info.settings.sandbox, problem.baseline_programs(), instances, "train",
                                    1, cache, progress)
    values, failed = {}, []
    for name, evaluation in evaluations.items():
        gap = None if by_score else headline_gap(evaluation.metrics, score_kind)
        value = gap if gap is not None else evaluation.score
        if evaluation.ok and value is not None:
            values[name] = value
        elif not evaluation.ok:
            failed.append(f"{name} ({evaluation.status})")
    return values, failed


def _glance(review: RunReview, holdout: Holdout, strongest: str) -> dict[str, Any]:
    """The few numbers a reader needs first."""
    best = holdout.evaluations[holdout.best]
    seed = holdout.evaluations["seed"]
    versus = holdout.comparison(strongest)
    return {
        "train_seed": review.gap(review.seed), "train_best": review.gap(review.best),
        "test_best": best.metrics.get("gap_mean_pct"), "test_seed": seed.metrics.get("gap_mean_pct"),
        "test_strongest": holdout.evaluations[strongest].metrics.get("gap_mean_pct"),
        "versus": versus.overall if versus else None,
        "best_status": best.status,
    }


def _lineage_rows(review: RunReview) -> list[dict[str, Any]]:
    return [
        {
            "step": step, "diff_html": highlight(printable(step.diff), DiffLexer(), HtmlFormatter(noclasses=True)) if step.diff else "",
        }
        for step in review.lineage
    ]


def _programs_table(holdout: Holdout) -> dict[str, Any]:
    groups = sorted({k[13:-1] for e in holdout.evaluations.values() for k in e.metrics if k.startswith("gap_mean_pct[")},
                    key=natural_key)
    rows = [
        {
            "name": name, "status": e.status, "score": e.score, "gap": e.metrics.get("gap_mean_pct"),
            "ratio": e.metrics.get("gap_ratio_pct"), "groups": [e.metrics.get(f"gap_mean_pct[{g}]") for g in groups],
            "ms": e.metrics.get("ms_per_instance"), "group_ms": [e.metrics.get(f"ms_per_instance[{g}]") for g in groups],
            "is_best": name == holdout.best,
        }
        for name, e in holdout.evaluations.items()
    ]
    return {"groups": groups, "rows": rows}


def picture_indices(instances: list[Instance], evaluation: Evaluation, count: int = PICTURE_INSTANCES) -> list[int]:
    """Solved instances from the first and the middle instance group (readable sizes)."""
    solved = {r.name for r in evaluation.instances if r.feasible}
    groups = sorted({i.group for i in instances}, key=natural_key)
    wanted = list(dict.fromkeys(groups[k] for k in (0, len(groups) // 2)))[:count] if groups else []
    chosen = []
    for group in wanted:
        index = next((k for k, i in enumerate(instances) if i.group == group and i.name in solved), None)
        if index is not None:
            chosen.append(index)
    return chosen


def _picture(problem: Problem, holdout: Holdout, strongest: str) -> Figure:
    """The problem's own picture of the best solutions, else a generic gap chart."""
    best = holdout.evaluations[holdout.best]
    other = holdout.evaluations[strongest]
    indices = picture_indices(holdout.instance_list, best)
    names = ", ".join(holdout.instance_list[k].name for k in indices)
    title = f"The problem's picture of the best program's solutions ({names})" if names else "Picture"
    draw = getattr(problem.verifier, "picture", None)
    if callable(draw) and indices and best.solutions:
        try:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "picture.png"
                draw([holdout.instance_list[k] for k in indices], [best.instances[k] for k in indices],
                     [best.solutions[k] for k in indices], path)
                return Figure("picture", title, plots.png_uri(path.read_bytes()), "Drawn by the verifier's picture().")
        except Exception as err:  # a broken picture must not cost the whole report
            caption = f"the verifier's picture() failed: {type(err).__name__}: {err}"
            return Figure("picture", title, _generic(holdout, strongest), caption + "; showing the gap per instance")
    if problem.spec.verifier.entry.startswith("evolve.evaluators.smtt:") and indices and best.solutions:  # both tracks
        others = [other.solutions[k] if k < len(other.solutions) else None for k in indices]
        uri = instance_plots.smtt_tardiness([holdout.instance_list[k] for k in indices], [best.solutions[k] for k in indices],
                                   others, holdout.best, strongest)
        return Figure("picture", title, uri, f"Per-job tardiness; the black line is {strongest}'s sequence.")
    return Figure("picture", f"Gap per {holdout.split} instance", _generic(holdout, strongest),
                  "The problem's verifier has no picture(): the gap of every instance instead.")


def _generic(holdout: Holdout, strongest: str) -> str | None:
    return instance_plots.instance_gap_bars(holdout.evaluations[holdout.best].instances,
                                   holdout.evaluations[strongest].instances, holdout.best, strongest)


def _pct(value: float | None) -> str:
    return "–" if value is None else pct(value)


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value + 0.0:.{digits}g}"


def _pval(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.2g}"


def _p_phrase(value: float) -> str:
    return "p < 0.0001" if value < 1e-4 else f"p = {value:.2g}"
