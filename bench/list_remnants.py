"""What a session child finds of a plug-in's instance data held in Python lists (ninth red team).

``evolve/sandbox/wipe.py`` zeroes the numpy arrays of the zygote's instance sets before a session
child drops them; until the tenth red team it left Python numbers alone, so a plug-in whose instance
data are lists of floats left them in the child's freed memory (732 of 10,000 found; 0 now that the
floats only the set holds are zeroed too; ``tests/test_sandbox_wipe.py`` runs this probe), and
strings and numpy scalars until the eleventh.  This loads one set of 20 instances, each a list of
500 distinct floats, the same values as a float64 array or as ``np.float64`` scalars, or a list of
500 strings, through a batch run,
then opens a session whose program copies every page of its heap and of the 4 GiB below the C
library into fresh mappings and counts the values whose 8 bytes it finds.

Usage: PYTHONPATH=. python bench/list_remnants.py
"""

from __future__ import annotations

import random
import re
import struct
import sys
from pathlib import Path

import numpy as np

from evolve.sandbox import Sandbox, SandboxLimits
from evolve.verifier import Instance, Reference

HERE = Path(__file__).resolve().parent

SESSION = r'''
import ctypes
import mmap
import os

libc = ctypes.CDLL(None)
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_ssize_t]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
libc.pwrite.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
libc.pwrite.restype = ctypes.c_ssize_t
VEC = ctypes.create_string_buffer(1)
PAGE = os.open("page", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)  # candidates have no pipe


def mapped(address):
    return libc.mincore(address, 4096, VEC) == 0


def spans():
    top = libc.sbrk(0) & ~4095
    bottom = top - 4096
    while mapped(bottom):
        bottom -= 4096
    found = [(bottom + 4096, top)]
    anchor = ctypes.cast(libc.mincore, ctypes.c_void_p).value & ~0xFFFF
    coarse = anchor
    while coarse > anchor - (4 << 30):  # anonymous mappings of 64 KiB and more, below the libraries
        if mapped(coarse):
            low, high = coarse, coarse + 4096
            while mapped(low - 4096):
                low -= 4096
            while mapped(high) and high < anchor + (1 << 30):
                high += 4096
            found.append((low, high))
            coarse = low & ~0xFFFF
        coarse -= 64 << 10
    return found


def policy(payload):
    # Pages are copied into new mappings (never a chunk of the heap, which would overwrite what
    # is looked for), through a file in the work dir (an unreadable page is EFAULT, not a crash;
    # a pipe until pipes were refused to candidates, fifteenth red team); the values are
    # held as Python ints (30-bit digits, not the doubles' bytes): no copy of what is looked for.
    shifted = bytes(payload)
    wanted = {sum(((shifted[i + j] - 1) % 256) << (8 * j) for j in range(8)) for i in range(0, len(shifted), 8)}
    copies = []
    for low, high in spans():  # all found first: a copy is a new mapping
        block = mmap.mmap(-1, high - low)
        view = memoryview(block)
        for offset in range(0, high - low, 4096):
            if libc.pwrite(PAGE, low + offset, 4096, 0) == 4096:
                os.preadv(PAGE, [view[offset:offset + 4096]], 0)
        copies.append(block)
    found = set()
    for block in copies:
        words = memoryview(block).cast("Q")  # CPython's floats and numpy's buffers are 8-aligned
        found.update(value for value in words if value in wanted)
    return len(found)
'''


def main() -> int:
    rng = random.Random(7)
    limits = SandboxLimits(timeout_s=120.0, memory_mb=2048, max_processes=1)
    for kind in ("list", "array", "read-only array", "np.float64", "str"):
        values = [[rng.random() for _ in range(500)] for _ in range(20)]
        flat = b"".join(struct.pack("<d", x) for v in values for x in v)
        held: list = values
        if kind in ("array", "read-only array"):
            held = [np.array(v) for v in values]
        elif kind == "np.float64":
            held = [[np.float64(x) for x in v] for v in values]
        elif kind == "str":  # 16 letters each, looked for by their first 8
            held = [["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(16)) for _ in v] for v in values]
            flat = b"".join(s.encode()[:8] for v in held for s in v)
        instances = [Instance(f"i{k}", "all", {"x": 1.0, "values": v}, Reference(0.0, "optimal", "exact"))
                     for k, v in enumerate(held)]
        if kind == "read-only array":  # pickled as bytes, so the zygote's copy is read-only too
            for instance in instances:
                instance.data["values"].flags.writeable = False
        shifted = bytes((b + 1) % 256 for b in flat)
        with Sandbox("sandbox_fixtures:InteractiveVerifier", limits, slot=40,
                     extra_sys_path=[str(HERE.parent / "tests")]) as sb:
            assert sb.run("def f(x):\n    return x\n", "f", instances).status == "ok"  # loads the set
            with sb.session(SESSION, "policy", timeout_s=120.0) as session:
                reply = session.call(shifted, reply_limit=1 << 16)
        found = reply.value if reply.error is None else reply.error
        print(f"{kind:15}: {found} of {len(flat) // 8} values found in the session child's memory")
        if not isinstance(found, int):
            print(re.sub(r"\s+", " ", str(found))[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main())
