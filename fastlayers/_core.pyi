"""Type stubs for the compiled core ``fastlayers._core`` (csrc/bindings/).

Array arguments must already be float32, C-contiguous, aligned and in native byte
order (fastlayers/_validation.py converts them); the core never copies silently.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

def softmax_lastdim(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Softmax over the last axis of a C-contiguous float32 array of rank >= 1."""

def activation_ids() -> dict[str, int]:
    """Keras name -> id of each elementwise activation (aliases swish, hard_swish included)."""

def activate(x: npt.NDArray[np.float32], id: int) -> npt.NDArray[np.float32]:
    """Elementwise activation ``id`` of a C-contiguous float32 array; returns a new array."""

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def default_num_threads() -> int: ...
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

def matmul(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """a @ b, packing b on the call (for tests)."""
