"""Type stubs for the compiled core ``fastlayers._core`` (csrc/bindings/).

Array arguments must already be float32, C-contiguous, aligned and in native byte
order (fastlayers/_validation.py converts them); the core never copies silently.
"""

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

def softmax_lastdim(
    x: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_] | None = None,
    limits: bool = True,
) -> npt.NDArray[np.float32]:
    """Softmax over the last axis of a C-contiguous float32 array of rank >= 1.

    mask: bool/uint8, C-contiguous, x's shape; False entries get -1e9 before and 0
    after the softmax (Keras Softmax layer). limits=False (no mask): a row holding +inf,
    or only -inf, is NaN (PyTorch's rule), not its limit."""

def group_norm_nhwc(
    x: npt.NDArray[np.float32],
    gamma: npt.NDArray[np.float32] | None = None,
    beta: npt.NDArray[np.float32] | None = None,
    groups: int = 1,
    epsilon: float = 1e-3,
) -> npt.NDArray[np.float32]:
    """GroupNormalization of x (N, pixels, C): groups of C / groups consecutive channels."""

def layer_norm_lastdim(
    x: npt.NDArray[np.float32],
    gamma: npt.NDArray[np.float32] | None = None,
    beta: npt.NDArray[np.float32] | None = None,
    epsilon: float = 1e-3,
) -> npt.NDArray[np.float32]:
    """LayerNormalization over the last axis of a C-contiguous float32 array of rank >= 1;
    gamma and beta (n,) or None. One summation order: the same bits on every ISA."""

def global_pool(x: npt.NDArray[np.float32], average: bool) -> npt.NDArray[np.float32]: ...
def channel_affine_lastdim(
    x: npt.NDArray[np.float32],
    scale: npt.NDArray[np.float32],
    shift: npt.NDArray[np.float32],
    act: int = 0,
) -> npt.NDArray[np.float32]:
    """act(x * scale + shift) over the last axis, scale and shift (n,): the product rounded,
    then the sum (NumPy's bits); act an activation id (0: none). A new array."""

def rms_norm_lastdim(
    x: npt.NDArray[np.float32],
    scale: npt.NDArray[np.float32] | None = None,
    epsilon: float = 1e-6,
    unit: bool = False,
) -> npt.NDArray[np.float32]:
    """RMSNormalization over the last axis (squares summed in double), scale (n,) or None;
    unit=True: UnitNormalization (no scale). The same bits on every ISA."""

def resample_axis(
    x: npt.NDArray[np.float32],
    idx: npt.NDArray[np.int64],
    w: npt.NDArray[np.float32],
    count: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """Resampling along the middle axis of x (outer, n_in, inner): output j is the sum over
    k < count[j] of x[:, idx[j, k]] * w[j, k], in tap order, float32, no FMA (Resizing's
    taps); idx (n_out, taps) in [0, n_in), count (n_out,) in [1, taps]. The same bits on every
    ISA."""

def adaptive_pool2d(
    x: npt.NDArray[np.float32], output_size: tuple[int, int], average: bool
) -> npt.NDArray[np.float32]:
    """Adaptive max or average pooling of x (n, h, w, c) to (n, oh, ow, c) (PyTorch's
    windows; averages summed in double, rows then columns, the NumPy path's bits)."""

def pool2d(
    x: npt.NDArray[np.float32],
    pool: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    average: bool,
) -> npt.NDArray[np.float32]:
    """Max or average pooling of x (n, h, w, c); pads (top, bottom, left, right). The taps
    in the NumPy path's order: the same bits."""

def attention(
    q: npt.NDArray[np.float32],
    k: npt.NDArray[np.float32],
    v: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32] | None,
    weights: npt.NDArray[np.float32] | None = None,
    mask: npt.NDArray[np.bool_] | None = None,
    causal: bool = False,
    rule: int = 0,
    scale: float = 1.0,
    additive: bool = False,
    pre: float = 1.0,
    post: float = 1.0,
    add_w: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """out[b, h] = softmax(scores(q[b, h], k[b, h]) masked) @ v[b, h], blocked (ops.h).
    Returns out; out None: a new C-contiguous (B, H, T, Dv) array, returned.

    q (B, H, T, D), k (B, G, S, D), v (B, G, S, Dv), out (B, H, T, Dv): float32 views
    with a contiguous last dim (other strides free; out must not overlap the inputs). G = H,
    or G dividing H: each key/value head serves H / G consecutive query heads, read in
    place (grouped-query attention).
    rule: 0 fused (-0.7 * FLT_MAX), 1 subtract 1e9, 2 Softmax layer. Dot scores are
    scale * q.k; additive scores post * sum(add_w * tanh(pre * (q + k))). weights
    (B, H, T, S) C-contiguous is written if given; mask (B, H, T, S) bool view, True =
    attend."""

def activation_ids() -> dict[str, int]:
    """Keras name -> id of each elementwise activation (aliases swish, hard_swish included)."""

def activate(x: npt.NDArray[np.float32], id: int) -> npt.NDArray[np.float32]:
    """Elementwise activation ``id`` of a C-contiguous float32 array; returns a new array."""

def set_num_threads(n: int) -> None: ...
def set_contention_backoff(on: bool) -> None: ...
def contention_backoff() -> bool: ...
def get_num_threads() -> int: ...
def default_num_threads() -> int: ...
def plain_f32_shapes(*arrays: Any) -> tuple[tuple[int, ...], ...] | None:
    """The arrays' shapes when every one is an exact ndarray of native float32, C-contiguous
    and aligned (fastlayers._checks.unchanged), else None."""
def empty_f32(shape: Sequence[int]) -> np.ndarray:
    """A new uninitialized C-contiguous float32 array; 64-byte aligned from 4 KiB on."""

ALIGNED_OUTPUT_BYTES: int  # outputs from this size on start on a 64-byte boundary
def output_cache_limit(max_bytes: int | None = None) -> tuple[int, int]:
    """The freed output blocks kept for the next outputs (bindings/output_cache.cpp): sets
    the bytes it may keep (0: none; None only queries); returns (previous limit, bytes held)."""
def pool_stats() -> dict[str, int]:
    """Thread-pool counters: regions, workers_signalled, worker_wakeups, chunks_taken_over,
    late_workers_called, backoffs, serial_by_backoff, masks_given_back."""

def _debug_pool_wake_delay(us: int) -> None:
    """Test hook: a worker woken with a region sleeps us microseconds first; 0 turns it off."""

def _debug_run_alone(fn: Callable[[], Any]) -> Any:
    """Test hook: calls fn() with every parallel region it starts run on this thread alone."""

def _debug_units_split_close_at(step: int) -> None:
    """Test hook: step >= 0 runs every LSTM/GRU/SimpleRNN units split as if its workers never
    came (the caller takes their shares, then closes the split at that step); -1 turns it
    off."""

def _debug_units_split_leave_at(step: int, delay_us: int = 0) -> None:
    """Test hook: step >= 0 makes the caller of every LSTM/GRU/SimpleRNN units split act at
    that step as after a stalled phase (call its workers onto its CPU, ask them to leave),
    after sleeping delay_us microseconds while its workers run on; -1 turns it off."""

def _debug_recurrent_projection_fail_at(step: int) -> None:
    """Test hook: step >= 0 makes the LSTM/GRU/SimpleRNN input projection of the time chunk
    holding that processing step (k = T-1-t with go_backwards) raise MemoryError
    (std::bad_alloc); -1 turns it off."""

def _debug_recurrent_sliced_projections() -> int:
    """Test hook: how many LSTM/GRU/SimpleRNN time-chunk projections were cut into slices of
    unit blocks (a units split run on one thread)."""

def _debug_units_split_closes() -> int:
    """Test hook: how many LSTM/GRU/SimpleRNN units splits have been closed so far."""

def _debug_parallel_for(n: int) -> tuple[int, int]:
    """Test hook: a parallel_for of n one-item chunks -> (chunks run, distinct threads)."""

def fma_peak_probe(isa: str, seconds: float = 0.2) -> float:
    """One core's float32 FMA peak (GFLOP/s) for ``isa``, measured on the calling thread."""
    ...

def runtime_info() -> dict[str, Any]:
    """isa, isas_built, isas_supported, cpu_features, num_threads, isa_cap,
    isa_cap_message, compiler, build_type."""

class PackedDense:
    """A (K, N) dense kernel packed once for the GEMM engine (16-wide K-major panels),
    with its bias (N,) folded in."""

    def __init__(
        self, kernel: npt.NDArray[np.float32], bias: npt.NDArray[np.float32] | None = None
    ) -> None: ...
    @property
    def k(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def has_bias(self) -> bool: ...
    @property
    def nbytes(self) -> int: ...

def dense(
    x: npt.NDArray[np.float32], packed: PackedDense, activation_id: int = 0
) -> npt.NDArray[np.float32]:
    """act(x @ kernel + bias) for x (M, K); activation_id from activation_ids() (0 = linear)."""

def dense_unpacked(
    x: npt.NDArray[np.float32],
    kernel: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32] | None = None,
    activation_id: int = 0,
) -> npt.NDArray[np.float32]:
    """dense with a raw kernel (K, N): read in place for up to 32 rows of x (M, K), packed
    per call for more; the same bits as dense() on PackedDense(kernel, bias)."""

def matmul(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """a @ b, packing b on the call (for tests)."""

def matmul_batched(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """a (B, M, K) @ b (B, K, N) -> (B, M, N): one product per batch entry, in C++."""

class PackedConv:
    """A Conv2D kernel (kh, kw, C // groups, F) packed once: one GEMM operand
    (kh*kw*cg, F // groups) per group, bias (F,) folded in."""

    def __init__(
        self,
        kernel: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32] | None = None,
        groups: int = 1,
    ) -> None: ...
    @property
    def kernel_shape(self) -> tuple[int, int, int, int]: ...
    @property
    def groups(self) -> int: ...
    @property
    def has_bias(self) -> bool: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def indirect(self) -> bool:
        """Whether it runs the indirect GEMM (which conv3d needs)."""

def conv2d(
    x: npt.NDArray[np.float32],
    kernel: npt.NDArray[np.float32] | PackedConv,
    bias: npt.NDArray[np.float32] | None,
    strides: tuple[int, int],
    dilation: tuple[int, int],
    pads: tuple[int, int, int, int],
    groups: int,
    activation_id: int = 0,
) -> npt.NDArray[np.float32]:
    """NHWC conv of x (N, H, W, C) -> (N, OH, OW, F); pads (top, bottom, left, right);
    with a PackedConv, bias must be None. activation_id from activation_ids() (0 = linear)."""

def conv2d_into(
    out: npt.NDArray[np.float32],
    x: npt.NDArray[np.float32],
    kernel: PackedConv,
    strides: tuple[int, int],
    dilation: tuple[int, int],
    pads: tuple[int, int],
    activation_id: int = 0,
) -> None:
    """conv2d of x (N, H, W, C) written into out, a (N, OH, OW, F) view with contiguous
    channels (such as y[:, r::s, q::s]); pads (top, left), x zero below and right of itself as
    far as OH and OW reach."""

def conv3d(
    x: npt.NDArray[np.float32],
    kernel: PackedConv,
    kd: int,
    strides: tuple[int, int, int],
    dilation: tuple[int, int, int],
    pads: tuple[int, int, int, int, int, int],
    activation_id: int = 0,
) -> npt.NDArray[np.float32]:
    """Conv3D of x (N, D, H, W, C) -> (N, OD, OH, OW, F) with the PackedConv of its
    depth-stacked conv2d (kernel (kh, kw, kd * cg, F); it must be indirect), reading x in
    place; pads (front, back, top, bottom, left, right). Bitwise the conv2d of the
    depth-stacked input."""

class PackedGates:
    """A recurrent kernel (K, gates*u) packed once for lstm, gru or simple_rnn, the gates of
    each 16-unit block side by side (16-wide K-major panels), with its bias (gates*u,) folded
    in."""

    def __init__(
        self,
        kernel: npt.NDArray[np.float32],
        gates: int,
        bias: npt.NDArray[np.float32] | None = None,
    ) -> None: ...
    @property
    def k(self) -> int: ...
    @property
    def units(self) -> int: ...
    @property
    def gates(self) -> int: ...
    @property
    def has_bias(self) -> bool: ...
    @property
    def nbytes(self) -> int: ...

def lstm(
    x: npt.NDArray[np.float32],
    packed_kernel: PackedGates,
    packed_recurrent: PackedGates,
    h0: npt.NDArray[np.float32],
    c0: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None,
    return_sequences: bool,
    go_backwards: bool,
    activation_id: int,
    recurrent_activation_id: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Keras LSTM over x (B, T, F): packed_kernel = PackedGates(kernel (F, 4u), 4, bias),
    packed_recurrent = PackedGates(recurrent_kernel (u, 4u), 4); h0, c0 (B, u); mask (B, T)
    or None. Returns (out, h, c); out is (B, T, u) in processing order if return_sequences,
    else (B, u)."""

def lstm_cell(
    x: npt.NDArray[np.float32],
    kernel: npt.NDArray[np.float32],
    recurrent_kernel: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32] | None,
    h0: npt.NDArray[np.float32],
    c0: npt.NDArray[np.float32],
    activation_id: int,
    recurrent_activation_id: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One Keras LSTM step with raw weights: x (B, F), kernel (F, 4u), recurrent_kernel
    (u, 4u), bias (4u,) or None, h0, c0 (B, u). Returns (h, c); bitwise lstm() with T = 1."""

def gru(
    x: npt.NDArray[np.float32],
    packed_kernel: PackedGates,
    packed_recurrent: PackedGates,
    packed_recurrent_h: PackedDense | None,
    h0: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None,
    return_sequences: bool,
    go_backwards: bool,
    reset_after: bool,
    activation_id: int,
    recurrent_activation_id: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Keras GRU over x (B, T, F). packed_kernel = PackedGates(kernel (F, 3u), 3, input bias);
    reset_after: packed_recurrent = PackedGates(recurrent_kernel (u, 3u), 3, recurrent bias)
    and packed_recurrent_h None; else PackedGates(recurrent_kernel[:, :2u], 2) and
    PackedDense(recurrent_kernel[:, 2u:]). Returns (out, h)."""

def simple_rnn(
    x: npt.NDArray[np.float32],
    packed_kernel: PackedGates,
    packed_recurrent: PackedGates,
    h0: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None,
    return_sequences: bool,
    go_backwards: bool,
    activation_id: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Keras SimpleRNN over x (B, T, F): packed_kernel = PackedGates(kernel (F, u), 1, bias),
    packed_recurrent = PackedGates(recurrent_kernel (u, u), 1); h0 (B, u); mask (B, T) or
    None. Returns (out, h); out is (B, T, u) in processing order if return_sequences, else
    (B, u)."""
