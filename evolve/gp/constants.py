"""Fitting a screened child's constants on train: a coordinate search inside the brood.

Mutation alone finds structure but places constants badly: ``t + p * 2.37`` is
found long before ``t + p * 1.1``, and a better structure with a poor constant
screens worse than its parent and is culled.  So, where the verifier has a
screen, the brood's best child has its constants fitted before it is answered:
each constant in turn is scaled by a few factors (sign flips included), the best
change that improves the screen's train score is kept, and sweeps repeat while
one improves.  Constants are kept to three significant digits, as mutation
writes them; the structure never changes (the tree is simplified again, and a
fold that would change the structure is refused).

Deterministic (no randomness), and it only evaluates trees on the trusted screen:
candidate code never runs here.  The tuned child is still scored for real by the
sandbox and the verifier, like every proposal.
"""

from __future__ import annotations

from collections.abc import Callable

from evolve.gp.tree import Tree, get, paths, replace, simplify, size

# Multipliers tried on each constant per sweep: coarse and fine steps both ways, and a sign flip.
FACTORS = (0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 2.0, -1.0)


def constant_paths(tree: Tree) -> list[tuple[int, ...]]:
    return [p for p in paths(tree) if get(tree, p)[0] == "c"]


def gated_constant_paths(tree: Tree, gates: tuple[Tree, ...]) -> list[tuple[int, ...]]:
    """The two coefficients of every gated term, ``np.where(G > 0, c1, c2)`` with G one of the
    rule's gates (what gated insertion writes): the constants ``fit_scope = "gated"`` fits. The
    gate's own constants (``75`` in ``n - 75``) and every other constant are left alone."""
    out = []
    for at in paths(tree):
        node = get(tree, at)
        if node[0] == "ifpos" and node[1] in gates:
            out += [(*at, i) for i in (2, 3) if node[i][0] == "c"]
    return out


def side_constant_paths(tree: Tree, gates: tuple[Tree, ...]) -> list[tuple[int, ...]]:
    """What ``fit_scope = "sides"`` fits. A rule split at its root by a gate,
    ``np.where(G > 0, T + c1 * g, B)`` (operators.split): c1, the one coefficient above the gate,
    and every constant of B, the side below it; T (the rule above the gate as the split found
    it), g and the gate stay as they are. Any other tree: its gated coefficients, as "gated"."""
    if tree[0] == "ifpos" and tree[1] in gates:
        above = tree[2]
        out = [(2, 2, 1)] if above[0] == "add" and above[2][0] == "mul" and above[2][1][0] == "c" else []
        return out + [(3, *at) for at in constant_paths(tree[3])]
    return gated_constant_paths(tree, gates)


def above_gate_paths(tree: Tree, gates: tuple[Tree, ...]) -> list[tuple[int, ...]]:
    """The coefficients that act only where a gate is positive: c1 of a rule split at its root,
    ``np.where(G > 0, T + c1 * g, B)``, else c1 of every gated term ``np.where(G > 0, c1, c2)``
    (what ``refit_on`` fits, evolve/refit.py)."""
    if tree[0] == "ifpos" and tree[1] in gates:
        return [p for p in side_constant_paths(tree, gates) if p[0] == 2]
    return [p for p in gated_constant_paths(tree, gates) if p[-1] == 2]


def below_gate_paths(tree: Tree, gates: tuple[Tree, ...]) -> list[tuple[int, ...]]:
    """The constants that act only where every gate is not positive: every constant of B, the side
    below the gate of a rule split at its root, ``np.where(G > 0, T + c1 * g, B)``, else c2 of every
    gated term ``np.where(G > 0, c1, c2)`` (what ``refit_below`` fits, evolve/refit.py)."""
    if tree[0] == "ifpos" and tree[1] in gates:
        return [p for p in side_constant_paths(tree, gates) if p[0] == 3]
    return [p for p in gated_constant_paths(tree, gates) if p[-1] == 3]


def fit_constants(tree: Tree, score: Callable[[Tree], float | None], value: float,
                  sweeps: int, pre: Callable[[Tree], float | None] | None = None,
                  race: int = 0, where: Callable[[Tree], list[tuple[int, ...]]] = constant_paths,
                  ties: bool = False) -> tuple[Tree, float, int]:
    """(tree, its score, trees scored): the best found from ``tree`` (score ``value``, higher is
    better) by at most ``sweeps`` sweeps of coordinate search over its constants (those
    ``where`` lists: all of them by default).

    With ``pre`` (a cheaper score that ranks like ``score``) and ``race`` > 0, the trials of
    each constant are ranked by ``pre`` first and only the best ``race`` are scored (racing:
    a constant is still changed only where ``score`` improves). With ``ties``, trials that tie
    with the last of those on ``pre`` are scored too: a cut that cannot tell trials apart does
    not choose among them. Without it (the default, so runs repeat as before) a coefficient that
    acts only on instances the cut leaves out ties on every trial, and the first two trials in
    FACTORS' order (x 0.5, x 0.8) are the only ones scored: it can only shrink."""
    scored = 0
    for _ in range(sweeps):
        improved = False
        for at in where(tree):
            if at not in where(tree):
                continue  # an earlier change in this sweep folded this constant away
            old = get(tree, at)[1]
            best: tuple[float, Tree] | None = None
            trials: list[Tree] = []
            for factor in FACTORS:
                new = float(f"{old * factor:.3g}")
                if new == old or new == 0.0:
                    continue
                trial = simplify(replace(tree, at, ("c", new)))
                if size(trial) != size(tree) or trial in trials:
                    continue  # folded into an identity (a different structure), or made already
                trials.append(trial)
            if pre is not None and race and len(trials) > race:
                first = [pre(trial) for trial in trials]
                order = sorted((i for i, v in enumerate(first) if v is not None), key=lambda i: -first[i])  # type: ignore[operator]
                cut = first[order[race - 1]] if len(order) >= race else None
                keep = order[:race] + [i for i in order[race:] if ties and first[i] == cut]
                trials = [trials[i] for i in sorted(keep)]
            for trial in trials:
                scored += 1
                result = score(trial)
                if result is not None and result > value and (best is None or result > best[0]):
                    best = (result, trial)
            if best is not None:
                value, tree = best
                improved = True
        if not improved:
            break
    return tree, value, scored
