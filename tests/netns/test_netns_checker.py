#!/usr/bin/env python3
"""The namespace test's checker on hand-made client logs: a correct history passes, and each
property catches a history that breaks it (a checker that passes everything proves nothing)."""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import netns_checker as nc  # noqa: E402

G = "g"
REG_NET = nc.REG_MEMB_MESS | 0x800
TRANS_NET = nc.TRANSITION_MESS | 0x800
REG_JOIN = nc.REG_MEMB_MESS | nc.CAUSED_BY_JOIN
REG_DISC = nc.REG_MEMB_MESS | 0x400


class History:
    """Client logs written step by step, with one clock."""

    def __init__(self, *names: str):
        self.t = 0.0
        self.logs = {n: nc.ClientLog(n, "#%s#d%s" % (n, n[1:])) for n in names}
        for c in self.logs.values():
            self._add(c, {"k": "hello", "pg": c.pg, "daemon": "d" + c.name[1:]})
        self.sent = {n: 0 for n in names}

    def _add(self, c: nc.ClientLog, r: dict) -> None:
        self.t += 0.001
        r["t"] = self.t
        c.records.append(r)

    def pg(self, n: str) -> str:
        return self.logs[n].pg

    def view(self, at, svc, seq, members, changed="", config=7) -> "History":
        for n in at:
            self._add(self.logs[n], {"k": "memb", "g": G, "svc": svc, "id": [config, seq],
                                     "m": sorted(self.pg(m) for m in members),
                                     "ch": self.pg(changed) if changed else "", "vs": []})
        return self

    def send(self, sender: str, at, svc=0x10) -> "History":
        self.sent[sender] += 1
        n = self.sent[sender]
        self._add(self.logs[sender], {"k": "send", "n": n, "svc": svc})
        for r in at:
            self.deliver(r, sender, n, svc)
        return self

    def deliver(self, at: str, sender: str, n: int, svc=0x10) -> "History":
        self._add(self.logs[at], {"k": "data", "from": self.pg(sender), "n": n, "g": [G],
                                  "svc": svc})
        return self

    def end(self, *names: str) -> "History":
        for n in names:
            self._add(self.logs[n], {"k": "end"})
        return self

    def check(self):
        return nc.check(list(self.logs.values()), G)


def joined() -> History:
    """c1 and c2 in one regular view, a message each."""
    h = History("c1", "c2")
    h.view(["c1"], REG_JOIN, 1, ["c1"], "c1")
    h.view(["c1", "c2"], REG_JOIN, 2, ["c1", "c2"], "c2")
    return h.send("c1", ["c1", "c2"]).send("c2", ["c1", "c2"])


class CheckerTest(unittest.TestCase):
    def assertFails(self, h: History, prop: str):
        failures = h.check()
        self.assertTrue(any(f.startswith(prop + ":") for f in failures),
                        "expected a '%s' failure, got %r" % (prop, failures))

    def test_a_correct_history_with_a_partition_and_a_heal_passes(self):
        h = joined()
        h.view(["c1"], TRANS_NET, 10, ["c1"]).view(["c2"], TRANS_NET, 11, ["c2"])
        h.view(["c1"], REG_NET, 12, ["c1"], config=8).view(["c2"], REG_NET, 13, ["c2"], config=9)
        h.send("c1", ["c1"]).send("c2", ["c2"])
        h.view(["c1", "c2"], TRANS_NET, 14, ["c1", "c2"], config=10)
        h.view(["c1", "c2"], REG_NET, 15, ["c1", "c2"], config=10)
        h.send("c1", ["c1", "c2"]).send("c2", ["c2", "c1"])
        h.end("c1")
        h.view(["c2"], REG_DISC, 16, ["c2"], "c1", config=10)  # after the end: not final
        h.end("c2")
        self.assertEqual(h.check(), [])

    def test_a_view_without_the_client_fails(self):
        h = joined().view(["c1", "c2"], REG_NET, 5, ["c2"])
        self.assertFails(h.end("c1", "c2"), "self")

    def test_a_first_view_that_is_not_the_own_join_fails(self):
        h = History("c1")
        h.view(["c1"], REG_NET, 1, ["c1"]).send("c1", ["c1"]).end("c1")
        self.assertFails(h, "self")

    def test_one_view_id_with_two_member_lists_fails(self):
        h = joined()
        h.view(["c1"], REG_NET, 5, ["c1", "c2"]).view(["c2"], REG_NET, 5, ["c2"])
        self.assertFails(h.end("c1", "c2"), "view ids")

    def test_one_view_id_twice_at_a_client_fails(self):
        h = joined().view(["c1"], REG_JOIN, 2, ["c1", "c2"], "c2")
        self.assertFails(h.end("c1", "c2"), "view ids")

    def test_two_orders_fail(self):
        h = joined()
        h.send("c1", ["c1"]).send("c2", ["c2"])
        h.deliver("c2", "c1", 2).deliver("c1", "c2", 2)  # c1: 1.2 2.2; c2: 2.2 1.2
        self.assertFails(h.end("c1", "c2"), "one order")

    def test_a_message_nobody_sent_fails(self):
        h = joined().deliver("c2", "c1", 9)
        self.assertFails(h.end("c1", "c2"), "data")

    def test_a_duplicate_delivery_fails(self):
        h = joined().deliver("c2", "c1", 1)
        self.assertFails(h.end("c1", "c2"), "data")

    def test_fifo_broken_fails(self):
        h = joined().send("c1", ["c1"]).send("c1", ["c1"]).deliver("c2", "c1", 3)
        h.deliver("c2", "c1", 2)
        self.assertFails(h.end("c1", "c2"), "data")

    def test_same_transition_different_messages_fails(self):
        h = joined()
        h.send("c1", ["c1"])  # c2 never gets it, yet moves to the same next view
        h.view(["c1", "c2"], TRANS_NET, 10, ["c1", "c2"], config=8)
        self.assertFails(h.end("c1", "c2"), "same view, same messages")

    def test_live_clients_ending_apart_fail(self):
        h = joined()
        h.view(["c1"], TRANS_NET, 10, ["c1"]).view(["c1"], REG_NET, 11, ["c1"], config=8)
        h.send("c1", ["c1"]).send("c2", ["c2"])
        self.assertFails(h.end("c1", "c2"), "final view")

    def test_a_message_sent_in_the_final_view_that_does_not_reach_everyone_fails(self):
        h = joined().send("c2", ["c2"])  # c1 never gets c2's second message
        self.assertFails(h.end("c1", "c2"), "after heal")

    def test_a_killed_client_is_not_expected_in_the_final_view(self):
        h = History("c1", "c2", "c3")
        h.view(["c1"], REG_JOIN, 1, ["c1"], "c1")
        h.view(["c1", "c2"], REG_JOIN, 2, ["c1", "c2"], "c2")
        h.view(["c1", "c2", "c3"], REG_JOIN, 3, ["c1", "c2", "c3"], "c3")
        h._add(h.logs["c3"], {"k": "closed", "why": "the daemon closed the connection"})
        h.view(["c1", "c2"], TRANS_NET, 4, ["c1", "c2"], config=8)
        h.view(["c1", "c2"], REG_NET, 5, ["c1", "c2"], config=8)
        h.send("c1", ["c1", "c2"]).send("c2", ["c1", "c2"]).end("c1", "c2")
        self.assertEqual(h.check(), [])


if __name__ == "__main__":
    unittest.main()
