"""``cortex-fa serve`` under 20 concurrent browser-like sessions on 127.0.0.1.

Each session does what a browser does first: GET the page (the server builds that
session's dashboard), GET BokehJS from /static, then open the websocket with the
page's session token and wait for Bokeh's ACK. All 20 must succeed, the server's
resident memory must stay bounded (< 2x the one-session baseline + 300 MB, sampled
throughout) and the server must keep serving afterwards.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest

from test_security import cli, free_port, get, stop, wait_listening

pytestmark = pytest.mark.slow

SESSIONS = 20
HEADERS = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) cortex-fa-load-test", "Accept": "text/html,*/*"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import subprocess

    from factories import make_study_dataset

    from cortex_fa.results import save_results

    d = tmp_path_factory.mktemp("load")
    save_results(make_study_dataset(rules=("fa",), depths=(2,), seeds=(0,), epochs=1), d / "study.nc")
    port, log = free_port(), d / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cli("serve", "study.nc", "--port", str(port)), cwd=d, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, log)
        yield {"port": port, "proc": proc, "log": log}
    finally:
        stop(proc)


async def _handshake(port: int, token: str) -> dict:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers={"Origin": f"http://127.0.0.1:{port}"},
                          connect_timeout=120, request_timeout=300)
    conn = await websocket_connect(request, subprotocols=["bokeh", token])
    try:
        return json.loads(await asyncio.wait_for(conn.read_message(), 300))
    finally:
        conn.close()


def browser_like_session(port: int) -> dict:
    start = time.monotonic()
    status, page = get(port, "/", HEADERS, timeout=300)
    assert status == 200 and b"<html" in page.lower(), (status, page[:300])
    script = re.search(rb'src="(static/js/bokeh\.min\.js[^"]*)"', page)
    assert script, "the page does not load BokehJS from /static"
    status, js = get(port, "/" + script.group(1).decode(), HEADERS, timeout=120)
    assert status == 200 and len(js) > 100_000
    token = re.search(rb'"token"\s*:\s*"([^"]+)"', page)
    assert token, "no session token in the page"
    header = asyncio.run(_handshake(port, token.group(1).decode()))
    assert header["msgtype"] == "ACK", header
    return {"seconds": time.monotonic() - start}


def test_twenty_concurrent_sessions_all_get_the_app_and_memory_stays_bounded(server):
    import psutil

    port, proc = server["port"], psutil.Process(server["proc"].pid)
    browser_like_session(port)  # warm-up: imports done, one dashboard built
    baseline = proc.memory_info().rss
    cpu0 = sum(proc.cpu_times()[:2])

    peak, stop_sampling = [baseline], threading.Event()

    def sample():
        while not stop_sampling.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.1)

    results, errors = [None] * SESSIONS, []
    gate = threading.Barrier(SESSIONS)

    def worker(i):
        try:
            gate.wait(timeout=30)
            results[i] = browser_like_session(port)
        except BaseException as exc:  # noqa: BLE001 - reported below with its session number
            errors.append(f"session {i}: {type(exc).__name__}: {exc}")

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(SESSIONS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=400)
    finally:
        stop_sampling.set()
        sampler.join(timeout=5)
    assert not any(t.is_alive() for t in threads), "sessions still running after 400 s"
    assert errors == [], "\n".join(errors)
    assert all(results), results

    times = sorted(r["seconds"] for r in results)
    print(f"\n{SESSIONS} sessions: slowest {times[-1]:.1f} s, median {times[len(times) // 2]:.1f} s; "
          f"RSS baseline {baseline / 2**20:.0f} MB, peak {peak[0] / 2**20:.0f} MB, "
          f"server CPU {sum(proc.cpu_times()[:2]) - cpu0:.1f} s")
    limit = 2 * baseline + 300 * 2**20
    assert peak[0] < limit, f"server RSS peaked at {peak[0] / 2**20:.0f} MB (baseline {baseline / 2**20:.0f} MB)"
    assert server["proc"].poll() is None
    browser_like_session(port)  # and it keeps serving
    assert "Traceback" not in server["log"].read_text()
