"""Authenticated TCP clients: connect(user=, secret=), AGENT_SECRET_FILE / AGENT_USER, and
refusals (docs/client-protocol.md, "Authentication")."""

import asyncio
import os
import struct

import pytest

import agent
from agent import _auth
from conftest import free_port
from util import data, join_and_wait

ALICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
BOB = "bob-secret-0123456789abcdef"
SECRETS = "alice %s\nbob %s\n" % (ALICE, BOB)


def tcp_daemon(make_daemon, secrets=SECRETS):
    for attempt in range(3):  # the free port may be taken between probe and bind
        addr = "127.0.0.1:%d" % free_port()
        d = make_daemon(tcp=addr, tcp_secrets=secrets, wait=False)
        try:
            d.wait_ready()
            return d, addr
        except RuntimeError:
            if attempt == 2:
                raise


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("AGENT_SECRET_FILE", raising=False)
    monkeypatch.delenv("AGENT_USER", raising=False)
    return monkeypatch


def private_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def test_response_matches_the_documented_transcript():
    # The vector the C++ unit test checks too.
    hello = struct.pack("<IHB", 0x544E4741, 1, 1) + b"\x05alice"
    mac = _auth.response(b"0123456789abcdef0123456789abcdef", bytes(range(32)), hello, b"alice")
    assert mac.hex() == "be3c007d911ae898b42f545a1dc887541d0ba5c5bdd3e6ef72ea7591801e74e6"


def test_authenticated_tcp_client_exchanges_messages(make_daemon, clean_env):
    d, addr = tcp_daemon(make_daemon)
    with agent.connect(addr, "tcp", user="alice", secret=ALICE) as t, \
            agent.connect(d.socket, "unix") as u:
        assert t.private_group == "#tcp#d1"
        join_and_wait(u, "chat")
        join_and_wait(t, "chat")
        t.multicast("chat", b"from python over tcp", self_discard=True)
        assert data(u).data == b"from python over tcp"
    assert "client #tcp#d1 connected (tcpuser alice)" in d.log()


def test_environment_credentials(make_daemon, clean_env, tmp_path):
    d, addr = tcp_daemon(make_daemon)
    path = str(tmp_path / "mine.secrets")
    private_file(path, "bob %s\n" % BOB)
    clean_env.setenv("AGENT_SECRET_FILE", path)
    with agent.connect(addr, "env") as c:
        assert c.private_group == "#env#d1"
    os.chmod(path, 0o644)  # a secret others may read is not used
    with pytest.raises(agent.AuthFailed, match="chmod 600"):
        agent.connect(addr, "env2")


def test_wrong_secret_is_refused(make_daemon, clean_env):
    d, addr = tcp_daemon(make_daemon)
    with pytest.raises(agent.AuthFailed) as e:
        agent.connect(addr, "bad", user="alice", secret=BOB)
    assert e.value.code == agent.ErrorCode.AUTH_FAILED == 20
    with pytest.raises(agent.AuthFailed):
        agent.connect(addr, "bad", user="carol", secret=ALICE)
    # Without credentials there is nothing to answer the challenge with.
    with pytest.raises(agent.AuthFailed, match="AGENT_SECRET_FILE"):
        agent.connect(addr, "none")


def test_asyncio_authenticates_and_is_refused(make_daemon, clean_env):
    d, addr = tcp_daemon(make_daemon)

    async def main():
        async with agent.aio.connect(addr, "aio", user=b"bob", secret=BOB.encode()) as c:
            assert c.private_group == "#aio#d1"
        with pytest.raises(agent.AuthFailed):
            await agent.aio.connect(addr, "aio2", user="bob", secret=ALICE)

    asyncio.run(main())
