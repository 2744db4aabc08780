"""What a session child finds of a plug-in's instance data held in Python lists (ninth red team).

``evolve/sandbox/wipe.py`` zeroes the numpy arrays of the zygote's instance sets before a session
child drops them; Python numbers cannot be written in place, so a plug-in whose instance data are
lists of floats leaves them in the child's freed memory.  This loads one set of 20 instances, each
either a list of 500 distinct floats or the same values as a float64 array, through a batch run,
then opens a session whose program reads every page of its heap and of the 4 GiB below the C
library (``bench/wipe_remnants.py``'s scan) and counts the values whose 8 bytes it finds.

Usage: PYTHONPATH=. python bench/list_remnants.py
"""

from __future__ import annotations

import random
import re
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from wipe_remnants import PROBE  # noqa: E402

from evolve.sandbox import Sandbox, SandboxLimits  # noqa: E402
from evolve.verifier import Instance, Reference  # noqa: E402

SCAN = PROBE[: PROBE.index("def priority(")].replace("_PATTERNS = PATTERNS_HERE\n", "")
SESSION = SCAN + r'''
def policy(payload):
    # The values as Python ints (30-bit digits in memory, not the doubles' 8 bytes), made without
    # ever holding the raw bytes: the probe leaves no copy of what it looks for.
    shifted = bytes(payload)
    wanted = {sum(((shifted[i + j] - 1) % 256) << (8 * j) for j in range(8)) for i in range(0, len(shifted), 8)}
    found = set()
    for _, region in _regions():
        for i in range(0, len(region) - 7, 8):  # CPython's floats and numpy's buffers are 8-aligned
            value = int.from_bytes(region[i:i + 8], "little")
            if value in wanted:
                found.add(value)
    return len(found)
'''


def main() -> int:
    rng = random.Random(7)
    limits = SandboxLimits(timeout_s=120.0, memory_mb=2048, max_processes=1)
    for kind in ("list", "array"):
        values = [[rng.random() for _ in range(500)] for _ in range(20)]
        instances = [Instance(f"i{k}", "all", {"x": 1.0, "values": v if kind == "list" else np.array(v)},
                              Reference(0.0, "optimal", "exact")) for k, v in enumerate(values)]
        flat = b"".join(struct.pack("<d", x) for v in values for x in v)
        shifted = bytes((b + 1) % 256 for b in flat)
        with Sandbox("sandbox_fixtures:InteractiveVerifier", limits, slot=40,
                     extra_sys_path=[str(HERE.parent / "tests")]) as sb:
            assert sb.run("def f(x):\n    return x\n", "f", instances).status == "ok"  # loads the set
            with sb.session(SESSION, "policy", timeout_s=120.0) as session:
                reply = session.call(shifted, reply_limit=1 << 16)
        found = reply.value if reply.error is None else reply.error
        print(f"{kind:5}: {found} of {len(values) * 500} values found in the session child's memory")
        if not isinstance(found, int):
            print(re.sub(r"\s+", " ", str(found))[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main())
