"""Progress you can see: the epoch bars stay in a terminal, tqdm's widget in Jupyter, nothing in pipes."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import pytest

from cortex_fa import epoch

pytestmark = pytest.mark.mnist
RUN = [sys.executable, "-m", "cortex_fa.cli", "run", "--hidden", "16", "--epochs", "2", "--train-subset", "3000",
       "--no-partial"]


def test_in_a_terminal_every_epoch_keeps_its_bar(tmp_path):
    main, child = pty.openpty()
    # a terminal of 30 rows x 120 columns: a fresh pty has none, and tqdm sizes its bar to the window
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen([*RUN, "--out", str(tmp_path / "r.nc")], stdin=subprocess.DEVNULL, stdout=child,
                            stderr=child, cwd=tmp_path, env={**os.environ, "COLUMNS": "120"})
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0
    text = out.decode(errors="replace")
    final_lines = text.replace("\r\n", "\n").split("\n")
    # each epoch's bar ends at 100 % and stays on a line of its own (leave=True), also after the run ends
    done = [line for line in final_lines if "fa epoch" in line and "30/30" in line]
    assert any("epoch 1/2" in line for line in done) and any("epoch 2/2" in line for line in done), text[-2000:]


def test_in_a_pipe_there_is_no_bar(tmp_path):
    done = subprocess.run([*RUN, "--out", str(tmp_path / "r.nc")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    assert "epoch 1/2" not in done.stderr and "batch/s" not in done.stderr and "\r" not in done.stderr


def test_in_jupyter_the_widget_is_enabled(monkeypatch):
    """tqdm.auto picks the notebook widget in a kernel; its stderr is no TTY, so the bar must not be disabled."""
    made = {}

    class Widget:
        __module__ = "tqdm.notebook"

        def __init__(self, **kwargs):
            made.update(kwargs)

    monkeypatch.setattr(epoch, "bar_class", lambda: (Widget, True))
    epoch.progress_bar(True, 10, "fa epoch 1/1")
    assert made["disable"] is False and "file" not in made and made["leave"] is True
    assert epoch.progress_bar(False, 10, "x") is None
