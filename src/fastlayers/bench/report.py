"""The benchmark's output: the header and one row per case, as aligned text or as a
markdown table (``--markdown``, to paste into a note). The JSON document and the
comparison of two runs are in :mod:`fastlayers.bench.results`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .machine import percent_of_peak

# (title, width, left-aligned); the % of peak column only when a peak was measured.
_COLUMNS = [
    ("id", 16, True),
    ("shape", 42, True),
    ("numpy", 10, False),
    ("cpp", 10, False),
    ("torch", 10, False),
    ("ort", 10, False),
    ("cpp/numpy", 9, False),
    ("cpp/torch", 9, False),
    ("cpp/ort", 9, False),
    ("GFLOP/s", 8, False),
]
_PEAK_COLUMN = ("% peak", 7, False)

# The model cases' table (docs/benchmarks.md §12): fastlayers' two paths, Keras called and
# through predict, PyTorch, and cpp's speedup over the faster Keras way and over PyTorch.
MODEL_COLUMNS = [
    ("id", 24, True),
    ("model (id ends with the batch)", 62, True),
    ("numpy", 10, False),
    ("cpp", 10, False),
    ("keras", 10, False),
    ("keras.predict", 13, False),
    ("torch", 10, False),
    ("cpp/keras", 9, False),
    ("cpp/torch", 9, False),
]


def columns(with_peak: bool) -> list[tuple[str, int, bool]]:
    return _COLUMNS + [_PEAK_COLUMN] if with_peak else list(_COLUMNS)


def fmt_time(sec: float | None) -> str:
    if sec is None:
        return "-"
    if sec < 1e-3:
        return f"{sec * 1e6:.1f} us"
    if sec < 1.0:
        return f"{sec * 1e3:.2f} ms"
    return f"{sec:.2f} s"


def row_cells(
    case_id: str,
    desc: str,
    flops: float,
    compute_bound: bool,
    times: Mapping[str, float],
    peak_total: float | None,
) -> list[str]:
    """One row: times per path, speedups of cpp over each peer, GFLOP/s (of cpp where it
    serves the op, else of numpy) and, for a compute-bound shape with a measured peak,
    cpp's % of ``peak_total`` (the peak of the cores the run's threads can use)."""
    t_np, t_cpp = times.get("numpy"), times.get("cpp")
    t_torch, t_ort = times.get("torch"), times.get("ort")
    best = t_cpp if t_cpp is not None else t_np
    cells = [
        case_id,
        desc,
        fmt_time(t_np),
        fmt_time(t_cpp),
        fmt_time(t_torch),
        fmt_time(t_ort),
        f"{t_np / t_cpp:.2f}x" if t_cpp and t_np else "-",
        f"{t_torch / t_cpp:.2f}x" if t_cpp and t_torch else "-",
        f"{t_ort / t_cpp:.2f}x" if t_cpp and t_ort else "-",
        f"{flops / best / 1e9:.1f}" if best else "-",
    ]
    if peak_total is not None:
        pct = percent_of_peak(flops, t_cpp, peak_total) if compute_bound else None
        cells.append(f"{pct:.0f} %" if pct is not None else "")
    return cells


def format_header(items: Sequence[tuple[str, str]], markdown: bool) -> list[str]:
    if markdown:
        return [f"- {k}: {v}" for k, v in items] + [""]
    width = max(len(k) for k, _ in items)
    return [f"{k + ':':<{width + 1}} {v}" for k, v in items]


def model_row_cells(case_id: str, desc: str, times: Mapping[str, float]) -> list[str]:
    """One model row: times per path; cpp/keras is over the faster of Keras's call and
    predict (peer time / cpp time)."""
    t_cpp, t_torch = times.get("cpp"), times.get("torch")
    keras = [t for t in (times.get("keras"), times.get("keras-predict")) if t is not None]
    t_keras = min(keras) if keras else None
    return [
        case_id,
        desc,
        fmt_time(times.get("numpy")),
        fmt_time(t_cpp),
        fmt_time(times.get("keras")),
        fmt_time(times.get("keras-predict")),
        fmt_time(t_torch),
        f"{t_keras / t_cpp:.2f}x" if t_cpp and t_keras else "-",
        f"{t_torch / t_cpp:.2f}x" if t_cpp and t_torch else "-",
    ]


def format_table_head(
    with_peak: bool, markdown: bool, cols: Sequence[tuple[str, int, bool]] | None = None
) -> list[str]:
    cols = columns(with_peak) if cols is None else cols
    if markdown:
        return [
            "| " + " | ".join(c[0] for c in cols) + " |",
            "|" + "|".join("---" if left else "---:" for _, _, left in cols) + "|",
        ]
    line = format_row([c[0] for c in cols], markdown=False, cols=cols)
    return [line, "-" * len(line)]


def format_row(
    cells: Sequence[str], markdown: bool, cols: Sequence[tuple[str, int, bool]] | None = None
) -> str:
    if markdown:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    if cols is None:
        cols = columns(len(cells) > len(_COLUMNS))
    if len(cells) != len(cols):
        raise ValueError(f"{len(cells)} cells for {len(cols)} columns")
    out = []
    for cell, (_, width, left) in zip(cells, cols):
        out.append(f"{cell:<{width}}" if left else f"{cell:>{width}}")
    return " ".join(out).rstrip()


def footer(with_peak: bool) -> list[str]:
    lines = [
        "speedup columns: time of the peer / time of cpp (> 1 means cpp is faster); "
        "GFLOP/s of cpp where it serves the op, else of numpy"
    ]
    if with_peak:
        lines.append(
            "% peak: cpp's GFLOP/s over the measured FMA peak of the cores used, "
            "for the compute-bound shapes only"
        )
    return lines


def model_footer() -> list[str]:
    return [
        "model rows: cpp/keras is over the faster of keras (model(x, training=False) under "
        "torch.no_grad()) and keras.predict (one batch); torch is the same model written in "
        "PyTorch (eval, inference_mode), same weights"
    ]
