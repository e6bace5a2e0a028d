"""Fixtures that run real agentd processes.

The daemon binary comes from $AGENTD (CTest sets it to the agentd it built); without it the
build directories next to the source tree are searched. Each daemon gets its own temporary
directory (socket, state, config, log), is stopped with SIGTERM (SIGKILL after 10 s) and the
directory is removed. Only the PIDs started here are signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import List, Optional

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package, when PYTHONPATH does not name it

START_TIMEOUT = 15.0  # a sanitizer build starts slower
STOP_TIMEOUT = 10.0


def find_agentd() -> str:
    env = os.environ.get("AGENTD")
    if env:
        if not os.access(env, os.X_OK):
            pytest.exit("AGENTD=%s is not an executable" % env, returncode=2)
        return env
    root = HERE.parents[2]  # bindings/python/tests -> repository root
    for build in sorted(root.glob("build*")):
        cand = build / "agentd" / "agentd"
        if os.access(cand, os.X_OK):
            return str(cand)
    pytest.exit("agentd not found: set AGENTD to its path (CTest does), or build it with "
                "'ninja -C build agentd'", returncode=2)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ring_key: Optional[str] = None


def ring_key_file() -> str:
    """A cluster key for the rings of this test run (as `agentd keygen` writes it: 32 random
    bytes, mode 0600), made on first use and removed at exit."""
    global _ring_key
    if _ring_key is None:
        import atexit
        d = tempfile.mkdtemp(prefix="agent-pytest-key-")
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, "ring.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        _ring_key = path
    return _ring_key


def free_udp_ports(n: int) -> List[int]:
    socks = []
    try:
        for _ in range(n):  # held open together so that they differ
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Daemon:
    """One agentd in a temporary directory."""

    def __init__(self, binary: str, name: str = "d1", tcp: Optional[str] = None,
                 extra_config: str = "", tcp_secrets: Optional[str] = None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="agent-py-")
        self.socket = os.path.join(self.dir, "s.sock")
        self.tcp = tcp
        self.log_path = os.path.join(self.dir, "agentd.log")
        self.secrets_path = os.path.join(self.dir, "clients.secrets")
        if tcp:
            # TCP clients authenticate against tcp_secrets ("NAME SECRET" lines); tests of other
            # things over TCP run the listener without authentication, deliberately.
            if tcp_secrets is not None:
                fd = os.open(self.secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(tcp_secrets)
                keys = 'secrets_file = "%s"\n' % self.secrets_path
            else:
                keys = 'tcp_auth = "none"\n'
            if "[clients]\n" in extra_config:
                extra_config = extra_config.replace("[clients]\n", "[clients]\n" + keys, 1)
            else:
                extra_config = "[clients]\n" + keys + extra_config
        args = [binary]
        if extra_config:
            config = os.path.join(self.dir, "agentd.toml")
            with open(config, "w") as f:
                f.write(extra_config)
            args += ["--config", config]
        args += ["--name", name, "--unix", self.socket, "--tcp", tcp or "off",
                 "--state-dir", os.path.join(self.dir, "state")]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.killed = False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("agentd exited at start (status %s):\n%s"
                                   % (self.proc.returncode, self.log()))
            if _accepts(self.socket) and (self.tcp is None or _accepts_tcp(self.tcp)):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("agentd did not listen within %s s:\n%s"
                                   % (START_TIMEOUT, self.log()))
            time.sleep(0.01)

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash; the fixture expects no clean exit status from it then."""
        self.killed = True
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _accepts(path: str) -> bool:
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _accepts_tcp(addr: str) -> bool:
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def agentd_binary() -> str:
    return find_agentd()


@pytest.fixture
def make_daemon(agentd_binary, request):
    """make_daemon(name="d1", tcp=None, extra_config="", tcp_secrets=None) -> a running Daemon,
    stopped after. With tcp, TCP clients authenticate against tcp_secrets (a secrets file's
    text); without it the TCP listener takes them unauthenticated (clients.tcp_auth = "none")."""
    started: List[Daemon] = []
    request.node._agent_daemons = started  # for the logs of a failed test

    def make(name: str = "d1", tcp: Optional[str] = None, extra_config: str = "",
             wait: bool = True, tcp_secrets: Optional[str] = None) -> Daemon:
        d = Daemon(agentd_binary, name, tcp, extra_config, tcp_secrets)
        started.append(d)
        if wait:
            d.wait_ready()
        return d

    yield make
    bad = []
    for d in started:
        status = d.stop()
        if status != 0 and not d.killed:
            log = d.log()
            leak_only = ("LeakSanitizer: detected memory leaks" in log
                         and "ERROR: AddressSanitizer" not in log)
            if leak_only:
                # A leak at the daemon's exit is the daemon's business (its own tests); shown
                # in pytest's warnings summary rather than failing the binding's test.
                warnings.warn("agentd %s leaked memory at exit (status %s):\n%s"
                              % (d.name, status, log[log.find("=" * 10):][:3000]))
            else:  # a crash or another sanitizer report
                bad.append("agentd %s exited with status %s:\n%s" % (d.name, status, log))
        d.cleanup()
    if bad:
        pytest.fail("\n".join(bad))


@pytest.fixture
def daemon(make_daemon) -> Daemon:
    """A fresh single agentd named d1 on a Unix socket, TCP off."""
    return make_daemon()


@pytest.fixture
def sock(daemon) -> str:
    return daemon.socket


@pytest.fixture
def scratch_dir():
    """A temporary directory removed after the test (pytest's tmp_path keeps old ones)."""
    d = tempfile.mkdtemp(prefix="agent-py-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in getattr(item, "_agent_daemons", []):
            rep.sections.append(("agentd %s log" % d.name, d.log()))
