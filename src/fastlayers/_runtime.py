"""runtime_info() and show_runtime(): what this installation runs on."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

from . import _backend


def runtime_info() -> dict[str, Any]:
    """A dict describing the installation: version, backend, ISA, threads, core status.

    Keys: ``version``, ``backend``, ``core_available``, ``core_error`` (why the
    compiled core did not import, or None), ``num_threads``, ``ops_in_cpp`` (the ops the
    C++ path serves), ``python``, ``numpy``, ``platform``, ``package_path``, ``isa`` (in
    use), ``isas_built``, ``isas_supported``, ``isa_cap`` (FASTLAYERS_ISA), ``cpu_features``,
    ``output_cache`` (the freed output memory kept for the next outputs: ``limit`` and
    ``held`` bytes, :func:`fastlayers.set_output_cache_limit`); with the core also
    ``isa_cap_message`` (why the cap was not applied as given, or empty), ``compiler``,
    ``build_type`` and ``core_path``.
    """
    from . import __version__

    info: dict[str, Any] = {
        "version": __version__,
        "backend": _backend.get_backend(),
        "core_available": _backend.core_available(),
        "core_error": _backend.CORE_ERROR,
        "num_threads": _backend.get_num_threads(),
        # the activations.<name> entries as one, "activations.*"
        "ops_in_cpp": sorted({"activations.*" if op.startswith("activations.") else op
                              for op in _backend.CPP_OPS}) if _backend.core_available() else [],
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "package_path": os.path.dirname(os.path.abspath(__file__)),
    }
    core = _backend._core
    if core is None:
        info.update(isa=None, isas_built=[], isas_supported=[], isa_cap=None, cpu_features={},
                    output_cache={"limit": 0, "held": 0})
    else:
        ci = core.runtime_info()
        info.update(
            isa=ci["isa"],
            isas_built=list(ci["isas_built"]),
            isas_supported=list(ci["isas_supported"]),
            isa_cap=ci["isa_cap"],
            isa_cap_message=ci["isa_cap_message"],
            cpu_features=dict(ci["cpu_features"]),
            compiler=ci["compiler"],
            build_type=ci["build_type"],
            core_path=getattr(core, "__file__", None),
            output_cache=dict(zip(("limit", "held"), core.output_cache_limit())),
        )
    return info


def show_runtime() -> None:
    """Print :func:`runtime_info` as aligned ``key: value`` lines."""
    info = runtime_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "cpu_features" and isinstance(value, dict):
            value = " ".join(name for name, on in value.items() if on) or "-"
        print(f"{key:<{width}} : {value}")
