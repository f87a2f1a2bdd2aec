"""Engine leases on a SQLite store, seen from other processes: alive while held, dead once
released or once the holder is killed — with fcntl as on Linux, and without it as on Windows.

Without fcntl on Linux the store gets filelock's PID-file lock; Windows gets its LockFileEx
lock, which only a Windows run exercises. What runs here either way: the store imports and
keeps its lease semantics with no fcntl to import."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.store.sqlite import SQLiteBackend

ROOT = Path(__file__).resolve().parents[1]

# A process that keeps one store open and answers one line per command: `hold ID`,
# `release ID` or `alive ID`. With "missing" it first makes every import of fcntl fail,
# as it fails on Windows, before anything imports the store.
LEASE_PROCESS = """
import sys
if sys.argv[1] == "missing":
    sys.modules["fcntl"] = None
from engine.store import open_database
store = open_database(sys.argv[2])
for line in sys.stdin:
    command, instance_id = line.split()
    if command == "hold":
        store.hold_lease(instance_id)
    elif command == "release":
        store.release_lease(instance_id)
    print(store.lease_alive(instance_id), flush=True)
store.close()
"""


class LeaseProcess:
    def __init__(self, fcntl: str, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LEASE_PROCESS, fcntl, url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str, instance_id: str) -> bool:
        """Run one command; whether the lease is alive afterwards, as this process sees it."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{command} {instance_id}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer not in ("True", "False"):
            raise AssertionError(f"the lease process died (exit {self.process.wait(10)})")
        return answer == "True"

    def kill(self) -> None:
        """SIGKILL on POSIX, TerminateProcess on Windows: no chance to release anything."""
        self.process.kill()
        self.process.wait()


@contextmanager
def lease_process(fcntl: str, url: str) -> Iterator[LeaseProcess]:
    lease = LeaseProcess(fcntl, url)
    try:
        yield lease
    finally:
        lease.kill()


@pytest.mark.parametrize("fcntl", ["present", "missing"])
def test_a_lease_another_process_holds_is_alive_until_it_is_released_or_its_holder_killed(
    fcntl, tmp_path
):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with lease_process(fcntl, url) as holder, lease_process(fcntl, url) as observer:
        assert not observer.ask("alive", "engine-a")
        assert holder.ask("hold", "engine-a")
        assert observer.ask("alive", "engine-a")
        assert not holder.ask("release", "engine-a")
        assert not observer.ask("alive", "engine-a")  # released while its holder lives on
        assert holder.ask("hold", "engine-b")
        assert observer.ask("alive", "engine-b")
        holder.kill()
        assert not observer.ask("alive", "engine-b")


def test_closing_a_lease_handle_on_another_thread_than_the_one_that_took_it_releases_it(
    tmp_path,
):
    backend = SQLiteBackend(str(tmp_path / "audit.db"))
    handles = []
    taker = threading.Thread(target=lambda: handles.append(backend.hold_lease("engine-a")))
    taker.start()
    taker.join()
    assert backend.lease_alive("engine-a")
    handles[0].close()  # the handle stays referenced: its release is not left to the collector
    assert not backend.lease_alive("engine-a")
