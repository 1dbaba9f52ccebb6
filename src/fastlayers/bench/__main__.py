"""``python -m fastlayers.bench``: time every public benchmark shape on each path.

Paths: ``numpy`` (fastlayers' NumPy path), ``cpp`` (the compiled core, where it
serves the op) and ``torch`` (PyTorch CPU, when importable). Each case checks that
every path gives the NumPy path's numbers, then times the paths interleaved
(numpy, cpp, torch, numpy, ...; a 50 ms pause after each torch sample, whose OpenMP
workers spin for a while after each call), and reports the median per path and the
speedup of cpp over each peer. Same thread count on every path.

Options: ``--quick`` (default) skips the largest shapes and repeats less;
``--full`` runs everything; ``--threads N``; ``--only ID[,ID...]`` (prefixes).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time


def _reexec_with_openblas_timeout() -> None:
    # OpenBLAS workers spin ~0.1 s after each call and steal a core from the next
    # library timed (BENCHMARKS.md). The setting must be in place before numpy
    # loads, so re-run this module once with it.
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ and "FASTLAYERS_BENCH_CHILD" not in os.environ:
        env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="4", FASTLAYERS_BENCH_CHILD="1")
        os.execve(sys.executable, [sys.executable, "-m", "fastlayers.bench", *sys.argv[1:]], env)


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
    reference = np.asarray(runners["numpy"]() if "numpy" in runners else None)
    if isinstance(reference, np.ndarray) and reference.dtype != object:
        for p, r in runners.items():
            check(case, p, r(), reference)
    loops = {p: _inner_loops(r, target) for p, r in runners.items()}
    samples = {p: [] for p in runners}

    def sample(p):
        n = loops[p]
        if p == "torch":
            r = runners[p]
        else:  # the backend is set around the loop, so its switch is not timed
            r = functools.partial(case.call, case.inputs)
        with fl.use_backend(p if p != "torch" else "auto"):
            t0 = time.perf_counter()
            for _ in range(n):
                r()
            samples[p].append((time.perf_counter() - t0) / n)

    # All paths interleaved (numpy, cpp, torch, numpy, ...), so that the machine's drift
    # (+-20% over minutes on a shared host) hits every path alike. After a torch sample,
    # a pause: its OpenMP workers keep spinning for a while after each call and would slow
    # whatever runs next (measured on 2 threads: +40% right after, nothing after 20 ms).
    for _ in range(repeats):
        for p in runners:
            sample(p)
            if p == "torch":
                time.sleep(0.05)
    return {p: statistics.median(s) for p, s in samples.items()}


def _fmt_time(sec):
    if sec is None:
        return "-"
    if sec < 1e-3:
        return f"{sec * 1e6:.1f} us"
    return f"{sec * 1e3:.2f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastlayers.bench", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="skip the largest shapes (default)")
    mode.add_argument("--full", action="store_true", help="run every shape, more repeats")
    parser.add_argument("--threads", type=int, default=None, help="threads for every path")
    parser.add_argument("--only", default="", help="comma-separated case id prefixes")
    parser.add_argument("--paths", default="numpy,cpp,torch", help="paths to time")
    args = parser.parse_args(argv)

    import fastlayers as fl

    from .cases import TORCH_ERROR, all_cases

    threads = args.threads or fl.get_num_threads()
    limiter, notes = _limit_threads(threads)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    repeats, target = (7, 0.05) if args.full else (3, 0.02)
    prefixes = [p for p in args.only.split(",") if p]

    info = fl.runtime_info()
    print(
        f"fastlayers {info['version']}  isa {info['isa']}  threads {threads}  "
        f"core {'yes' if info['core_available'] else 'NO'}  "
        f"C++ ops: {', '.join(info['ops_in_cpp']) or '-'}"
    )
    if TORCH_ERROR:
        notes.append(f"torch not available ({TORCH_ERROR.splitlines()[0]})")
    for n in notes:
        print(f"note: {n}")
    header = (
        f"{'id':<16} {'shape':<42} {'numpy':>10} {'cpp':>10} {'torch':>10} "
        f"{'cpp/numpy':>9} {'cpp/torch':>9} {'GFLOP/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for case in all_cases():
        if prefixes and not any(case.id.startswith(p) for p in prefixes):
            continue
        if not args.full and not case.quick and not prefixes:
            continue
        res = measure(case, paths, repeats, target)
        t_np, t_cpp, t_torch = res.get("numpy"), res.get("cpp"), res.get("torch")
        best = t_cpp if t_cpp is not None else t_np
        up_np = f"{t_np / t_cpp:.2f}x" if t_cpp and t_np else "-"
        up_t = f"{t_torch / t_cpp:.2f}x" if t_cpp and t_torch else "-"
        gf = f"{case.flops / best / 1e9:.1f}" if best else "-"
        print(
            f"{case.id:<16} {case.desc:<42} {_fmt_time(t_np):>10} {_fmt_time(t_cpp):>10} "
            f"{_fmt_time(t_torch):>10} {up_np:>9} {up_t:>9} {gf:>8}",
            flush=True,
        )
    print(
        "speedup columns: time of the peer / time of cpp (> 1 means cpp is faster); "
        "GFLOP/s of cpp where it serves the op, else of numpy"
    )
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    _reexec_with_openblas_timeout()
    sys.exit(main())
