"""Sweeps on a TLS-secured Dask cluster, and a tls:// address without Dask's TLS settings.

A certificate authority and one certificate signed by it (usable by server and
client) are made here with the ``openssl`` commands of docs/sweeps.md; a ``dask
scheduler`` and a ``dask worker`` listen on 127.0.0.1 with them, and the sweep
reaches the scheduler with Dask's TLS settings given as environment variables, as
docs/sweeps.md shows. Every process started here is in its own session and is killed
by process group in a ``finally`` block.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from test_sweep_dask import kill_group, run_files, spawn, wait_for

from cortex_fa.cli import main
from cortex_fa.results import open_results

pytestmark = pytest.mark.dask

TINY = ["--rules", "fa", "--depths", "1", "--seeds", "0,1", "--width", "16", "--train-subset", "300",
        "--epochs", "1", "--probe-size", "50", "--quiet"]
TLS_ENV = ("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY")
TLS_KEYS = ("distributed.comm.tls.ca-file", "distributed.comm.tls.client.cert", "distributed.comm.tls.client.key")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(where, cn="cortex_fa test CA"):
    """``ca.pem`` (a self-signed CA named ``cn``) and ``node.pem``/``node.key`` signed by it.

    The commands of docs/sweeps.md: the certificate names no host (Dask checks the CA, not names).
    """
    where.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=where)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=dask", "-keyout", "node.key",
            "-out", "node.csr", cwd=where)
    # Dask uses one certificate as server (scheduler, worker) and as client: allow both.
    (where / "node.ext").write_text("extendedKeyUsage = serverAuth, clientAuth\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "node.ext", "-out", "node.pem", cwd=where)
    return {name: where / name for name in ("ca.pem", "node.pem", "node.key")}


@pytest.fixture
def certs(tmp_path):
    if shutil.which("openssl") is None:  # Debian has it; under CI its absence is a failure, not a pass
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("needs the openssl command line")
    return make_certs(tmp_path / "tls")


@pytest.fixture
def tls_cluster(tmp_path, certs):
    """A TLS scheduler and one single-threaded TLS worker on 127.0.0.1; yields the tls:// address."""
    tls = ["--tls-ca-file", str(certs["ca.pem"]), "--tls-cert", str(certs["node.pem"]),
           "--tls-key", str(certs["node.key"])]
    procs, log = [], open(tmp_path / "cluster.log", "wb")
    info = tmp_path / "scheduler.json"
    try:
        procs.append(spawn([sys.executable, "-m", "distributed.cli.dask_scheduler", "--protocol", "tls",
                            "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(info),
                            "--idle-timeout", "300", *tls], tmp_path, log))
        wait_for(lambda: info.exists() and info.stat().st_size > 0, 60, "the scheduler file")
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tls://127.0.0.1:")
        elsewhere = tmp_path / "worker"
        elsewhere.mkdir()
        procs.append(spawn([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                            "--nthreads", "1", "--no-dashboard", "--death-timeout", "60", *tls], elsewhere, log))
        yield address
    finally:
        for proc in reversed(procs):
            kill_group(proc)
        log.close()


def clean_env(**extra) -> dict:
    """This environment without the user's DASK_* variables, the client TLS settings empty, plus ``extra``.

    Empty variables override whatever a Dask config file of the user's may say.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    return {**env, **dict.fromkeys(TLS_ENV, ""), **extra}


@pytest.mark.mnist
@pytest.mark.slow
def test_sweep_on_a_tls_cluster(tls_cluster, certs, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "cortex_fa.cli", "sweep", *TINY, "--scheduler", tls_cluster,
           "--run-dir", str(tmp_path / "s.runs"), "--out", "s.nc"]
    # Without the client settings: refused in one line, before anything is written.
    refused = subprocess.run(cmd, cwd=work, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert TLS_KEYS[0] in refused.stderr and TLS_ENV[0] in refused.stderr
    assert list(work.iterdir()) == [] and not (tmp_path / "s.runs").exists()

    # With a certificate of another CA (e.g. someone else's on the network): cannot connect.
    foreign = make_certs(tmp_path / "foreign", cn="another CA")
    env = clean_env(**dict(zip(TLS_ENV, (str(foreign[n]) for n in ("ca.pem", "node.pem", "node.key")))))
    refused = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "cannot connect to the Dask scheduler" in refused.stderr
    assert list(work.iterdir()) == [] and not (tmp_path / "s.runs").exists()

    env = clean_env(**dict(zip(TLS_ENV, (str(certs[n]) for n in ("ca.pem", "node.pem", "node.key")))))
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr + (tmp_path / "cluster.log").read_text(errors="replace")[-3000:]
    assert len(run_files(tmp_path / "s.runs")) == 2 and "wrote s.nc (2 runs)" in done.stdout
    study = open_results(work / "s.nc")
    assert list(study.seed.values) == [0, 1] and (study.status == "ok").all()


@pytest.mark.slow
def test_plain_tcp_to_a_tls_scheduler_fails_in_one_line(tls_cluster, tmp_path):
    plain = tls_cluster.replace("tls://", "tcp://")
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", "sweep", *TINY, "--scheduler", plain,
                           "--out", "s.nc"], cwd=tmp_path / "worker", env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot connect to the Dask scheduler" in done.stderr
    assert list((tmp_path / "worker").glob("s.*")) == []


@pytest.mark.parametrize("settings, scheduler, expect", [
    pytest.param({}, "tls://127.0.0.1:9", [*TLS_KEYS, *TLS_ENV], id="tls-without-settings"),
    pytest.param({"distributed.comm.tls.ca-file": "ca.pem"}, "tls://127.0.0.1:9",
                 [TLS_KEYS[1], TLS_ENV[1]], id="tls-without-client-cert"),
    pytest.param({"distributed.comm.tls.ca-file": "ca.pem", "distributed.comm.tls.client.cert": "nope.pem"},
                 "tls://127.0.0.1:9", [TLS_KEYS[1], "nope.pem", "no such file"], id="tls-cert-file-missing"),
    pytest.param({"distributed.comm.tls.ca-file": "ca.pem", "distributed.comm.tls.client.cert": "ca.pem"},
                 "tls://127.0.0.1:9", ["do not load"], id="tls-cert-without-key"),
    pytest.param({"distributed.comm.require-encryption": True}, "tcp://127.0.0.1:9",
                 ["distributed.comm.require-encryption", "tls://"], id="tcp-with-encryption-required"),
])
def test_bad_tls_settings_are_refused_in_one_line(settings, scheduler, expect, tmp_path, monkeypatch, capsys):
    import dask
    import distributed  # noqa: F401 - loads its config defaults first: set() would otherwise drop them on exit

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
    before = sorted(tmp_path.iterdir())
    unset = {key: None for key in TLS_KEYS} | {"distributed.comm.require-encryption": None}
    with dask.config.set({**unset, **settings}):
        status = main(["sweep", *TINY, "--scheduler", scheduler, "--out", "s.nc"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("cortex-fa: error: --scheduler ") and all(e in err[0] for e in expect), err[0]
    assert sorted(tmp_path.iterdir()) == before  # nothing written
