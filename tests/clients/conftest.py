"""End-to-end tests of sprat with real Kafka clients: the harness.

The `broker` fixture starts the release binary (target/release/sprat, or $SPRAT_BIN) on a free
loopback port with its own temporary log directory, waits for its "listening on" line, and stops
it afterwards. `Broker.restart("sigterm" | "sigkill")` restarts it on the same port and log dir.

Every wait in this suite is bounded; pytest-timeout (pytest.ini) is the backstop.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SPRAT_BIN", REPO / "target" / "release" / "sprat"))
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerError(AssertionError):
    pass


class Broker:
    """One sprat process (restartable) on a fixed port and log directory."""

    def __init__(self, workdir: Path, properties: dict[str, str] | None = None, nofile: int | None = None):
        self.workdir = workdir
        # RLIMIT_NOFILE (soft and hard) for the broker process, if not this process's.
        self.nofile = nofile
        self.port = free_port()
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.properties = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.log_dir),
            "group.initial.rebalance.delay.ms": "0",
        }
        # "{port}" in a value stands for the broker's PLAINTEXT port (for extra listeners).
        self.properties.update(
            {k: v.replace("{port}", str(self.port)) for k, v in (properties or {}).items()}
        )
        self.config = workdir / "server.properties"
        self.stderr_path = workdir / "broker.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._reader: threading.Thread | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if not BINARY.exists():
            raise BrokerError(
                f"{BINARY} does not exist: build it with `cargo build --release` (scripts/test does)"
            )
        self.config.write_text("".join(f"{k}={v}\n" for k, v in self.properties.items()))
        self.starts += 1
        with self._lock:
            self._lines.append(f"----- start #{self.starts} -----\n")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(
            [str(BINARY), str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.workdir,
            preexec_fn=self._limit_open_files if self.nofile else None,
        )
        listening = threading.Event()
        proc = self.proc

        def read() -> None:
            assert proc.stderr is not None
            with open(self.stderr_path, "a", encoding="utf-8", errors="replace") as log:
                for raw in proc.stderr:
                    line = raw.decode("utf-8", "replace")
                    log.write(line)
                    log.flush()
                    with self._lock:
                        self._lines.append(line)
                    if "listening on" in line:
                        listening.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not listening.wait(0.05):
            if proc.poll() is not None:
                self._reader.join(2)
                raise BrokerError(
                    f"sprat exited with status {proc.returncode} before listening:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self._kill()
                raise BrokerError(
                    f"sprat printed no 'listening on' line within {START_TIMEOUT}s:\n{self.tail()}"
                )

    def _limit_open_files(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def stop(self, how: str = "sigterm") -> None:
        """Stops the broker: "sigterm" (graceful; must exit within STOP_TIMEOUT) or "sigkill"."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if how == "sigkill":
            self._kill()
            return
        assert how == "sigterm", how
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise BrokerError(f"sprat did not exit within {STOP_TIMEOUT}s of SIGTERM:\n{self.tail()}")
        if self._reader:
            self._reader.join(2)
        if proc.returncode != 0:
            raise BrokerError(f"sprat exited with status {proc.returncode} on SIGTERM:\n{self.tail()}")

    def restart(self, how: str = "sigterm") -> None:
        self.stop(how)
        self.start()

    def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self._reader:
            self._reader.join(2)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- logs -----------------------------------------------------------------------------------

    def log_text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def tail(self, n: int = 40) -> str:
        with self._lock:
            return "".join(self._lines[-n:])

    def problems(self) -> list[str]:
        """Lines of the broker's log that show a bug whatever the client did."""
        return [
            line.rstrip()
            for line in self.log_text().splitlines()
            if re.search(r"panicked|the log writer failed", line)
        ]


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _start_broker(tmp_path: Path, properties: dict[str, str] | None = None) -> Broker:
    b = Broker(tmp_path, properties)
    b.start()
    return b


def _finish_broker(request, b: Broker) -> None:
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        request.node.add_report_section("teardown", "sprat log (tail)", b.tail(60))
    crashed = b.proc is not None and b.proc.poll() is not None and b.proc.returncode != 0
    try:
        b.stop("sigterm")
    finally:
        b._kill()
    problems = b.problems()
    if problems:
        raise BrokerError("sprat logged a crash:\n" + "\n".join(problems[:20]))
    if crashed:
        raise BrokerError(f"sprat died during the test (status {b.proc.returncode}):\n{b.tail()}")


@pytest.fixture
def broker(request, tmp_path):
    """A fresh sprat on its own port and log dir, with the suite's default properties."""
    b = _start_broker(tmp_path)
    yield b
    _finish_broker(request, b)


@pytest.fixture
def broker_factory(request, tmp_path):
    """Starts a sprat with extra server.properties entries: `broker_factory({"k": "v"})`."""
    started: list[Broker] = []

    def make(properties: dict[str, str] | None = None) -> Broker:
        b = _start_broker(tmp_path / f"b{len(started)}", properties)
        started.append(b)
        return b

    yield make
    for b in started:
        _finish_broker(request, b)


@pytest.fixture
def unique(request) -> str:
    """A short name unique to this test, usable in topic and group names."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-").lower()
    return f"{name[:80]}-{os.getpid() % 10000}"
