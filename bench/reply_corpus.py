"""How many real-world model replies the edit parser reads as a careful human would:
`python bench/reply_corpus.py` (add `--all` to list every reply).

Runs every reply of the corpus in tests/replies/ (written for the seed program of
each shipped problem) through evolve.edits.edit_child and prints, per problem,
how many acceptable replies gave the expected child and how many unacceptable
ones were rejected with the expected reason; then the forms the accepted ones
were read as. The same judgement is asserted reply by reply in
tests/test_reply_corpus.py.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reply_corpus import judge, load_corpus  # noqa: E402  (tests/reply_corpus.py)


def main() -> None:
    verdicts = [judge(case) for case in load_corpus()]
    problems = sorted({v.case.problem for v in verdicts})
    print(f"{'problem':<16}{'replies':>8}{'acceptable: taken':>20}{'unacceptable: rejected':>25}")
    for problem in [*problems, "all"]:
        rows = [v for v in verdicts if problem in ("all", v.case.problem)]
        good = [v for v in rows if v.case.expect == "accept"]
        bad = [v for v in rows if v.case.expect == "reject"]
        taken = sum(v.as_expected for v in good)
        rejected = sum(v.as_expected for v in bad)
        print(f"{problem:<16}{len(rows):>8}{f'{taken}/{len(good)}':>20}{f'{rejected}/{len(bad)}':>25}")
    forms = Counter(v.detail for v in verdicts if v.case.expect == "accept" and v.as_expected)
    print("accepted replies read as: " + ", ".join(f"{form} {n}" for form, n in forms.most_common()))
    for v in verdicts:
        if "--all" in sys.argv or not v.as_expected:
            mark = "ok " if v.as_expected else "BAD"
            outcome = "accepted" if v.accepted else "rejected"
            print(f"{mark} {v.case.problem}/{v.case.name}: {v.case.expect} -> {outcome}: {v.detail[:120]}")


if __name__ == "__main__":
    main()
