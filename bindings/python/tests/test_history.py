"""The message log through real agentd processes: history of persistent groups, the hand-over
from history to live messages, positions, resuming, refusals (blocking and asyncio)."""

import asyncio
import threading
import time

import pytest

import agent
import agent.aio
from util import WAIT, membership

# Groups log.* are persistent; others are not.
PERSIST = '[persist]\ngroups = ["log.*"]\n'


@pytest.fixture
def persistent(make_daemon):
    """A daemon d1 that logs the groups log.*."""
    return make_daemon(extra_config=PERSIST)


def read_history(conn, timeout=WAIT):
    """A history's entries and its end; anything else in between fails the test."""
    entries = []
    while True:
        msg = conn.receive(timeout=timeout)
        if isinstance(msg, agent.HistoryEndMessage):
            return entries, msg
        assert isinstance(msg, agent.DataMessage), msg
        entries.append(msg)


def await_logged(sock, group, n):
    """Waits (bounded) until the daemon's log holds n entries of group: the log is written
    apart from delivery, so ask for the history again until it does. Returns the entries."""
    deadline = time.monotonic() + WAIT
    while True:
        with agent.connect(sock, None, membership=False) as probe:
            probe.history(group)
            entries, _ = read_history(probe)
        if len(entries) >= n:
            return entries
        if time.monotonic() > deadline:
            raise AssertionError("the log holds %d entries of %s, not %d, after %s s"
                                 % (len(entries), group, n, WAIT))
        time.sleep(0.02)  # a bounded poll of the log, not a synchronisation


def test_a_late_joiner_gets_history_then_its_view_then_live_messages(persistent):
    with agent.connect(persistent.socket, "a", membership=False) as a:
        a.multicast_many("log.a", [b"m%d" % i for i in range(50)])
        await_logged(persistent.socket, "log.a", 50)

        with agent.connect(persistent.socket, "b") as b:
            b.history("log.a", join=True)
            entries, end = read_history(b)
            assert [m.data for m in entries] == [b"m%d" % i for i in range(50)]
            positions = [m.position for m in entries]
            assert all(isinstance(p, agent.Position) for p in positions)
            assert positions == sorted(set(positions))  # strictly increasing
            assert (end.group, end.count, end.flags, end.gap, end.failed) == \
                ("log.a", 50, 0, False, False)
            assert end.position == positions[-1]
            # Then its own join...
            view = b.receive(timeout=WAIT)
            assert isinstance(view, agent.MembershipMessage)
            assert (view.group, view.reason, view.members) == ("log.a", "join", ["#b#d1"])
            # ...and what comes after it, live (without a position: b did not ask for them).
            a.multicast("log.a", b"live")
            live = b.receive(timeout=WAIT)
            assert isinstance(live, agent.DataMessage)
            assert (live.data, live.position) == (b"live", None)


def test_joining_with_history_under_a_steady_stream_misses_and_repeats_nothing(persistent):
    stop = threading.Event()
    failures = []

    with agent.connect(persistent.socket, "a", membership=False) as a:
        def send_counter():
            try:
                i = 0
                while not stop.is_set() and i < 200000:
                    a.multicast_many("log.s", [b"%d" % j for j in range(i, i + 32)])
                    i += 32
                    time.sleep(0.001)  # pacing: a steady stream, not a flood
            except agent.AgentError as e:
                failures.append(e)

        sender = threading.Thread(target=send_counter, daemon=True)
        sender.start()
        try:
            await_logged(persistent.socket, "log.s", 1000)  # enough of it is history
            with agent.connect(persistent.socket, "b") as b:
                b.history("log.s", join=True)
                entries, end = read_history(b)
                view = b.receive(timeout=WAIT)
                assert isinstance(view, agent.MembershipMessage) and view.reason == "join"
                got = [int(m.data) for m in entries]
                history = len(got)
                while len(got) < history + 1000:
                    msg = b.receive(timeout=WAIT)
                    assert isinstance(msg, agent.DataMessage), msg
                    got.append(int(msg.data))
        finally:
            stop.set()
            sender.join(WAIT)
    assert not failures
    assert history >= 1000 and end.count == history
    # Live messages continue exactly where the history ended: 0, 1, 2, ... without a hole.
    assert got == list(range(len(got)))


def test_history_after_a_position_resumes_there_and_since_a_time_starts_there(persistent):
    with agent.connect(persistent.socket, "a", membership=False) as a:
        a.multicast_many("log.r", [b"first%d" % i for i in range(20)])
        first = await_logged(persistent.socket, "log.r", 20)
        between_ms = time.time() * 1000  # after every first* was delivered (µs precision)
        a.multicast_many("log.r", [b"second%d" % i for i in range(10)])
        await_logged(persistent.socket, "log.r", 30)

    with agent.connect(persistent.socket, "b", membership=False) as b:
        b.history("log.r", after=first[9].position)
        entries, end = read_history(b)
        assert [m.data for m in entries] == ([b"first%d" % i for i in range(10, 20)]
                                             + [b"second%d" % i for i in range(10)])
        assert end.count == 20 and end.position == entries[-1].position
        # A plain (ring, ordinal) pair will do too.
        b.history("log.r", after=tuple(first[18].position))
        assert [m.data for m in read_history(b)[0]][:2] == [b"first19", b"second0"]

        b.history_since("log.r", between_ms)
        assert [m.data for m in read_history(b)[0]] == [b"second%d" % i for i in range(10)]
        # From the end: nothing, and the end says where it stands.
        b.history("log.r", after=end.position)
        none, last = read_history(b)
        assert none == [] and last.count == 0 and last.position == end.position


def test_history_of_a_group_without_a_log_is_refused_with_error_17(persistent):
    with agent.connect(persistent.socket, "b") as b:
        with pytest.raises(agent.IllegalGroup):  # checked before anything is sent
            b.history("#b#d1")
        with pytest.raises(agent.IllegalGroup):
            b.history_since("bad group", 0)
        with pytest.raises(ValueError):
            b.history_since("log.x", -1)
        b.history("plain")
        e = b.receive(timeout=WAIT)
        assert isinstance(e, agent.ErrorMessage)
        assert (e.code, e.name, e.subject) == (agent.ErrorCode.NOT_PERSISTENT,
                                               "not a persistent group", "plain")
        assert e.code == 17 and not e.closes
        assert "keeps no log of group plain" in e.text
        # The connection goes on: a persistent group's (empty) history follows.
        b.history("log.empty")
        entries, end = read_history(b)
        assert entries == [] and end.group == "log.empty" and end.count == 0


def test_retention_keeps_the_newest_messages_and_the_end_reports_the_gap(make_daemon):
    d = make_daemon(extra_config=PERSIST + "retain_messages = 10\n")
    with agent.connect(d.socket, "a", membership=False) as a:
        a.multicast_many("log.t", [b"t%d" % i for i in range(30)])
    # Expiry runs about once a second: poll (bounded) until it has.
    deadline = time.monotonic() + WAIT
    while True:
        with agent.connect(d.socket, None, membership=False) as r:
            r.history("log.t")
            entries, end = read_history(r)
        if len(entries) == 10 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [m.data for m in entries] == [b"t%d" % i for i in range(20, 30)]
    assert end.gap and not end.failed and end.flags & agent.HISTORY_GAP


def test_asyncio_history_join_hand_over_and_live_positions(persistent):
    async def main():
        async with agent.aio.connect(persistent.socket, "a", membership=False) as a:
            await a.multicast_many("log.q", [b"q%d" % i for i in range(5)])
            await asyncio.get_running_loop().run_in_executor(
                None, await_logged, persistent.socket, "log.q", 5)
            async with agent.aio.connect(persistent.socket, "b", positions=True) as b:
                assert b.positions
                await b.history("log.q", join=True)
                entries = []
                while True:
                    m = await b.receive(timeout=WAIT)
                    if isinstance(m, agent.HistoryEndMessage):
                        break
                    entries.append(m)
                assert [e.data for e in entries] == [b"q%d" % i for i in range(5)]
                assert m.count == 5 and m.position == entries[-1].position
                view = await b.receive(timeout=WAIT)
                assert isinstance(view, agent.MembershipMessage) and view.reason == "join"
                # b asked for positions: live messages carry theirs, after the history's.
                await a.multicast("log.q", b"live")
                live = await b.receive(timeout=WAIT)
                assert live.data == b"live" and live.position > m.position
                # Resuming after the live message: nothing more yet.
                await b.history_since("log.q", time.time() * 1000 + 60000)
                end = await b.receive(timeout=WAIT)
                assert isinstance(end, agent.HistoryEndMessage) and end.count == 0
                await b.history("log.q", after=live.position)
                end = await b.receive(timeout=WAIT)
                assert isinstance(end, agent.HistoryEndMessage) and end.count == 0
                with pytest.raises(agent.IllegalGroup):
                    await b.history("#b#d1")
                await b.history("plain")
                e = await b.receive(timeout=WAIT)
                assert isinstance(e, agent.ErrorMessage)
                assert e.code == agent.ErrorCode.NOT_PERSISTENT

    asyncio.run(asyncio.wait_for(main(), WAIT * 3))


def test_live_positions_agree_with_the_log(persistent):
    with agent.connect(persistent.socket, "p", positions=True) as p, \
            agent.connect(persistent.socket, "a", membership=False) as a:
        p.join("log.p")
        membership(p, "log.p", "join")
        a.multicast_many("log.p", [b"p%d" % i for i in range(3)])
        live = [p.receive(timeout=WAIT) for _ in range(3)]
        logged = await_logged(persistent.socket, "log.p", 3)
        assert [m.position for m in live] == [m.position for m in logged]
        assert [m.data for m in live] == [m.data for m in logged]
