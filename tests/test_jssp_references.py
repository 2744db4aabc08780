"""CP-SAT references: proven optima, schedules that attain them, the shipped file."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from evolve.evaluators.jssp.benchmarks import load_benchmarks
from evolve.evaluators.jssp.check import check_schedule
from evolve.evaluators.jssp.cpsat import solve_cpsat
from evolve.evaluators.jssp.generator import generated_split, taillard_like
from evolve.evaluators.jssp.model import JobShop
from evolve.evaluators.jssp.references import attained_by_schedule
from evolve.evaluators.secret_seeds import load_secret
from evolve.problem import builtin_dir
from evolve.references import FORMAT, read_file

JSSP_DATA = builtin_dir() / "jssp" / "data"
SECRET = load_secret(JSSP_DATA.parent, "jssp")
SHIPPED_PATH = JSSP_DATA / "references.json"


def makespan_of(shop: JobShop, start: np.ndarray) -> int:
    rows = [start[j, : int(shop.lengths[j])].tolist() for j in range(shop.n_jobs)]
    ends = [[s + int(shop.durations[j, k]) for k, s in enumerate(row)] for j, row in enumerate(rows)]
    reason, checked = check_schedule(shop, {"start": rows, "end": ends}, None)
    assert reason is None, reason
    return checked.makespan


@pytest.mark.parametrize(("name", "optimum"), [("ft06", 55), ("la01", 666)])
def test_cp_sat_proves_the_small_optima(name: str, optimum: int) -> None:
    shop = load_benchmarks(JSSP_DATA)[name].shop
    result = solve_cpsat(shop, time_limit_s=30, workers=1)
    assert (result.status, result.makespan, result.bound) == ("optimal", optimum, optimum)
    assert makespan_of(shop, result.start) == optimum


def enumerate_active_optimum(shop: JobShop) -> int:
    """Best makespan over every Giffler-Thompson branch: the optimum (some optimal
    schedule is active).  Written independently of the builder, exhaustive."""
    jobs = shop.jobs()
    best = [10**9]

    @cache
    def search(nxt: tuple[int, ...], job_ready: tuple[int, ...], mach_ready: tuple[int, ...]) -> None:
        ready = [j for j, k in enumerate(nxt) if k < len(jobs[j])]
        if not ready:
            best[0] = min(best[0], max(job_ready))
            return
        est = {j: max(job_ready[j], mach_ready[jobs[j][nxt[j]][0]]) for j in ready}
        ect = {j: est[j] + jobs[j][nxt[j]][1] for j in ready}
        first = min(ready, key=lambda j: ect[j])
        machine = jobs[first][nxt[first]][0]
        for j in ready:
            if jobs[j][nxt[j]][0] == machine and est[j] < ect[first]:
                n, jr, mr = list(nxt), list(job_ready), list(mach_ready)
                n[j] += 1
                jr[j] = mr[machine] = ect[j]
                search(tuple(n), tuple(jr), tuple(mr))

    search(tuple([0] * shop.n_jobs), tuple([0] * shop.n_jobs), tuple([0] * shop.n_machines))
    return best[0]


def test_cp_sat_optimum_equals_exhaustive_enumeration_on_tiny_instances() -> None:
    for seed in range(12):
        shop = taillard_like(f"tiny{seed}", 3 + seed % 2, 3, seed)
        result = solve_cpsat(shop, time_limit_s=10)
        assert result.status == "optimal"
        assert result.makespan == enumerate_active_optimum(shop), seed


def test_shipped_references_are_attained_and_labelled() -> None:
    header, shipped = read_file(SHIPPED_PATH)
    assert header["command"].startswith("taskset -c 0 evolve references jssp --split quick,train --time-limit 45")
    shops = {s.content_hash(): s for split in ("quick", "train") for s in generated_split(split, SECRET)}
    assert set(shipped) == set(shops)
    kinds = set()
    for key, record in shipped.items():
        shop = shops[key]
        assert record.name == shop.name and record.details == {"size": shop.size}
        assert makespan_of(shop, np.array([row + [-1] * (shop.durations.shape[1] - len(row))
                                           for row in record.witness])) == record.value
        assert attained_by_schedule(record, shop)
        assert shop.trivial_lower_bound() <= record.bound <= record.value
        assert (record.kind == "optimal") == (record.bound == record.value)
        assert record.source.startswith("CP-SAT (ortools ")
        kinds.add(record.kind)
    assert kinds == {"optimal", "best_known"}


def test_a_tampered_reference_is_refused(tmp_path, monkeypatch) -> None:
    from evolve.errors import UserError
    from evolve.evaluators.jssp import JsspVerifier

    document = json.loads(SHIPPED_PATH.read_text())
    assert document["format"] == FORMAT
    row = next(r for r in document["references"].values() if r["name"] == "quick-6x6-0")
    row["value"] -= 1  # a better value than its own schedule attains
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / SHIPPED_PATH.name).write_text(json.dumps(document))
    (tmp_path / "data" / "seeds.json").write_text((JSSP_DATA / "seeds.json").read_text())  # the same instances
    with pytest.raises(UserError, match="a reference its witness does not attain for instance quick-6x6-0"):
        JsspVerifier(tmp_path, {}).instances("quick")
