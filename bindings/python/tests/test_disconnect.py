"""A close loses nothing: every multicast a send accepted reaches the daemon, also over TCP
with deliveries the client never read (closing with unread bytes would make the kernel reset
the connection, and the daemon lose what it had not read yet)."""

import asyncio

import agent
from conftest import free_port, free_udp_ports, ring_key_file
from util import membership

N = 3000
RING_WAIT = 20.0


def two_daemons(make_daemon):
    # d1 pauses reading its clients early (a small ring queue), so what a fast sender wrote is
    # still in d1's socket when it closes; the receiver sits on d2.
    ports = free_udp_ports(2)
    tcp = "127.0.0.1:%d" % free_port()
    daemons = []
    for i in (1, 2):
        ring = ("[clients]\nmax_message_bytes = 32768\n[ring]\nid = %d\ntoken_loss_ms = 2000\n"
                "consensus_timeout_ms = 500\nmax_pending_bytes = 65536\nkey_file = \"%s\"\n"
                % (i, ring_key_file()))
        for k, port in enumerate(ports):
            ring += "[[ring.daemons]]\nid = %d\naddress = \"127.0.0.1\"\nport = %d\n" % (k + 1, port)
        daemons.append(make_daemon("d%d" % i, tcp=tcp if i == 1 else None, extra_config=ring,
                                   wait=False))
    for d in daemons:
        d.wait_ready()
    return tcp, daemons


def count_until_disconnect(rx) -> int:
    got = 0
    while True:
        try:
            m = rx.receive(timeout=RING_WAIT)
        except agent.Timeout:
            return got
        if isinstance(m, agent.DataMessage):
            got += 1
        elif isinstance(m, agent.MembershipMessage) and m.reason == "disconnect":
            return got


def test_close_over_tcp_loses_nothing(make_daemon):
    tcp, daemons = two_daemons(make_daemon)
    with agent.connect(daemons[1].socket, "rx") as rx:
        rx.join("g")
        membership(rx, "g", "join", timeout=RING_WAIT)
        tx = agent.connect(tcp, "tx")
        tx.join("g")  # its own messages come back and fill its socket, unread
        membership(rx, "g", "join", timeout=RING_WAIT)
        body = b"x" * 1024
        for _ in range(N):
            tx.multicast("g", body)
        tx.close()
        assert count_until_disconnect(rx) == N


def test_asyncio_close_over_tcp_loses_nothing(make_daemon):
    tcp, daemons = two_daemons(make_daemon)

    async def send():
        tx = await agent.aio.connect(tcp, "tx")
        await tx.join("g")
        await tx.multicast_many("g", [b"x" * 1024] * N)  # written at once: d1 falls behind
        return tx

    with agent.connect(daemons[1].socket, "rx") as rx:
        rx.join("g")
        membership(rx, "g", "join", timeout=RING_WAIT)

        async def run():
            tx = await send()
            await tx.close()

        asyncio.run(run())
        membership(rx, "g", "join", timeout=RING_WAIT)
        assert count_until_disconnect(rx) == N
