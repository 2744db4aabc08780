"""gpu_cost's group_load and own_load inputs: the load the replica's expert group, and its own
expert, already have on each GPU."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np

import evolve
from evolve.config import resolve_settings
from evolve.edits import apply_edit
from evolve.evaluators.moe.configs import EpConfig
from evolve.evaluators.moe.placement import Placement, shape
from evolve.evaluators.moe.screen import place
from evolve.gp.backend import GPBackend
from evolve.gp.rules import find_rule
from evolve.llm.base import ProposalRequest
from evolve.problem import load_problem


def _recording(calls: list[dict[str, np.ndarray]], own: float = 0.0) -> dict[str, Any]:
    def gpu_cost(env: dict[str, Any]) -> np.ndarray:
        calls.append({k: np.array(env[k], dtype=float) for k in ("gpu_load", "group_load", "item_load", "own_load")})
        return env["gpu_load"] + own * env["own_load"]

    return {"replica_priority": (lambda env: env["load"] / env["count"], set()),
            "item_order": (lambda env: env["item_load"], set()),
            "gpu_cost": (gpu_cost, set())}


def test_group_load_counts_only_the_placed_replicas_of_the_items_own_group() -> None:
    # Experts 0, 1 form group 0 and experts 2, 3 group 1; 2 GPUs x 2 slots, LPT order 8, 4, 2, 1:
    # 8 -> GPU 0; 4 -> GPU 1 (group 0 has 8 on GPU 0); 2 -> GPU 1 (group 1 has nothing yet);
    # 1 -> GPU 0, the only one with a free slot (group 1 has 2 on GPU 1).
    calls: list[dict[str, np.ndarray]] = []
    phy2log, _, count = place(_recording(calls), np.array([[8, 4, 2, 1]]), 4, 2, num_groups=2)
    assert [c["group_load"][0].tolist() for c in calls] == [[0, 0], [8, 0], [0, 0], [0, 2]]
    assert [c["gpu_load"][0].tolist() for c in calls] == [[0, 0], [8, 0], [8, 4], [8, 6]]
    assert phy2log.tolist() == [[0, 3, 1, 2]] and count.tolist() == [[1, 1, 1, 1]]


def test_with_one_group_group_load_is_gpu_load_and_with_one_expert_a_group_its_own_load() -> None:
    weight = np.random.default_rng(3).integers(1, 1000, size=(3, 12))
    for groups, same_as_gpu_load in ((1, True), (12, False)):
        calls: list[dict[str, np.ndarray]] = []
        place(_recording(calls), weight, 16, 4, num_groups=groups)
        assert len(calls) == 16
        for c in calls:
            if same_as_gpu_load:
                assert np.array_equal(c["group_load"], c["gpu_load"])
            else:  # only replicas of the item's own expert (each of load item_load) count
                ratio = c["group_load"] / c["item_load"]
                assert np.allclose(ratio, np.rint(ratio)) and (c["group_load"] <= c["gpu_load"]).all()


def test_own_load_keeps_an_experts_replicas_apart_where_lpt_puts_them_together() -> None:
    # Loads 17, 13, 10, 6 on 2 GPUs x 3 slots, one group: experts 0 and 1 get two replicas each
    # (8.5, 8.5, 6.5, 6.5), packed in LPT order 10, 8.5, 8.5, 6.5, 6.5, 6. LPT fills GPU 1 with both
    # replicas of expert 0 and GPU 0 with both of expert 1 (23 and 23 on this window: any drift of
    # expert 0 or 1 lands on one GPU twice); gpu_load + own_load puts each on both GPUs (25 and 21).
    weight = np.array([[17, 13, 10, 6]])
    lpt: list[dict[str, np.ndarray]] = []
    assert place(_recording(lpt), weight, 6, 2)[0].tolist() == [[2, 1, 1, 0, 0, 3]]
    calls: list[dict[str, np.ndarray]] = []
    phy2log, _, count = place(_recording(calls, own=1.0), weight, 6, 2)
    assert phy2log.tolist() == [[2, 0, 1, 0, 1, 3]] and count.tolist() == [[2, 2, 1, 1]]
    assert [c["item_load"][0, 0] for c in calls] == [10, 8.5, 8.5, 6.5, 6.5, 6]
    assert [c["own_load"][0].tolist() for c in calls] == [[0, 0], [0, 0], [0, 8.5], [0, 0], [0, 6.5], [0, 0]]
    assert all(np.array_equal(c["group_load"], c["gpu_load"]) for c in calls)  # one group


def test_colocated_share_counts_the_redundant_replicas_stacked_on_their_experts_gpu() -> None:
    # The placements of the test above: LPT stacks both redundant replicas (of experts 0 and 1) on
    # a GPU their expert already has, own_load none; on the window seen LPT's GPUs are 23 and 23,
    # own_load's 25 and 21 (the search's MAP-Elites feature and a trusted figure beside it).
    config = EpConfig("toy", experts=4, replicas=6, groups=1, nodes=1, gpus=2)
    weight = np.array([[17, 13, 10, 6]])
    measured = []
    for own in (0.0, 1.0):
        phy2log, log2phy, count = place(_recording([], own=own), weight, 6, 2)
        measured.append(shape(Placement(phy2log, log2phy, count), config, weight))
    assert measured == [{"colocated_share": 1.0, "fit_balancedness": 1.0},
                        {"colocated_share": 0.0, "fit_balancedness": 23 / 25}]


def test_gpu_cost_gets_the_deployments_group_count() -> None:
    """A model asked for num_groups in gpu_cost (the frame had it, the rule did not)."""
    for groups in (1, 4):
        seen: list[float] = []

        def gpu_cost(env: dict[str, Any], seen: list[float] = seen) -> np.ndarray:
            seen.append(env["num_groups"])
            return env["gpu_load"]

        rules = {**_recording([]), "gpu_cost": (gpu_cost, set())}
        place(rules, np.random.default_rng(1).integers(1, 100, size=(2, 8)), 12, 4, num_groups=groups)
        assert seen == [float(groups)] * 12


def _seed_without_num_groups(seed: str) -> str:
    """The seed as it was before gpu_cost took num_groups (frame and function alike)."""
    old = seed.replace("own_load,\n             num_groups):", "own_load):")
    old = old.replace(", float(num_groups))", ")")
    assert old != seed and "num_groups):" not in old and "float(num_groups)" not in old
    return old


def test_a_program_may_use_num_groups_and_one_written_before_still_scores_the_same() -> None:
    """The seed's gpu_cost gets num_groups; a program whose gpu_cost uses it is scored (group
    spreading only where there is more than one group), and a program written before it (eight
    inputs, its own frame passing eight) places exactly as the seed does."""
    moe = load_problem("moe")
    seed = moe.seed_code
    assert "def gpu_cost(" in seed and "num_groups):" in seed
    using = seed.replace("    return gpu_load\n# EVOLVE-BLOCK-END",
                         "    return gpu_load + (num_groups > 1) * group_load\n# EVOLVE-BLOCK-END")
    assert using != seed
    scored = {name: evolve.evaluate(moe, code, split="quick")
              for name, code in (("seed", seed), ("old", _seed_without_num_groups(seed)), ("using", using))}
    for name, evaluation in scored.items():
        assert evaluation.ok, (name, evaluation.feedback)
    assert scored["old"].metrics["balancedness"] == scored["seed"].metrics["balancedness"]
    assert [r.objective for r in scored["old"].instances] == [r.objective for r in scored["seed"].instances]


def test_the_gp_never_makes_an_old_programs_gpu_cost_read_num_groups_it_does_not_take() -> None:
    """A run archived before gpu_cost took num_groups, resumed with the GP: a child keeps its
    parent's def line and frame, so a gpu_cost body reading num_groups failed with a NameError
    (45 of 300 children of the old seed, with an inspiration that reads it). Children of an old
    program read only what its gpu_cost takes, and score like any program; a current program's
    children may still read num_groups."""
    moe = load_problem("moe")
    old = _seed_without_num_groups(moe.seed_code)
    reading = moe.seed_code.replace("    return gpu_load\n# EVOLVE-BLOCK-END",
                                    "    return gpu_load * num_groups + group_load\n# EVOLVE-BLOCK-END")
    gp = GPBackend(moe.spec.rule, seed=1, settings=resolve_settings(moe.spec.run, None, {}).gp)
    reads_it = {"old": 0, "current": 0}
    children = []
    for iteration in range(1, 121):
        for name, parent in (("old", old), ("current", moe.seed_code)):
            request = ProposalRequest([], iteration, 0, "diff", parent, [reading], fresh=iteration % 5 == 0)  # type: ignore[arg-type]
            child = apply_edit(parent, gp.complete(request).text, "diff")
            site = find_rule(child, "gpu_cost")
            assert site is not None
            if "num_groups" in ast.unparse(site.node.body[-1]):
                reads_it[name] += 1
            if name == "old":
                children.append((ast.unparse(site.node.body[-1]), child))
    assert reads_it["old"] == 0 and reads_it["current"] > 0, reads_it
    changed = next(child for body, child in children if body != "return gpu_load")  # the old gpu_cost, varied
    evaluation = evolve.evaluate(moe, changed, split="quick")
    assert evaluation.ok, evaluation.feedback
