"""Dask clusters for sweeps: addresses, the local cluster's workers, user preloads.

:func:`connect` gives a ``Client`` either to a running scheduler or to a new
LocalCluster of single-threaded worker processes with one BLAS thread each
(so that *n* workers use *n* cores, never more), optionally importing the
user's own code in every worker first (:func:`load_preloads`).

Security is Dask's own: a ``tls://`` scheduler is reached with the client
certificate of Dask's configuration (:data:`TLS_KEYS`, from a Dask config file
or ``DASK_DISTRIBUTED__COMM__TLS__*`` variables); :func:`check_address` refuses
such an address in one line when that configuration is missing or broken.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from cortex_fa.errors import ConfigError, CortexFAError

# Schemes distributed can connect to; an address is SCHEME://HOST:PORT (or HOST:PORT, meaning tcp).
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
# One BLAS thread per single-threaded worker process, set before numpy loads there.
BLAS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CONNECT_TIMEOUT = 5.0
# Dask's settings for a client on a tls:// cluster (read by distributed.Security).
TLS_KEYS = ("distributed.comm.tls.ca-file", "distributed.comm.tls.client.cert", "distributed.comm.tls.client.key")
REQUIRE_ENCRYPTION = "distributed.comm.require-encryption"


def env_name(key: str) -> str:
    """The environment variable Dask reads for config ``key``: ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``."""
    return "DASK_" + key.upper().replace(".", "__").replace("-", "_")


def check_address(scheduler: str) -> None:
    """Refuse a malformed scheduler address before a Client is made (it would only time out)."""
    from cortex_fa.extras import require

    require("dask", "a Dask scheduler address")
    from distributed.comm.addressing import parse_address, parse_host_port

    text = str(scheduler)
    try:
        scheme, loc = parse_address(text, strict=False)
        if scheme not in SCHEMES:
            raise ValueError(scheme)
        if scheme != "inproc":
            host, port = parse_host_port(loc)
            if not host or not port:
                raise ValueError(loc)
    except (ValueError, TypeError):
        raise ConfigError(f"--scheduler {text!r} is not a Dask scheduler address; expected tcp://HOST:PORT "
                          f"(schemes: {', '.join(SCHEMES)})") from None
    check_security(text, scheme)


def check_security(scheduler: str, scheme: str) -> None:
    """Refuse an address that Dask's TLS configuration cannot reach, before any connection.

    Parameters
    ----------
    scheduler : str
        The address as given, for the message.
    scheme : str
        Its scheme (``tls``, ``tcp``, ...).

    Raises
    ------
    ConfigError
        ``tls://`` without a CA file and client certificate in Dask's configuration (distributed
        would fail with a TypeError traceback), with files that do not load, or a plain scheme
        while Dask's configuration requires encryption.
    """
    import ssl

    from cortex_fa.extras import require

    require("dask", "a Dask scheduler address")
    import dask
    from distributed.security import Security

    if scheme in ("tcp", "ws", "ucx") and dask.config.get(REQUIRE_ENCRYPTION, default=None):
        raise ConfigError(f"--scheduler {scheduler}: Dask's {REQUIRE_ENCRYPTION} is set, so only an encrypted "
                          f"address works; use tls://HOST:PORT (with {', '.join(TLS_KEYS)})")
    if scheme != "tls":
        return
    values = {key: dask.config.get(key, default=None) for key in TLS_KEYS}
    missing = [key for key in TLS_KEYS[:2] if not values[key]]
    if missing:
        raise ConfigError(
            f"--scheduler {scheduler} needs Dask's TLS client settings {' and '.join(missing)} (and "
            f"{TLS_KEYS[2]} unless the key is in the cert file), in a Dask config file or as "
            f"{', '.join(env_name(k) for k in TLS_KEYS)}; see 'Secured clusters' in docs/sweeps.md")
    for key, value in values.items():
        if value and "\n" not in str(value) and not Path(value).expanduser().is_file():
            raise ConfigError(f"--scheduler {scheduler}: Dask's TLS setting {key} = {value}: no such file")
    try:  # what distributed will do on connect: load the CA, the certificate and its key
        Security().get_connection_args("client")
    except (OSError, ValueError, ssl.SSLError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:150]
        raise ConfigError(f"--scheduler {scheduler}: Dask's TLS settings ({', '.join(TLS_KEYS)}) do not load: "
                          f"{first}") from None


def load_preloads(items) -> list[str]:
    """Import user code that registers rules, here and (via :func:`connect`) in every worker.

    Each item is a ``.py`` file or an importable module name. It is run in
    this process first, because building a :class:`SweepSpec` validates the
    rule names. Returns what the workers should preload (files as absolute
    paths, since a worker's working directory is its own).
    """
    import importlib
    import runpy

    targets = []
    for item in items or ():
        text = str(item)
        try:
            if text.endswith(".py"):
                path = Path(text).resolve()
                if not path.is_file():
                    raise ConfigError(f"--preload {text}: no such file; expected a .py file or an importable module name")
                runpy.run_path(str(path), run_name=f"cortex_fa_preload_{path.stem}")
                targets.append(str(path))
            else:
                importlib.import_module(text)
                targets.append(text)
        except CortexFAError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: report it in one line, whatever it raised
            detail = (str(exc).splitlines() or [""])[0][:200]
            raise ConfigError(f"--preload {text}: {type(exc).__name__}: {detail}") from None
    return targets


def check_preload(scheduler, preload) -> None:
    """Refuse ``preload`` with an existing cluster: its workers are started by the user."""
    if scheduler and preload:
        raise ConfigError("--preload starts code in workers of the local cluster only; start your own workers "
                          f"with 'dask worker {scheduler} --preload FILE' instead")


def connect(scheduler=None, workers=None, n_tasks=None, preload=()):
    """A Dask ``Client``: to ``scheduler`` if given, else to a new LocalCluster.

    The local cluster has one single-threaded worker process per core (or
    ``workers``), each with one BLAS thread, so cores are not oversubscribed;
    every worker imports ``preload`` (see :func:`load_preloads`) when it starts.
    """
    from cortex_fa.extras import require

    require("dask", "a Dask cluster")
    import dask
    from distributed import Client, LocalCluster

    check_preload(scheduler, preload)
    if scheduler:
        check_address(scheduler)
        # Built in two steps so a Client whose __init__ failed can still be closed here; left
        # to the garbage collector its __del__ prints a TimeoutError traceback seconds later.
        client = Client.__new__(Client)
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT}s"}):
                client.__init__(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            with contextlib.suppress(Exception):
                client.close(timeout=1)
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:150]
            raise CortexFAError(f"cannot connect to the Dask scheduler at {scheduler} within "
                                f"{CONNECT_TIMEOUT:.0f} s ({first}); is 'dask scheduler' running there?") from None
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            client.close()
            raise CortexFAError(f"the Dask scheduler at {scheduler} has no workers (start some with 'dask worker {scheduler}')") from None
        return client
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = max(1, min(workers or cores, n_tasks or cores))
    # The nanny copies these from os.environ into each worker before it starts (user values
    # would win over Dask's config), so set them for the spawn and restore them after.
    saved = {k: os.environ.get(k) for k in BLAS_ENV}
    os.environ.update(BLAS_ENV)
    try:
        extra = {"preload": list(preload)} if preload else {}
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, env=BLAS_ENV,
                               dashboard_address=":0", silence_logs=logging.ERROR, **extra)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Client(cluster, set_as_default=False)


def close(client) -> None:
    """Close a client from :func:`connect` and, if it made one, its local cluster."""
    cluster = client.cluster if getattr(client, "cluster", None) is not None else None
    client.close()
    if cluster is not None:
        cluster.close()
