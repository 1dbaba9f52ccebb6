"""Two builds of fastlayers, timed against each other on the public shapes, call for call.

What "nothing is slower than before" needs on a shared, noisy host (docs/benchmarks.md): the
host's speed drifts by 20 % over minutes, so two builds timed in turn by separate runs of the
bench disagree by more than the change being measured. Here two worker processes, one per
build, take turns on the same shape (a, b, b, a, a, b, ...), so a slow phase hits both alike,
and the table gives each build's best and median time and the median and quartiles of the
per-turn ratios.

    pip install --target /tmp/old --no-deps .    # in a checkout of the older commit
    python tools/ab_builds.py --a /tmp/old --b "" --threads 1 --rounds 20
    python tools/ab_builds.py --a /tmp/old --b "" --threads 2 --only lstm-b1,gru-b1

--a and --b are directories put first on the worker's PYTHONPATH ("" = the installed
package). The shapes are those of docs/benchmarks.md §7 that the public API has had since
the first release (Dense, Conv2D, LSTM, GRU, scaled_dot_product_attention, softmax), made
here from that API alone, so that an old build runs them as they are; the C++ path is
forced. A ratio is a's time / b's time: above 1, b is faster.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def make_cases(fl):
    """{case id: () -> a no-argument call of fastlayers ``fl`` on that shape}."""
    rng = np.random.default_rng(0)

    def dense(m, k, n, act):
        layer = fl.layers.Dense(n, activation=act, use_bias=act is not None)
        layer.set_weights([_rand(rng, k, n, scale=1 / math.sqrt(k))]
                          + ([_rand(rng, n)] if act else []))
        x = _rand(rng, m, k)
        return lambda: layer(x)

    def conv(n, h, w, c, f, k, stride=1, padding="valid", dilation=1):
        layer = fl.layers.Conv2D(f, k, strides=stride, padding=padding,
                                 dilation_rate=dilation, activation="relu")
        layer.set_weights([_rand(rng, k, k, c, f, scale=1 / math.sqrt(k * k * c)),
                           _rand(rng, f)])
        x = _rand(rng, n, h, w, c)
        return lambda: layer(x)

    def recurrent(cls, gates, bias_shape, b, t, f, u):
        layer = cls(u)
        s = 1 / math.sqrt(u)
        layer.set_weights([_rand(rng, f, gates * u, scale=s), _rand(rng, u, gates * u, scale=s),
                           _rand(rng, *bias_shape, scale=0.1)])
        x = _rand(rng, b, t, f)
        return lambda: layer(x)

    def lstm(b, t, f, u):
        return recurrent(fl.layers.LSTM, 4, (4 * u,), b, t, f, u)

    def gru(b, t, f, u):
        return recurrent(fl.layers.GRU, 3, (2, 3 * u), b, t, f, u)

    def sdpa(b, h, t, s, d, causal=False):
        q, k, v = _rand(rng, b, h, t, d), _rand(rng, b, h, s, d), _rand(rng, b, h, s, d)
        return lambda: fl.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def softmax(rows, n):
        x = _rand(rng, rows, n)
        return lambda: fl.softmax(x, axis=-1)

    return {
        "gemm-256": lambda: dense(256, 256, 256, None),
        "gemm-1024": lambda: dense(1024, 1024, 1024, None),
        "gemm-2048": lambda: dense(2048, 2048, 2048, None),
        "dense-1": lambda: dense(1, 784, 512, "relu"),
        "dense-64": lambda: dense(64, 784, 512, "relu"),
        "dense-256": lambda: dense(256, 1024, 1024, "relu"),
        "conv-seed": lambda: conv(4, 32, 32, 3, 8, 3),
        "conv-res": lambda: conv(1, 56, 56, 64, 64, 3, padding="same"),
        "conv-b8": lambda: conv(8, 28, 28, 32, 64, 3, padding="same"),
        "conv-stem": lambda: conv(1, 224, 224, 3, 32, 3, stride=2, padding="same"),
        "conv-dil": lambda: conv(1, 56, 56, 64, 64, 3, padding="same", dilation=2),
        "conv-1x1": lambda: conv(1, 28, 28, 256, 256, 1),
        "lstm-seed": lambda: lstm(4, 3, 2, 8),
        "lstm-b32": lambda: lstm(32, 100, 64, 128),
        "lstm-b1": lambda: lstm(1, 200, 128, 256),
        "lstm-b64": lambda: lstm(64, 50, 256, 512),
        "gru-seed": lambda: gru(4, 3, 2, 8),
        "gru-b32": lambda: gru(32, 100, 64, 128),
        "gru-b1": lambda: gru(1, 200, 128, 256),
        "gru-b64": lambda: gru(64, 50, 256, 512),
        "attn-seed": lambda: sdpa(4, 1, 16, 1, 4),
        "attn-256": lambda: sdpa(8, 8, 256, 256, 64),
        "attn-1024": lambda: sdpa(1, 12, 1024, 1024, 64),
        "attn-1024c": lambda: sdpa(1, 12, 1024, 1024, 64, True),
        "attn-64": lambda: sdpa(8, 16, 64, 64, 64),
        "decode-t1": lambda: sdpa(1, 8, 1, 4096, 64),
        "decode-t4": lambda: sdpa(1, 8, 4, 1024, 64),
        "softmax-attn256": lambda: softmax(8 * 8 * 256, 256),
        "softmax-1x64": lambda: softmax(1, 64),
    }


def best_time(fn, budget: float, reps: int) -> float:
    """Seconds per call: the best of ``reps`` loops of about ``budget / reps`` seconds."""
    fn()
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, min(2000, int(budget / reps / one)))
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def worker() -> None:
    """Reads "case threads" lines, prints seconds per call for each (the build on sys.path)."""
    import fastlayers as fl

    cases = make_cases(fl)
    made = {}
    print(fl.__file__, flush=True)
    for line in sys.stdin:
        cid, threads = line.split()
        fl.set_num_threads(int(threads))
        if cid not in made:
            made[cid] = cases[cid]()
        with fl.use_backend("cpp"):
            print(best_time(made[cid], budget=0.3, reps=3), flush=True)


def start(pythonpath: str) -> subprocess.Popen:
    """A worker process with ``pythonpath`` first on its path ("" = the installed package);
    SystemExit if it does not start, or if the fastlayers it imports is not under a path given
    (a path without the package would silently time the installed build against itself)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = os.path.abspath(pythonpath)
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    where = proc.stdout.readline().strip()
    if not where:
        raise SystemExit(f"the worker for PYTHONPATH={pythonpath!r} did not start")
    if pythonpath and not os.path.abspath(where).startswith(os.path.abspath(pythonpath) + os.sep):
        proc.kill()
        raise SystemExit(f"no fastlayers under {pythonpath!r}: the worker imported {where}")
    proc.where = where  # type: ignore[attr-defined]
    return proc


def ask(worker: subprocess.Popen, name: str, cid: str, threads: int) -> float:
    """Seconds per call of case ``cid`` on ``threads`` threads, timed by ``worker``."""
    worker.stdin.write(f"{cid} {threads}\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        raise SystemExit(f"the worker of build {name} ({worker.where}) died on {cid} "
                         f"(exit status {worker.wait()})")
    return float(line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--a", default=None, help="PYTHONPATH of build a ('' = installed)")
    ap.add_argument("--b", default="", help="PYTHONPATH of build b ('' = installed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--only", default="", help="comma-separated case ids (default: all)")
    args = ap.parse_args(argv)
    if args.worker:
        worker()
        return 0
    if args.a is None:
        ap.error("--a is required")
    ids = [c for c in args.only.split(",") if c] or list(make_cases(None))
    unknown = sorted(set(ids) - set(make_cases(None)))
    if unknown:
        ap.error(f"unknown case ids: {', '.join(unknown)}")
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be at least 1")
    workers = {"a": start(args.a), "b": start(args.b)}
    for k, w in workers.items():
        print(f"# {k}: {w.where}")
    times = {c: {"a": [], "b": []} for c in ids}
    for r in range(args.rounds):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        for c in ids:
            for k in order:
                times[c][k].append(ask(workers[k], k, c, args.threads))
    for w in workers.values():
        w.stdin.close()
        w.wait()
    print(f"\n{args.threads} thread(s), {args.rounds} turns each; ratio = a / b (> 1: b faster)\n")
    print("| shape | a best | a median | b best | b median | best a / best b | "
          "median of turn ratios [quartiles] |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in ids:
        a, b = times[c]["a"], times[c]["b"]
        pairs = sorted(x / y for x, y in zip(a, b))
        q1, q3 = pairs[len(pairs) // 4], pairs[(3 * len(pairs)) // 4]
        print(f"| {c} | {min(a) * 1e3:.4f} ms | {statistics.median(a) * 1e3:.4f} ms | "
              f"{min(b) * 1e3:.4f} ms | {statistics.median(b) * 1e3:.4f} ms | "
              f"{min(a) / min(b):.3f} | {statistics.median(pairs):.3f} [{q1:.2f}-{q3:.2f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
