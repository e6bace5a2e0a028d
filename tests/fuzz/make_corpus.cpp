// Writes the fuzz targets' seed corpora and dictionaries (tests/fuzz/corpus/<target>/, the
// files are committed) from the real encoders and a simulated ring of three daemon cores:
//
//   fuzz_make_corpus CORPUS_DIR EXAMPLE_CONFIG      (tests/fuzz/corpus etc/agentd.toml)
//
// Ring seeds are traces (driver.h) of what daemon 1 received while its ring formed, carried
// client traffic, lost and regained a daemon, and saw a daemon restart; played back into a
// fresh core they drive it through the same states, so the fuzzer mutates a live ring.
// Everything is deterministic: running it again writes the same files.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agentd/config_keys.h"
#include "bridge/bridge_wire.h"
#include "groups/event_codec.h"
#include "tests/fuzz/driver.h"
#include "transport/client_protocol.h"
#include "transport/ring_wire.h"
#include "transport/wire.h"

using namespace agent;
using namespace agent::fuzz;
using membership::NodeId;
using membership::Time;
namespace svc = proto::service;

namespace {

std::string root;

void write_file(const std::string& target, const std::string& name, const std::string& bytes) {
  std::string dir = root + "/" + target;
  ::mkdir(root.c_str(), 0755);
  ::mkdir(dir.c_str(), 0755);
  std::ofstream f(dir + "/" + name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::cerr << "fuzz_make_corpus: cannot write " << dir << "/" << name << "\n";
    std::exit(1);
  }
}

// ---- client frames ----

std::string hello(const std::string& name, uint8_t flags = proto::kHelloWantMembership) {
  std::string b;
  proto::encode(b, proto::Hello{proto::kMagic, proto::kVersion, flags, name});
  return b;
}
std::string join(const std::string& g) {
  std::string b;
  proto::encode_join(b, g);
  return b;
}
std::string leave(const std::string& g) {
  std::string b;
  proto::encode_leave(b, g);
  return b;
}
std::string mcast(std::vector<std::string> groups, const std::string& payload,
                  uint32_t service = svc::kAgreed, int16_t type = 0) {
  std::string b;
  proto::encode(b, proto::Multicast{service, type, std::move(groups), payload});
  return b;
}
std::string history(const std::string& g, uint8_t flags, uint64_t ring = 0, uint64_t ordinal = 0,
                    uint64_t since_us = 0) {
  std::string b;
  proto::encode(b, proto::History{g, flags, ring, ordinal, since_us});
  return b;
}
std::string bye() {
  std::string b;
  proto::encode_bye(b);
  return b;
}

// A daemon alone with clients: the trace of one session script.
struct Alone {
  Alone() : d(fuzz_config(1, 1)) { d.record(&t); }
  void step(Time us) {
    d.advance_to(d.now() + us);
    d.run();
  }
  TraceWriter t;
  Driver d;
};

void client_frame_corpus() {
  {  // one client: join, send, leave, goodbye
    Alone a;
    a.d.open(1);
    a.d.bytes(1, hello("alice") + join("chat") + mcast({"chat"}, "hello"));
    a.step(1000);
    a.d.bytes(1, leave("chat") + bye());
    a.step(1000);
    write_file("client_frame", "session", a.t.str());
  }
  {  // two clients: every service, several groups, a private message, a fragmented payload
    Alone a;
    a.d.open(1);
    a.d.open(2);
    a.d.bytes(1, hello("alice") + join("a") + join("b"));
    a.d.bytes(2, hello("bob", proto::kHelloWantMembership | proto::kHelloPositions) + join("a"));
    a.step(1000);
    std::string m;
    for (uint32_t s : {svc::kUnreliable, svc::kReliable, svc::kFifo, svc::kCausal, svc::kAgreed,
                       svc::kSafe, svc::kAgreed | svc::kSelfDiscard})
      m += mcast({"a", "b"}, "x", s, 7);
    m += mcast({"#bob#d1"}, "private", svc::kFifo, -1);
    m += mcast({"a"}, std::string(3000, 'f'), svc::kSafe);
    a.d.bytes(1, m);
    a.step(1000);
    a.d.closed(2);
    a.step(1000);
    write_file("client_frame", "two_clients", a.t.str());
  }
  {  // the message log: history of a persistent group, with a join, from a time
    Alone a;
    a.d.open(1);
    a.d.bytes(1, hello("", proto::kHelloGenerateName | proto::kHelloPositions) + join("p1") +
                     mcast({"p1"}, "logged"));
    a.step(1000);
    a.d.open(3);
    a.d.bytes(3, hello("late", proto::kHelloPositions) + history("p1", proto::kHistoryJoin) +
                     history("p2", 0, 5, 1) + history("p1", proto::kHistorySince, 0, 0, 7));
    a.step(1000);
    a.d.bytes(3, history("nolog", 0));
    a.step(1000);
    write_file("client_frame", "history", a.t.str());
  }
  {  // refusals: access rules, limits, bad frames, a slow client, a silent one
    Alone a;
    a.d.open(1);  // Unix: not allowed in locked*
    a.d.open(2);  // TCP: allowed
    a.d.open(4);  // never says hello
    a.d.bytes(1, hello("unix") + join("locked1") + mcast({"locked1"}, "no"));
    a.d.bytes(2, hello("tcp") + join("locked1") + mcast({"locked1"}, "yes"));
    std::string many;
    for (int i = 0; i < 10; ++i) many += join("g" + std::to_string(i));
    a.d.bytes(1, many + join("g1") + leave("none") + mcast({"x"}, std::string(9000, 'L')));
    a.d.bytes(2, mcast({"bad group"}, "x") + mcast({"x"}, "x", svc::kAgreed | svc::kSafe));
    std::string garbage("\x03\x00\x00\x00\x7f\x01\x02", 7);
    a.d.bytes(2, garbage + hello("again"));
    a.step(1000);
    a.d.sent(2, 100000);
    a.step(200000);  // the silent one's hello is overdue
    a.d.open(5);
    a.d.bytes(5, hello("unix"));  // a name taken
    a.d.open(6);
    std::string old;
    proto::encode(old, proto::Hello{proto::kMagic, 99, 0, "future"});
    a.d.bytes(6, old);
    a.step(1000);
    write_file("client_frame", "refusals", a.t.str());
  }
  {  // a frame split across reads, and one announced too large
    Alone a;
    a.d.open(1);
    std::string s = hello("split") + join("chat") + mcast({"chat"}, "in pieces");
    for (size_t i = 0; i < s.size(); i += 3) a.d.bytes(1, s.substr(i, 3));
    a.step(1000);
    a.d.bytes(1, std::string("\xff\xff\xff\x7f\x04", 5));
    a.step(1000);
    write_file("client_frame", "split", a.t.str());
  }
}

// ---- a simulated ring of three ----

enum class Fault { kNone, kPartition, kRestart };

// Daemons 1..3 on a loss-free network in virtual time; daemon 1's inputs are recorded. With
// sealed, datagrams to daemon 1 are sealed by their sender (as its ring socket would) and
// daemon 1 opens them.
struct Ring3 {
  explicit Ring3(bool sealed) : sealed(sealed) {
    for (NodeId id = 1; id <= 3; ++id) add(id, 1);
    d[0]->record(&trace);
    if (sealed) {
      auto opener = std::make_shared<ringseal::Sealer>(std::vector<ringseal::Key>{fuzz_key()}, 1,
                                                       fuzz_epoch(1), true);
      d[0]->set_receive([opener](Driver& d, uint8_t from, std::string_view bytes, Op) {
        NodeId id = d.peer(from);
        std::string buf(bytes);
        auto o = opener->open(buf.data(), buf.size(), id);
        if (o.ok) d.core().on_datagram(id, o.packet, d.now());
      });
    }
  }
  void add(NodeId id, uint64_t incarnation) {
    daemon::Config c = sealed ? sealed_config(id, 3) : fuzz_config(id, 3);
    c.incarnation = incarnation;
    c.ring_epoch += incarnation - 1;
    auto drv = std::make_unique<Driver>(c);
    drv->io().capture = true;
    drv->advance_to(now);
    if (id != 1)
      sealers[id] = std::make_unique<ringseal::Sealer>(std::vector<ringseal::Key>{fuzz_key()}, id,
                                                       c.ring_epoch, true);
    if (d.size() < id) d.resize(id);
    d[id - 1] = std::move(drv);
  }
  bool reachable(NodeId a, NodeId b) const { return cut.count(a) == cut.count(b); }
  void run_until(Time until) {
    for (int guard = 0; guard < 100000; ++guard) {
      for (auto& x : d) x->advance_to(now);
      bool moved = false;
      for (NodeId i = 1; i <= 3; ++i) {
        Driver& from = *d[i - 1];
        from.run();
        auto sent = std::move(from.io().captured);
        from.io().captured.clear();
        for (auto& g : sent) {
          std::string sealed_bytes;
          for (NodeId j = 1; j <= 3; ++j) {
            if (j == i || !reachable(i, j)) continue;
            bool to = g.to == j || g.to == membership::kAllDaemons ||
                      (g.to == membership::kBroadcast &&
                       std::find(g.ring_members.begin(), g.ring_members.end(), j) !=
                           g.ring_members.end());
            if (!to) continue;
            std::string_view bytes = g.bytes;
            if (j == 1 && sealed) {
              if (sealed_bytes.empty()) sealed_bytes = sealers[i]->seal(g.bytes);
              bytes = sealed_bytes;
            }
            d[j - 1]->datagram(d[j - 1]->index_of(i), bytes);
            moved = true;
          }
        }
      }
      if (moved) continue;
      Time next = ~Time{0};
      for (auto& x : d) next = std::min(next, x->core().next_timeout());
      if (next > until) break;
      now = std::max(now, next);
    }
    now = until;
    for (auto& x : d) x->advance_to(now);
  }
  void after(Time us) { run_until(now + us); }

  bool sealed;
  std::vector<std::unique_ptr<Driver>> d;
  std::unique_ptr<ringseal::Sealer> sealers[4];
  std::set<NodeId> cut;  // daemons cut off from the others (they still hear each other)
  TraceWriter trace;
  Time now = 0;
};

// One scenario; returns daemon 1's trace.
std::string scenario(bool sealed, bool traffic, Fault fault) {
  Ring3 r(sealed);
  r.after(400'000);  // the ring forms
  if (traffic) {
    Driver& d1 = *r.d[0];
    Driver& d2 = *r.d[1];
    d1.open(1);
    d1.bytes(1, hello("alice") + join("g") + join("p1"));
    d2.open(1);
    d2.bytes(1, hello("bob") + join("g") + join("p1"));
    r.after(50'000);
    d2.bytes(1, mcast({"g"}, "hi") + mcast({"g", "p1"}, std::string(3000, 's'), svc::kSafe) +
                    mcast({"#alice#d1"}, "private", svc::kFifo));
    d1.bytes(1, mcast({"g"}, "hello", svc::kFifo) + mcast({"p1"}, "logged", svc::kSafe));
    r.after(100'000);
    d1.bytes(1, history("p1", 0));
    d2.bytes(1, leave("g"));
    r.after(100'000);
  }
  if (fault == Fault::kPartition) {
    r.cut = {3};
    if (traffic) r.d[1]->bytes(1, mcast({"g"}, "during the partition"));
    r.after(800'000);
    r.cut.clear();
    r.after(800'000);
  } else if (fault == Fault::kRestart) {
    r.add(2, 2);  // daemon 2 crashes and comes back (a higher incarnation)
    r.after(800'000);
  }
  // The seeds must reach what they are for: a ring, and deliveries to daemon 1's client.
  const auto& st = r.d[0]->core().hub().stats();
  std::cout << (sealed ? "sealed " : "") << "ring of 3, daemon 1: ring "
            << r.d[0]->core().ring().ring_id() << " of " << r.d[0]->core().ring().members().size() << ", " << st.messages_delivered
            << " messages delivered to its client, " << st.logged << " logged\n";
  // Played back into a fresh daemon 1 (as the fuzzer does) the trace must lead to the same.
  if (!sealed) {
    Driver again(fuzz_config(1, 3));
    again.play(r.trace.str());
    const auto& st2 = again.core().hub().stats();
    if (again.core().ring().ring_id() != r.d[0]->core().ring().ring_id() ||
        st2.messages_delivered != st.messages_delivered) {
      std::cerr << "fuzz_make_corpus: the trace does not replay\n";
      std::exit(1);
    }
  }
  return r.trace.str();
}

// The trace with only the joins and commits among its datagrams (and time, runs).
std::string joins_and_commits(const std::string& trace) {
  wire::Reader r(trace);
  TraceWriter out;
  while (r.remaining() > 0) {
    auto op = static_cast<Op>(r.u8() % kOpCount);
    switch (op) {
      case kAdvance: out.advance(r.u32()); break;
      case kRun: out.run(); break;
      case kDatagram:
      case kSealed: {
        uint8_t from = r.u8();
        std::string_view b = r.bytes(r.u16());
        auto h = ringwire::decode_header(b);
        if (h && (h->type == ringwire::Type::kJoin || h->type == ringwire::Type::kCommit))
          out.datagram(from, b);
        break;
      }
      case kOpen:
      case kClosed: r.u8(); break;
      case kBytes: r.u8(); r.bytes(r.u16()); break;
      case kSent: r.u8(); r.u32(); break;
      case kOpCount: break;
    }
  }
  return out.str();
}

void ring_corpora() {
  struct S {
    const char* name;
    bool traffic;
    Fault fault;
  } scenarios[] = {{"formation", false, Fault::kNone},
                   {"traffic", true, Fault::kNone},
                   {"partition_merge", true, Fault::kPartition},
                   {"restart", false, Fault::kRestart}};
  for (auto& s : scenarios) {
    std::string plain = scenario(false, s.traffic, s.fault);
    write_file("ring_packet", s.name, plain);
    write_file("membership_packet", s.name, joins_and_commits(plain));
    write_file("ring_packet_sealed", s.name, scenario(true, s.traffic, s.fault));
  }
  // A fuzzed packet sealed on the way in (op 7): a token and a data packet of a foreign ring.
  TraceWriter t;
  std::string tok;
  ringwire::Token token;
  token.hop = 1;
  token.seq = 0;
  token.arus = {{1, 0, 0, 0}, {2, 0, 0, 0}, {3, 0, 0, 0}};
  ringwire::encode_token(tok, 7, 2, token);
  std::string data;
  ringwire::encode_header(data, ringwire::Header{ringwire::Type::kData, 7, 3});
  ringwire::begin_data(data, 1, 1);
  ringwire::add_chunk(data, svc::kAgreed, ringwire::kFirst | ringwire::kLast, "event");
  t.datagram(1, data, kSealed);
  t.datagram(0, tok, kSealed);
  t.advance(300'000);
  t.run();
  write_file("ring_packet_sealed", "sealed_on_arrival", t.str());
}

// ---- the daemon's side of a client's stream (libagent) ----

void client_library_corpus() {
  std::string s;
  proto::encode(s, proto::Welcome{proto::kVersion, "#fuzz#d1", "d1", 1u << 16});
  proto::Data data;
  data.service = svc::kAgreed;
  data.msg_type = 3;
  data.sender = "#bob#d1";
  data.groups = {"chat", "news"};
  data.payload = "hello";
  proto::encode(s, data);
  proto::encode_positioned_data_head(s, 5, 9, svc::kSafe, 0, "#bob#d1", {"p1"}, 4);
  s += "pos!";
  proto::Membership m;
  m.service = svc::kRegularMembership | svc::kCausedByNetwork;
  m.group = "chat";
  m.view = {3, 4};
  m.members = {"#alice#d1", "#bob#d2", "#carol#d3"};
  m.vs_sets = {{"#alice#d1"}, {"#bob#d2", "#carol#d3"}};
  proto::encode(s, m);
  proto::encode(s, proto::Error{proto::ErrorCode::kNotMember, "chat", "not a member"});
  proto::encode(s, proto::HistoryEnd{"p1", proto::kHistoryGap, 1, 5, 9});
  for (char mode : {'\0', '\1', '\2', '\3'}) {
    write_file("client_library", std::string("stream") + char('0' + mode), mode + s);
  }
  std::string refused;
  proto::encode(refused, proto::Error{proto::ErrorCode::kNameTaken, "fuzz", "name taken"});
  write_file("client_library", "refused", std::string(1, '\0') + refused);
}

// ---- configuration files ----

void config_corpus(const std::string& example) {
  std::ifstream in(example, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in || ss.str().empty()) {
    std::cerr << "fuzz_make_corpus: cannot read " << example << "\n";
    std::exit(1);
  }
  write_file("config", "agentd.toml", ss.str());
  write_file("config", "ring.toml", R"([daemon]
name = "host1"
[ring]
id = 2
key_file = "none"
multicast = "239.192.0.1:4900"
token_loss_ms = 100
min_rotation_ms = 0.25
[[ring.daemons]]
id = 1
address = "10.0.0.1"
port = 4901
[[ring.daemons]]
id = 2
address = "[::1]"
port = 4902
name = "host1"
)");
  write_file("config", "persist_access.toml", R"([clients]
tcp = "[::1]:4803"
unix_mode = "0666"
[persist]
groups = ["orders*", "log?"]
durability = "always"
retain_messages = 1000
retain_seconds = 86400
[[access]]
groups = ["payroll*"]
join = ["uid:0", "gid:0", "user:root"]
send = ["tcp:127.0.0.1"]
[[access]]
groups = ["*"]
send = ["tcp:*", "*"]
)");
  std::string dict = "# agentd.toml keys and values (tests/fuzz/make_corpus.cpp writes this)\n";
  std::set<std::string> words;
  for (auto& k : daemon::config_keys::known_keys()) {
    auto dot = k.find('.');
    words.insert(dot == std::string::npos ? k : k.substr(dot + 1));
    if (dot != std::string::npos) words.insert("[" + k.substr(0, dot) + "]");
  }
  for (const char* w : {"[[ring.daemons]]", "[[access]]", "true", "false", "\"none\"", "\"always\"",
                        "\"batch\"", "\"user:", "\"group:", "\"uid:", "\"gid:", "\"tcp:*\"",
                        "\"realtime\"", "\"debug\"", "0x", "1e3", "inf", "nan", "'''", "\"\"\"",
                        "= [", "= {", "1979-05-27T07:32:00Z"})
    words.insert(w);
  for (auto& w : words) {
    dict += "\"";
    for (char c : w) {
      if (c == '"' || c == '\\') dict += '\\';
      dict += c;
    }
    dict += "\"\n";
  }
  ::mkdir(root.c_str(), 0755);
  std::ofstream(root + "/../config.dict", std::ios::trunc) << dict;
}

// The bridge's link: a mode byte (0: from the link's start; else after the target's own
// handshake) and a stream of frames from site west.
void bridge_link_corpus() {
  using namespace agent::bridge;
  groups::Event ev;
  ev.kind = groups::EventKind::kData;
  ev.member = "#bob#w1";
  ev.groups = {"chat"};
  ev.payload = std::string(300, 'p');
  ev.service = proto::service::kAgreed;
  std::string e;
  groups::encode_event(e, ev);
  groups::Event j;
  j.kind = groups::EventKind::kJoin;
  j.member = "#bob#w1";
  j.group = "chat";
  std::string je;
  groups::encode_event(je, j);
  Item a{1, je}, b{2, e}, c{3, e};
  std::string s1;
  encode_snapshot(s1, Snapshot{0, {{"#bob#w1", "chat"}, {"#carl#w1", "ops"}}});
  encode_batch(s1, {&a, &b, &c}, true);
  encode_ack(s1, 0);
  encode_heartbeat(s1);
  write_file("bridge_link", "after_handshake", std::string(1, '\1') + s1);
  std::string s2;
  encode_batch(s2, {&a, &b}, false);
  encode_gap(s2, 4, 9);
  encode_batch(s2, {&c}, false);
  encode_bye(s2, "bye");
  write_file("bridge_link", "raw_batches_gap_bye", std::string(1, '\2') + s2);
  Hello h{kLinkVersion, false, "west", 5, {"w1"}, std::string(kNonceBytes, 'b')};
  std::string s3;
  encode_hello(s3, h);
  encode_proof(s3, std::string(kProofBytes, 'z'));
  write_file("bridge_link", "stranger_hello_wrong_proof", std::string(1, '\0') + s3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: fuzz_make_corpus CORPUS_DIR EXAMPLE_CONFIG\n";
    return 2;
  }
  root = argv[1];
  client_frame_corpus();
  ring_corpora();
  client_library_corpus();
  config_corpus(argv[2]);
  bridge_link_corpus();
  std::cout << "fuzz_make_corpus: wrote the corpora under " << root << "\n";
  return 0;
}
