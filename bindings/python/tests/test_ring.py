"""Three agentd in a ring on loopback UDP ports (the format of
tests/integration/daemon_fixture.cpp ring_section())."""

import agent
from conftest import free_udp_ports, ring_key_file
from util import data, membership

RING_WAIT = 20.0


def ring_section(my_id, ports):
    # Patient timeouts: under sanitizers the daemons run many times slower, and a configuration
    # change in the middle of this test is not what it checks.
    s = "[ring]\nid = %d\ntoken_loss_ms = 2000\nconsensus_timeout_ms = 500\n" % my_id
    s += "key_file = \"%s\"\n" % ring_key_file()
    for i, port in enumerate(ports):
        s += "[[ring.daemons]]\nid = %d\naddress = \"127.0.0.1\"\nport = %d\n" % (i + 1, port)
    return s


def test_join_on_daemon_1_seen_on_daemon_3(make_daemon):
    ports = free_udp_ports(3)
    daemons = [make_daemon("d%d" % (i + 1), extra_config=ring_section(i + 1, ports), wait=False)
               for i in range(3)]
    for d in daemons:
        d.wait_ready()
    with agent.connect(daemons[2].socket, "zoe") as z, \
            agent.connect(daemons[0].socket, "alice") as a:
        assert (a.daemon_name, z.daemon_name) == ("d1", "d3")
        z.join("team")
        membership(z, "team", "join", timeout=RING_WAIT)
        a.join("team")
        m = membership(z, "team", "join", timeout=RING_WAIT)
        assert m.members == ["#alice#d1", "#zoe#d3"]
        assert m.changed == "#alice#d1" and m.reason == "join"
        ma = membership(a, "team", "join", timeout=RING_WAIT)
        assert ma.view == m.view  # the same view id on both daemons
        # Data and private messages cross the ring too.
        a.multicast("team", b"from d1", self_discard=True)
        assert data(z, RING_WAIT).data == b"from d1"
        z.send_private("#alice#d1", b"from d3")
        got = data(a, RING_WAIT)
        assert (got.data, got.sender) == (b"from d3", "#zoe#d3")
        a.leave("team")
        m = membership(z, "team", "leave", timeout=RING_WAIT)
        assert m.members == ["#zoe#d3"] and m.changed == "#alice#d1"
