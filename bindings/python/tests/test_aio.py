"""The asyncio API against a real agentd (asyncio.run in plain tests: no plugin needed)."""

import asyncio

import pytest

import agent
import agent.aio
from agent import client as _client
from util import WAIT


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT * 3))


async def until(conn, pred):
    while True:
        msg = await conn.receive(timeout=WAIT)
        if pred(msg):
            return msg


def is_memb(group, reason):
    return lambda m: (isinstance(m, agent.MembershipMessage) and m.group == group
                      and m.reason == reason)


def is_data(m):
    return isinstance(m, agent.DataMessage)


def test_asyncio_end_to_end(sock):
    async def main():
        async with agent.aio.connect(sock, "alice") as a, agent.aio.connect(sock, "bob") as b:
            assert a.private_group == "#alice#d1" and a.daemon_name == "d1"
            await a.join("room")
            await until(a, is_memb("room", "join"))
            await b.join("room")
            m = await until(a, is_memb("room", "join"))
            assert m.members == ["#alice#d1", "#bob#d1"] and m.changed == "#bob#d1"
            await b.multicast(["room", "elsewhere"], b"hello", service=agent.SAFE, msg_type=2)
            got = await until(a, is_data)
            assert (got.data, got.sender, got.service, got.msg_type) == \
                (b"hello", "#bob#d1", agent.SAFE, 2)
            await a.send_private(b.private_group, b"direct")
            got = await until(b, lambda m: is_data(m) and m.groups == ["#bob#d1"])
            assert got.data == b"direct"
            await b.multicast_many("room", [b"one", b"two", b"three"])
            for want in (b"one", b"two", b"three"):
                assert (await until(a, is_data)).data == want
            # Errors are messages in the stream.
            await a.join("room")
            e = await until(a, lambda m: isinstance(m, agent.ErrorMessage))
            assert e.code == agent.ErrorCode.ALREADY_MEMBER
            # Client-side checks raise.
            with pytest.raises(agent.IllegalGroup):
                await a.join("#x#y")
            with pytest.raises(agent.IllegalService):
                await a.multicast("room", b"", service=0)
            await b.leave("room")
            m = await until(b, is_memb("room", "leave"))
            assert m.self_leave
            m = await until(a, is_memb("room", "leave"))
            assert m.members == ["#alice#d1"]
            with pytest.raises(agent.Timeout):
                await a.receive(timeout=0.1)
        assert a.closed and b.closed
        with pytest.raises(agent.ConnectionClosed):
            await a.join("room")

    run(main())


def test_asyncio_async_for_and_concurrent_tasks(sock):
    n = 200

    async def main():
        rx = await agent.aio.connect(sock, "rx", membership=False)
        tx = await agent.aio.connect(sock, "tx")
        # Two coroutines send on one connection concurrently.
        await asyncio.gather(*(
            asyncio.gather(*(tx.send_private(rx.private_group, b"%d:%d" % (k, i))
                             for i in range(n)))
            for k in range(2)))
        got = []
        async for msg in rx:
            got.append(msg.data)
            if len(got) == 2 * n:
                break
        for k in range(2):
            mine = [int(p.split(b":")[1]) for p in got if p.startswith(b"%d:" % k)]
            assert sorted(mine) == list(range(n))
        await tx.close()
        await rx.close()
        await rx.close()  # idempotent

    run(main())


def test_asyncio_timeout_zero_returns_buffered(sock):
    async def main():
        async with await agent.aio.connect(sock, "a", membership=False) as a:
            await a.send_private(a.private_group, b"x")
            # receive(timeout=0) returns the message once it has arrived, without waiting.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while True:
                try:
                    msg = await a.receive(timeout=0)
                    break
                except agent.Timeout:
                    assert loop.time() < deadline
                    await asyncio.sleep(0.02)
            assert msg.data == b"x"
            with pytest.raises(agent.Timeout):
                await a.receive(timeout=0)
            # A cancelled receive loses nothing.
            task = asyncio.ensure_future(a.receive())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await a.send_private(a.private_group, b"y")
            assert (await a.receive(timeout=WAIT)).data == b"y"

    run(main())


def test_asyncio_connect_errors(sock, monkeypatch, scratch_dir):
    async def main():
        a = await agent.aio.connect(sock, "same")
        with pytest.raises(agent.NameTaken):
            await agent.aio.connect(sock, "same")
        await a.close()
        with pytest.raises(agent.IllegalName):
            await agent.aio.connect(sock, "")
        with pytest.raises(agent.ConnectError):
            await agent.aio.connect(str(scratch_dir / "none.sock"), "x", timeout=1)
        monkeypatch.setattr(_client, "_version_for_tests", 7)
        with pytest.raises(agent.VersionMismatch):
            await agent.aio.connect(sock, "v7")

    run(main())


def test_asyncio_close_ends_async_for(sock):
    async def main():
        conn = await agent.aio.connect(sock, "c")
        seen = []

        async def consume():
            async for m in conn:
                seen.append(m)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        await conn.close()
        await asyncio.wait_for(task, WAIT)
        assert seen == []

    run(main())


def test_asyncio_refusal_sent_before_the_hello_arrives(make_daemon, monkeypatch):
    import select
    import agent.aio as aio_mod
    d = make_daemon(extra_config="[clients]\nmax_clients = 1\n")
    original = aio_mod._open_socket

    async def open_then_wait_for_the_refusal(loop, addr):
        sock = await original(loop, addr)
        deadline = loop.time() + WAIT
        while not select.select([sock], [], [], 0)[0] and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return sock

    async def main():
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:  # the fixture's readiness probe may still count as a client
            try:
                first = await agent.aio.connect(d.socket, "first")
                break
            except agent.Rejected:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)
        async with first:
            monkeypatch.setattr(aio_mod, "_open_socket", open_then_wait_for_the_refusal)
            with pytest.raises(agent.Rejected) as e:
                await agent.aio.connect(d.socket, "second")
            assert e.value.code == agent.ErrorCode.TOO_MANY_CLIENTS

    run(main())


def test_asyncio_iteration_raises_when_the_daemon_is_killed(make_daemon):
    d = make_daemon()

    async def main():
        conn = await agent.aio.connect(d.socket, "c")
        d.kill()
        with pytest.raises(agent.ConnectionClosed):
            async for _ in conn:
                pass
        await conn.close()

    run(main())
