"""The blocking API against a real agentd."""

import select
import selectors
import socket
import threading
import time

import pytest

import agent
from agent import client as _client
from conftest import free_port
from util import (WAIT, assert_quiet, connect_when_room, data, join_and_wait, membership,
                  receive_until)


def test_connect_gives_private_group_and_daemon_name(sock):
    with agent.connect(sock, "alice") as conn:
        assert conn.private_group == "#alice#d1"
        assert conn.name == "alice"
        assert conn.daemon_name == "d1"
        assert conn.max_message == 16 << 20
        assert conn.protocol_version == 1
        assert not conn.closed


def test_generated_names_are_unique(sock):
    with agent.connect(sock) as a, agent.connect(sock) as b:
        assert agent.is_private_group(a.private_group)
        assert a.private_group.endswith("#d1")
        assert a.private_group != b.private_group


def test_daemon_from_environment(sock, monkeypatch):
    monkeypatch.setenv("AGENT_DAEMON", sock)
    with agent.connect(name="env") as conn:
        assert conn.private_group == "#env#d1"


def test_name_taken_and_illegal_name(sock):
    with agent.connect(sock, "alice"):
        with pytest.raises(agent.NameTaken) as e:
            agent.connect(sock, "alice")
        assert e.value.code == agent.ErrorCode.NAME_TAKEN == 6
        assert e.value.subject == "alice"
    with pytest.raises(agent.IllegalName):
        agent.connect(sock, "has space")   # refused before anything is sent
    with pytest.raises(agent.IllegalName):
        agent.connect(sock, "elevenchars")


def test_daemon_refuses_wrong_version(sock, monkeypatch):
    monkeypatch.setattr(_client, "_version_for_tests", 99)
    with pytest.raises(agent.VersionMismatch) as e:
        agent.connect(sock, "v99")
    assert e.value.code == 4
    assert isinstance(e.value, agent.Rejected)


def test_join_and_leave_seen_by_another_member(sock):
    with agent.connect(sock, "alice") as a, agent.connect(sock, "bob") as b:
        m = join_and_wait(a, "chat")
        assert m.members == ["#alice#d1"] and m.vs_sets == [["#alice#d1"]]
        b.join("chat")
        mb = membership(b, "chat", "join")
        ma = membership(a, "chat", "join")
        for m in (ma, mb):
            assert m.members == ["#alice#d1", "#bob#d1"]  # sorted
            assert m.changed == "#bob#d1"
            assert m.regular and not m.transitional and not m.self_leave
            assert m.service == agent.REG_MEMB_MESS | agent.CAUSED_BY_JOIN
        assert ma.view == mb.view  # the same view id at every member
        b.leave("chat")
        ml = membership(a, "chat", "leave")
        assert ml.members == ["#alice#d1"] and ml.changed == "#bob#d1"
        assert ml.view.seq > ma.view.seq


def test_self_leave_notice(sock):
    with agent.connect(sock, "alice") as a, agent.connect(sock, "bob") as b:
        join_and_wait(a, "chat")
        join_and_wait(b, "chat")
        b.leave("chat")
        m = membership(b, "chat")
        assert m.self_leave and m.reason == "leave" and not m.regular
        assert m.members == [] and m.changed == "#bob#d1"
        assert m.service == agent.CAUSED_BY_LEAVE
        # b no longer receives the group's messages.
        a.multicast("chat", b"after")
        assert data(a).data == b"after"
        assert_quiet(b)


def test_disconnect_seen_by_the_other_members(sock):
    with agent.connect(sock, "alice") as a:
        join_and_wait(a, "chat")
        b = agent.connect(sock, "bob")
        join_and_wait(b, "chat")
        membership(a, "chat", "join")
        b.close()
        m = membership(a, "chat", "disconnect")
        assert m.members == ["#alice#d1"] and m.changed == "#bob#d1"
        assert m.service == agent.REG_MEMB_MESS | agent.CAUSED_BY_DISCONNECT
        # An abrupt close (no bye) is a disconnect too.
        c = agent.connect(sock, "carol")
        join_and_wait(c, "chat")
        c._sock.shutdown(socket.SHUT_RDWR)
        m = membership(a, "chat", "disconnect")
        assert m.changed == "#carol#d1"
        c.close()


def test_multicast_to_several_groups_is_delivered_once(sock):
    with agent.connect(sock, "alice") as a, agent.connect(sock, "bob") as b:
        join_and_wait(b, "g1")
        join_and_wait(b, "g2")
        a.multicast(["g1", "g2", "nobody"], b"once", msg_type=5)
        m = data(b)
        assert m.data == b"once" and m.groups == ["g1", "g2", "nobody"]
        assert m.sender == "#alice#d1" and m.msg_type == 5 and m.service == agent.AGREED
        a.multicast("g1", b"next")
        assert data(b).data == b"next"  # not a second copy of "once"
        assert_quiet(b)


def test_sender_gets_own_copy_unless_self_discard(sock):
    with agent.connect(sock, "alice") as a:
        join_and_wait(a, "g")
        a.multicast("g", b"mine", service=agent.FIFO)
        m = data(a)
        assert m.data == b"mine" and m.service == agent.FIFO
        a.multicast("g", b"discarded", self_discard=True)
        a.multicast("g", b"discarded too", service=agent.SAFE | agent.SELF_DISCARD)
        a.multicast("g", b"kept")
        assert data(a).data == b"kept"


def test_multicast_many_sends_in_order_in_few_writes(sock):
    with agent.connect(sock, "alice") as a, agent.connect(sock, "bob") as b:
        join_and_wait(b, "g")
        writes = []
        send = a._send
        a._send = lambda frame: (writes.append(len(frame)), send(frame))
        msgs = [b"%05d" % i + b"." * 995 for i in range(300)]
        a.multicast_many((g for g in ["g"]), msgs, service=agent.FIFO, msg_type=3)
        assert 4 <= len(writes) <= 6  # ~300 KiB in writes of at least 64 KiB, not 300
        for i in range(300):
            m = data(b)
            assert m.data == msgs[i] and m.service == agent.FIFO and m.msg_type == 3
        # One bad message: nothing is sent.
        with pytest.raises(agent.MessageTooLarge):
            a.multicast_many("g", [b"fine", b"x" * (a.max_message + 1)])
        assert_quiet(b)


def test_private_message(sock):
    with agent.connect(sock, "alice") as a, agent.connect(sock, "bob") as b:
        a.send_private(b.private_group, b"\x00secret\xff", msg_type=-7)
        m = data(b)
        assert m.data == b"\x00secret\xff" and m.groups == ["#bob#d1"]
        assert m.sender == "#alice#d1" and m.msg_type == -7 and m.is_private
        with pytest.raises(agent.IllegalGroup):
            a.send_private("chat", b"x")  # not a private group


def test_large_and_empty_payloads(sock):
    with agent.connect(sock, "alice") as a:
        join_and_wait(a, "g")
        big = bytes(range(256)) * (3 << 12)  # 3 MiB
        a.multicast("g", big)
        a.multicast("g", b"")
        assert data(a).data == big
        assert data(a).data == b""
        with pytest.raises(agent.MessageTooLarge):
            a.multicast("g", b"x" * (a.max_message + 1))


def test_total_order_same_at_two_receivers_with_concurrent_senders(sock):
    per_sender = 300
    with agent.connect(sock, "r1") as r1, agent.connect(sock, "r2") as r2:
        join_and_wait(r1, "order")
        join_and_wait(r2, "order")
        membership(r1, "order", "join")
        errors = []

        def send(name):
            try:
                with agent.connect(sock, name, membership=False) as s:
                    for i in range(per_sender):
                        svc = agent.SAFE if i % 10 == 0 else agent.AGREED
                        s.multicast("order", b"%s:%d:" % (name.encode(), i) + b"." * (i % 50),
                                    service=svc)
            except Exception as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=send, args=(n,)) for n in ("s1", "s2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 3)
        assert not errors
        orders = []
        for r in (r1, r2):
            got = []
            while len(got) < 2 * per_sender:
                got.append(data(r).data)
            orders.append(got)
        assert orders[0] == orders[1]
        # Each sender's messages in its own order (FIFO within the total order).
        for name in (b"s1", b"s2"):
            seq = [int(p.split(b":")[1]) for p in orders[0] if p.startswith(name + b":")]
            assert seq == list(range(per_sender))


def test_one_connection_shared_by_sending_threads(sock):
    # The send lock keeps frames whole when threads share a connection.
    n = 200
    with agent.connect(sock, "rx") as rx, agent.connect(sock, "tx") as tx:
        join_and_wait(rx, "shared")
        threads = [threading.Thread(target=lambda k=k: [
            tx.multicast("shared", bytes([k]) * (1000 + i)) for i in range(n)]) for k in range(3)]
        for t in threads:
            t.start()
        got = []
        while len(got) < 3 * n:
            got.append(data(rx).data)
        for t in threads:
            t.join(WAIT)
        for k in range(3):
            mine = [p for p in got if p[0] == k]
            assert [len(p) for p in mine] == [1000 + i for i in range(n)]
            assert all(p == bytes([k]) * len(p) for p in mine)


def test_bad_names_groups_services_raise_before_sending(sock):
    with agent.connect(sock, "alice") as a:
        for bad in ["", "x" * 32, "sp ace", "#a#d1", "tab\t", None]:
            with pytest.raises(agent.IllegalGroup):
                a.join(bad)
        with pytest.raises(agent.IllegalGroup):
            a.leave("")
        with pytest.raises(agent.IllegalGroup):
            a.multicast(["good", "#bad"], b"x")
        with pytest.raises(agent.IllegalService):
            a.multicast("g", b"x", service=agent.AGREED | agent.FIFO)
        with pytest.raises(agent.IllegalService):
            a.multicast("g", b"x", service=0x80)
        with pytest.raises(agent.BadGroupCount):
            a.multicast([], b"x")
        with pytest.raises(TypeError):
            a.multicast("g", "not bytes")
        # None of them reached the daemon: no error frames follow.
        assert_quiet(a)


def test_daemon_errors_arrive_as_error_messages(sock):
    with agent.connect(sock, "alice") as a:
        join_and_wait(a, "g")
        a.join("g")
        e = receive_until(a, lambda m: isinstance(m, agent.ErrorMessage))
        assert e.code == 8 and e.code == agent.ErrorCode.ALREADY_MEMBER
        assert e.name == "already a member" and e.subject == "g" and "g" in e.text
        assert not e.closes
        a.leave("other")
        e = receive_until(a, lambda m: isinstance(m, agent.ErrorMessage))
        assert (e.code, e.subject) == (agent.ErrorCode.NOT_MEMBER, "other")
        # A frame the client-side checks would refuse, sent raw: the daemon refuses it too.
        a._send(agent._protocol.encode_multicast(agent.AGREED | agent.SAFE, 0, ["g"], b"x"))
        e = receive_until(a, lambda m: isinstance(m, agent.ErrorMessage))
        assert e.code == agent.ErrorCode.ILLEGAL_SERVICE
        # The connection still works.
        a.multicast("g", b"ok")
        assert data(a).data == b"ok"


def test_receive_timeout(sock):
    with agent.connect(sock, "alice") as a:
        t0 = time.monotonic()
        with pytest.raises(agent.Timeout):
            a.receive(timeout=0.2)
        assert 0.15 < time.monotonic() - t0 < 5
        with pytest.raises(TimeoutError):  # agent.Timeout is a TimeoutError
            a.receive(timeout=0)


def test_tcp_connect(make_daemon):
    for attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        d = make_daemon(tcp="127.0.0.1:%d" % port, wait=False)
        try:
            d.wait_ready()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    for address in ("127.0.0.1:%d" % port, str(port), "%d@127.0.0.1" % port):
        with agent.connect(address, "tcp") as t, agent.connect(d.socket, "unix") as u:
            assert t.private_group == "#tcp#d1"
            join_and_wait(u, "mixed")
            t.join("mixed")
            m = membership(u, "mixed", "join")
            assert m.members == ["#tcp#d1", "#unix#d1"]
            t.multicast("mixed", b"over tcp", self_discard=True)
            assert data(u).data == b"over tcp"
            u.send_private(t.private_group, b"back")
            assert data(t).data == b"back"


def test_fileno_works_with_selectors(sock):
    with agent.connect(sock, "alice") as a, agent.connect(sock, "bob") as b, \
            selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ, "a")
        sel.register(b, selectors.EVENT_READ, "b")
        assert sel.select(timeout=0.1) == []
        a.send_private(b.private_group, b"ping")
        events = sel.select(timeout=WAIT)
        assert [key.data for key, _ in events] == ["b"]
        assert b.receive(timeout=0).data == b"ping"
        # Several messages in one read: pending() tells what is buffered beyond the socket.
        for i in range(3):
            a.send_private(b.private_group, b"%d" % i)
        deadline = time.monotonic() + WAIT
        got = []
        while len(got) < 3 and time.monotonic() < deadline:
            if b.pending() or sel.select(timeout=1.0):
                got.append(b.receive(timeout=WAIT).data)  # readable: at least part of one
        assert got == [b"0", b"1", b"2"]


def test_iteration(sock):
    with agent.connect(sock, "alice") as a, agent.connect(sock, "bob", membership=False) as b:
        for i in range(3):
            a.send_private(b.private_group, b"m%d" % i)
        got = []
        for msg in b:
            got.append(msg.data)
            if len(got) == 3:
                break
        assert got == [b"m0", b"m1", b"m2"]


def test_membership_false_gets_no_membership_messages(sock):
    with agent.connect(sock, "quiet", membership=False) as q:
        q.join("g")
        q.multicast("g", b"only data")
        assert data(q).data == b"only data"  # and no membership message before it
        assert_quiet(q)


def test_context_manager_closes(sock):
    with agent.connect(sock, "alice") as a:
        join_and_wait(a, "g")
        with agent.connect(sock, "bob") as b:
            join_and_wait(b, "g")
            membership(a, "g", "join")
        assert b.closed
        m = membership(a, "g", "disconnect")
        assert m.changed == "#bob#d1"
        with pytest.raises(agent.ConnectionClosed):
            b.receive(timeout=0)
        with pytest.raises(agent.ConnectionClosed):
            b.join("g")
        with pytest.raises(agent.ConnectionClosed):
            b.multicast("g", b"x")
        b.close()  # idempotent
        # The name is free again.
        with agent.connect(sock, "bob") as b2:
            assert b2.private_group == "#bob#d1"


def test_close_from_another_thread_wakes_receive(sock):
    conn = agent.connect(sock, "alice")
    result = []

    def rx():
        try:
            conn.receive()
        except agent.ConnectionClosed as e:
            result.append(e)

    t = threading.Thread(target=rx)
    t.start()
    time.sleep(0.1)
    conn.close()
    t.join(WAIT)
    assert not t.is_alive() and len(result) == 1


def test_daemon_shutdown_is_an_error_then_closed(make_daemon):
    d = make_daemon()
    with agent.connect(d.socket, "alice") as a:
        assert d.stop() == 0
        msgs = []
        with pytest.raises(agent.ConnectionClosed):  # the daemon went away: not a quiet end
            for m in a:
                msgs.append(m)
        assert len(msgs) == 1 and isinstance(msgs[0], agent.ErrorMessage)
        assert msgs[0].code == agent.ErrorCode.SHUTTING_DOWN and msgs[0].closes
        assert a.closed
        with pytest.raises(agent.ConnectionClosed):
            a.receive(timeout=1)


def test_daemon_limits(make_daemon):
    d = make_daemon(extra_config="[clients]\nmax_clients = 2\nmax_message_bytes = 1000\n"
                                 "queue_limit_bytes = 65536\n")
    with connect_when_room(d.socket, "a") as a, connect_when_room(d.socket, "b") as b:
        # Too many clients: refused at connect.
        with pytest.raises(agent.Rejected) as e:
            agent.connect(d.socket, "c")
        assert e.value.code == agent.ErrorCode.TOO_MANY_CLIENTS
        # The announced payload limit is enforced on both sides.
        assert a.max_message == 1000
        with pytest.raises(agent.MessageTooLarge):
            a.send_private(b.private_group, b"x" * 1001)
        a._send(agent._protocol.encode_multicast(agent.AGREED, 0, ["#b#d1"], b"x" * 1001))
        err = receive_until(a, lambda m: isinstance(m, agent.ErrorMessage))
        assert err.code == agent.ErrorCode.MESSAGE_TOO_LARGE
        a.send_private(b.private_group, b"x" * 1000)
        assert len(data(b).data) == 1000


def test_slow_client_is_disconnected(make_daemon):
    d = make_daemon(extra_config="[clients]\nmax_message_bytes = 1024\n"
                                 "queue_limit_bytes = 65536\n")
    with agent.connect(d.socket, "fast") as fast, agent.connect(d.socket, "slow") as slow:
        join_and_wait(fast, "g")
        join_and_wait(slow, "g")
        membership(fast, "g", "join")
        # slow does not read; fast floods the group and reads its own copies.
        chunk = b"." * 1024
        for i in range(8000):
            fast.multicast("g", chunk, self_discard=True)
        m = membership(fast, "g", "disconnect", timeout=WAIT * 2)
        assert m.changed == "#slow#d1"
        msgs = []
        with pytest.raises(agent.ConnectionClosed):  # what was queued, error 14, the end
            for x in slow:
                msgs.append(x)
        last = msgs[-1]
        assert isinstance(last, agent.ErrorMessage) and last.code == agent.ErrorCode.SLOW_CLIENT
        assert last.closes and last.subject == "#slow#d1"
        assert all(isinstance(x, agent.DataMessage) for x in msgs[:-1])
        assert slow.closed


def test_refusal_sent_before_the_hello_arrives(make_daemon, monkeypatch):
    # A daemon at its client limit answers error 16 and closes as soon as it accepts, so the
    # hello may meet a closed socket (EPIPE): the error must still be reported as such.
    d = make_daemon(extra_config="[clients]\nmax_clients = 1\n")
    original = _client._open_socket

    def open_then_wait_for_the_refusal(addr, timeout):
        sock = original(addr, timeout)
        select.select([sock], [], [], WAIT)  # the error frame has arrived...
        time.sleep(0.05)                     # ...and the daemon has closed
        return sock

    with connect_when_room(d.socket, "first"):
        monkeypatch.setattr(_client, "_open_socket", open_then_wait_for_the_refusal)
        for _ in range(3):
            with pytest.raises(agent.Rejected) as e:
                agent.connect(d.socket, "second")
            assert e.value.code == agent.ErrorCode.TOO_MANY_CLIENTS


def test_iteration_raises_when_the_daemon_is_killed(make_daemon):
    d = make_daemon()
    with agent.connect(d.socket, "alice") as a:
        d.kill()
        with pytest.raises(agent.ConnectionClosed):
            for _ in a:
                pass


def test_iteration_ends_quietly_after_the_programs_own_close(daemon):
    conn = agent.connect(daemon.socket, "alice")
    seen = []

    def consume():
        seen.extend(conn)  # returns normally once close() ran

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.05)
    conn.close()
    t.join(WAIT)
    assert not t.is_alive() and seen == []
