"""Reading real expert-load traces (``--instances FILE``): strict, with one-line errors.

Two formats:

* JSON in vLLM's ``load_history`` style: ``{"load_history": [{"logical_expert_load":
  [[...], ...]}, ...]}`` (or the bare list), one [layers][experts] matrix of
  token counts per entry; consecutive entries are summed into windows of
  ``history_interval`` entries (the last window may be shorter);
* ``.npz`` with one or more arrays [windows, layers, experts] of token counts;
  each array is a separate workload.

A long workload is cut into instances of ``windows_per_instance`` windows that
overlap by one window, so every window transition is scored exactly once.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.moe.configs import EpConfig, auto_config
from evolve.evaluators.moe.generator import Workload
from evolve.evaluators.moe.options import MoeOptions

MAX_LOAD = 10**15  # token counts beyond this are not token counts


def _render(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | None) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _counts(where: str, value: Any, ndim: int, what: str) -> np.ndarray:
    """A non-negative integer array of ``ndim`` dimensions (integral floats accepted)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise UserError(f"{where}: expected {what} of non-negative integers (ragged or mixed values)") from None
    if arr.dtype == object and arr.ndim == ndim and arr.size:  # ints beyond int64 are not "ragged"
        flat = arr.ravel()
        big = next((k for k, x in enumerate(flat)
                    if isinstance(x, int) and not isinstance(x, bool) and not 0 <= x <= MAX_LOAD), None)
        if big is not None:
            at = [int(i) for i in np.unravel_index(big, arr.shape)]
            raise UserError(f"{where}: expected token counts from 0 to {MAX_LOAD}, got {_render(flat[big])} at {at}")
    if arr.dtype.kind not in "iuf" or arr.ndim != ndim:
        shape = f"{arr.ndim}-d {arr.dtype.name}" if arr.dtype != object else "ragged or mixed values"
        raise UserError(f"{where}: expected {what} of non-negative integers, got {shape}")
    if arr.size == 0 or 0 in arr.shape:
        raise UserError(f"{where}: expected {what} of non-negative integers, got an empty array")
    if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or (arr != np.rint(arr)).any()):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr) | (arr != np.rint(arr)))[0])
        raise UserError(f"{where}: expected integer token counts, got {_render(arr[bad].item())} at {list(bad)}")
    if (arr < 0).any() or (arr > MAX_LOAD).any():
        bad = tuple(int(i) for i in np.argwhere((arr < 0) | (arr > MAX_LOAD))[0])
        raise UserError(f"{where}: expected token counts from 0 to {MAX_LOAD}, got {_render(arr[bad].item())} "
                        f"at {list(bad)}")
    return arr.astype(np.int64)


def _read_history(path: Path, interval: int) -> np.ndarray:
    label = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a byte-order mark is dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{label}: cannot read trace file ({type(exc).__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{label}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise UserError(f"{label}: JSON nested too deeply to be a load history") from None
    entries = data.get("load_history") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise UserError(f'{label}: expected {{"load_history": [...]}} or a list of entries, got {_render(data)}')
    if len(entries) < 2:
        raise UserError(f"{label}: load_history has {len(entries)} entries, expected at least 2")
    matrices = []
    for i, entry in enumerate(entries):
        where = f"{label}: load_history[{i}]"
        if not isinstance(entry, dict) or "logical_expert_load" not in entry:
            raise UserError(f"{where}: expected an object with 'logical_expert_load', got {_render(entry)}")
        matrix = _counts(f"{where}.logical_expert_load", entry["logical_expert_load"], 2, "[layers][experts]")
        if matrices and matrix.shape != matrices[0].shape:
            raise UserError(f"{where}.logical_expert_load: shape {list(matrix.shape)} differs from "
                            f"load_history[0] {list(matrices[0].shape)}")
        matrices.append(matrix)
    stacked = np.stack(matrices)
    starts = range(0, len(stacked), interval)
    windows = np.stack([stacked[s:s + interval].sum(axis=0) for s in starts])
    if len(windows) < 2:
        raise UserError(f"{label}: {len(entries)} entries make {len(windows)} window of history_interval="
                        f"{interval}; need at least 2 windows (lower history_interval)")
    return windows


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    label = str(path)
    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would call it pickled data
        raise UserError(f"{label}: not an .npz file (a zip archive of [windows, layers, experts] arrays, as numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{label}: cannot read .npz trace ({type(exc).__name__}: {exc})") from None
    if not arrays:
        raise UserError(f"{label}: the .npz holds no arrays, expected [windows, layers, experts] arrays")
    out = {}
    for key, arr in arrays.items():
        windows = _counts(f"{label}: array {key!r}", arr, 3, "[windows, layers, experts]")
        if windows.shape[0] < 2:
            raise UserError(f"{label}: array {key!r} has {windows.shape[0]} window, expected at least 2")
        out[key] = windows
    return out


def trace_config(experts: int, options: MoeOptions, label: str) -> EpConfig:
    """The deployment for a trace: options where given, else ``auto_config``."""
    auto = auto_config(experts)
    config = EpConfig(
        "trace", experts,
        options.num_replicas or auto.replicas, options.num_groups or auto.groups,
        options.num_nodes or auto.nodes, options.num_gpus or auto.gpus,
    )
    problem = config.problem()
    if problem:
        raise UserError(f"{label}: deployment for {experts} experts: {problem} "
                        "(set --option num_replicas=/num_groups=/num_nodes=/num_gpus=)")
    return config


def _chunks(name: str, config: EpConfig, windows: np.ndarray, size: int) -> list[Workload]:
    step = size - 1
    out = []
    for k, start in enumerate(range(0, len(windows) - 1, step)):
        part = windows[start:start + size]
        out.append(Workload(f"{name}#{k}" if len(windows) > size else name, config, part))
    return out


def load_trace_file(path: Path, options: MoeOptions) -> list[Workload]:
    """Workloads from a load_history JSON or an .npz file."""
    if path.suffix.lower() == ".npz":  # TRACE.NPZ too (was read as JSON: "cannot read trace file")
        named = {f"{path.stem}:{key}": arr for key, arr in _read_npz(path).items()}
    else:
        named = {path.stem: _read_history(path, options.history_interval)}
    out: list[Workload] = []
    for name, windows in named.items():
        config = trace_config(windows.shape[2], options, str(path))
        out.extend(_chunks(name, config, windows, options.windows_per_instance))
    return out
