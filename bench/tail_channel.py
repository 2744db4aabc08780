"""A candidate's stderr tail, relayed by the zygote, read by a later candidate (ninth red team).

The zygote reads the last 2 KB of a child's output for the reply (``stderr_tail``) and frees its
copies unzeroed (the decoded text, the JSON header, its bytes, the frame).  Children are forked by
the forker, itself a fork of the zygote made after each instance load, and also after a candidate
left SysV IPC objects (the zygote then replaces its IPC namespace and the forker with it): so
candidate A prints what it learned and leaves a semaphore, and the next candidate B, forked from
the new forker, looks for it in its own memory.  Printed: how many copies of A's tail the zygote
holds after its clean-up (``/proc/PID/mem``, root), and how many of its 8-byte words B found.

Usage: PYTHONPATH=. python bench/tail_channel.py [--no-ipc]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from list_remnants import SESSION  # noqa: E402
from test_sandbox_scrub import LIMITS, TESTS, held  # noqa: E402

from evolve.sandbox import Sandbox  # noqa: E402

SENDER = """import sys, hashlib, ctypes
def policy(x):
    sys.stderr.write(''.join(hashlib.sha256(b't%d' % i).hexdigest() for i in range(32)))
    sys.stderr.flush()
    if LEAVE_IPC:
        ctypes.CDLL(None).semget(0x1234, 1, 0o1600)  # outlives it: the zygote renews the forker
    return 1
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-ipc", action="store_true", help="A leaves no SysV object")
    args = parser.parse_args()
    mark = "".join(hashlib.sha256(b"t%d" % i).hexdigest() for i in range(32)).encode()  # 2,048 bytes
    shifted = bytes((b + 1) % 256 for b in mark)
    with Sandbox("sandbox_fixtures:InteractiveVerifier", LIMITS, slot=41, extra_sys_path=[str(TESTS)]) as sb:
        with sb.session(SENDER.replace("LEAVE_IPC", str(not args.no_ipc)), "policy", timeout_s=20.0) as a:
            a.call(1)
        sb.settle()
        copies = held(sb.worker_pid, [mark[i:i + 64] for i in range(0, len(mark), 512)])
        with sb.session(SESSION, "policy", timeout_s=60.0) as b:
            reply = b.call(shifted, reply_limit=1 << 16)
    print(f"the zygote holds {copies} copies of 4 pieces of A's 2 KB tail after its clean-up")
    print(f"B found {reply.value if reply.error is None else reply.error} of {len(mark) // 8} words of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
