"""A session child finds no instance of the zygote's sets in its own memory.

jssp runs its pure programs (the seed, every GP program) as a batch, so the worker's zygote holds
the split's instances, and asks a model's rule one decision at a time in a session forked from
that zygote.  The child used to drop the sets unread, which frees their arrays but leaves their
bytes in its heap: a rule reading its own memory with ``ctypes`` (pages found with ``mincore``
around the heap's top and its objects) found whole instances of the split it was driven on (1 of
6 on quick, 6 of 40 on train), the future its protocol hides.  Session children now zero every
array of every set first (``evolve/sandbox/wipe.py``).

The probe carries the instances' durations shifted by one per byte, so its own source holds no
copy, copies the memory it can reach, then looks for each.  The test decides by what is found,
and a copy the probe frees itself is found (the probe works).
"""

from __future__ import annotations

from typing import Any

import pytest

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import load_problem

PROBE = '''
import ctypes
import gc

import numpy as np

_SHIFTED = SHIFTED_HERE
_PLANT = PLANT_HERE
_DONE = []


def _memory():
    """A copy of every page reachable from the heap's top and from live objects."""
    libc = ctypes.CDLL(None)
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    vec = ctypes.create_string_buffer(1)

    def mapped(address):
        return libc.mincore(address, 4096, vec) == 0

    pages = set()
    for seed in {libc.sbrk(0) - 4096} | {id(o) for o in gc.get_objects()[::50]}:
        base = seed & ~4095
        if base in pages or not mapped(base):
            continue
        for step in (-4096, 4096):
            address = base
            while mapped(address) and address not in pages and len(pages) < 60000:
                pages.add(address)
                address += step
    return b"".join(ctypes.string_at(address, 4096) for address in sorted(pages))


def priority(job_work_left, **_):
    if not _DONE:
        _DONE.append(1)
        if _PLANT:  # a copy of the first instance's durations, freed before the memory is read
            planted = np.frombuffer(bytes((b - 1) % 256 for b in _PLANT), dtype=np.int64).copy()
            del planted
        memory = _memory()
        found = sum(bytes((b - 1) % 256 for b in shifted[PIECE_HERE]) in memory for shifted in _SHIFTED)
        raise RuntimeError(f"found {found} of {len(_SHIFTED)} instances")
    return job_work_left
'''


def shifted(data: bytes) -> bytes:
    return bytes((b + 1) % 256 for b in data)


@pytest.fixture(scope="module")
def probe() -> Any:
    problem = load_problem("jssp")
    quick = problem.instances("quick")
    patterns = [shifted(instance.data["durations"].tobytes()) for instance in quick]
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        seed = evaluator.run_split(problem.seed_code, quick, "quick")  # pure: a batch run loads the set
        assert seed.ok, seed.feedback

        def run(plant: bool, piece: str = "16:") -> str:
            code = (PROBE.replace("SHIFTED_HERE", repr(patterns)).replace("PIECE_HERE", piece)
                    .replace("PLANT_HERE", repr(patterns[0] if plant else b"")))
            evaluation = evaluator.run_split(code, quick, "quick")  # not pure: driven in a session
            assert evaluation.status == "error", evaluation.feedback
            return evaluation.feedback

        yield run


def test_a_driven_rule_finds_no_instance_of_the_split_in_its_memory(probe: Any) -> None:
    assert "found 0 of 6 instances" in probe(plant=False)


def test_the_memory_probe_finds_a_copy_it_freed_itself(probe: Any) -> None:
    assert "found 1 of 6 instances" in probe(plant=True)


def test_a_driven_rule_finds_no_piece_of_an_instance_either(probe: Any) -> None:
    """64 bytes of each instance's durations (8 of its numbers), not the whole array: a part of the
    future is a leak too (the lead's variant of the red team's probe)."""
    assert "found 0 of 6 instances" in probe(plant=False, piece="16:80")
    assert "found 1 of 6 instances" in probe(plant=True, piece="16:80")


FRAMES = '''
import sys

_DONE = []


def priority(job_work_left, **_):
    if not _DONE:
        _DONE.append(1)
        held = 0
        frame = sys._getframe()
        while frame is not None:  # the stack this process was forked with, up to the zygote's loop
            for value in frame.f_locals.values():
                if isinstance(value, (bytes, bytearray, str)) and b'"end"' in (
                        value.encode() if isinstance(value, str) else bytes(value)):
                    held += 1
            frame = frame.f_back
        raise RuntimeError(f"schedules held by {held} frames")
    return job_work_left
'''


def test_a_driven_rule_finds_no_batch_reply_in_the_frames_it_was_forked_with() -> None:
    """The zygote's request loop kept the last batch reply in a local (``blob``) while it forked
    the next forker, after the next instance load: every later child had the last batch run's
    schedules on its stack (each operation's start and end: the durations), and a rule read them
    off ``sys._getframe()``: 6 of 6 quick instances with the seed's quick run and a load after
    it, as a search does (ninth red team).  The request's locals now end with its call."""
    problem = load_problem("jssp")
    quick = problem.instances("quick")
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        assert evaluator.run_split(problem.seed_code, quick, "quick").ok  # a batch: the zygote relays it
        assert evaluator.run_split(problem.seed_code, quick[:2], "quick").ok  # a load: a new forker
        evaluation = evaluator.run_split(FRAMES, quick, "quick")  # not pure: driven in a session
    assert evaluation.status == "error", evaluation.feedback
    assert "schedules held by 0 frames" in evaluation.feedback, evaluation.feedback


def test_read_only_arrays_are_zeroed_too() -> None:
    """A plug-in that marks an instance's arrays read-only has them pickled as bytes, and the
    zygote's copies are read-only views of those bytes: the wipe skipped them, and a session child
    found 404 of 10,000 such values in its freed memory (``bench/list_remnants.py``; ninth red
    team).  Their bytes are the set's own copy, zeroed in place now."""
    import pickle

    import numpy as np

    from evolve.sandbox.wipe import wipe_sets
    from evolve.verifier import Instance, Reference

    data = np.arange(1, 65, dtype=np.float64)
    data.flags.writeable = False
    instance = pickle.loads(pickle.dumps(Instance("a", "all", {"values": data, "rows": [data[::2]]},
                                                  Reference(0.0, "optimal", "exact")), protocol=5))
    held = instance.data["values"]
    assert not held.flags.writeable  # as the zygote holds it
    wipe_sets({1: [instance]})
    assert not held.any()


def test_a_set_the_zygote_dropped_is_zeroed_before_it_is_freed() -> None:
    """The zygote keeps 8 instance sets and drops the oldest when a ninth is loaded; dropping freed
    the set's arrays unzeroed in the zygote, and the forker made at the next load (and so every
    session child) had their bytes: a driven rule found a train instance it never ran on whole,
    after ten one-instance batch runs (a caller evaluating more than 8 instance lists in one worker;
    tenth red team). The zygote now zeroes a set before it drops it."""
    problem = load_problem("jssp")
    quick, train = problem.instances("quick"), problem.instances("train")
    patterns = [shifted(train[0].data["durations"].tobytes())]
    code = (PROBE.replace("SHIFTED_HERE", repr(patterns)).replace("PIECE_HERE", "16:")
            .replace("PLANT_HERE", repr(b"")))
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for instance in train[:10]:  # ten sets: the first is dropped at the ninth, then a new forker
            assert evaluator.run_split(problem.seed_code, [instance], "quick").ok
        evaluation = evaluator.run_split(code, quick, "quick")  # not pure: driven in a session
    assert evaluation.status == "error", evaluation.feedback
    assert "found 0 of 1 instances" in evaluation.feedback, evaluation.feedback


def test_a_plugins_instance_lists_of_floats_are_zeroed_too() -> None:
    """A plug-in whose instance data are Python lists of floats, not arrays: a session child of a
    zygote that had loaded such a set found 732 of its 10,000 values in freed memory
    (``bench/list_remnants.py``; ninth red team's open row): freed floats keep their value until
    their block is reused. Floats, ints and bytes held only by the set are zeroed now. The probe is
    the bench's: it copies the heap and the mappings below the C library into fresh mappings and
    counts the values it finds."""
    import random
    import struct

    from evolve.verifier import Instance, Reference

    rng = random.Random(7)
    values = [[rng.random() for _ in range(500)] for _ in range(20)]
    instances = [Instance(f"i{k}", "all", {"x": 1.0, "values": v}, Reference(0.0, "optimal", "exact"))
                 for k, v in enumerate(values)]
    assert remnants_found(instances, b"".join(struct.pack("<d", x) for v in values for x in v), slot=41) == 0


def remnants_found(instances: list[Any], words: bytes, slot: int) -> int:
    """How many of the 8-byte ``words`` a session child finds in its memory (the probe of
    ``bench/list_remnants.py``) after a batch run loaded ``instances`` into its zygote."""
    import importlib.util
    from pathlib import Path

    from evolve.sandbox import Sandbox, SandboxLimits

    bench = Path(__file__).parent.parent / "bench" / "list_remnants.py"
    spec = importlib.util.spec_from_file_location("list_remnants", bench)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    limits = SandboxLimits(timeout_s=120.0, memory_mb=2048, max_processes=1)
    with Sandbox("sandbox_fixtures:InteractiveVerifier", limits, slot=slot,
                 extra_sys_path=[str(Path(__file__).parent)]) as sandbox:
        assert sandbox.run("def f(x):\n    return 0\n", "f", instances).status == "ok"  # loads the set
        with sandbox.session(module.SESSION, "policy", timeout_s=120.0) as session:
            reply = session.call(shifted(words), reply_limit=1 << 16)
    assert reply.error is None, reply.error
    return int(reply.value)


def test_the_wipe_leaves_numbers_it_does_not_own() -> None:
    """Only objects the set alone holds are zeroed: a small int and a float that something else
    refers to keep their values (zeroing them would change them for their other holders)."""
    import pickle

    from evolve.sandbox.wipe import wipe_sets
    from evolve.verifier import Instance, Reference

    instance = pickle.loads(pickle.dumps(Instance("a", "all", {"v": [4.5, 10**30 + 7, b"secret", 5], "t": (2.5,)},
                                                  Reference(0.0, "optimal", "exact"))))
    kept = 7.75
    instance.data["v"].append(kept)
    wipe_sets({1: [instance]})
    values = instance.data["v"]
    # The int's digits are zeroed, not its size: it prints as 0 (it is only ever freed after).
    assert (values[0], repr(values[1]), values[2:]) == (0.0, "0", [b"\0" * 6, 5, 7.75])
    assert instance.data["t"] == (0.0,)
    assert kept == 7.75 and 5 + 0 == 5


def test_a_plugins_strings_and_numpy_scalars_are_zeroed_too() -> None:
    """The tenth red team's open row: strings and numpy scalars in a plug-in's instance data were
    left as they were when a session child dropped the sets. Loaded by a batch run, 20 instances
    of 500 values each, a session child found 4,193 of 10,000 ASCII strings (their first 8
    characters), 4,999 of 10,000 Latin-1 ones, 4,812 of 10,000 strings held as dict values and
    8,874 of 10,000 ``np.float64`` values (``bench/list_remnants.py``; eleventh red team). A numpy
    scalar had a second copy: the bytes numpy pickles it as, which the zygote's unpickler kept
    until the set was loaded and then freed (4,379 of 10,000 found with the scalars zeroed).
    Strings and numpy number scalars only the set holds are zeroed now, and the zygote zeroes
    those bytes once each scalar is made (``wipe.loads``)."""
    import random
    import struct

    import numpy as np

    from evolve.verifier import Instance, Reference

    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def word() -> str:
        return "".join(rng.choice(letters) for _ in range(16))

    data = [{"ascii": [word() for _ in range(125)], "latin": ["\xe9" + word() for _ in range(125)],
             "named": {f"k{j}": word() for j in range(125)},
             # Over 2**61: a Python int in the probe's own set is stored with its hash, which is
             # the value itself below 2**61 - 1 (the probe would find its own table).
             "f64": [np.float64(rng.random()) for _ in range(125)],
             "i64": [np.int64(rng.getrandbits(62) | 1 << 62) for _ in range(125)]} for _ in range(20)]
    words = b"".join([s.encode("latin-1")[:8] for d in data for s in d["ascii"] + d["latin"]]
                     + [s.encode()[:8] for d in data for s in d["named"].values()]
                     + [struct.pack("<d", x) + struct.pack("<q", i) for d in data for x, i in zip(d["f64"], d["i64"], strict=True)])
    instances = [Instance(f"i{k}", "all", {"x": 1.0, **d}, Reference(0.0, "optimal", "exact"))
                 for k, d in enumerate(data)]
    assert (remnants_found(instances, words, slot=43), len(words) // 8) == (0, 12500)


def test_the_wipe_zeroes_strings_and_scalars_it_owns_and_leaves_the_rest() -> None:
    """A string's characters (ASCII, Latin-1, UCS-2, UCS-4) and a numpy number scalar's value are
    zeroed when only the set holds them; an interned string, a shared one, ``np.bool_`` (two
    shared objects) and a str subclass keep theirs."""
    import pickle
    import sys

    import numpy as np

    from evolve.sandbox.wipe import loads, wipe_sets
    from evolve.verifier import Instance, Reference

    texts = ["".join(["secret", c * 3]) for c in ("x", "\xe9", "\u0100", "\U00010000")]
    instance = loads(pickle.dumps(Instance("a", "all", {
        "texts": texts, "sub": [np.str_("kept-subclass")], "flags": [np.True_],
        "scalars": [np.float64(2.5), np.int64(-7), np.float32(1.5), np.longdouble(3.25), np.uint8(200)]},
        Reference(0.0, "optimal", "exact")), protocol=5))
    interned = sys.intern("".join(["interned", "-name"]))
    shared = "".join(["shared", "-text"])
    instance.data["texts"] += [interned, shared]
    held = instance.data["texts"]
    wipe_sets({1: [instance]})
    assert [(len(s), set(s)) for s in held[:4]] == [(9, {"\0"})] * 4
    assert held[4:] == ["interned-name", "shared-text"] and shared == "shared-text"
    assert instance.data["sub"] == ["kept-subclass"] and instance.data["flags"] == [True]
    assert [float(x) for x in instance.data["scalars"]] == [0.0] * 5
