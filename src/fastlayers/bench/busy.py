"""``python -m fastlayers.bench.busy``: calls timed while another process keeps a core busy.

Issue 14, defect 7: a web server, a Dask worker or a second model often shares the
machine. This benchmark starts a busy-looping process (condition ``busy-pinned``: pinned
to the last CPU this process may use; ``busy``: left to the scheduler; ``quiet``: none),
then times, on 1 and 2 threads, the LSTM of the issue (batch 1, T 100, F 64, U 192) and
conv-res (1 x 56 x 56 x 64, 3x3, 64 filters, "same"; fastlayers.bench.cases) on
fastlayers' C++ path and on PyTorch, with the same thread count on both. It reports the
median of ``--repeats`` single calls per (condition, call, threads, path), interleaved
path by path, each after a 50 ms pause (torch's OpenMP workers spin on after a call; the
same pause before every call gives each path the same cold start).

The goal (issue 14): under load, no call at 2 threads is slower than at 1 thread, and
none is slower than PyTorch's. This is a measurement, not a test: on a shared machine
the figures are noisy, and the note with them should say what else was running.

Options: ``--repeats N`` (30), ``--conditions quiet,busy,busy-pinned``,
``--markdown``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# The busy process: an endless loop, pinned to the CPU given as its argument, if any.
_BUSY_LOOP = (
    "import os, sys\n"
    "if len(sys.argv) > 1: os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "while True: pass\n"
)


def _cases():
    from .cases import _conv_case, _lstm_case

    return [
        _lstm_case("lstm-b1-u192", 1, 100, 64, 192),
        _conv_case("conv-res", 1, 56, 56, 64, 64, 3, padding="same"),
    ]


def _start_busy(pinned: bool) -> subprocess.Popen:
    args = [sys.executable, "-c", _BUSY_LOOP]
    if pinned:
        cpus = sorted(os.sched_getaffinity(0))
        args.append(str(cpus[-1]))
    proc = subprocess.Popen(args)
    time.sleep(0.3)  # let it reach its loop
    return proc


def _stop_busy(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        proc.kill()  # the one process this script started, by its handle
        proc.wait()


PAUSE = 0.05  # seconds before each timed call


def _time_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(case, threads: int, repeats: int, torch_mod) -> dict[str, float]:
    """Median seconds of one call per path ("fastlayers", "torch"), paths interleaved."""
    import fastlayers as fl

    fl.set_num_threads(threads)
    if torch_mod is not None:
        torch_mod.set_num_threads(threads)
    runners = {"fastlayers": case.runner("cpp")}
    if torch_mod is not None:
        t = case.runner("torch")
        if t is not None:
            runners["torch"] = t
    runners = {p: r for p, r in runners.items() if r is not None}
    for r in runners.values():  # warm up: workers started, caches filled
        for _ in range(3):
            r()
    samples: dict[str, list[float]] = {p: [] for p in runners}
    for _ in range(repeats):
        for p, r in runners.items():
            # The same pause before every call of every path, so that each call starts from
            # the same state: torch's OpenMP workers done spinning, caches and clocks as the
            # load left them. (A pause after torch's calls only timed fastlayers cold and
            # torch right behind it, warm: conv-res at 1 thread 3.2 ms against 2.5.)
            time.sleep(PAUSE)
            samples[p].append(_time_call(r))
    return {p: statistics.median(s) for p, s in samples.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastlayers.bench.busy", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=30, help="single calls per median")
    parser.add_argument(
        "--conditions", default="quiet,busy,busy-pinned", help="quiet, busy and/or busy-pinned"
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    for c in conditions:
        if c not in ("quiet", "busy", "busy-pinned"):
            parser.error(f"unknown condition {c!r}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    import fastlayers as fl

    from .cases import TORCH_ERROR, torch

    if not fl.core_available():
        print("the compiled core is not available: nothing to measure", file=sys.stderr)
        return 1
    info = fl.runtime_info()
    cpus = len(os.sched_getaffinity(0))
    print(
        f"fastlayers {info['version']} isa {info['isa']}; torch "
        f"{torch.__version__ if torch is not None else 'missing: ' + str(TORCH_ERROR)}; "
        f"{cpus} CPUs usable; median of {args.repeats} single calls"
    )
    from .cases import check

    cases = _cases()
    for case in cases:  # every path must give the NumPy path's numbers
        case.setup()
        reference = np.asarray(case.runner("numpy")())
        for path in ("cpp", "torch"):
            run = case.runner(path)
            if run is not None:
                check(case, path, run(), reference)
    saved = fl.get_num_threads()
    rows = []
    try:
        for cond in conditions:
            proc = _start_busy(cond == "busy-pinned") if cond != "quiet" else None
            try:
                for case in cases:
                    for threads in (1, 2):
                        med = measure(case, threads, args.repeats, torch)
                        rows.append((cond, case.id, threads, med))
                        print(
                            f"{cond:12s} {case.id:14s} threads {threads}: "
                            + "  ".join(f"{p} {v * 1e3:8.3f} ms" for p, v in med.items()),
                            flush=True,
                        )
            finally:
                _stop_busy(proc)
    finally:
        fl.set_num_threads(saved)

    # Verdicts: per condition and call, 2 threads against 1 thread, and against torch.
    print()
    by_key = {(c, i, t): m for c, i, t, m in rows}
    for cond in conditions:
        for case in cases:
            one, two = by_key.get((cond, case.id, 1)), by_key.get((cond, case.id, 2))
            if not one or not two:
                continue
            verdict = [
                f"2 threads {'<=' if two['fastlayers'] <= one['fastlayers'] else '>'} 1 thread"
            ]
            if "torch" in two:
                ok = two["fastlayers"] <= two["torch"]
                verdict.append(f"{'<=' if ok else '>'} torch at 2 threads")
            print(f"{cond:12s} {case.id:14s} fastlayers at " + ", ".join(verdict))
    if args.markdown:
        print()
        print("| condition | call | threads | fastlayers (ms) | torch (ms) |")
        print("|---|---|---|---|---|")
        for cond, cid, threads, med in rows:
            tv = f"{med['torch'] * 1e3:.3f}" if "torch" in med else "-"
            print(f"| {cond} | {cid} | {threads} | {med['fastlayers'] * 1e3:.3f} | {tv} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
