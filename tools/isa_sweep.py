"""Compare two ISA levels of the C++ path on a grid of shapes outside the public benchmark.

Where two levels have the same FMA peak (AVX2 and Zen 4's half-width AVX-512), the higher one
should rarely be slower: it has more registers and masked tails (streaming from memory is the
known exception, docs/performance.md §10). This sweep is how the half-empty
vectors and the 4 KiB row strides of docs/performance.md §2, §5 and §10 were found.

    python tools/isa_sweep.py                      # avx512 vs avx2, 1 thread, 3 rounds
    python tools/isa_sweep.py --threads 2 --rounds 5 --only dense,conv
    python tools/isa_sweep.py --isas avx2,scalar

Each round runs one process per ISA (FASTLAYERS_ISA is read at import), alternating, so slow
phases of a shared host hit both; the table gives the median time per ISA and flags shapes
where the first ISA is more than 7 % slower. Timing only: the bits are the tests' business.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _r(rng, *shape):
    import numpy as np

    return rng.standard_normal(shape).astype(np.float32)


def build_cases():
    """(name, zero-argument callable) for every shape of the grid."""
    import numpy as np

    import fastlayers as fl

    rng = np.random.default_rng(0)
    cases = []
    dense = [
        (1, 1024, 1024),
        (4, 1024, 100),
        (32, 1000, 10),
        (128, 2048, 64),
        (512, 512, 24),
        (512, 768, 768),
        (300, 300, 300),
        (1000, 4096, 8),
        (64, 3072, 768),
        (8, 512, 512),
        (256, 4096, 1000),
        (2048, 64, 64),
        (100, 100, 1000),
        (17, 2048, 2048),
        (2048, 1024, 1),
        (2048, 1024, 128),
    ]
    for m, k, n in dense:
        x, w, b = _r(rng, m, k), _r(rng, k, n), _r(rng, n)
        cases.append((f"dense {m}x{k}->{n}", lambda x=x, w=w, b=b: fl.dense(x, w, b)))
    convs = [
        (1, 56, 56, 64, 64, 3, 1, "same"),
        (1, 28, 28, 128, 128, 3, 1, "same"),
        (1, 14, 14, 256, 256, 3, 1, "same"),
        (1, 7, 7, 512, 512, 3, 1, "same"),
        (1, 56, 56, 256, 64, 1, 1, "valid"),
        (1, 14, 14, 1024, 256, 1, 1, "valid"),
        (8, 32, 32, 3, 16, 3, 1, "same"),
        (4, 32, 32, 3, 8, 3, 1, "valid"),
        (1, 224, 224, 3, 64, 7, 2, "same"),
        (4, 16, 16, 32, 48, 5, 1, "same"),
        (2, 30, 30, 48, 96, 3, 2, "same"),
        (1, 112, 112, 32, 32, 3, 1, "same"),
        (16, 8, 8, 64, 10, 3, 1, "valid"),
        (1, 56, 56, 16, 24, 3, 1, "same"),
        (1, 28, 28, 512, 1024, 1, 2, "valid"),
    ]
    for bb, h, wd, c, f, kk, s, pad in convs:
        x, w, b = _r(rng, bb, h, wd, c), _r(rng, kk, kk, c, f), _r(rng, f)
        cases.append(
            (
                f"conv {bb}x{h}x{wd}x{c}->{f} k{kk} s{s}",
                lambda x=x, w=w, b=b, s=s, pad=pad: fl.conv2d(x, w, b, strides=s, padding=pad),
            )
        )
    for bb, t, f, u in [
        (1, 100, 32, 32),
        (8, 50, 40, 100),
        (16, 60, 96, 256),
        (128, 20, 64, 64),
        (4, 30, 300, 300),
    ]:
        x = _r(rng, bb, t, f)
        w4, r4, b4 = _r(rng, f, 4 * u) * 0.1, _r(rng, u, 4 * u) * 0.1, _r(rng, 4 * u)
        cases.append(
            (f"lstm B{bb} T{t} F{f} U{u}", lambda x=x, w=w4, r=r4, b=b4: fl.lstm(x, w, r, b))
        )
        w3, r3, b3 = _r(rng, f, 3 * u) * 0.1, _r(rng, u, 3 * u) * 0.1, _r(rng, 2, 3 * u)
        cases.append(
            (f"gru B{bb} T{t} F{f} U{u}", lambda x=x, w=w3, r=r3, b=b3: fl.gru(x, w, r, b))
        )
    for bb, hh, t, s, d, causal in [
        (1, 8, 1, 4096, 64, False),
        (2, 4, 100, 100, 32, False),
        (1, 12, 197, 197, 64, False),
        (4, 8, 128, 128, 64, True),
        (1, 16, 512, 512, 64, False),
        (8, 2, 50, 300, 128, False),
        (1, 8, 4, 2048, 128, False),
        (32, 4, 16, 16, 16, False),
    ]:
        q, k, v = _r(rng, bb, hh, t, d), _r(rng, bb, hh, s, d), _r(rng, bb, hh, s, d)
        cases.append(
            (
                f"sdpa B{bb} H{hh} T{t} S{s} D{d}{' causal' if causal else ''}",
                lambda q=q, k=k, v=v, c=causal: fl.scaled_dot_product_attention(
                    q, k, v, is_causal=c
                ),
            )
        )
    for rows, n in [(1000, 10), (64, 1000), (4096, 256), (10, 50000)]:
        x = _r(rng, rows, n)
        cases.append((f"softmax {rows}x{n}", lambda x=x: fl.softmax(x)))
    return cases


def time_call(f, budget):
    """Median of 3 batches of calls, each about `budget` seconds long (one warm-up call)."""
    f()
    t0 = time.perf_counter()
    f()
    one = time.perf_counter() - t0
    n = max(3, int(budget / max(one, 1e-7)))
    batches = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        batches.append((time.perf_counter() - t0) / n)
    return statistics.median(batches)


def child(threads, only, budget):
    """One process: print a JSON line per case, on the ISA FASTLAYERS_ISA selects."""
    import fastlayers as fl

    info = fl.runtime_info()
    want = os.environ["FASTLAYERS_ISA"]
    if info["backend"] != "cpp" or info["isa"] != want:
        # Before any timing: the ISA this process runs is not the one asked for.
        raise SystemExit(
            f"asked for the C++ path on {want}; this process runs backend {info['backend']}, "
            f"isa {info['isa']} (built: {info['isas_built']}, "
            f"CPU supports: {info['isas_supported']})"
        )
    fl.set_num_threads(threads)
    for name, f in build_cases():
        if only and not any(name.startswith(o) for o in only):
            continue
        print(json.dumps({"case": name, "t": time_call(f, budget)}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--isas", default="avx512,avx2", help="two FASTLAYERS_ISA values")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternating process pairs")
    ap.add_argument("--only", default="", help="comma-separated case-name prefixes")
    ap.add_argument("--budget", type=float, default=0.15, help="seconds per timed batch")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    only = [o for o in args.only.split(",") if o]
    if args.child:
        child(args.threads, only, args.budget)
        return 0
    isas = [i.strip().lower() for i in args.isas.split(",")]
    if len(isas) != 2 or isas[0] == isas[1]:
        ap.error("--isas takes two different levels, e.g. avx512,avx2")
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be at least 1")
    times = {}  # case -> isa -> [seconds]
    for rnd in range(args.rounds):
        for isa in isas:
            # The C++ path on that ISA, whatever FASTLAYERS_BACKEND the caller has set.
            env = dict(os.environ, FASTLAYERS_ISA=isa, FASTLAYERS_BACKEND="cpp")
            cmd = [sys.executable, os.path.abspath(__file__), "--child"]
            cmd += ["--threads", str(args.threads), "--budget", str(args.budget)]
            cmd += [f"--only={args.only}"]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"the {isa} process failed (exit status {out.returncode})")
            for line in out.stdout.splitlines():
                rec = json.loads(line)
                times.setdefault(rec["case"], {}).setdefault(isa, []).append(rec["t"])
        print(f"round {rnd + 1} of {args.rounds} done", file=sys.stderr)
    if not times:
        raise SystemExit(f"no case name starts with any of {args.only!r}")
    a, b = isas
    print(f"| case | {a} | {b} | {a} speed / {b} |")
    print("|---|---:|---:|---:|")
    for case, by_isa in times.items():
        ta, tb = statistics.median(by_isa[a]), statistics.median(by_isa[b])
        flag = " **slower**" if tb / ta < 0.93 else ""
        print(f"| {case} | {ta * 1e6:.1f} us | {tb * 1e6:.1f} us | {tb / ta:.2f}x{flag} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
