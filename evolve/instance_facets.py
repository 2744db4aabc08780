"""A split's mean gap broken down by the facets its instance names carry.

Generated instances say in their names how they were made: ``train-n20-tf0.4-rdd0.2-80`` has
tardiness factor 0.4 and due-date range 0.2. The feedback's per-group means and three worst
instances do not show that a rule loses on, say, every narrow due-date range; a mean gap per
value of each facet does (a model that played the search asked for exactly this).

A facet is a ``key<number>`` token between dashes (``tf0.4``) that every scored instance's name
carries, with 2 to ``MAX_VALUES`` values of at least two instances each; one that only repeats the
instance groups (``n20`` for group ``n=20``) is left out. Names without such tokens (``ta01``,
one instance per value) give no line, so a problem opts in by how it names its instances.

With two such facets or more, the first two are also crossed: one line per value of the first,
``gap by tf0.4 x rdd: 0.2 3.10% (20), 0.4 ...``, each cell's mean gap and how many instances
it holds (SMTT's 25 tf x rdd cells: a rule can lose only where tight due dates meet a narrow
range, which neither line alone shows; the clean-room agent that played the model asked for it).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from statistics import fmean

from evolve.formats import pct
from evolve.verifier import InstanceResult

FACET_PREFIX = "gap by "  # the lines' start: an inspiration's summary leaves them out
MAX_VALUES = 8
MAX_FACETS = 3
_TOKEN = re.compile(r"([A-Za-z_]+)(\d+(?:\.\d+)?)")


def _facets(name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in name.split("-"):
        match = _TOKEN.fullmatch(part)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2)
    return found


def facet_lines(results: Sequence[InstanceResult]) -> list[str]:
    """One line per facet, e.g. ``gap by rdd: 0.2 3.10%, 0.4 1.02%, ...`` (mean gap, in %)."""
    scored = [r for r in results if r.gap is not None]
    if not scored:
        return []
    tokens = [_facets(r.name) for r in scored]
    keys = [k for k in tokens[0] if all(k in t for t in tokens)]
    lines = []
    kept: list[str] = []
    for key in keys:
        gaps: dict[str, list[float]] = defaultdict(list)
        groups: dict[str, set[str]] = defaultdict(set)
        for result, found in zip(scored, tokens, strict=True):
            gaps[found[key]].append(100 * (result.gap or 0.0))
            groups[found[key]].add(result.group)
        if not 2 <= len(gaps) <= MAX_VALUES or min(len(g) for g in gaps.values()) < 2:
            continue
        if all(len(g) == 1 for g in groups.values()) and len(set.union(*groups.values())) == len(gaps):
            continue  # the groups again under another name
        values = sorted(gaps, key=float)
        lines.append(FACET_PREFIX + f"{key}: " + ", ".join(f"{v} {pct(fmean(gaps[v]))}" for v in values))
        kept.append(key)
        if len(lines) == MAX_FACETS:
            break
    if len(kept) >= 2:
        lines.extend(_crossed(scored, tokens, kept[0], kept[1]))
    return lines


def _crossed(scored: list[InstanceResult], tokens: list[dict[str, str]], rows: str, columns: str) -> list[str]:
    """``gap by tf0.2 x rdd: 0.2 2.81% (20), 0.4 1.11% (20), ...``: one line per value of ``rows``."""
    cells: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result, found in zip(scored, tokens, strict=True):
        cells[found[rows]][found[columns]].append(100 * (result.gap or 0.0))
    return [FACET_PREFIX + f"{rows}{r} x {columns}: " + ", ".join(
                f"{c} {pct(fmean(cells[r][c]))} ({len(cells[r][c])})" for c in sorted(cells[r], key=float))
            for r in sorted(cells, key=float)]
