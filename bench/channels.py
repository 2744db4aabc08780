"""Channels between two candidates running at the same time in two sandboxes (red team probe).

    PYTHONPATH=. python bench/channels.py shm --slot 0.1 --bits 80
    PYTHONPATH=. python bench/channels.py cpu --slot 0.2 --bits 40
    PYTHONPATH=. python bench/channels.py cpu --slot 0.2 --bits 40 --pin 0

A sender and a receiver agree on slots of the wall clock (both read ``time.time()``).  ``shm``:
per 1 bit the sender fills its private /dev/shm with 45 MiB for the slot, and the receiver reads
``sysinfo()``'s shared and free memory in the middle of each slot (refused since 2026-12-06: the
receiver's error is printed).  ``cpu``: per 1 bit the sender spins, per 0 it sleeps, and the
receiver counts the turns of its own loop; with ``--pin CPU`` both first pin themselves to that
CPU (``sched_setaffinity``, which candidates may call; twelfth red team).  Bits are decoded against the median; a random
pattern (seed 7) is sent.  Prints the bits right out of the bits sent.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np

from evolve.sandbox import Sandbox, SandboxLimits
from evolve.verifier import Instance

TESTS = str(Path(__file__).resolve().parent.parent / "tests")
sys.path.insert(0, TESTS)  # the tiny verifier of the sandbox tests

SYSINFO = r'''
import ctypes, os, time
class SI(ctypes.Structure):
    _fields_ = [("uptime", ctypes.c_long), ("loads", ctypes.c_ulong * 3), ("totalram", ctypes.c_ulong),
                ("freeram", ctypes.c_ulong), ("sharedram", ctypes.c_ulong), ("bufferram", ctypes.c_ulong),
                ("totalswap", ctypes.c_ulong), ("freeswap", ctypes.c_ulong), ("procs", ctypes.c_ushort),
                ("pad", ctypes.c_ushort), ("totalhigh", ctypes.c_ulong), ("freehigh", ctypes.c_ulong),
                ("mem_unit", ctypes.c_uint), ("_f", ctypes.c_char * 8)]
libc = ctypes.CDLL(None, use_errno=True)
def info():
    s = SI()
    if libc.sysinfo(ctypes.byref(s)) != 0:
        raise OSError(ctypes.get_errno(), "sysinfo")
    return s
'''
SENDER = SYSINFO + r'''
def f(h):
    if h.get("pin") is not None:
        os.sched_setaffinity(0, {h["pin"]})
    start, slot, bits, mode = h["start"], h["slot"], h["bits"], h["mode"]
    block = b"x" * (1 << 20)
    for i, bit in enumerate(bits):
        t0 = start + i * slot
        while time.time() < t0:
            time.sleep(0.0005)
        if mode == "cpu":
            while time.time() < t0 + slot * 0.95:
                if not bit:
                    time.sleep(0.002)
            continue
        if bit:
            for k in range(3):
                with open(f"/dev/shm/m{k}", "wb") as out:
                    for _ in range(15):
                        out.write(block)
        while time.time() < t0 + slot * 0.9:
            time.sleep(0.001)
        for k in range(3):
            if os.path.exists(f"/dev/shm/m{k}"):
                os.unlink(f"/dev/shm/m{k}")
    return "sent"
'''
RECEIVER = SYSINFO + r'''
def f(h):
    if h.get("pin") is not None:
        os.sched_setaffinity(0, {h["pin"]})
    start, slot, n, mode = h["start"], h["slot"], h["n"], h["mode"]
    out = []
    for i in range(n):
        t0 = start + i * slot
        while time.time() < t0 + slot * 0.3:
            time.sleep(0.0005)
        values, turns = [], 0
        while time.time() < t0 + slot * 0.8:
            if mode == "cpu":
                turns += 1
                continue
            s = info()
            values.append((s.sharedram * s.mem_unit, s.freeram * s.mem_unit))
            time.sleep(0.002)
        out.append((turns, 0) if mode == "cpu" else sorted(values)[len(values) // 2])
    return out
'''


def right(values: np.ndarray, bits: list[int], high_is_one: bool) -> int:
    guess = values > np.median(values) if high_is_one else values < np.median(values)
    return sum(int(g) == b for g, b in zip(guess.tolist(), bits, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("shm", "cpu"))
    parser.add_argument("--slot", type=float, default=0.1, help="seconds per bit")
    parser.add_argument("--bits", type=int, default=80)
    parser.add_argument("--pin", type=int, default=None, help="both pin themselves to this CPU")
    args = parser.parse_args()
    rnd = random.Random(7)
    bits = [rnd.randint(0, 1) for _ in range(args.bits)]
    limits = SandboxLimits(timeout_s=args.bits * args.slot + 20, memory_mb=1024, file_size_mb=16, max_output_mb=4)
    hints = {"start": time.time() + 3.0, "slot": args.slot, "mode": args.mode, "pin": args.pin}
    outcomes = {}
    with Sandbox("sandbox_fixtures:EchoVerifier", limits, slot=31, extra_sys_path=[TESTS]) as a, \
            Sandbox("sandbox_fixtures:EchoVerifier", limits, slot=32, extra_sys_path=[TESTS]) as b:
        hints["start"] = time.time() + 2.0

        def run(sb: Sandbox, source: str, extra: dict[str, object], key: str) -> None:
            outcomes[key] = sb.run(source, "f", [Instance(key, "g", {"x": {**hints, **extra}})])

        threads = [threading.Thread(target=run, args=(a, SENDER, {"bits": bits}, "sender")),
                   threading.Thread(target=run, args=(b, RECEIVER, {"n": args.bits}, "receiver"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for key, outcome in outcomes.items():
        if outcome.status != "ok" or outcome.runs[0].error:
            print(f"{key}: {outcome.status} {outcome.error or outcome.runs[0].error}")
            return
    seen = np.array(outcomes["receiver"].runs[0].solution, dtype=float)
    if args.mode == "cpu":
        pinned = "" if args.pin is None else f", both pinned to CPU {args.pin}"
        print(f"cpu: {right(seen[:, 0], bits, False)} of {args.bits} bits right at {args.slot} s per bit{pinned}")
    else:
        print(f"sharedram: {right(seen[:, 0], bits, True)} of {args.bits} bits right, "
              f"freeram: {right(seen[:, 1], bits, False)}, at {args.slot} s per bit")


if __name__ == "__main__":
    main()
