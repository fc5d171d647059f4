"""Code-generation targets: which one ``"auto"`` means here, and the runtime code-object classes.

``target = "auto"`` (the default) is ``cpp_standalone`` when the C++
compiler ``make`` would call (``$CXX``, else ``g++``) is on the ``PATH``,
else the best runtime target: ``cython`` when Cython can compile, else
``numpy``. Learning in Python between presentations (``plasticity:
"python"``) cannot run in a standalone binary, so there ``"auto"`` is a
runtime target.
"""

from __future__ import annotations

import functools
import os
import shutil

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.targets")  # one line naming the extra, not a traceback, without brian2

from cortex_fa.errors import ConfigError  # noqa: E402


def cxx() -> str:
    """The C++ compiler the standalone makefile calls: ``$CXX`` or ``g++``."""
    value = os.environ.get("CXX", "").strip()
    return value.split()[0] if value else "g++"


def have_cxx() -> bool:
    return shutil.which(cxx()) is not None


@functools.lru_cache(maxsize=1)
def cython_available() -> bool:
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    try:
        return bool(CythonCodeObject.is_available())
    except Exception:  # noqa: BLE001 - a broken Cython install is "not available"
        return False


def resolve_target(target: str, plasticity: str = "synaptic") -> str:
    """The concrete target for ``target`` (``"auto"`` resolved as the module docstring says)."""
    if target != "auto":
        return target
    if plasticity == "synaptic" and have_cxx():
        return "cpp_standalone"
    return "cython" if cython_available() else "numpy"


def code_object_class(target: str):
    """Brian2 code-object class of a runtime target, set per object (the global preference is left alone)."""
    if target == "numpy":
        from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

        return NumpyCodeObject
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    if not cython_available():
        raise ConfigError("backend_params.target 'cython' needs Cython and a working C compiler; use 'numpy'")
    return CythonCodeObject
