"""evolve report: one self-contained HTML file whose plots render in a real browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from browser import dump_dom, is_drawn, pixels

from evolve import instance_plots
from evolve.evaluation import Evaluation
from evolve.problem import load_problem
from evolve.report import _picture, picture_indices

TESTS = Path(__file__).resolve().parent
SECTIONS = ("glance", "progress", "islands", "grid", "lineage", "test", "code", "picture", "failures")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    problem = root / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    run = root / "run"
    cli = [sys.executable, "-m", "evolve.cli"]
    made = subprocess.run([*cli, "run", str(problem), "--iterations", "16", "--out", str(run)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    target = root / "report.html"
    built = subprocess.run([*cli, "report", str(run), "-o", str(target)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert "report written to" in built.stdout
    return target


def test_report_is_one_self_contained_file(report: Path) -> None:
    page = report.read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "nothing may be fetched from a network"
    assert "<link" not in page and "<script src" not in page
    images = re.findall(r'<img class="plot" src="([^"]+)"', page)
    assert len(images) >= 6 and all(src.startswith("data:image/png;base64,") for src in images)
    for src in images:
        assert is_drawn(pixels(base64.b64decode(src.split(",", 1)[1])))


def test_report_states_the_held_out_comparison_and_the_overfitting_verdict(report: Path) -> None:
    page = report.read_text()
    assert "Generalisation:" in page and "descending" in page and "Wilcoxon" in page
    assert "3 held-out instances" in page
    assert "<th>ms/inst</th>" in page  # time per instance next to the gaps


def test_report_plots_gaps_against_every_baseline_and_collapses_long_tables(report: Path) -> None:
    page = report.read_text()
    assert "the train gap over iterations" in page and "the seed and every baseline on the same split" in page
    assert "Binned over the values the run reached: code_length" in page  # not problem.toml's fixed bins
    assert "against the seed and every baseline, per instance" in page
    sections = re.findall(r'<details class="section"><summary><b>vs ([^<]+)</b>', page)
    assert sections == ["seed", "descending"]  # one collapsed per-group section per opponent


def test_plots_render_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"  # taken by the same browser start as the DOM
    dom = dump_dom(report.as_uri(), tmp_path / "profile", screenshot=(shot, "1280,3000"))
    loaded = re.search(r'data-plots="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load script did not run"
    assert loaded.group(1) == loaded.group(2) and int(loaded.group(2)) >= 6, "some plots did not decode"
    image = pixels(shot.read_bytes())
    assert image.shape[1] == 1280 and is_drawn(image)
    # The first plot (progress) sits in the upper part of the page: that band is drawn, not blank.
    assert is_drawn(image[600:1500])


def test_smtt_picture_shows_per_job_tardiness_of_real_sequences() -> None:
    problem = load_problem("smtt")
    instance = problem.instances("quick")[0]
    p, d = instance.data["p"], instance.data["d"]
    edd = [int(j) for j in np.argsort(d, kind="stable")]
    spt = [int(j) for j in np.argsort(p, kind="stable")]
    uri = instance_plots.smtt_tardiness([instance], [edd], [spt], "edd", "spt")
    assert uri is not None and is_drawn(pixels(base64.b64decode(uri.split(",", 1)[1])))


def evaluation_of(instances: list, solutions: list) -> Evaluation:
    from evolve.verifier import feasible

    results = [feasible(i, 10.0, "minimize") for i in instances]
    return Evaluation("ok", -1.0, {}, results, "", "test", 0.0, solutions)


def test_picture_prefers_the_verifiers_own_and_survives_a_broken_one(tmp_path: Path) -> None:
    problem = load_problem(str(TESTS / "toy_problem"))
    instances = problem.instances("test")
    solutions = [list(range(len(i.data["x"]))) for i in instances]
    holdout = SimpleNamespace(best="best #2", split="test", instance_list=instances,
                              evaluations={"best #2": evaluation_of(instances, solutions),
                                           "descending": evaluation_of(instances, solutions)})
    assert picture_indices(instances, holdout.evaluations["best #2"]) == [0, 1]

    def draws(instances: list, results: list, solutions: list, path: Path) -> None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([len(s) for s in solutions], "o-")
        fig.savefig(path)
        plt.close(fig)

    def breaks(*args: object) -> None:
        raise ValueError("no <picture> today")

    own = SimpleNamespace(name="toy", verifier=SimpleNamespace(picture=draws))
    figure = _picture(own, holdout, "descending")  # type: ignore[arg-type]
    assert figure.caption.startswith("Drawn by the verifier") and figure.uri

    broken = SimpleNamespace(name="toy", verifier=SimpleNamespace(picture=breaks))
    figure = _picture(broken, holdout, "descending")  # type: ignore[arg-type]
    assert "picture() failed: ValueError: no <picture> today" in figure.caption and figure.uri
