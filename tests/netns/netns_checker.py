#!/usr/bin/env python3
"""Judges a namespace fault run from its client logs (written by netns_client.py).

Properties (DESIGN.md §1 and §6; the client part of tests/sim/README.md, "What the checker
proves"), each reported with the clients and views concerned:

- self:       every view a client gets lists the client; its first view of a group is its own
              join.
- data:       no creation (a delivered message was logged as sent by the client it names), no
              duplication, FIFO per sender.
- view ids:   clients that get a view with the same (group, view id) get the same members and
              the same kind (service bits); no client gets one view id twice.
- one order:  any two clients deliver the messages they both deliver in the same relative order.
- same view, same messages: two clients that go from view V straight to view V' of a group
              deliver the same messages of that group in between.
- final view: every live client ends in one regular view of the group (the same view id at all)
              that lists every live client and only them ("ends": before the first live
              client logs that the test is ending it).
- after heal: every message a live client sent after it got that final view reaches every live
              client (and every live client sent some: else this proves nothing).

Usage: netns_checker.py GROUP LOG... (a client is live when its log ends with "end").
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

REG_MEMB_MESS = 0x1000
TRANSITION_MESS = 0x2000
CAUSED_BY_JOIN = 0x100

MsgId = Tuple[str, int]  # (sender's private group, counter)


@dataclass
class ClientLog:
    name: str                       # the log's name, for reports ("c1")
    pg: str = ""                    # the private group ("#c1#d1")
    records: List[dict] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Ended by the test (SIGTERM), not by its daemon going away."""
        return bool(self.records) and self.records[-1]["k"] == "end"

    def views(self, group: str) -> List[dict]:
        return [r for r in self.records if r["k"] == "memb" and r["g"] == group and is_view(r)]


def is_view(r: dict) -> bool:
    return (r["svc"] & (REG_MEMB_MESS | TRANSITION_MESS)) != 0


def is_regular(r: dict) -> bool:
    return (r["svc"] & REG_MEMB_MESS) != 0


def show(r: dict) -> str:
    """A view as reports print it."""
    kind = "regular" if is_regular(r) else "transitional" if is_view(r) else "notice"
    return "%s view %s (%d.%d) [%s]" % (kind, r["g"], r["id"][0], r["id"][1], " ".join(r["m"]))


def parse_lines(name: str, lines: Sequence[str]) -> ClientLog:
    log = ClientLog(name)
    for line in lines:
        if not line.endswith("\n"):
            break  # a line cut short by a kill: the client never finished writing it
        r = json.loads(line)
        if r["k"] == "hello":
            log.pg = r["pg"]
        log.records.append(r)
    return log


def load(path: str, name: Optional[str] = None) -> ClientLog:
    with open(path, encoding="utf-8") as f:
        return parse_lines(name or path, f.readlines())


class Report:
    LIMIT = 20  # failures kept per property: the first ones tell the story

    def __init__(self) -> None:
        self.failures: List[str] = []
        self._count: Dict[str, int] = {}

    def fail(self, prop: str, text: str) -> None:
        n = self._count.get(prop, 0)
        self._count[prop] = n + 1
        if n < self.LIMIT:
            self.failures.append("%s: %s" % (prop, text))


def check_self(logs: List[ClientLog], rep: Report) -> None:
    for c in logs:
        joined = set()
        for r in c.records:
            if r["k"] != "memb" or not is_view(r):
                continue
            if c.pg not in r["m"]:
                rep.fail("self", "%s got %s, which does not list it" % (c.name, show(r)))
            if r["g"] not in joined and not (r["svc"] & CAUSED_BY_JOIN and r["ch"] == c.pg):
                rep.fail("self", "%s's first view of %s is %s, not its own join"
                         % (c.name, r["g"], show(r)))
            joined.add(r["g"])


def check_data(logs: List[ClientLog], rep: Report) -> None:
    sent = {(c.pg, r["n"]): r for c in logs for r in c.records if r["k"] == "send"}
    for c in logs:
        seen = set()
        last: Dict[str, int] = {}
        for r in c.records:
            if r["k"] != "data":
                continue
            mid = (r["from"], r["n"])
            s = sent.get(mid)
            if s is None or s["svc"] != r["svc"]:
                rep.fail("data", "%s got %s:%d (service 0x%x), which no client sent"
                         % (c.name, r["from"], r["n"], r["svc"]))
            if mid in seen:
                rep.fail("data", "%s got %s:%d twice" % (c.name, r["from"], r["n"]))
            seen.add(mid)
            if last.get(r["from"], 0) >= r["n"]:
                rep.fail("data", "FIFO: %s got %s:%d after %s:%d"
                         % (c.name, r["from"], r["n"], r["from"], last[r["from"]]))
            last[r["from"]] = max(last.get(r["from"], 0), r["n"])


def check_view_ids(logs: List[ClientLog], rep: Report) -> None:
    first: Dict[Tuple[str, int, int], Tuple[str, dict]] = {}
    for c in logs:
        mine = set()
        for r in c.records:
            if r["k"] != "memb" or not is_view(r):
                continue
            key = (r["g"], r["id"][0], r["id"][1])
            if key in mine:
                rep.fail("view ids", "%s got %s twice" % (c.name, show(r)))
            mine.add(key)
            if key not in first:
                first[key] = (c.name, r)
                continue
            other, o = first[key]
            if o["svc"] != r["svc"] or o["m"] != r["m"]:
                rep.fail("view ids", "%s got %s (service 0x%x), %s got %s (service 0x%x): one "
                         "view id, two views" % (c.name, show(r), r["svc"], other, show(o),
                                                 o["svc"]))


def check_order(logs: List[ClientLog], rep: Report) -> None:
    seqs = [(c.name, [(r["from"], r["n"]) for r in c.records if r["k"] == "data"]) for c in logs]
    pos = [{mid: i for i, mid in enumerate(s)} for _, s in seqs]
    for a in range(len(seqs)):
        for b in range(a + 1, len(seqs)):
            prev: Optional[MsgId] = None
            prev_pos = -1
            for mid in seqs[a][1]:
                p = pos[b].get(mid)
                if p is None:
                    continue
                if p < prev_pos:
                    rep.fail("one order", "%s delivered %s:%d before %s:%d, %s the other way "
                             "round" % (seqs[a][0], prev[0], prev[1], mid[0], mid[1], seqs[b][0]))
                    break
                prev, prev_pos = mid, p


def view_name(r: dict) -> tuple:
    return (r["g"], r["svc"], r["id"][0], r["id"][1], tuple(r["m"]))


def check_same_view_same_messages(logs: List[ClientLog], rep: Report) -> None:
    first: Dict[tuple, Tuple[str, frozenset]] = {}
    for c in logs:
        current: Dict[str, Tuple[tuple, dict, set]] = {}  # group -> (view name, view, messages)
        for r in c.records:
            if r["k"] == "data":
                for g in r["g"]:
                    if g in current:
                        current[g][2].add((r["from"], r["n"]))
            elif r["k"] == "memb":
                if not is_view(r):
                    current.pop(r["g"], None)
                    continue
                v = view_name(r)
                if r["g"] in current:
                    u, ur, msgs = current[r["g"]]
                    msgs = frozenset(msgs)
                    seen = first.setdefault((u, v), (c.name, msgs))
                    if seen[1] != msgs:
                        only_here = sorted(msgs - seen[1])
                        only_there = sorted(seen[1] - msgs)
                        rep.fail("same view, same messages",
                                 "%s and %s both went from %s to %s but delivered different "
                                 "messages in between: %d only at %s (first %s), %d only at %s "
                                 "(first %s)" % (c.name, seen[0], show(ur), show(r),
                                                 len(only_here), c.name, only_here[:1],
                                                 len(only_there), seen[0], only_there[:1]))
                current[r["g"]] = (v, r, set())


def final_views(logs: List[ClientLog], group: str) -> Dict[str, Optional[dict]]:
    """Each live client's last view of the group (None if it has none) before the test began
    to end the clients: the views their leaving causes come after the first "end" record."""
    live = [c for c in logs if c.live]
    cutoff = min((c.records[-1]["t"] for c in live), default=0.0)
    out = {}
    for c in live:
        views = [v for v in c.views(group) if v["t"] < cutoff]
        out[c.name] = views[-1] if views else None
    return out


def check_final(logs: List[ClientLog], group: str, rep: Report) -> None:
    live = [c for c in logs if c.live]
    if not live:
        rep.fail("final view", "no client is live")
        return
    everyone = sorted(c.pg for c in live)
    last = final_views(logs, group)
    ids = set()
    for c in live:
        v = last[c.name]
        if v is None or not is_regular(v) or v["m"] != everyone:
            rep.fail("final view", "%s ends in %s, not one regular view of every live client [%s]"
                     % (c.name, show(v) if v else "no view", " ".join(everyone)))
        elif v:
            ids.add(tuple(v["id"]))
    if len(ids) > 1:
        rep.fail("final view", "live clients end in different views: %s" % sorted(ids))
    if rep.failures:
        return
    # After heal: what a live client sent once it had the final view reaches every live client.
    delivered = {c.name: {(r["from"], r["n"]) for r in c.records if r["k"] == "data"}
                 for c in live}
    for c in live:
        at = c.records.index(last[c.name])
        after = [(c.pg, r["n"]) for r in c.records[at:] if r["k"] == "send"]
        if not after:
            rep.fail("after heal", "%s sent nothing after its final view: liveness unproven"
                     % c.name)
        for d in live:
            missing = [m for m in after if m not in delivered[d.name]]
            if missing:
                rep.fail("after heal", "%d of the %d messages %s sent after its final view never "
                         "reached %s (first %s:%d)" % (len(missing), len(after), c.name, d.name,
                                                       missing[0][0], missing[0][1]))


def check(logs: List[ClientLog], group: str) -> List[str]:
    """Every failure found, grouped by property (empty: the run is correct)."""
    rep = Report()
    for c in logs:
        if not c.pg:
            rep.fail("self", "%s never connected" % c.name)
    logs = [c for c in logs if c.pg]
    check_self(logs, rep)
    check_data(logs, rep)
    check_view_ids(logs, rep)
    check_order(logs, rep)
    check_same_view_same_messages(logs, rep)
    check_final(logs, group, rep)
    return rep.failures


def main(argv: List[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    logs = [load(p) for p in argv[2:]]
    failures = check(logs, argv[1])
    for f in failures:
        print("FAIL " + f)
    n = sum(1 for c in logs for r in c.records if r["k"] == "data")
    print("checked %d clients, %d deliveries: %s" % (len(logs), n,
                                                     "FAILED" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
