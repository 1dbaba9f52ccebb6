"""The public benchmark per ISA level and thread count, several rounds, as one table.

What an issue's closing note needs on a shared, noisy host (docs/benchmarks.md): the C++ path's
time, its ratios to NumPy and PyTorch (each measured within one run, same process, same
threads) and its fraction of the FMA peak, for every public shape and every ISA level, as the
median of a few runs, with the ratio of the ISA levels' times.

    python tools/isa_table.py --out runs/                 # avx512,avx2 x 1,2 threads x 3 rounds
    python tools/isa_table.py --out runs/ --isas avx2,scalar --threads 1 --rounds 5
    python tools/isa_table.py --load runs/                # print the table of an earlier run

Each round runs `python -m fastlayers.bench --no-models --full --json ...` once per thread
count and ISA level (FASTLAYERS_ISA is read at import), the levels alternating, so a slow
phase of the host hits them alike; each run is kept as <out>/r<round>_<isa>_t<threads>.json
(the bench's own JSON, readable with `python -m fastlayers.bench --load`); --out must not
already hold such files. Before the first round a short child per level checks that
FASTLAYERS_ISA selects it on this machine. A round (two levels, two thread counts) took 4-8
minutes on a 2-core Zen 4, so the default run takes 10-25 minutes.

In the table a ratio is peer time / fastlayers time (> 1: fastlayers faster), the median of
the runs' own ratios; times and % of peak are medians too. Ratios that print below 1.00x are
bold. The last columns give the first ISA level's speed against each other level: the other
level's median time / the first level's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

_RUN_NAME = re.compile(r"^r(\d+)_([a-z0-9]+)_t(\d+)\.json$")


def run_path(out: Path, rnd: int, isa: str, threads: int) -> Path:
    return out / f"r{rnd}_{isa}_t{threads}.json"


def run_files(out: Path) -> list[Path]:
    """The run files (r<round>_<isa>_t<threads>.json) in out."""
    return sorted(p for p in out.iterdir() if _RUN_NAME.match(p.name))


def load_runs(out: Path) -> dict:
    """{(isa, threads): [bench JSON of each round, in round order]} for every run file in out,
    each checked by fastlayers.bench.results.load (ValueError names a file that is not a run)."""
    from fastlayers.bench import results

    found: dict = {}
    for p in run_files(out):
        m = _RUN_NAME.match(p.name)
        key = (m.group(2), int(m.group(3)))
        found.setdefault(key, []).append((int(m.group(1)), results.load(str(p))))
    return {k: [d for _, d in sorted(v, key=lambda rv: rv[0])] for k, v in found.items()}


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"**{r:.2f}x**" if round(r, 2) < 1.0 else f"{r:.2f}x"


def _median_ratio(cases: list, peer: str) -> float | None:
    """Median over runs of peer time / cpp time, each within its run (cases all have a cpp
    path); None if the peer was never timed."""
    rs = [
        c["paths"][peer]["median_s"] / c["paths"]["cpp"]["median_s"]
        for c in cases
        if peer in c["paths"]
    ]
    return statistics.median(rs) if rs else None


def render(runs: dict, isas: list[str]) -> str:
    """The markdown tables (one per thread count) of load_runs' result, ISA levels in `isas`
    order (the first one is compared with each other one)."""
    from fastlayers.bench import report

    lines = []
    for threads in sorted({t for _, t in runs}):
        have = [isa for isa in isas if (isa, threads) in runs]
        if not have:
            continue
        first = runs[(have[0], threads)][0]["machine"]
        peaks, counts = [], []
        for isa in have:
            got = [r["machine"].get("peak_total_gflops") for r in runs[(isa, threads)]]
            got = [g for g in got if g is not None]
            peaks.append(f"{isa} {statistics.median(got):.1f}" if got else f"{isa} -")
            counts.append(f"{isa} {len(runs[(isa, threads)])}")
        blas = (first.get("blas") or [{}])[0]
        torch_v = first.get("versions", {}).get("torch")
        torch = (
            f"PyTorch {torch_v} (CPU capability {first.get('torch_cpu_capability')})"
            if torch_v
            else "PyTorch not installed"
        )
        lines += [
            "",
            f"### {threads} thread(s); {first.get('cpu', '?')}; runs: {', '.join(counts)}",
            "",
            f"FMA peak probe (GFLOP/s): {', '.join(peaks)}. Peers: NumPy "
            f"{first.get('versions', {}).get('numpy')} (BLAS {blas.get('internal_api', '?')} "
            f"{blas.get('architecture', '?')}, pin {first.get('blas_pin', '?')}), {torch}.",
            "",
        ]
        head = ["shape"]
        for isa in have:
            head += [f"{isa} cpp", "vs NumPy", "vs PyTorch", "% peak"]
        head += [f"{have[0]} speed / {isa}" for isa in have[1:]]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|---|" + "---:|" * (len(head) - 1))
        ids = []  # every case of any run, in first-seen order
        for isa in have:
            for r in runs[(isa, threads)]:
                ids += [c["id"] for c in r["cases"] if c["id"] not in ids]
        for cid in ids:
            row = [cid]
            times = {}
            for isa in have:
                cases = [c for r in runs[(isa, threads)] for c in r["cases"] if c["id"] == cid]
                cases = [c for c in cases if "cpp" in c["paths"]]
                cpp = [c["paths"]["cpp"]["median_s"] for c in cases]
                if not cpp:
                    row += ["-"] * 4
                    continue
                times[isa] = statistics.median(cpp)
                peak = ""
                if cases[0].get("compute_bound"):
                    pct = [c["paths"]["cpp"].get("percent_of_peak") for c in cases]
                    pct = [p for p in pct if p is not None]
                    peak = f"{statistics.median(pct):.0f} %" if pct else ""
                row += [
                    report.fmt_time(times[isa]),
                    _fmt_ratio(_median_ratio(cases, "numpy")),
                    _fmt_ratio(_median_ratio(cases, "torch")),
                    peak,
                ]
            for isa in have[1:]:
                ok = have[0] in times and isa in times
                row.append(_fmt_ratio(times[isa] / times[have[0]]) if ok else "-")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _csv(text: str) -> list[str]:
    return [s.strip().lower() for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="directory for the runs' JSON files")
    ap.add_argument("--load", type=Path, help="print the table of the runs in this directory")
    ap.add_argument("--isas", default="avx512,avx2", help="ISA levels, compared to the first")
    ap.add_argument("--threads", default="1,2", help="thread counts (comma-separated)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7, help="samples per path and run")
    ap.add_argument("--paths", default="cpp,numpy,torch")
    ap.add_argument("--only", default=None, help="case id prefixes (the bench's --only)")
    args = ap.parse_args(argv)
    isas = _csv(args.isas)
    if not isas or len(set(isas)) != len(isas):
        ap.error("--isas: one or more distinct ISA levels")
    if (args.out is None) == (args.load is None):
        ap.error("give --out (run the benchmark) or --load (print an earlier run)")
    if args.load is not None:
        if not args.load.is_dir():
            ap.error(f"--load: {args.load} is not a directory")
        try:
            runs = load_runs(args.load)
        except (OSError, ValueError) as exc:
            ap.error(f"--load: {exc}")
        if not runs:
            ap.error(f"--load: no r<round>_<isa>_t<threads>.json files in {args.load}")
        print(render(runs, isas + sorted({i for i, _ in runs} - set(isas))))
        return 0
    try:
        threads = [int(t) for t in _csv(args.threads)]
    except ValueError:
        ap.error("--threads: comma-separated integers")
    if not threads or min(threads) < 1 or args.rounds < 1 or args.repeats < 1:
        ap.error("--threads, --rounds and --repeats must be at least 1")
    if len(set(threads)) != len(threads):
        ap.error("--threads: distinct thread counts")
    if "cpp" not in _csv(args.paths):
        ap.error("--paths must include cpp")
    existing = next(p for p in (args.out, *args.out.parents) if p.exists())
    if not existing.is_dir():
        ap.error(f"--out: {existing} exists and is not a directory")
    if args.out.is_dir() and run_files(args.out):
        ap.error(f"--out: {args.out} already holds runs (print them with --load)")
    for isa in isas:  # a few seconds each, rather than a whole run on the wrong level
        probe = "import json, fastlayers as fl; print(json.dumps(fl.runtime_info()))"
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            env=dict(os.environ, FASTLAYERS_ISA=isa),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            print(f"importing fastlayers with FASTLAYERS_ISA={isa} failed", file=sys.stderr)
            return 1
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        if info.get("isa") != isa:
            print(
                f"FASTLAYERS_ISA={isa} runs {info.get('isa')} here (no compiled core: None; "
                f"built: {info.get('isas_built')}, this CPU: {info.get('isas_supported')})",
                file=sys.stderr,
            )
            return 1
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. no permission
        ap.error(f"--out: {exc}")
    for rnd in range(1, args.rounds + 1):
        for t in threads:
            for isa in isas:
                dest = run_path(args.out, rnd, isa, t)
                cmd = [
                    sys.executable,
                    "-m",
                    "fastlayers.bench",
                    "--no-models",
                    "--full",
                    "--threads",
                    str(t),
                    "--repeats",
                    str(args.repeats),
                    "--paths",
                    args.paths,
                    "--json",
                    str(dest),
                ]
                if args.only:
                    cmd += ["--only", args.only]
                env = dict(os.environ, FASTLAYERS_ISA=isa)  # the bench forces each path
                print(
                    f"round {rnd}/{args.rounds}, {t} thread(s), {isa} ...",
                    file=sys.stderr,
                    flush=True,
                )
                proc = subprocess.run(
                    cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                )
                if proc.returncode != 0:
                    sys.stderr.write(proc.stderr)
                    print(
                        f"the bench failed ({isa}, {t} thread(s)); runs so far are in {args.out}",
                        file=sys.stderr,
                    )
                    return 1
    print(render(load_runs(args.out), isas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
