"""Which path runs a call: the compiled core (``cpp``) or the NumPy reference (``numpy``).

The choice is made per call by :func:`resolve`:

* ``"numpy"``: always the NumPy path.
* ``"cpp"``: the C++ path, or ``NotImplementedError`` naming the op and the reason
  when the core did not import or does not serve that call. It never falls back
  silently, so a test or benchmark of ``"cpp"`` measures C++.
* ``"auto"`` (default): C++ when the core imported and serves the call, else NumPy.

Fallback happens only on "not importable" or an explicit "unsupported" check made
before the call, never by catching an error raised inside C++.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator

BACKENDS = ("auto", "cpp", "numpy")

# The ops that have a C++ path (for at least their plain case). Each op still
# decides per call, in fastlayers/functional.py (run_<op>), whether C++ serves that call.
CPP_OPS = frozenset(
    {
        "softmax",
        "dense",
        "matmul",
        "conv2d",
        "lstm",
        "lstm_cell",
        "gru",
        "scaled_dot_product_attention",
        "attention",
        "additive_attention",
        "multi_head_attention",
    }
)

try:  # the compiled module; missing when running from an unbuilt source tree
    _core = importlib.import_module(f"{__package__}._core")

    CORE_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - exercised by NumPy-only runs
    _core = None
    CORE_ERROR = f"{type(exc).__name__}: {exc}"


_ACT_IDS: dict = {}


def cpp_activation_ids() -> dict:
    """Keras activation name -> id of the core's elementwise activation kernels."""
    if not _ACT_IDS and _core is not None:
        _ACT_IDS.update(_core.activation_ids())
    return _ACT_IDS


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, one of {BACKENDS}; got {type(name).__name__}")
    key = name.strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    return key


def _initial_backend() -> str:
    env = os.environ.get("FASTLAYERS_BACKEND", "").strip()
    if not env:
        return "auto"
    try:
        return _check_name(env)
    except ValueError as exc:
        raise ValueError(f"FASTLAYERS_BACKEND: {exc}") from None


# A context variable, so that use_backend() in one thread does not leak into another.
_backend: contextvars.ContextVar[str] = contextvars.ContextVar(
    "fastlayers_backend",
    default=_initial_backend(),  # noqa: B039 (a str: immutable)
)


def core_available() -> bool:
    """True when the compiled core ``fastlayers._core`` imported."""
    return _core is not None


def set_backend(name: str) -> None:
    """Choose the path for subsequent calls: ``"auto"``, ``"cpp"`` or ``"numpy"``."""
    _backend.set(_check_name(name))


def get_backend() -> str:
    """The backend in force: ``"auto"``, ``"cpp"`` or ``"numpy"``."""
    return _backend.get()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager that sets the backend for the calls inside the ``with`` block."""
    token = _backend.set(_check_name(name))
    try:
        yield
    finally:
        _backend.reset(token)


def resolve(op: str, unsupported: str | None) -> str:
    """Return ``"cpp"`` or ``"numpy"`` for one call of ``op``.

    ``unsupported`` is None when the C++ path serves this call, otherwise a short
    reason ("mask", "axis tuple", "not implemented in C++ yet", ...).
    """
    backend = _backend.get()
    if backend == "numpy":
        return "numpy"
    if _core is None:
        if backend == "cpp":
            raise NotImplementedError(
                f"{op}: backend 'cpp' was requested but the compiled core "
                f"fastlayers._core did not import ({CORE_ERROR})"
            )
        return "numpy"
    if unsupported is not None:
        if backend == "cpp":
            raise NotImplementedError(f"{op}: the C++ path does not serve this call: {unsupported}")
        return "numpy"
    return "cpp"


# ----------------------------------------------------------------------------- threads

_numpy_only_threads = [1]  # what get_num_threads() reports when there is no core


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Set the number of threads the C++ kernels use (the NumPy path uses NumPy's BLAS)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if _core is not None:
        _core.set_num_threads(n)
    _numpy_only_threads[0] = n


def get_num_threads() -> int:
    """The number of threads the C++ kernels use."""
    if _core is not None:
        return int(_core.get_num_threads())
    return _numpy_only_threads[0]


def _init_threads() -> None:
    env = os.environ.get("FASTLAYERS_NUM_THREADS", "").strip()
    n = _default_threads()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(
                f"FASTLAYERS_NUM_THREADS must be a positive integer, got {env!r}"
            ) from None
        if n < 1:
            raise ValueError(f"FASTLAYERS_NUM_THREADS must be a positive integer, got {env!r}")
    set_num_threads(n)


_init_threads()
