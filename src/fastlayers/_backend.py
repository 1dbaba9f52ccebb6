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

import contextvars
import importlib
import numbers
import os
import warnings

BACKENDS = ("auto", "cpp", "numpy")

# The Keras activations the core runs (its elementwise table, aliases included, and softmax on
# the row kernel); fastlayers.activations.<name> takes the C++ path for these. A test checks
# the list against the core's table (_core.activation_ids()).
CPP_ACTIVATIONS = (
    "celu", "elu", "exponential", "gelu", "gelu_tanh", "hard_shrink", "hard_sigmoid",
    "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "mish",
    "relu", "relu6", "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus",
    "softsign", "sparse_plus", "sparse_sigmoid", "squareplus", "swish", "tanh", "tanh_shrink",
)

# The ops that have a C++ path (for at least their plain case). Each op still
# decides per call, in fastlayers/functional.py (run_<op>), whether C++ serves that call.
CPP_OPS = frozenset(
    {f"activations.{name}" for name in CPP_ACTIVATIONS}
    | {
        "softmax",
        "dense",
        "experts",  # layers.Experts: the dense GEMMs of each expert
        "matmul",
        "conv2d",  # with conv1d, depthwise_conv2d and separable convs, on the same kernels
        "conv2d_transpose",
        "conv3d",  # Conv3D: the indirect GEMM over the depth-stacked input
        "pool2d",  # the max and average pooling layers
        "lstm",
        "lstm_cell",
        "gru",
        "simple_rnn",
        "scaled_dot_product_attention",
        "attention",
        "additive_attention",
        "multi_head_attention",
        "layer_norm",
        "group_norm",
        "rms_norm",
        "unit_norm",
        "resize",
        "adaptive_pool",
        "global_pool",
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


ISAS = ("scalar", "avx2", "avx512", "neon")


def _check_isa_cap() -> None:
    """FASTLAYERS_ISA (the core reads it when it loads): a name that is no ISA raises, as the
    other FASTLAYERS_* variables do, also without the core (the core alone would run its best
    ISA without a word); an ISA this build or CPU lacks warns, and the best one runs (so that
    one setting, such as avx512 in a test script, works on every machine). ``ISAS`` are the
    names the core knows (csrc/runtime/dispatch.cpp)."""
    cap = os.environ.get("FASTLAYERS_ISA", "")  # empty: unset, as for the core
    if cap and cap.strip().lower() not in ISAS:
        raise ValueError(f"FASTLAYERS_ISA must be one of {', '.join(ISAS)}, got {cap!r}")
    message = _core.runtime_info()["isa_cap_message"] if _core is not None else ""
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=2)


_check_isa_cap()

# The process-wide setting (set_backend: every thread, also threads started later), and a
# context variable for use_backend blocks (None outside them), so that a block in one thread
# does not leak into another (docs/semantics.md §16).
_process_backend: list[str] = [_initial_backend()]
_block_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastlayers_backend", default=None
)


def core_available() -> bool:
    """True when the compiled core ``fastlayers._core`` imported."""
    return _core is not None


def set_backend(name: str) -> None:
    """Choose the path for subsequent calls in the whole process (every thread, including
    threads started later): ``"auto"``, ``"cpp"`` or ``"numpy"``. Inside a
    :func:`use_backend` block, the block's choice still applies to that block."""
    _process_backend[0] = _check_name(name)


def get_backend() -> str:
    """The backend in force here: the enclosing ``use_backend`` block's, else the process's."""
    return _current()


# Whether repeated calls may skip the checks: direct layer calls (``Layer.__call__``), direct
# op calls (functional.py) and models' shape plans (models/shape_plan.py), all on the C++
# path. ``models.shape_plan.disabled()`` clears it in a block (docs/architecture.md §14).
fast_calls: contextvars.ContextVar[bool] = contextvars.ContextVar("fast_calls", default=True)


def _current() -> str:
    block = _block_backend.get()
    return _process_backend[0] if block is None else block


class use_backend:  # noqa: N801 - used as a function: ``with use_backend("numpy"):``
    """Context manager that sets the backend for the calls inside the ``with`` block (in
    the thread or task that entered it). A class, not a generator: entering and leaving
    cost about a quarter as much (it wraps single small calls in the benchmarks). Write
    ``with use_backend(...)`` where it is needed; one object is not meant to be entered by
    several threads at once (as with contextlib's context managers)."""

    __slots__ = ("_name", "_tokens")

    def __init__(self, name: str) -> None:
        self._name = _check_name(name)
        self._tokens: list = []  # a stack: the same object may be entered again inside

    def __enter__(self) -> None:
        self._tokens.append(_block_backend.set(self._name))

    def __exit__(self, *exc: object) -> None:
        _block_backend.reset(self._tokens.pop())


def resolve(op: str, unsupported: str | None) -> str:
    """Return ``"cpp"`` or ``"numpy"`` for one call of ``op``.

    ``unsupported`` is None when the C++ path serves this call, otherwise a short
    reason ("mask", "axis tuple", "not implemented in C++ yet", ...).
    """
    backend = _current()
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


def _cgroup_cpu_limit() -> int | None:
    """The CPUs a cgroup CPU quota allows (cgroup v2 cpu.max, v1 cfs quota), rounded up;
    None when there is no quota or it cannot be read."""
    candidates = [("/sys/fs/cgroup/cpu.max", None)]
    candidates.append(
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    )
    for quota_path, period_path in candidates:
        try:
            with open(quota_path) as f:
                fields = f.read().split()
            if period_path is not None:
                with open(period_path) as f:
                    fields = fields[:1] + f.read().split()[:1]
        except OSError:
            continue
        if len(fields) < 2 or fields[0] in ("max", "-1"):
            return None
        try:
            quota, period = int(fields[0]), int(fields[1])
        except ValueError:
            return None
        if quota > 0 and period > 0:
            return max(1, -(-quota // period))
    return None


def _default_threads() -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota (so N
    worker processes on N cores, or a container with a CPU limit, do not oversubscribe)."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        n = max(1, os.cpu_count() or 1)
    limit = _cgroup_cpu_limit()
    return min(n, limit) if limit is not None else n


def max_threads() -> int:
    """The largest thread count set_num_threads accepts: 4 x the CPUs this process may use
    (more threads than that only wait for each other), and never over 4096."""
    return min(4 * _default_threads(), 4096)


def set_num_threads(n: int) -> None:
    """Set the number of threads the C++ kernels use (the NumPy path uses NumPy's BLAS).

    ``n`` is an integer from 1 to 4 x the CPUs this process may use (``_backend.max_threads()``);
    anything else raises ValueError (TypeError for a non-integer).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    n = int(n)
    limit = max_threads()
    if not 1 <= n <= limit:
        raise ValueError(
            f"set_num_threads: n must be in [1, {limit}] (4 x the {_default_threads()} CPUs "
            f"this process may use), got {n}"
        )
    if _core is not None:
        _core.set_num_threads(n)
    _numpy_only_threads[0] = n


def get_num_threads() -> int:
    """The number of threads the C++ kernels use."""
    if _core is not None:
        return int(_core.get_num_threads())
    return _numpy_only_threads[0]


def set_output_cache_limit(max_bytes: int) -> int:
    """Set how much freed output memory the C++ path keeps for its next outputs, in bytes;
    return the previous limit.

    Outputs of 4 KiB and more are allocated by the core; when one is freed its memory is
    kept (up to 16 blocks, 128 MiB by default) and the next output of at least half its size
    reuses it, while it is still in the CPU's caches (docs/architecture.md §8; measured in
    docs/performance.md §12 item 10). One block larger than the limit is kept besides, the
    last freed (a language model's logits: a fresh mapping of that size page-faults on every
    call). ``0`` frees what is kept and keeps nothing from then on. Without the compiled
    core there is nothing to keep: returns 0. ``max_bytes`` is an
    integer >= 0 (ValueError otherwise; TypeError for a non-integer); values above 2**63 - 1
    are taken as 2**63 - 1.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Integral):
        raise TypeError(
            f"set_output_cache_limit: max_bytes must be an int, got {type(max_bytes).__name__}"
        )
    if max_bytes < 0:
        raise ValueError(f"set_output_cache_limit: max_bytes must be >= 0, got {max_bytes}")
    if _core is None:
        return 0
    return int(_core.output_cache_limit(min(int(max_bytes), 2**63 - 1))[0])


def _omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a thread count, or None when unset or not a positive integer.

    Process managers set it to share the CPUs among workers (Dask's nanny sets it to 1 in
    every worker process, as do many job schedulers), so fastlayers follows it by default as
    PyTorch and OpenBLAS do. It is another library's variable: a value fastlayers cannot use
    (a list such as "4,2", 0, garbage) is ignored rather than refused."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not (value.isascii() and value.isdigit()) or int(value) < 1:  # not "²": no int
        return None
    return min(int(value), max_threads())


def _init_threads() -> None:
    """The thread count at import: ``FASTLAYERS_NUM_THREADS`` if set (an invalid value raises),
    else ``OMP_NUM_THREADS`` if it is a positive integer, else :func:`_default_threads`."""
    env = os.environ.get("FASTLAYERS_NUM_THREADS", "").strip()
    n = _default_threads()
    if not env:
        n = _omp_threads() or n
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(
                f"FASTLAYERS_NUM_THREADS must be a positive integer, got {env!r}"
            ) from None
        if not 1 <= n <= max_threads():
            raise ValueError(
                f"FASTLAYERS_NUM_THREADS must be an integer in [1, {max_threads()}] (4 x the "
                f"CPUs this process may use), got {env!r}"
            )
    set_num_threads(n)


_init_threads()
