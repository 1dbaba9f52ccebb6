"""What the benchmark runs on, said plainly: the process environment, the CPU, the BLAS
kernels numpy really uses, and the one-core FMA peak the GFLOP/s are compared with.

Everything here but :func:`reexec` and :func:`measure_peak` is a pure function of its
arguments (or reads the machine without timing anything), so tests can call it.
See docs/benchmarks.md for how the project measures.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Mapping
from typing import Any, Callable

# Variables that pin OpenBLAS to one kernel family (and cache size) whatever the CPU.
# The development machines set them (to the AVX2 "Haswell" kernels); a user's numpy
# has no such pin, so the benchmark times numpy without them unless asked otherwise.
BLAS_PIN_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# OpenBLAS workers spin about 0.1 s after each call (2^28 cycles, the default timeout) and
# steal a core from whatever is timed next; 4 (2^4 cycles, the minimum) stops that.
THREAD_TIMEOUT_VAR = "OPENBLAS_THREAD_TIMEOUT"
THREAD_TIMEOUT_VALUE = "4"

CHILD_MARK = "FASTLAYERS_BENCH_CHILD"  # set in the re-executed process: never re-exec twice
SCRUBBED_MARK = "FASTLAYERS_BENCH_SCRUBBED"  # the pins the parent removed, for the header

KEEP_BLAS_ENV_FLAG = "--keep-blas-env"


def child_environment(
    environ: Mapping[str, str], keep_blas_env: bool
) -> tuple[dict[str, str] | None, list[str]]:
    """The environment to re-execute the benchmark with, or None if the current one is right.

    Returns ``(env, removed)``: ``removed`` lists the ``NAME=value`` pins dropped. The
    environment must be fixed before numpy (hence OpenBLAS) loads, and ``import
    fastlayers`` already loads numpy, so the only way is a fresh process.
    """
    if CHILD_MARK in environ:
        return None, []
    env = dict(environ)
    removed = []
    if not keep_blas_env:
        for name in BLAS_PIN_VARS:
            if name in env:
                removed.append(f"{name}={env.pop(name)}")
    changed = bool(removed)
    if THREAD_TIMEOUT_VAR not in env:
        env[THREAD_TIMEOUT_VAR] = THREAD_TIMEOUT_VALUE
        changed = True
    if not changed:
        return None, []
    env[CHILD_MARK] = "1"
    if removed:
        env[SCRUBBED_MARK] = " ".join(removed)
    return env, removed


def reexec(env: dict[str, str], removed: list[str]) -> None:
    """Replace this process by ``python -m fastlayers.bench <same arguments>`` under ``env``."""
    if removed:
        print(
            f"bench: re-running without {' '.join(removed)} (a user's numpy has no such pin; "
            f"{KEEP_BLAS_ENV_FLAG} keeps it)",
            flush=True,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "fastlayers.bench", *sys.argv[1:]], env)


def blas_env_line(environ: Mapping[str, str]) -> str:
    """One line saying whether numpy's OpenBLAS runs pinned in this process."""
    pinned = [f"{n}={environ[n]}" for n in BLAS_PIN_VARS if n in environ]
    scrubbed = environ.get(SCRUBBED_MARK, "")
    if pinned:
        return f"{' '.join(pinned)} set: numpy's OpenBLAS runs pinned kernels"
    if scrubbed:
        return f"none ({scrubbed} removed for this run; {KEEP_BLAS_ENV_FLAG} keeps them)"
    return "none"


# ------------------------------------------------------------------------ the CPU


def cpu_model(cpuinfo_text: str | None = None) -> str:
    """The CPU's name, with its family/model numbers on x86 (Zen 3/4 = family 25, Zen 5 = 26).

    ``cpuinfo_text`` is /proc/cpuinfo's text (read here if None); falls back to
    :mod:`platform` where there is no such file.
    """
    if cpuinfo_text is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo_text = fh.read()
        except OSError:
            cpuinfo_text = ""
    fields: dict[str, str] = {}
    for line in cpuinfo_text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    name = fields.get("model name") or fields.get("hardware") or fields.get("processor", "")
    if name.isdigit():  # on ARM "processor" is the CPU number
        name = ""
    if not name:
        name = platform.processor() or platform.machine() or "unknown CPU"
    extra = []
    if "cpu family" in fields and "model" in fields:
        extra.append(f"family {fields['cpu family']}, model {fields['model']}")
    if "cpu part" in fields:
        extra.append(f"implementer {fields.get('cpu implementer', '?')}, part {fields['cpu part']}")
    return f"{name} ({'; '.join(extra)})" if extra else name


def logical_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores(sysfs: str = "/sys/devices/system/cpu") -> int | None:
    """Distinct physical cores among the CPUs this process may run on (SMT siblings share
    FMA units, so they count once), or None where the topology is not readable."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    cores = set()
    for c in cpus:
        base = os.path.join(sysfs, f"cpu{c}", "topology")
        try:
            with open(os.path.join(base, "core_id")) as fh:
                core = fh.read().strip()
            with open(os.path.join(base, "physical_package_id")) as fh:
                pkg = fh.read().strip()
        except OSError:
            return None
        cores.add((pkg, core))
    return len(cores) or None


# ------------------------------------------------------------------------ the peers' kernels


def blas_libraries() -> list[dict[str, Any]] | None:
    """threadpoolctl's view of the BLAS libraries loaded (numpy's OpenBLAS at least), or
    None without threadpoolctl. Call it after the thread limits are set."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [d for d in threadpool_info() if d.get("user_api") == "blas"]


def blas_line(lib: Mapping[str, Any]) -> str:
    """``openblas 0.3.31, architecture SkylakeX, 1 thread (libscipy_openblas64_.so)``."""
    n = lib.get("num_threads")
    threads = f"{n} thread{'s' if n != 1 else ''}" if n is not None else "threads ?"
    return (
        f"{lib.get('internal_api', '?')} {lib.get('version') or '?'}, "
        f"architecture {lib.get('architecture') or '?'}, {threads} "
        f"({os.path.basename(str(lib.get('filepath', '?')))})"
    )


def torch_line(torch_mod) -> str | None:
    """The PyTorch peer: version, the CPU capability its kernels dispatch to, threads."""
    if torch_mod is None:
        return None
    try:
        cap = torch_mod.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - older torch
        cap = "?"
    n = torch_mod.get_num_threads()
    return f"{torch_mod.__version__}, cpu capability {cap}, {n} thread{'s' if n != 1 else ''}"


# ------------------------------------------------------------------------ the FMA peak

PROBE_NAME = "fma_peak_probe"


def measure_peak(
    core, isa: str | None, seconds: float = 0.1, tries: int = 3
) -> tuple[float | None, str]:
    """One core's float32 FMA peak in GFLOP/s for ``isa``, measured by the compiled core's
    ``fma_peak_probe(isa, seconds)`` (independent FMA chains in registers, one thread).

    Returns ``(gflops, how)``: the best of ``tries`` runs (a peak is a maximum: a slower
    run was disturbed), or ``(None, why)`` when there is no probe or it gave no number.
    No number is made up from a table: without a probe there is no % of peak.
    """
    if core is None or isa is None:
        return None, "probe unavailable (no compiled core)"
    probe: Callable[[str, float], float] | None = getattr(core, PROBE_NAME, None)
    if probe is None:
        return None, f"probe unavailable (this fastlayers._core has no {PROBE_NAME})"
    try:
        runs = [float(probe(isa, seconds)) for _ in range(tries)]
    except Exception as exc:  # a probe that cannot run on this ISA must not stop the bench
        return None, f"probe failed ({type(exc).__name__}: {exc})"
    best = max(runs)
    if not math.isfinite(best) or best <= 0.0:
        return None, f"probe gave no usable number ({runs})"
    return best, f"fastlayers._core.{PROBE_NAME}('{isa}'), best of {tries} x {seconds:g} s"


def peak_units(threads: int, cores: int | None) -> int:
    """How many cores' peaks a run on ``threads`` threads can use: SMT siblings share the
    FMA units, so at most the physical cores."""
    return max(1, min(threads, cores) if cores else threads)


def percent_of_peak(flops: float, seconds: float | None, peak_gflops: float | None) -> float | None:
    """``flops`` done in ``seconds`` as a percentage of ``peak_gflops`` (None if unknown)."""
    if not seconds or not peak_gflops:
        return None
    return 100.0 * flops / seconds / 1e9 / peak_gflops


# ------------------------------------------------------------------------ the header


def header_items(
    info: Mapping[str, Any],
    threads: int,
    *,
    cpu: str,
    logical: int,
    cores: int | None,
    blas: list[Mapping[str, Any]] | None,
    environ: Mapping[str, str],
    torch_desc: str | None,
    peak: float | None,
    peak_how: str,
    ort_desc: str | None = None,
) -> list[tuple[str, str]]:
    """The benchmark's header as ``(key, value)`` pairs, from already-collected facts."""
    feats = [k for k, v in sorted((info.get("cpu_features") or {}).items()) if v]
    topo = f"{logical} logical CPU{'s' if logical != 1 else ''}"
    topo += f" on {cores} core{'s' if cores != 1 else ''}" if cores else " (cores unknown)"
    items = [
        (
            "fastlayers",
            f"{info.get('version')}, core {'yes' if info.get('core_available') else 'NO'}, "
            f"isa {info.get('isa') or '-'} (built: {', '.join(info.get('isas_built') or []) or '-'}"
            f"; CPU supports: {', '.join(info.get('isas_supported') or []) or '-'})",
        ),
        ("C++ ops", ", ".join(info.get("ops_in_cpp") or []) or "-"),
        ("cpu", f"{cpu}; {topo}; features: {', '.join(feats) or '-'}"),
        ("threads", f"{threads} on every path"),
        ("numpy", str(info.get("numpy", "?"))),
    ]
    if blas is None:
        items.append(("numpy BLAS", "unknown (threadpoolctl not installed)"))
    elif not blas:
        items.append(("numpy BLAS", "none seen by threadpoolctl"))
    else:
        items.extend(("numpy BLAS", blas_line(lib)) for lib in blas)
    items.append(("BLAS pin", blas_env_line(environ)))
    items.append(("torch", torch_desc or "not available"))
    items.append(("onnxruntime", ort_desc or "not available"))
    if peak is None:
        items.append(("FMA peak", f"{peak_how}; no % of peak column"))
    else:
        units = peak_units(threads, cores)
        items.append(
            (
                "FMA peak",
                f"{peak:.1f} GFLOP/s on 1 core, isa {info.get('isa')} ({peak_how}); "
                f"% of peak = of {peak * units:.1f} ({units} core{'s' if units != 1 else ''})",
            )
        )
    return items
