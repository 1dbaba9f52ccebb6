"""The benchmark's results as data: the JSON document of ``--json``, its check when read
back (``--load``, ``--compare``), and the comparison of two runs (``--compare``).

The document (``schema_version`` 1)::

    {
      "schema_version": 1,
      "tool": "fastlayers.bench",
      "date": "2026-12-02T14:40:00Z",          # UTC, when the run started
      "mode": "quick" | "full",
      "machine": {
        "cpu": str, "logical_cpus": int, "physical_cores": int | null,
        "isa": str | null,                       # the ISA fastlayers runs
        "isas_built": [str], "isas_supported": [str], "ops_in_cpp": [str],
        "threads": int,                          # on every path
        "versions": {"python": str, "numpy": str, "fastlayers": str,
                     "torch": str | null, "onnxruntime": str | null},
        "blas": [{"internal_api", "version", "architecture", "num_threads", "filepath"}] | null,
        "blas_pin": str,                         # OPENBLAS_CORETYPE/L2_SIZE state
        "torch_cpu_capability": str | null,
        "fma_peak_gflops": float | null,         # one core, measured by the probe
        "fma_peak_how": str,
        "peak_units": int,                       # cores the threads can use
        "peak_total_gflops": float | null        # fma_peak_gflops x peak_units
      },
      "cases": [
        {"id": str, "op": str, "shape": str, "flops": float, "compute_bound": bool,
         "paths": {"numpy" | "cpp" | "torch" | "ort": {
             "median_s": float, "p10_s": float, "p90_s": float, "repeats": int,
             "gflops": float, "percent_of_peak": float | null}}}   # null: not compute-bound
      ]
    }

A path missing from ``paths`` did not run (not asked for, not installed, or not served).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .machine import percent_of_peak

SCHEMA_VERSION = 1
TOOL = "fastlayers.bench"
PATHS = ("numpy", "cpp", "torch", "ort")
OWN_PATHS = ("numpy", "cpp")  # fastlayers' own: the ones --fail-on-regression judges
DEFAULT_THRESHOLD = 0.10  # a path more than 10 % slower than in the base run is flagged

_STAT_KEYS = {
    "median_s": float,
    "p10_s": float,
    "p90_s": float,
    "repeats": int,
    "gflops": float,
    "percent_of_peak": (float, type(None)),
}
_CASE_KEYS = {
    "id": str,
    "op": str,
    "shape": str,
    "flops": float,
    "compute_bound": bool,
    "paths": dict,
}


def path_stats(
    samples: Sequence[float], flops: float, compute_bound: bool, peak_total: float | None
) -> dict[str, Any]:
    """Median, 10th and 90th percentiles (linear interpolation) of one path's seconds per
    call, its GFLOP/s at the median, and that as a % of ``peak_total`` when the shape is
    compute-bound and a peak was measured (else None)."""
    if not samples:
        raise ValueError("path_stats: no samples")
    a = np.asarray(samples, dtype=np.float64)
    median = float(np.median(a))
    pct = percent_of_peak(flops, median, peak_total) if compute_bound else None
    return {
        "median_s": median,
        "p10_s": float(np.percentile(a, 10)),
        "p90_s": float(np.percentile(a, 90)),
        "repeats": len(samples),
        "gflops": flops / median / 1e9 if median > 0 else 0.0,
        "percent_of_peak": pct,
    }


def medians(case: Mapping[str, Any]) -> dict[str, float]:
    """``{path: median seconds}`` of one case record."""
    return {p: s["median_s"] for p, s in case["paths"].items()}


def _fail(source: str, what: str) -> None:
    raise ValueError(f"{source}: not a fastlayers.bench result (schema {SCHEMA_VERSION}): {what}")


def _typed(value: Any, types: Any) -> bool:
    if value is True or value is False:
        return types is bool or (isinstance(types, tuple) and bool in types)
    if types is float:  # an int is a fine float in JSON
        return isinstance(value, (int, float))
    if isinstance(types, tuple) and float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def validate(doc: Any, source: str = "results") -> dict[str, Any]:
    """Check ``doc`` against schema 1 (keys and types of the cases, the machine's main
    keys); return it, or raise ValueError naming ``source`` and what is wrong."""
    if not isinstance(doc, dict):
        _fail(source, f"the top level is a {type(doc).__name__}, not an object")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        _fail(source, f"schema_version is {version!r}")
    for key, types in (("date", str), ("mode", str), ("machine", dict), ("cases", list)):
        if not _typed(doc.get(key), types):
            _fail(source, f"{key!r} missing or not a {types.__name__}")
    mach = doc["machine"]
    for key, types in (("cpu", str), ("threads", int), ("versions", dict)):
        if not _typed(mach.get(key), types):
            _fail(source, f"machine.{key} missing or not a {types.__name__}")
    for i, case in enumerate(doc["cases"]):
        if not isinstance(case, dict):
            _fail(source, f"cases[{i}] is not an object")
        for key, types in _CASE_KEYS.items():
            if not _typed(case.get(key), types):
                _fail(source, f"cases[{i}].{key} missing or not a {types.__name__}")
        for path, stats in case["paths"].items():
            where = f"cases[{i}] ({case['id']}).paths.{path}"
            if path not in PATHS:
                _fail(source, f"{where}: unknown path (expected one of {', '.join(PATHS)})")
            if not isinstance(stats, dict):
                _fail(source, f"{where} is not an object")
            for key, types in _STAT_KEYS.items():
                if key not in stats or not _typed(stats[key], types):
                    _fail(source, f"{where}.{key} missing or of the wrong type")
            if not (stats["median_s"] > 0 and math.isfinite(stats["median_s"])):
                _fail(source, f"{where}.median_s is {stats['median_s']!r}")
    return doc


def load(path: str) -> dict[str, Any]:
    """Read and check a results file written by ``--json``."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    return validate(doc, path)


def dump(doc: Mapping[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, allow_nan=False)
        fh.write("\n")


# ------------------------------------------------------------------------ --compare


def compare(
    base: Mapping[str, Any], new: Mapping[str, Any], threshold: float = DEFAULT_THRESHOLD
) -> list[dict[str, Any]]:
    """One row per case id and path present in both runs, in the new run's order:
    ``{"id", "path", "base_s", "new_s", "ratio", "regression"}`` with ``ratio`` = new median
    / base median (> 1: slower now) and ``regression`` = ratio > 1 + ``threshold``."""
    if threshold < 0:
        raise ValueError(f"compare: threshold must be >= 0, got {threshold}")
    base_cases = {c["id"]: c for c in base["cases"]}
    rows = []
    for case in new["cases"]:
        old = base_cases.get(case["id"])
        if old is None:
            continue
        for path in PATHS:
            if path not in case["paths"] or path not in old["paths"]:
                continue
            b = old["paths"][path]["median_s"]
            n = case["paths"][path]["median_s"]
            ratio = n / b
            rows.append(
                {
                    "id": case["id"],
                    "path": path,
                    "base_s": b,
                    "new_s": n,
                    "ratio": ratio,
                    "regression": ratio > 1.0 + threshold,
                }
            )
    return rows


def unmatched(base: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Case ids only in the base run, and only in the new run."""
    b = [c["id"] for c in base["cases"]]
    n = [c["id"] for c in new["cases"]]
    return [i for i in b if i not in n], [i for i in n if i not in b]


def machine_differences(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between the two runs' machines (times compare only on the same one)."""
    out = []
    bm, nm = base["machine"], new["machine"]
    for key in ("cpu", "isa", "threads"):
        if bm.get(key) != nm.get(key):
            out.append(f"{key}: {bm.get(key)!r} -> {nm.get(key)!r}")
    bv, nv = bm.get("versions", {}), nm.get("versions", {})
    for key in sorted(set(bv) | set(nv)):
        if bv.get(key) != nv.get(key):
            out.append(f"{key}: {bv.get(key)!r} -> {nv.get(key)!r}")
    return out


def regressions(rows: Sequence[Mapping[str, Any]], paths: Sequence[str] = OWN_PATHS) -> list:
    """The flagged rows of ``paths`` (by default fastlayers' own: numpy and cpp)."""
    return [r for r in rows if r["regression"] and r["path"] in paths]


def format_compare(
    rows: Sequence[Mapping[str, Any]],
    base_name: str,
    new_name: str,
    threshold: float,
    markdown: bool = False,
) -> list[str]:
    """The comparison as a table: one line per case, per path ``new/base`` time ratios,
    ``!`` after a ratio over 1 + threshold, and a REGRESSION mark on the line when one of
    fastlayers' own paths (numpy, cpp) is flagged."""
    from .report import fmt_time

    by_case: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        by_case.setdefault(r["id"], {})[r["path"]] = r
    paths = [p for p in PATHS if any(p in d for d in by_case.values())]
    head = ["id"] + [f"{p} new/base" for p in paths] + ["cpp base", "cpp new", "flag"]
    body = []
    for cid, d in by_case.items():
        cells = [cid]
        for p in paths:
            r = d.get(p)
            if r is None:
                cells.append("-")
            else:
                cells.append(f"{r['ratio']:.2f}" + ("!" if r["regression"] else ""))
        cpp = d.get("cpp")
        cells.append(fmt_time(cpp["base_s"]) if cpp else "-")
        cells.append(fmt_time(cpp["new_s"]) if cpp else "-")
        cells.append("REGRESSION" if regressions(d.values()) else "")
        body.append(cells)
    title = (
        f"compare: {new_name} vs {base_name}: time ratio new/base per path (> 1 = slower now; "
        f"'!' = over {1 + threshold:.2f}; REGRESSION = numpy or cpp flagged)"
    )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 2) + "|---|"]
        lines += ["| " + " | ".join(c) + " |" for c in body]
        return [title, ""] + lines
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    fmt = [lambda s, w=w: f"{s:<{w}}" for w in widths[:1]]
    fmt += [lambda s, w=w: f"{s:>{w}}" for w in widths[1:-1]]
    fmt += [lambda s, w=widths[-1]: f"{s:<{w}}"]
    lines = [" ".join(f(c) for f, c in zip(fmt, row)).rstrip() for row in [head] + body]
    return [title, lines[0], "-" * len(lines[0])] + lines[1:]
