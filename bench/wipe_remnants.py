"""What a driven jssp rule finds of the worker's instance sets in its own memory (ninth red team).

The eighth team's probe (``tests/test_sandbox_wipe.py``) read the pages around the heap's top and
its live objects.  This one reads every readable page of the brk heap and of the 4 GiB of address
space below the C library (where the kernel places anonymous mappings), through a pipe (an
unreadable page is ``EFAULT``, not a crash), and looks for each instance of quick and train:

* ``raw``: its durations' int64 bytes but the first 16 (what the sets' arrays and the pickled
  work orders that carried them hold);
* ``piece``: 64 bytes of them (8 numbers);
* ``json``: the seed's schedule of it as the batch child wrote it (``"end":[[...]]``, whose ends
  less its starts are the durations): the zygote relays every batch result.

Usage: PYTHONPATH=. python bench/wipe_remnants.py [--order quick,train] [--drive quick]
"""

from __future__ import annotations

import argparse
import json
import re
import sys

PROBE = r'''
import ctypes
import os

_PATTERNS = PATTERNS_HERE
_DONE = []


def _regions():
    libc = ctypes.CDLL(None)
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.pwrite.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    libc.pwrite.restype = ctypes.c_ssize_t
    vec = ctypes.create_string_buffer(1)
    fd = os.open("page", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)  # candidates have no pipe

    def page(address):
        if libc.mincore(address, 4096, vec) != 0:
            return None
        if libc.pwrite(fd, address, 4096, 0) != 4096:  # EFAULT: mapped but unreadable
            return b""
        return os.pread(fd, 4096, 0)

    def walk(start, stop, step):
        region = []
        address = start
        while address != stop:
            got = page(address)
            if got:
                region.append((address, got))
            elif region:
                region.sort()
                yield region[0][0], b"".join(part for _, part in region)
                region = []
            address += step
        if region:
            region.sort()
            yield region[0][0], b"".join(part for _, part in region)

    top = libc.sbrk(0) & ~4095
    bottom = top - 4096
    while page(bottom) is not None:
        bottom -= 4096
    yield from walk(bottom + 4096, top, 4096)
    anchor = ctypes.cast(libc.mincore, ctypes.c_void_p).value & ~0xFFFF
    seen = set()
    for coarse in range(anchor, anchor - (4 << 30), -(64 << 10)):  # mappings of 64 KiB and more
        if coarse in seen or libc.mincore(coarse, 4096, vec) != 0:
            continue
        low = coarse
        while libc.mincore(low - 4096, 4096, vec) == 0:
            low -= 4096
        high = coarse
        while libc.mincore(high + 4096, 4096, vec) == 0 and high + 4096 <= anchor + (1 << 30):
            high += 4096
        seen.update(range(low & ~0xFFFF, high + 1, 64 << 10))
        yield from walk(low, high + 4096, 4096)


def priority(job_work_left, **_):
    if not _DONE:
        _DONE.append(1)
        # Decoded once, in one allocation each (no partial copy left in freed memory), and the
        # probe's own copies are told apart by their address.
        back = bytes((b - 1) % 256 for b in range(256))
        wanted = {key: bytes(shifted).translate(back) for key, shifted in _PATTERNS.items()}
        own = {id(value) + 32 for value in wanted.values()}  # bytes' data offset in CPython
        found = {}
        for base, region in _regions():
            for key, pattern in wanted.items():
                at = region.find(pattern)
                while at >= 0:
                    if base + at not in own:
                        found[key] = 1
                        break
                    at = region.find(pattern, at + 1)
        raise RuntimeError("found " + ",".join(sorted(found)) + " end")
    return job_work_left
'''


def shifted(data: bytes) -> bytes:
    return bytes((b + 1) % 256 for b in data)


def patterns(problem, split: str, instances) -> dict[str, bytes]:
    from evolve.evaluators.jssp.builder import build_schedule, schedule_solution

    namespace: dict = {}
    exec(compile(problem.seed_code, "seed", "exec"), namespace)
    out = {}
    for i, instance in enumerate(instances):
        data = instance.data
        raw = data["durations"].tobytes()
        out[f"{split}{i}:raw"] = shifted(raw[16:])
        out[f"{split}{i}:piece"] = shifted(raw[16:80])
        start = build_schedule(namespace["priority"], data["machines"], data["durations"], data["lengths"],
                               int(data["n_machines"]), data["scheme"])
        ends = schedule_solution(start, data["durations"], data["lengths"], data["scheme"])["end"]
        out[f"{split}{i}:json"] = shifted(('"end":' + json.dumps(ends, separators=(",", ":"))).encode())
    return out


def main() -> int:
    from evolve.config import RunSettings
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem

    parser = argparse.ArgumentParser()
    parser.add_argument("--order", default="quick,train", help="splits the seed runs on as a batch, in order")
    parser.add_argument("--drive", default="quick", help="the split the probe is driven on")
    args = parser.parse_args()
    problem = load_problem("jssp")
    splits = {name: problem.instances(name) for name in ("quick", "train")}
    wanted: dict[str, bytes] = {}
    for name, instances in splits.items():
        wanted.update(patterns(problem, name, instances))
    code = PROBE.replace("PATTERNS_HERE", repr(wanted))
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for name in args.order.split(","):
            seed = evaluator.run_split(problem.seed_code, splits[name], name)
            assert seed.ok, seed.feedback
        evaluation = evaluator.run_split(code, splits[args.drive], args.drive)
    match = re.search(r"found (.*?) end", evaluation.feedback)
    if not match:
        print(evaluation.status, evaluation.feedback[:2000])
        return 1
    keys = [key for key in match.group(1).split(",") if key]
    for name, instances in splits.items():
        for kind in ("raw", "piece", "json"):
            hits = sum(f"{name}{i}:{kind}" in keys for i in range(len(instances)))
            print(f"{name:5} {kind:5} found {hits} of {len(instances)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
