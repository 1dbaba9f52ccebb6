"""How close to the FMA peak any library's float32 GEMM gets on this machine, in one process.

The bench (`python -m fastlayers.bench`) compares fastlayers with PyTorch and NumPy per shape.
This asks a narrower question, for a mark stated as a fraction of the peak: what do the best
GEMMs available reach here? It times square products C = A @ B (n = 1024, 2048 by default)
with each library present, the libraries alternating within every round so that a slow phase
of a shared host hits them alike, next to the bench's FMA probe (independent FMA chains in
registers: `fastlayers._core.fma_peak_probe`):

- fastlayers: a `layers.Dense` without bias, its kernel packed once (the bench's gemm-N case);
- PyTorch (`torch.mm`: oneDNN or MKL, whichever its build calls), if installed;
- NumPy (`a @ b`: its BLAS, OpenBLAS in PyPI wheels), re-executed without the OpenBLAS pins
  (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE) as the bench does, since a user's numpy has none;
- Intel MKL's `cblas_sgemm`, if given `--mkl PATH/libmkl_rt.so` (`pip install mkl` puts one
  in the environment's lib/ directory). MKL is nothing fastlayers depends on: it is here as
  the CPU vendor's own GEMM, a ceiling to compare with. (Its thread count is set for the
  run and left so: the library is loaded for this tool alone.)

    python tools/gemm_ceiling.py                                  # 1 thread, 3 rounds
    python tools/gemm_ceiling.py --threads 2 --mkl ~/mkl/lib/libmkl_rt.so.3

Prints, per library and size, the median GFLOP/s over the rounds (each round's figure is the
median of its calls) with its range, and the median as a percentage of the probe (the best
probe of the run, times the thread count).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import statistics
import sys
import time


def _scrub_blas_pins() -> None:
    """Re-execute without the OpenBLAS pins, before numpy loads (it reads them at load)."""
    from fastlayers.bench import machine  # noqa: PLC0415 (numpy loads here, then is replaced)

    env, _removed = machine.child_environment(os.environ, keep_blas_env=False)
    if env is not None:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def machine_pins() -> tuple[str, ...]:
    from fastlayers.bench import machine  # noqa: PLC0415

    return machine.BLAS_PIN_VARS


def _mkl_sgemm(path: str, threads: int):
    """A function (a, b, c) -> None computing c = a @ b with MKL's cblas_sgemm (row-major)."""
    lib = ctypes.CDLL(path)
    lib.MKL_Set_Num_Threads(threads)
    sgemm = lib.cblas_sgemm
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    sgemm.restype = None
    row_major, no_trans = 101, 111

    def run(a, b, c):
        m, k = a.shape
        n = b.shape[1]
        sgemm(row_major, no_trans, no_trans, m, n, k, 1.0, a.ctypes.data, k, b.ctypes.data, n,
              0.0, c.ctypes.data, n)

    return run


def _calls(fl, a, b, c, torch, mkl) -> dict:
    """{library: a function computing a @ b once} for the libraries present."""
    dense = fl.layers.Dense(b.shape[1], use_bias=False)
    dense.build((None, a.shape[1]))
    dense.set_weights([b])
    calls = {"fastlayers": lambda: dense(a), "numpy": lambda: a @ b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        calls["torch"] = lambda: torch.mm(ta, tb)
    if mkl is not None:
        calls["mkl"] = lambda: mkl(a, b, c)
    return calls


def _median_call(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1024,2048", help="square sizes n (default 1024,2048)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mkl", default=None, help="path of libmkl_rt.so, to time MKL too")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be at least 1")
    import fastlayers as fl  # noqa: PLC0415
    from fastlayers._backend import max_threads  # noqa: PLC0415

    if args.threads > max_threads():
        ap.error(f"--threads {args.threads}: fastlayers runs at most {max_threads()} here")
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(n < 1 for n in sizes):
        ap.error(f"--sizes must be positive integers separated by commas, got {args.sizes!r}")

    import numpy as np  # noqa: PLC0415 (after the re-exec)

    from fastlayers import _core  # noqa: PLC0415

    try:
        import torch  # noqa: PLC0415
    except ImportError:
        torch = None
    mkl = None
    if args.mkl:
        try:
            mkl = _mkl_sgemm(os.path.expanduser(args.mkl), args.threads)
        except (OSError, AttributeError) as exc:
            ap.error(f"--mkl {args.mkl}: not a loadable MKL runtime library ({exc})")
    isa = fl.runtime_info()["isa"]
    pins = [v for v in machine_pins() if v in os.environ] or "none"
    print(f"fastlayers ISA {isa}, {args.threads} thread(s), {args.rounds} round(s); "
          f"OpenBLAS pins: {pins}")

    rng = np.random.default_rng(0)
    probes: list[float] = []
    rates: dict[tuple[str, int], list[float]] = {}
    with _threads(args.threads, fl, torch):
        _measure(args, sizes, rng, fl, _core, isa, torch, mkl, probes, rates)
    _report(args, isa, probes, rates)
    return 0


@contextlib.contextmanager
def _threads(n: int, fl, torch):
    """fastlayers, NumPy's BLAS and PyTorch on ``n`` threads, their settings put back after
    (a test run that calls main() keeps its own)."""
    before_fl = fl.get_num_threads()
    before_torch = torch.get_num_threads() if torch is not None else None
    limits = None
    try:
        fl.set_num_threads(n)  # (first: it refuses a count above _backend.max_threads())
        try:
            from threadpoolctl import threadpool_limits  # noqa: PLC0415

            limits = threadpool_limits(n)
        except ImportError:
            print("threadpoolctl is not installed: numpy's BLAS runs on its own thread count")
        if torch is not None:
            torch.set_num_threads(n)
        yield
    finally:
        fl.set_num_threads(before_fl)
        if torch is not None:
            torch.set_num_threads(before_torch)
        if limits is not None:
            limits.restore_original_limits()


def _measure(args, sizes, rng, fl, _core, isa, torch, mkl, probes, rates) -> None:
    import numpy as np  # noqa: PLC0415

    for rnd in range(args.rounds):
        probes.append(float(_core.fma_peak_probe(isa, 0.5)))
        for n in sizes:
            a = rng.standard_normal((n, n), dtype=np.float32)
            b = rng.standard_normal((n, n), dtype=np.float32)
            c = np.empty((n, n), np.float32)
            calls = _calls(fl, a, b, c, torch, mkl)
            ref = a @ b
            for name, fn in calls.items():
                out = fn()
                got = c if name == "mkl" else np.asarray(out)
                if not np.allclose(got, ref, rtol=1e-3, atol=1e-3 * np.sqrt(n)):
                    raise SystemExit(f"{name} computed a different product at n = {n}")
                n_calls = min(1000, max(3, round(3e10 / (2 * n**3) / args.threads)))
                rates.setdefault((name, n), []).append(2 * n**3 / _median_call(fn, n_calls) / 1e9)
        print(f"round {rnd + 1}/{args.rounds} done", flush=True)


def _report(args, isa, probes, rates) -> None:
    peak = max(probes) * args.threads
    print(f"\nFMA probe ({isa}, one core): {' '.join(f'{p:.1f}' for p in probes)} GFLOP/s; "
          f"the peak used: best x {args.threads} thread(s) = {peak:.1f}\n")
    print("| library | n | GFLOP/s (median) | range | % of peak |")
    print("|---|---:|---:|---:|---:|")
    for (name, n), vals in rates.items():
        med = statistics.median(vals)
        print(f"| {name} | {n} | {med:.1f} | {min(vals):.0f}-{max(vals):.0f} | "
              f"{100 * med / peak:.0f} % |")


if __name__ == "__main__":
    _scrub_blas_pins()  # as a script only: it re-executes sys.argv
    sys.exit(main())
