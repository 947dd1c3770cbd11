"""Ctrl-C in a client command is one line and exit code 130, never a
traceback."""

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["clientcommand", "-m", "hello"],
        ["status"],
        ["addserver", "127.0.0.1:1"],
        ["transferleader"],
    ],
)
def test_ctrl_c_while_waiting_for_a_server_is_one_line(argv):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        port = listener.getsockname()[1]
        command = subprocess.Popen(
            [sys.executable, "manage.py", *argv, "-S", f"127.0.0.1:{port}",
             "--timeout", "60"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            # Once it has connected it waits for an answer that never comes.
            connection, _ = listener.accept()
            with connection:
                command.send_signal(signal.SIGINT)
                out, err = command.communicate(timeout=30)
        finally:
            command.kill()
    assert command.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "interrupted: a request already sent may or may not take effect"
    ]


def test_ctrl_c_in_a_watch_is_one_line():
    """A watch only reads, so its line says how far it got instead."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        port = listener.getsockname()[1]
        command = subprocess.Popen(
            [sys.executable, "manage.py", "kv", "watch", "-S", f"127.0.0.1:{port}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            connection, _ = listener.accept()
            with connection:
                command.send_signal(signal.SIGINT)
                out, err = command.communicate(timeout=30)
        finally:
            command.kill()
    assert command.returncode == 130, (out, err)
    assert err.strip().splitlines() == ["interrupted: the watch stopped after 0 events"]
