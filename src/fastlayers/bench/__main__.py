"""``python -m fastlayers.bench``: time every public benchmark shape on each path.

Paths: ``numpy`` (fastlayers' NumPy path), ``cpp`` (the compiled core, where it
serves the op), ``torch`` (PyTorch CPU, when importable) and ``ort`` (ONNX Runtime CPU
on an ONNX graph of the op, when onnxruntime and onnx are importable). Each case checks
that every path gives the NumPy path's numbers, then times the paths interleaved
(numpy, cpp, torch, ort, numpy, ...; a 50 ms pause after each peer's sample, whose
worker threads spin for a while after each call), and reports the median per path and
the speedup of cpp over each peer. Same thread count on every path.

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
``--paths numpy,cpp,torch,ort``; ``--repeats N``; ``--markdown`` (a table to paste into a
note); ``--keep-blas-env``. Results: ``--json OUT.json`` writes them (schema in
:mod:`fastlayers.bench.results`), ``--load RUN.json`` reads them instead of running,
``--compare BASE.json`` prints the time ratios against a base run and flags regressions
over ``--threshold`` (10 %), ``--fail-on-regression`` makes a flagged numpy/cpp path the
exit status 1, ``--plot OUT.png`` draws the speedups (needs ``fastlayers[plot]``).

Model cases (``models.py``, ids ``model-...``; docs/benchmarks.md §12): whole Keras models
at batch 1 and 64, in a second table with the peers ``keras`` (Keras 3 on its torch
backend, called), ``keras-predict`` (its ``predict``) and ``torch`` (the same model
written in PyTorch); every output of every path is checked against fastlayers' NumPy path
first. ``--models`` runs them alone, ``--no-models`` skips them; ``--only`` selects among
both. Their results go to the JSON document's ``models`` list.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

from . import machine, report, results

# Timed by their own callables, with a pause after each sample (Keras runs on torch).
PEERS = ("torch", "ort", "keras", "keras-predict")
KERAS_PATHS = ("keras", "keras-predict")  # the model cases only


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


def measure(case, paths, repeats: int, target: float, threads: int | None = None):
    """Seconds per call of each available path: ``{path: [one value per sample]}``.

    Every path is first checked against the NumPy path's numbers; the samples are then
    taken interleaved (numpy, cpp, torch, ort, numpy, ...)."""
    import numpy as np

    import fastlayers as fl

    from .cases import check

    runners = {p: case.runner(p, threads) for p in paths}
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
        if p in PEERS:
            r = runners[p]
        else:  # the backend is set around the loop, so its switch is not timed
            r = functools.partial(case.call, case.inputs)
        with fl.use_backend(p if p not in PEERS else "auto"):
            # One untimed call first: the call right after another path's sample is a cold one
            # for every path (the other path freed its buffers, so the allocator hands back pages
            # that fault in again - 450-610 faults, +1.5-3 ms for the cnn model at batch 64 on 2
            # threads after PyTorch's calls - and threads that slept must wake), and with a few
            # calls per sample it weighed on the median (model-cnn-b64, 2 threads: 10-12.6 ms
            # measured against 3.3-4.5 ms called in a loop).
            r()
            t0 = time.perf_counter()
            for _ in range(n):
                r()
            samples[p].append((time.perf_counter() - t0) / n)

    # All paths interleaved (numpy, cpp, torch, ort, numpy, ...), so that the machine's drift
    # (+-20% over minutes on a shared host) hits every path alike. After a peer's sample, a
    # pause: its worker threads (OpenMP for torch, ORT's pool) keep spinning for a while
    # after each call and would slow whatever runs next (measured for torch on 2 threads:
    # +40% right after, nothing after 20 ms).
    for _ in range(repeats):
        for p in runners:
            sample(p)
            if p in PEERS:
                time.sleep(0.05)
    return samples


def _versions(info, torch_mod) -> dict:
    import platform

    from . import ort

    return {
        "python": platform.python_version(),
        "numpy": str(info.get("numpy")),
        "fastlayers": str(info.get("version")),
        "torch": None if torch_mod is None else str(torch_mod.__version__),
        "onnxruntime": ort.version(),
    }


def _torch_capability(torch_mod) -> str | None:
    if torch_mod is None:
        return None
    try:
        return str(torch_mod.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover - older torch
        return None


def _print_rows(doc, md: bool) -> None:
    peak_total = doc["machine"].get("peak_total_gflops")
    for line in report.format_table_head(peak_total is not None, md):
        print(line)
    for case in doc["cases"]:
        print(report.format_row(_cells(case, peak_total), md))
    if doc.get("models"):
        print()
        for line in report.format_table_head(False, md, cols=report.MODEL_COLUMNS):
            print(line)
        for rec in doc["models"]:
            cells = report.model_row_cells(rec["id"], rec["shape"], results.medians(rec))
            print(report.format_row(cells, md, cols=report.MODEL_COLUMNS))


def _cells(case, peak_total):
    return report.row_cells(
        case["id"], case["shape"], case["flops"], case["compute_bound"],
        results.medians(case), peak_total,
    )


def run(args, parser) -> dict:
    """Run the benchmark as ``args`` say, printing the header and the table as it goes;
    return the results document (:mod:`fastlayers.bench.results`)."""
    import datetime

    import fastlayers as fl
    from fastlayers import _backend

    from . import models as models_mod
    from . import ort
    from .cases import TORCH_ERROR, all_cases, torch

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    threads = args.threads or fl.get_num_threads()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    known = results.PATHS + KERAS_PATHS
    unknown = sorted(set(paths) - set(known))
    if unknown:
        parser.error(f"unknown path(s) {', '.join(unknown)}: expected {', '.join(known)}")
    repeats, target = (7, 0.05) if args.full else (3, 0.02)
    if args.repeats is not None:
        repeats = args.repeats
    prefixes = [p for p in args.only.split(",") if p]

    def selected(c) -> bool:
        return any(c.id.startswith(p) for p in prefixes) if prefixes else (args.full or c.quick)

    cases = [] if args.models else [c for c in all_cases() if selected(c)]
    mcases = [] if args.no_models else [c for c in models_mod.model_cases() if selected(c)]
    if prefixes and not cases and not mcases:
        parser.error(f"--only {args.only}: no case id starts with that")
    limiter, notes = _limit_threads(threads)  # restored below, and by main

    info = fl.runtime_info()
    cores = machine.physical_cores()
    peak, peak_how = machine.measure_peak(_backend._core, info.get("isa"))
    blas = machine.blas_libraries()
    items = machine.header_items(
        info,
        threads,
        cpu=machine.cpu_model(),
        logical=machine.logical_cpus(),
        cores=cores,
        blas=blas,
        environ=os.environ,
        torch_desc=machine.torch_line(torch),
        peak=peak,
        peak_how=peak_how,
        ort_desc=ort.describe(threads),
    )
    if TORCH_ERROR and "torch" in paths:
        notes.append(f"torch not available ({TORCH_ERROR.splitlines()[0]})")
    if ort.ORT_ERROR and "ort" in paths:
        notes.append(
            f"onnxruntime peer not available ({ort.ORT_ERROR.splitlines()[0]}; "
            "pip install 'fastlayers[onnx]')"
        )
    if mcases and any(p in paths for p in KERAS_PATHS):
        kline = models_mod.keras_line()
        if kline is None:
            notes.append(f"keras not available ({models_mod.keras_module()[1]})")
        else:
            items.append(("keras", kline))
    items.extend(("note", n) for n in notes)
    md = args.markdown
    units = machine.peak_units(threads, cores)
    peak_total = peak * units if peak is not None else None
    doc = {
        "schema_version": results.SCHEMA_VERSION,
        "tool": results.TOOL,
        "date": date,
        "mode": "full" if args.full else "quick",
        "machine": {
            "cpu": machine.cpu_model(),
            "logical_cpus": machine.logical_cpus(),
            "physical_cores": cores,
            "isa": info.get("isa"),
            "isas_built": list(info.get("isas_built") or []),
            "isas_supported": list(info.get("isas_supported") or []),
            "ops_in_cpp": list(info.get("ops_in_cpp") or []),
            "threads": threads,
            "versions": _versions(info, torch),
            "blas": None
            if blas is None
            else [
                {k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                         "num_threads", "filepath")}
                for lib in blas
            ],
            "blas_pin": machine.blas_env_line(os.environ),
            "torch_cpu_capability": _torch_capability(torch),
            "fma_peak_gflops": peak,
            "fma_peak_how": peak_how,
            "peak_units": units,
            "peak_total_gflops": peak_total,
        },
        "cases": [],
        "models": [],
    }
    for line in report.format_header(items, md):
        print(line)
    op_paths = [p for p in paths if p in results.PATHS]
    try:
        if cases:
            for line in report.format_table_head(peak is not None, md):
                print(line)
        for case in cases:
            samples = measure(case, op_paths, repeats, target, threads)
            record = {
                "id": case.id,
                "op": case.op,
                "shape": case.desc,
                "flops": float(case.flops),
                "compute_bound": case.compute_bound,
                "paths": {
                    p: results.path_stats(s, case.flops, case.compute_bound, peak_total)
                    for p, s in samples.items()
                },
            }
            doc["cases"].append(record)
            print(report.format_row(_cells(record, peak_total), md), flush=True)
        if cases:
            if md:
                print()
            for line in report.footer(peak is not None):
                print(line)
        if mcases:
            if cases:
                print()
            for line in report.format_table_head(False, md, cols=report.MODEL_COLUMNS):
                print(line)
        for mcase in mcases:
            samples = measure(mcase, paths, repeats, target, threads)
            record = {
                "id": mcase.id,
                "model": mcase.spec.name,
                "batch": mcase.batch,
                "shape": mcase.desc,
                "paths": {p: results.path_stats(s, 0.0, False, None) for p, s in samples.items()},
            }
            doc["models"].append(record)
            cells = report.model_row_cells(mcase.id, mcase.desc, results.medians(record))
            print(report.format_row(cells, md, cols=report.MODEL_COLUMNS), flush=True)
        if mcases:
            if md:
                print()
            for line in report.model_footer():
                print(line)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    return doc


def _run_keeping_threads(args, parser):
    """:func:`run`, with fastlayers' and torch's thread counts put back afterwards (run sets
    them to ``--threads``), so that ``main`` called from Python (a test, a notebook) leaves
    the process as it found it. NumPy's BLAS limits are restored by run itself."""
    import fastlayers as fl

    from .cases import torch

    saved = fl.get_num_threads(), (torch.get_num_threads() if torch is not None else None)
    try:
        return run(args, parser)
    finally:
        fl.set_num_threads(saved[0])
        if saved[1] is not None:
            torch.set_num_threads(saved[1])


def main(argv=None, *, allow_reexec: bool = False) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastlayers.bench", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="skip the largest shapes (default)")
    mode.add_argument("--full", action="store_true", help="run every shape, more repeats")
    parser.add_argument("--threads", type=int, default=None, help="threads for every path")
    parser.add_argument("--only", default="", help="comma-separated case id prefixes")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--models", action="store_true", help="run the model cases only")
    which.add_argument("--no-models", action="store_true", help="skip the model cases")
    parser.add_argument(
        "--paths",
        default=",".join(results.PATHS + KERAS_PATHS),
        help="paths to time (default: all; keras and keras-predict serve the model cases)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="samples per path (default 3, --full 7)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        machine.KEEP_BLAS_ENV_FLAG,
        action="store_true",
        help=f"keep {' and '.join(machine.BLAS_PIN_VARS)} (numpy then runs the pinned kernels)",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    parser.add_argument(
        "--load", metavar="RUN.json", help="read results written by --json instead of running"
    )
    parser.add_argument(
        "--compare", metavar="BASE.json", help="time ratios of this run against a base run"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=results.DEFAULT_THRESHOLD,
        help="--compare flags a path slower than base by more than this fraction (0.10)",
    )
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="with --compare: exit status 1 when a numpy or cpp time regressed",
    )
    parser.add_argument("--plot", metavar="OUT.png", help="speedup bars (needs fastlayers[plot])")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threshold < 0:
        parser.error("--threshold must be >= 0")
    if args.fail_on_regression and not args.compare:
        parser.error("--fail-on-regression needs --compare BASE.json")
    if args.plot:  # fail before a long run, not after it
        from .plot import _import_matplotlib

        _import_matplotlib()
    try:
        base = results.load(args.compare) if args.compare else None
        loaded = results.load(args.load) if args.load else None
    except (OSError, ValueError) as exc:
        parser.error(str(exc))

    if loaded is not None:
        m = loaded["machine"]
        print(
            f"results of {args.load}: {loaded['date']}, {m['cpu']}, isa {m.get('isa')}, "
            f"{m['threads']} thread(s)"
        )
        _print_rows(loaded, args.markdown)
        doc = loaded
    else:
        if allow_reexec:  # before anything is timed; numpy is loaded already: a new process
            env, removed = machine.child_environment(os.environ, args.keep_blas_env)
            if env is not None:
                machine.reexec(env, removed)
        doc = _run_keeping_threads(args, parser)

    if args.json:
        results.dump(doc, args.json)
        print(f"results written to {args.json}")
    if args.plot:
        from .plot import plot_speedups

        plot_speedups(doc, args.plot)
        print(f"speedup plot written to {args.plot}")
    status = 0
    if base is not None:
        rows = results.compare(base, doc, args.threshold)
        print()
        for d in results.machine_differences(base, doc):
            print(f"note: the runs differ in {d}")
        only_base, only_new = results.unmatched(base, doc)
        if only_base:
            print(f"note: only in {args.compare}: {', '.join(only_base)}")
        if only_new:
            print(f"note: not in {args.compare}: {', '.join(only_new)}")
        new_name = args.load or "this run"
        for line in results.format_compare(
            rows, args.compare, new_name, args.threshold, args.markdown
        ):
            print(line)
        flagged = results.regressions(rows)
        if flagged:
            print(
                f"{len(flagged)} regression(s) over {args.threshold:.0%} on numpy/cpp: "
                + ", ".join(f"{r['id']}/{r['path']} {r['ratio']:.2f}x" for r in flagged)
            )
            if args.fail_on_regression:
                status = 1
        else:
            print(f"no numpy/cpp time regressed by more than {args.threshold:.0%}")
    return status


if __name__ == "__main__":
    sys.exit(main(allow_reexec=True))
