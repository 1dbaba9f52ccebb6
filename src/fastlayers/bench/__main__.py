"""``python -m fastlayers.bench``: time every public benchmark shape on each path.

Paths: ``numpy`` (fastlayers' NumPy path), ``cpp`` (the compiled core, where it
serves the op) and ``torch`` (PyTorch CPU, when importable). Each case checks that
every path gives the NumPy path's numbers, then times the paths interleaved
(numpy, cpp, torch, numpy, ...; a 50 ms pause after each torch sample, whose OpenMP
workers spin for a while after each call), and reports the median per path and the
speedup of cpp over each peer. Same thread count on every path.

The header says what is compared: the CPU, the ISA fastlayers runs, the BLAS kernels
numpy really uses (threadpoolctl), PyTorch's CPU capability, and one core's float32 FMA
peak measured by the compiled core's probe; compute-bound shapes then show cpp's % of
that peak (of the cores the threads can use). Without a probe there is no % column.

NumPy at its best: a user's numpy has no ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` pin,
so when either is set the benchmark re-executes itself without them (numpy is loaded by
``import fastlayers``, before any code here runs) and says so; ``--keep-blas-env`` keeps
them. The re-executed process also gets ``OPENBLAS_THREAD_TIMEOUT=4``.

Options: ``--quick`` (default) skips the largest shapes and repeats less;
``--full`` runs everything; ``--threads N``; ``--only ID[,ID...]`` (prefixes);
``--paths numpy,cpp,torch,keras,keras-predict``; ``--models`` (the model cases only) or
``--no-models``; ``--markdown`` (a table to paste into a note); ``--keep-blas-env``.

Model cases (``models.py``, ids ``model-...``): whole Keras models at batch 1 and 64, in a
second table with two more peers, Keras 3 on its torch backend (called, and through
``predict``) and the same model written in PyTorch; every output of every path is checked
against fastlayers' NumPy path first.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

from . import machine, report

FASTLAYERS_PATHS = ("numpy", "cpp")
OP_PATHS = ("numpy", "cpp", "torch")
ALL_PATHS = ("numpy", "cpp", "torch", "keras", "keras-predict")


def _limit_threads(n: int):
    """Set n threads for fastlayers, NumPy's BLAS (via threadpoolctl) and torch."""
    import fastlayers as fl

    from .cases import torch

    fl.set_num_threads(n)
    note = []
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
    except ImportError:
        limiter = None
        note.append("threadpoolctl not installed: NumPy's BLAS threads not controlled")
    if torch is not None:
        torch.set_num_threads(n)
    return limiter, note


def _time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _inner_loops(fn, target: float) -> int:
    """Calls per sample so that one sample lasts about ``target`` seconds."""
    t = max(_time_once(fn), 1e-7)
    return max(1, min(10000, int(target / t)))


def measure(case, paths, repeats: int, target: float):
    """Median seconds per call for each available path, interleaved."""
    import statistics

    import numpy as np

    import fastlayers as fl

    from .cases import check

    runners = {p: case.runner(p) for p in paths}
    runners = {p: r for p, r in runners.items() if r is not None}
    check_outputs = getattr(case, "check_outputs", None)
    if check_outputs is not None:  # a model case: every output, against a fastlayers path
        ref_path = next((p for p in ("numpy", "cpp") if p in runners), None)
        if ref_path is not None:
            reference = runners[ref_path]()
            for p, r in runners.items():
                check_outputs(p, r(), reference)
    else:
        reference = np.asarray(runners["numpy"]() if "numpy" in runners else None)
        if isinstance(reference, np.ndarray) and reference.dtype != object:
            for p, r in runners.items():
                check(case, p, r(), reference)
    loops = {p: _inner_loops(r, target) for p, r in runners.items()}
    samples = {p: [] for p in runners}

    def sample(p):
        n = loops[p]
        if p not in FASTLAYERS_PATHS:
            r = runners[p]
        else:  # the backend is set around the loop, so its switch is not timed
            r = functools.partial(case.call, case.inputs)
        with fl.use_backend(p if p in FASTLAYERS_PATHS else "auto"):
            t0 = time.perf_counter()
            for _ in range(n):
                r()
            samples[p].append((time.perf_counter() - t0) / n)

    # All paths interleaved (numpy, cpp, torch, numpy, ...), so that the machine's drift
    # (+-20% over minutes on a shared host) hits every path alike. After a torch (or Keras
    # on torch) sample, a pause: its OpenMP workers keep spinning for a while after each
    # call and would slow whatever runs next (measured on 2 threads: +40% right after,
    # nothing after 20 ms).
    for _ in range(repeats):
        for p in runners:
            sample(p)
            if p not in FASTLAYERS_PATHS:
                time.sleep(0.05)
    return {p: statistics.median(s) for p, s in samples.items()}


def main(argv=None, *, allow_reexec: bool = False) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastlayers.bench", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="skip the largest shapes (default)")
    mode.add_argument("--full", action="store_true", help="run every shape, more repeats")
    parser.add_argument("--threads", type=int, default=None, help="threads for every path")
    parser.add_argument("--only", default="", help="comma-separated case id prefixes")
    parser.add_argument(
        "--paths",
        default=",".join(ALL_PATHS),
        help="paths to time (keras and keras-predict serve the model cases only)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--models", action="store_true", help="run the model cases only")
    which.add_argument("--no-models", action="store_true", help="skip the model cases")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        machine.KEEP_BLAS_ENV_FLAG,
        action="store_true",
        help=f"keep {' and '.join(machine.BLAS_PIN_VARS)} (numpy then runs the pinned kernels)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")

    if allow_reexec:  # before anything is timed; numpy is loaded already, hence a new process
        env, removed = machine.child_environment(os.environ, args.keep_blas_env)
        if env is not None:
            machine.reexec(env, removed)

    import fastlayers as fl
    from fastlayers import _backend

    from . import models as models_mod
    from .cases import TORCH_ERROR, all_cases, torch
    from .models import model_cases

    threads = args.threads or fl.get_num_threads()
    limiter, notes = _limit_threads(threads)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(paths) - set(ALL_PATHS))
    if unknown:
        parser.error(f"unknown path(s) {', '.join(unknown)}: expected {', '.join(ALL_PATHS)}")
    repeats, target = (7, 0.05) if args.full else (3, 0.02)
    prefixes = [p for p in args.only.split(",") if p]

    info = fl.runtime_info()
    cores = machine.physical_cores()
    peak, peak_how = machine.measure_peak(_backend._core, info.get("isa"))
    items = machine.header_items(
        info,
        threads,
        cpu=machine.cpu_model(),
        logical=machine.logical_cpus(),
        cores=cores,
        blas=machine.blas_libraries(),
        environ=os.environ,
        torch_desc=machine.torch_line(torch),
        peak=peak,
        peak_how=peak_how,
    )
    if TORCH_ERROR:
        notes.append(f"torch not available ({TORCH_ERROR.splitlines()[0]})")
    items.extend(("note", n) for n in notes)
    def selected(case) -> bool:
        if prefixes:
            return any(case.id.startswith(p) for p in prefixes)
        return args.full or case.quick

    op_cases = [] if args.models else [c for c in all_cases() if selected(c)]
    mcases = [] if args.no_models else [c for c in model_cases() if selected(c)]
    if mcases and any(p in paths for p in ("keras", "keras-predict")):
        kline = models_mod.keras_line()
        if kline is None:
            items.append(("note", f"keras not available ({models_mod.keras_module()[1]})"))
        else:
            items.append(("keras", kline))
    md = args.markdown
    peak_total = peak * machine.peak_units(threads, cores) if peak is not None else None
    for line in report.format_header(items, md):
        print(line)
    if op_cases:
        for line in report.format_table_head(peak is not None, md):
            print(line)
        op_paths = [p for p in paths if p in OP_PATHS]
        for case in op_cases:
            res = measure(case, op_paths, repeats, target)
            cells = report.row_cells(
                case.id, case.desc, case.flops, case.compute_bound, res, peak_total
            )
            print(report.format_row(cells, md), flush=True)
        if md:
            print()
        for line in report.footer(peak is not None):
            print(line)
    if mcases:
        if op_cases:
            print()
        for line in report.format_table_head(False, md, cols=report.MODEL_COLUMNS):
            print(line)
        for case in mcases:
            res = measure(case, paths, repeats, target)
            cells = report.model_row_cells(case.id, case.desc, res)
            print(report.format_row(cells, md, cols=report.MODEL_COLUMNS), flush=True)
        if md:
            print()
        for line in report.model_footer():
            print(line)
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main(allow_reexec=True))
