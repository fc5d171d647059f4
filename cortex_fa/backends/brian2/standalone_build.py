"""Generating and compiling a model's C++ standalone program, once per content.

Each model gets a Brian2 device of its own (a fresh
``CPPStandaloneDevice``, activated while the model's objects are made and
generated, then the previous device is restored), so several standalone
models, of any shapes, live in one process: each keeps its own arrays,
code objects and project, and runs its program when asked. The generated
project is hashed (:func:`~cortex_fa.backends.brian2.compile_cache.content_key`)
and compiled only if the cache has no program for that hash.

Two additions to the generated program:

- it dies with its parent: at start it asks for ``SIGKILL`` when its parent
  ends (``prctl(PR_SET_PDEATHSIG)``, Linux) and exits if the parent is
  already gone (its ``getppid()`` is not the pid in ``$CORTEX_FA_PARENT_PID``);
- :data:`STOP_AT` ends a run early: a run of ``n`` presentations in a
  program built for ``capacity`` stops after tick ``n`` instead of simulating
  blank presentations (``Network::_globally_stopped``, the flag Brian2's own
  SIGINT handler sets).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.standalone_build")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice  # noqa: E402

from cortex_fa.backends.brian2 import compile_cache  # noqa: E402
from cortex_fa.backends.brian2.standalone_runs import PARENT_ENV  # noqa: E402
from cortex_fa.backends.brian2.targets import cxx, have_cxx  # noqa: E402
from cortex_fa.errors import ConfigError  # noqa: E402

NO_COMPILER = ("backend_params.target 'cpp_standalone' could not compile its C++ code ({why}); install a C++ "
               "compiler (e.g. apt-get install g++, or set CXX to one) or use target 'cython' or 'numpy'")

_STOP_CPP = """
double cortex_fa_stop_at(const double t, const double t_stop)
{
    if (t >= t_stop)
        Network::_globally_stopped = true;
    return 0.0;
}
"""


@b2.implementation("cpp", _STOP_CPP, name="cortex_fa_stop_at")
@b2.check_units(t=b2.second, t_stop=b2.second, result=1)
def STOP_AT(t, t_stop):  # noqa: N802 - a Brian2 function, named as in the equations
    raise NotImplementedError("stop_at exists in C++ standalone code only")


_DIE_WITH_PARENT = f"""
#ifdef __linux__
prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
{{
    const char* _parent = std::getenv("{PARENT_ENV}");
    if (_parent != NULL && std::atol(_parent) != (long)getppid())
        return 3;
}}
"""


def check_compiler() -> None:
    """One-line :class:`ConfigError` if the C++ compiler ``make`` will call (``$CXX`` or g++) is missing."""
    if not have_cxx():
        raise ConfigError(NO_COMPILER.format(why=f"compiler {cxx()!r} not found"))


class Quiet:
    """Send file descriptors 1 and 2 to a log file (compiler output is not for the user's terminal)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.log = open(self.path, "w")
        self.saved = [os.dup(1), os.dup(2)]
        for fd in (1, 2):
            os.dup2(self.log.fileno(), fd)
        return self

    def __exit__(self, *exc):
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        self.log.close()
        return False


def new_device() -> CPPStandaloneDevice:
    """A standalone device of the model's own, made the active device (undo with :func:`restore_device`)."""
    dev = CPPStandaloneDevice()
    headers = ["<csignal>", "<cstdlib>", "<unistd.h>"] + (["<sys/prctl.h>"] if sys.platform.startswith("linux") else [])
    dev.headers.extend(headers)
    b2.set_device(dev, build_on_run=False)
    dev.insert_code("before_start", _DIE_WITH_PARENT)
    return dev


def restore_device() -> None:
    """Make the device active before :func:`new_device` active again."""
    from brian2.devices.device import reset_device

    reset_device()


def toolchain() -> str:
    """What besides the generated files decides the program: compiler version, Brian2, Python, platform."""
    try:
        version = subprocess.run([cxx(), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = "unknown"
    return "\n".join([cxx(), version.strip(), b2.__version__, platform.python_version(), platform.machine(),
                      platform.system(), repr(b2.prefs.codegen.cpp.extra_compile_args)])


def generate(dev: CPPStandaloneDevice, directory) -> None:
    """Write the model's C++ project into ``directory`` (no compilation)."""
    dev.build(directory=str(directory), compile=False, run=False, with_output=False)


def compile_project(dev: CPPStandaloneDevice, directory) -> None:
    """Compile the project in ``directory`` (``make -j<usable cores>``, output to ``build.log``)."""
    from brian2.codegen.cpp_prefs import get_compiler_and_args

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{cores}"]
    compiler, _ = get_compiler_and_args()
    log = os.path.join(str(directory), "build.log")
    try:
        with Quiet(log):
            dev.compile_source(str(directory), compiler, False, False)
    except Exception as exc:  # noqa: BLE001 - a compiler failure becomes one line
        raise ConfigError(NO_COMPILER.format(why=f"{type(exc).__name__}, log in {log}")) from None


def build(dev: CPPStandaloneDevice) -> tuple[str, bool, float]:
    """Generate the active model's project and return ``(compiled project, compiled now?, seconds)``.

    The project is compiled only if the cache has none with the same content.
    """
    import time

    root = compile_cache.cache_root()
    compile_cache.clean_stale(root)
    generated = root / compile_cache.unique_name("tmp-")
    t0 = time.perf_counter()
    generate(dev, generated)
    key = compile_cache.content_key(generated, toolchain())
    path, compiled = compile_cache.get_or_build(generated, key, lambda d: compile_project(dev, d), root)
    return str(path), compiled, time.perf_counter() - t0
