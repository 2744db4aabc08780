"""What a model's table of literals costs the controller (fourteenth red team probe).

    python bench/literal_tables.py parse 500000 5000000     # ast.parse of a rule holding N numbers
    python bench/literal_tables.py cma 200 1000             # one CMA-ES generation over N constants

A reply's code is parsed in the trusted process (the edit, the child's check, hash, behaviour
key), and ``evolve tune`` / ``tune_every`` fit every literal of the block with CMA-ES.  ``parse``
prints, per N, the program's size, the CPU of one ``ast.parse`` and the process's peak RSS (run
one N per process for a clean peak); ``cma`` the wall and CPU time of one ask and tell of a
generation of 12 (the population ``evolve tune`` uses from N = 16 on).  Each N in a fresh
subprocess.  Since the fourteenth red team code over ``evolve.edits.MAX_PROGRAM_CHARS`` is never
parsed and more than ``evolve.tuning.MAX_CONSTANTS`` constants are not tuned.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

PARSE = """
import ast, resource, sys, time
n = int(sys.argv[1])
code = "import numpy as np\\n\\n\\n# EVOLVE-BLOCK-START\\ndef priority(x):\\n    w = [" + "1," * n + "]\\n    return x * w[0]\\n# EVOLVE-BLOCK-END\\n"
t = time.process_time()
ast.parse(code)
print(f"{n:>9,} literals {len(code) / 2**20:6.2f} MiB  parse {time.process_time() - t:6.2f} s CPU  "
      f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10:,} MiB")
"""

CMA = """
import sys, time
import numpy as np
from cmaes import CMA
n = int(sys.argv[1])
wall, cpu = time.perf_counter(), time.process_time()
optimizer = CMA(mean=np.zeros(n), sigma=0.3, seed=0, population_size=12)
xs = [optimizer.ask() for _ in range(12)]
optimizer.tell([(x, float(k)) for k, x in enumerate(xs)])
xs = [optimizer.ask() for _ in range(12)]
print(f"{n:>6,} constants  one generation {time.perf_counter() - wall:7.2f} s wall  {time.process_time() - cpu:7.2f} s CPU")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("parse", "cma"))
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per size")
    args = parser.parse_args()
    for n in args.sizes:
        try:
            done = subprocess.run([sys.executable, "-c", PARSE if args.what == "parse" else CMA, str(n)],
                                  capture_output=True, text=True, timeout=args.timeout)
            print(done.stdout.strip() or done.stderr.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            print(f"{n:>9,}: not finished in {args.timeout:g} s")


if __name__ == "__main__":
    main()
