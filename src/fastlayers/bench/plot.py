"""``--plot out.png``: the speedup of fastlayers' C++ path over each peer, per case, as
grouped bars on a log scale (matplotlib, the optional extra ``fastlayers[plot]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .results import medians

PEERS = ("numpy", "torch", "ort")
_LABELS = {"numpy": "vs NumPy path", "torch": "vs PyTorch", "ort": "vs ONNX Runtime"}


def speedups(doc: Mapping[str, Any]) -> tuple[list[str], dict[str, list[float | None]]]:
    """Case ids with a cpp time, and per peer the speedup (peer time / cpp time) per case
    (None where the peer did not run). Peers that never ran are left out."""
    ids: list[str] = []
    per_peer: dict[str, list[float | None]] = {p: [] for p in PEERS}
    for case in doc["cases"]:
        t = medians(case)
        if "cpp" not in t:
            continue
        ids.append(case["id"])
        for p in PEERS:
            per_peer[p].append(t[p] / t["cpp"] if p in t else None)
    return ids, {p: v for p, v in per_peer.items() if any(x is not None for x in v)}


def _import_matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "--plot needs matplotlib, which is not installed: pip install 'fastlayers[plot]' "
            f"(or pip install matplotlib) ({exc})"
        ) from exc
    return Figure, FigureCanvasAgg


def plot_speedups(doc: Mapping[str, Any], out_path: str) -> None:
    """Write a PNG of the cpp speedups over each peer (log scale, 1x marked) to ``out_path``.

    Raises ImportError naming the ``fastlayers[plot]`` extra when matplotlib is missing, and
    ValueError when no case has a cpp time to compare."""
    Figure, FigureCanvasAgg = _import_matplotlib()
    ids, per_peer = speedups(doc)
    if not ids or not per_peer:
        raise ValueError("--plot: no case has both a cpp time and a peer's time to compare")
    mach = doc.get("machine", {})
    fig = Figure(figsize=(max(6.0, 0.45 * len(ids) + 2.0), 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(per_peer)
    for j, (peer, values) in enumerate(per_peer.items()):
        xs = [i - 0.4 + width * (j + 0.5) for i, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        ax.bar(xs, ys, width=width, label=_LABELS[peer])
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels(ids, rotation=60, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(ids) - 0.4)
    ax.set_ylabel("speedup of fastlayers cpp (peer time / cpp time)")
    ax.set_title(
        f"fastlayers {mach.get('versions', {}).get('fastlayers', '?')}, "
        f"isa {mach.get('isa') or '-'}, {mach.get('threads', '?')} thread(s), "
        f"{doc.get('date', '')[:10]}\n{mach.get('cpu', '')[:90]}",
        fontsize=9,
    )
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, format="png")
