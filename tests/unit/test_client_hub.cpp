// The client hub driven without sockets: bytes in, frames and closes out.
#include <catch2/catch.hpp>

#include <map>

#include "agentd/client_hub.h"
#include "agentd/log.h"

using namespace agent;
using namespace agent::daemon;
using proto::ErrorCode;
using proto::Verb;
namespace svc = agent::proto::service;

namespace {

// The hub logs every connect; keep test output to what matters.
const bool quiet = (agent::log::set_level(agent::log::Level::kError), true);

// Orders events by numbering them as they come: what a ring of one does.
struct Sequencer {
  uint64_t next() { return ++last; }
  uint64_t last = 0;
};

struct FakeIo : ClientIo {
  void send(ConnId id, std::string_view b) override { out[id].append(b.data(), b.size()); }
  void close(ConnId id) override { closed[id] = true; }
  // The message log: what was handed over, in order ("a" appends, "r" reads).
  void log_append(std::vector<persist::Record>& batch) override {
    for (auto& r : batch) appended.push_back(std::move(r));
    batch.clear();
    log_calls += "a";
  }
  void log_read(const LogRead& r) override {
    reads.push_back(r);
    log_calls += "r";
  }
  std::map<ConnId, std::string> out;
  std::map<ConnId, bool> closed;
  std::vector<persist::Record> appended;
  std::vector<LogRead> reads;
  std::string log_calls;
};

struct Hub {
  explicit Hub(Config c = make_config())
      : cfg(std::move(c)), hub(cfg, io, [this](uint32_t, std::string& e) {
          std::string taken = std::move(e);
          REQUIRE(hub.deliver_bytes(seq.next(), taken));
        }) {}
  static Config make_config() {
    Config c;
    c.name = "d1";
    c.max_message_bytes = 1000;
    c.client_queue_bytes = 4000;
    c.max_clients = 4;
    return c;
  }
  ConnId open() {
    ConnId id = next_id++;
    hub.on_open(id);
    return id;
  }
  void bytes(ConnId id, const std::string& b) { hub.on_bytes(id, b.data(), b.size()); }
  ConnId connect(const std::string& name, uint8_t flags = proto::kHelloWantMembership) {
    ConnId id = open();
    std::string b;
    proto::encode(b, proto::Hello{proto::kMagic, proto::kVersion, flags, name});
    bytes(id, b);
    return id;
  }
  // Decodes and removes every frame sent to id so far.
  std::vector<proto::Frame> frames(ConnId id) {
    held.push_back(std::move(io.out[id]));
    io.out[id].clear();
    auto& reader = readers.emplace_back(1 << 24);
    reader.feed(held.back().data(), held.back().size());
    std::vector<proto::Frame> v;
    proto::Frame f;
    while (reader.next(f) == proto::FrameReader::Status::kFrame) v.push_back(f);
    return v;
  }
  std::vector<ErrorCode> errors(ConnId id) {
    std::vector<ErrorCode> v;
    for (auto& f : frames(id))
      if (f.verb == Verb::kError) v.push_back(proto::decode_error(f.body)->code);
    return v;
  }
  Config cfg;
  FakeIo io;
  Sequencer seq;
  ClientHub hub;
  ConnId next_id = 1;
  std::vector<std::string> held;
  std::vector<proto::FrameReader> readers;
};

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
std::string mcast(std::vector<std::string> groups, std::string payload,
                  uint32_t service = svc::kAgreed) {
  std::string b;
  proto::encode(b, proto::Multicast{service, 0, std::move(groups), std::move(payload)});
  return b;
}

}  // namespace

TEST_CASE("hello is answered with the private group", "[hub]") {
  Hub h;
  ConnId a = h.connect("alice");
  auto f = h.frames(a);
  REQUIRE(f.size() == 1);
  REQUIRE(f[0].verb == Verb::kWelcome);
  auto w = proto::decode_welcome(f[0].body);
  CHECK(w->private_group == "#alice#d1");
  CHECK(w->max_message_bytes == 1000);
  CHECK_FALSE(h.io.closed[a]);
}

TEST_CASE("bad and duplicate private names are refused and closed", "[hub]") {
  Hub h;
  h.connect("alice");
  ConnId dup = h.connect("alice");
  CHECK(h.errors(dup) == std::vector<ErrorCode>{ErrorCode::kNameTaken});
  CHECK(h.io.closed[dup]);
  for (std::string bad : {"", "waytoolongname", "sp ace", "ha#sh"}) {
    ConnId c = h.connect(bad);
    CHECK(h.errors(c) == std::vector<ErrorCode>{ErrorCode::kIllegalName});
    CHECK(h.io.closed[c]);
  }
  CHECK(h.hub.client_count() == 1);
}

TEST_CASE("the daemon generates unique names on request", "[hub]") {
  Hub h;
  ConnId a = h.connect("", proto::kHelloGenerateName);
  ConnId b = h.connect("", proto::kHelloGenerateName);
  auto wa = proto::decode_welcome(h.frames(a)[0].body);
  auto wb = proto::decode_welcome(h.frames(b)[0].body);
  CHECK(wa->private_group != wb->private_group);
  CHECK(h.hub.client_count() == 2);
}

TEST_CASE("a wrong protocol version or magic is refused", "[hub]") {
  Hub h;
  ConnId c = h.open();
  std::string b;
  proto::encode(b, proto::Hello{proto::kMagic, 99, 0, "alice"});
  h.bytes(c, b);
  CHECK(h.errors(c) == std::vector<ErrorCode>{ErrorCode::kVersionMismatch});
  CHECK(h.io.closed[c]);
  ConnId d = h.open();
  b.clear();
  proto::encode(b, proto::Hello{0x12345678, proto::kVersion, 0, "alice"});
  h.bytes(d, b);
  CHECK(h.errors(d) == std::vector<ErrorCode>{ErrorCode::kVersionMismatch});
}

TEST_CASE("any verb before hello closes the connection", "[hub]") {
  Hub h;
  ConnId c = h.open();
  h.bytes(c, join("chat"));
  CHECK(h.errors(c) == std::vector<ErrorCode>{ErrorCode::kNotConnected});
  CHECK(h.io.closed[c]);
}

TEST_CASE("joining twice and leaving a group not joined are errors, not fatal", "[hub]") {
  Hub h;
  ConnId a = h.connect("alice");
  h.frames(a);
  h.bytes(a, join("chat") + join("chat") + leave("other") + leave("chat") + leave("chat"));
  auto f = h.frames(a);
  std::vector<std::string> kinds;
  for (auto& x : f) {
    if (x.verb == Verb::kError)
      kinds.push_back(proto::error_name(proto::decode_error(x.body)->code));
    else if (x.verb == Verb::kMembership)
      kinds.push_back("membership");
  }
  CHECK(kinds == std::vector<std::string>{"membership", "already a member", "not a member",
                                          "membership", "not a member"});
  CHECK_FALSE(h.io.closed[a]);
}

TEST_CASE("malformed bodies and unknown verbs are reported and skipped", "[hub]") {
  Hub h;
  ConnId a = h.connect("alice");
  h.frames(a);
  std::string bad_join = join("chat");
  bad_join[4 + 1] = 50;  // the group's length byte now claims more than the frame holds
  std::string unknown("\x01\x00\x00\x00\x42", 5);
  h.bytes(a, bad_join + unknown + join("chat"));
  auto f = h.frames(a);
  REQUIRE(f.size() == 3);
  CHECK(proto::decode_error(f[0].body)->code == ErrorCode::kMalformedFrame);
  CHECK(proto::decode_error(f[1].body)->code == ErrorCode::kUnknownVerb);
  CHECK(f[2].verb == Verb::kMembership);
  CHECK(h.hub.stats().bad_frames == 2);
}

TEST_CASE("a frame above the size limit closes only that client", "[hub]") {
  Hub h;
  ConnId a = h.connect("alice");
  ConnId b = h.connect("bob");
  h.bytes(a, join("chat"));
  h.bytes(b, join("chat"));
  h.frames(a);
  h.frames(b);
  std::string huge("\xff\xff\xff\x7f\x04", 5);
  h.bytes(a, huge);
  CHECK(h.errors(a) == std::vector<ErrorCode>{ErrorCode::kFrameTooLarge});
  CHECK(h.io.closed[a]);
  auto f = h.frames(b);
  REQUIRE(f.size() == 1);
  auto m = proto::decode_membership(f[0].body);
  CHECK(m->service == (svc::kRegularMembership | svc::kCausedByDisconnect));
  CHECK(m->members == std::vector<std::string>{"#bob#d1"});
}

TEST_CASE("multicasts are validated before they are ordered", "[hub]") {
  Hub h;
  ConnId a = h.connect("alice");
  h.bytes(a, join("g"));
  h.frames(a);
  h.bytes(a, mcast({"g"}, std::string(1001, 'x')));
  CHECK(h.errors(a) == std::vector<ErrorCode>{ErrorCode::kMessageTooLarge});
  h.bytes(a, mcast({"g"}, "x", svc::kAgreed | svc::kSafe));
  CHECK(h.errors(a) == std::vector<ErrorCode>{ErrorCode::kIllegalService});
  h.bytes(a, mcast({}, "x"));
  CHECK(h.errors(a) == std::vector<ErrorCode>{ErrorCode::kTooManyGroups});
  h.bytes(a, mcast({"g", "bad group"}, "x"));
  CHECK(h.errors(a) == std::vector<ErrorCode>{ErrorCode::kIllegalGroup});
  h.bytes(a, mcast({"g"}, std::string(1000, 'x')));
  auto f = h.frames(a);
  REQUIRE(f.size() == 1);
  CHECK(proto::decode_data(f[0].body)->payload.size() == 1000);
}

TEST_CASE("frames arriving one byte at a time work", "[hub]") {
  Hub h;
  ConnId a = h.open();
  std::string all;
  proto::encode(all, proto::Hello{proto::kMagic, proto::kVersion, 1, "alice"});
  all += join("g") + mcast({"g"}, "hello");
  for (char c : all) h.hub.on_bytes(a, &c, 1);
  auto f = h.frames(a);
  REQUIRE(f.size() == 3);
  CHECK(proto::decode_data(f[2].body)->payload == "hello");
}

TEST_CASE("a client that does not read is dropped at its queue limit, others go on",
          "[hub]") {
  Hub h;  // queue limit 4000 bytes
  ConnId slow = h.connect("slow");
  ConnId fast = h.connect("fast");
  h.bytes(slow, join("g"));
  h.bytes(fast, join("g"));
  for (int i = 0; i < 10; ++i) {
    h.bytes(fast, mcast({"g"}, std::string(900, 'x')));
    h.hub.on_sent(fast, 0);  // fast drains everything it is sent
  }
  CHECK(h.io.closed[slow]);
  CHECK_FALSE(h.io.closed[fast]);
  CHECK(h.hub.stats().slow_clients_dropped == 1);
  int data = 0;
  bool saw_disconnect = false;
  for (auto& f : h.frames(fast)) {
    if (f.verb == Verb::kData) ++data;
    if (f.verb == Verb::kMembership &&
        proto::decode_membership(f.body)->service & svc::kCausedByDisconnect)
      saw_disconnect = true;
  }
  CHECK(data == 10);
  CHECK(saw_disconnect);
  CHECK(h.hub.client_count() == 1);
}

TEST_CASE("dropping a slow recipient halfway through a delivery spares the ones after it",
          "[hub]") {
  Hub h;  // queue limit 4000 bytes
  ConnId slow = h.connect("a");  // sorts first among the recipients
  ConnId fast = h.connect("b");
  h.bytes(slow, join("g"));
  h.bytes(fast, join("g"));
  h.frames(fast);
  for (int i = 0; i < 10; ++i) {
    h.bytes(fast, mcast({"g"}, std::string(900, static_cast<char>('0' + i))));
    h.hub.on_sent(fast, 0);
  }
  CHECK(h.io.closed[slow]);
  std::string got;
  for (auto& f : h.frames(fast)) {
    CHECK(f.verb != Verb::kError);  // the slow client's error is not the fast one's
    if (f.verb == Verb::kData) got += proto::decode_data(f.body)->payload.substr(0, 1);
  }
  CHECK(got == "0123456789");
}

TEST_CASE("clients that do not read are bounded together: past the daemon's total the one "
          "with the most unread is dropped, and only that one", "[hub]") {
  Config c = Hub::make_config();  // 4000 bytes per client
  c.client_queue_total_bytes = 6000;
  Hub h(c);
  ConnId a = h.connect("a"), b = h.connect("b"), w = h.connect("w");
  h.bytes(a, join("g"));
  h.bytes(b, join("g2"));
  h.bytes(w, join("g"));
  h.bytes(w, join("g2"));
  h.hub.on_sent(a, 0);  // their views were read
  h.hub.on_sent(b, 0);
  // a and b stop reading; each stays under its own limit, together they pass 6000.
  h.bytes(w, mcast({"g"}, std::string(900, 'a'), svc::kAgreed | svc::kSelfDiscard));
  h.bytes(w, mcast({"g"}, std::string(900, 'a'), svc::kAgreed | svc::kSelfDiscard));
  h.bytes(w, mcast({"g"}, std::string(900, 'a'), svc::kAgreed | svc::kSelfDiscard));  // a: about 2800 unread
  h.hub.on_sent(w, 0);
  for (int i = 0; i < 3; ++i)
    h.bytes(w, mcast({"g2"}, std::string(900, 'b'), svc::kAgreed | svc::kSelfDiscard));
  CHECK_FALSE(h.io.closed[a]);
  CHECK_FALSE(h.io.closed[b]);  // about 5600 unread together
  h.bytes(w, mcast({"g2"}, std::string(900, 'b'), svc::kAgreed | svc::kSelfDiscard));
  // b: about 3700, under its own 4000, but together they pass 6000: b, holding the most, goes.
  CHECK(h.io.closed[b]);
  CHECK_FALSE(h.io.closed[a]);
  CHECK_FALSE(h.io.closed[w]);
  CHECK(h.hub.stats().slow_clients_dropped == 1);
  CHECK(h.hub.queued_total() <= c.client_queue_total_bytes);
}

TEST_CASE("joins beyond max_groups are refused with error 13", "[hub]") {
  Config c = Hub::make_config();
  c.max_groups_per_client = 3;
  Hub h(c);
  ConnId a = h.connect("a");
  h.frames(a);
  for (int i = 0; i < 4; ++i) h.bytes(a, join("g" + std::to_string(i)));
  CHECK(h.errors(a) == std::vector<ErrorCode>{ErrorCode::kTooManyGroups});
  h.bytes(a, leave("g0"));
  h.bytes(a, join("g3"));  // room again
  CHECK(h.errors(a).empty());
}

TEST_CASE("refusals at the client limit are logged once, then once per 10 s with the count",
          "[hub]") {
  std::vector<std::string> lines;
  auto level = agent::log::level();
  agent::log::set_level(agent::log::Level::kWarn);
  agent::log::set_sink([&](agent::log::Level, const std::string& t) { lines.push_back(t); });
  Hub h;  // limit 4
  for (int i = 0; i < 4; ++i) h.hub.on_open(h.next_id++, 0);
  for (int i = 0; i < 500; ++i) h.hub.on_open(h.next_id++, 1000 * i);  // within 0.5 s
  h.hub.on_open(h.next_id++, 11'000'000);                              // 10 s later
  agent::log::set_sink(nullptr);
  agent::log::set_level(level);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find("refused 1 client connection:") == 0);
  CHECK(lines[1].find("refused 500 client connections since the last report") == 0);
}

TEST_CASE("connections beyond max_clients are refused", "[hub]") {
  Hub h;  // limit 4
  for (int i = 0; i < 4; ++i) h.connect("c" + std::to_string(i));
  ConnId extra = h.open();
  CHECK(h.errors(extra) == std::vector<ErrorCode>{ErrorCode::kTooManyClients});
  CHECK(h.io.closed[extra]);
}

TEST_CASE("a closed connection's member is seen to disconnect", "[hub]") {
  Hub h;
  ConnId a = h.connect("alice");
  ConnId b = h.connect("bob");
  h.bytes(a, join("g"));
  h.bytes(b, join("g"));
  h.frames(b);
  h.hub.on_closed(a);
  auto f = h.frames(b);
  REQUIRE(f.size() == 1);
  auto m = proto::decode_membership(f[0].body);
  CHECK(m->changed == "#alice#d1");
  CHECK((m->service & svc::kCausedByDisconnect) != 0);
  // The name is free again.
  ConnId again = h.connect("alice");
  CHECK(h.frames(again)[0].verb == Verb::kWelcome);
}

TEST_CASE("clients that did not ask for membership messages get none", "[hub]") {
  Hub h;
  ConnId a = h.connect("alice", 0);
  h.frames(a);
  h.bytes(a, join("g") + mcast({"g"}, "x"));
  auto f = h.frames(a);
  REQUIRE(f.size() == 1);
  CHECK(f[0].verb == Verb::kData);
}

TEST_CASE("a name stays taken until its session's disconnect is ordered", "[hub]") {
  // Submissions wait in a queue, as they wait for the ring's token.
  Config cfg = Hub::make_config();
  FakeIo io;
  Sequencer seq;
  std::vector<std::string> pending;
  ClientHub hub(cfg, io, [&](uint32_t, std::string& e) { pending.push_back(std::move(e)); });
  auto flush = [&] {
    auto evs = std::move(pending);
    pending.clear();
    for (auto& e : evs) REQUIRE(hub.deliver_bytes(seq.next(), e));
  };
  auto hello = [&](ConnId id, const std::string& name) {
    hub.on_open(id);
    std::string b;
    proto::encode(b, proto::Hello{proto::kMagic, proto::kVersion, proto::kHelloWantMembership, name});
    hub.on_bytes(id, b.data(), b.size());
  };
  auto first_verb = [&](ConnId id) {
    proto::FrameReader reader(1 << 20);
    reader.feed(io.out[id].data(), io.out[id].size());
    proto::Frame f;
    REQUIRE(reader.next(f) == proto::FrameReader::Status::kFrame);
    return f.verb;
  };
  hello(1, "alice");
  std::string j = join("g");
  hub.on_bytes(1, j.data(), j.size());
  flush();
  hub.on_closed(1);
  // Its disconnect is not ordered yet: a new session of that name would lose the groups it
  // joins to that disconnect.
  hello(2, "alice");
  CHECK(first_verb(2) == Verb::kError);
  CHECK(io.closed[2]);
  flush();
  hello(3, "alice");
  CHECK(first_verb(3) == Verb::kWelcome);
  CHECK(io.out[3].find("#alice#d1") != std::string::npos);
}

namespace {

Config persist_config() {
  Config c = Hub::make_config();
  c.persist.groups = {"log*"};
  return c;
}

std::string history(const std::string& group, uint8_t flags = 0, uint64_t ring = 0,
                    uint64_t ordinal = 0) {
  std::string b;
  proto::History h;
  h.group = group;
  h.flags = flags;
  h.ring = ring;
  h.ordinal = ordinal;
  proto::encode(b, h);
  return b;
}

persist::Entry entry(uint64_t ordinal, std::string payload) {
  persist::Entry e;
  e.pos = {0, ordinal};
  e.service = svc::kAgreed;
  e.sender = "#a#d1";
  e.groups = {"log"};
  e.payload = std::move(payload);
  return e;
}

persist::ReadResult chunk(std::vector<persist::Entry> entries, bool more) {
  persist::ReadResult r;
  r.entries = std::move(entries);
  r.more = more;
  return r;
}

std::vector<Verb> verbs(const std::vector<proto::Frame>& fs) {
  std::vector<Verb> v;
  for (auto& f : fs) v.push_back(f.verb);
  return v;
}

}  // namespace

TEST_CASE("history: messages of persistent groups go to the log before any read", "[hub][persist]") {
  Hub h(persist_config());
  ConnId a = h.connect("a");
  h.bytes(a, mcast({"log1"}, "x") + mcast({"plain"}, "y") + mcast({"plain", "log2", "logx"}, "z"));
  h.hub.flush_log();
  REQUIRE(h.io.appended.size() == 2);
  CHECK(h.io.appended[0].log_groups == std::vector<std::string>{"log1"});
  CHECK(h.io.appended[0].entry.payload == "x");
  CHECK(h.io.appended[1].log_groups == std::vector<std::string>{"log2", "logx"});
  CHECK(h.io.appended[1].entry.groups == std::vector<std::string>{"plain", "log2", "logx"});
  CHECK(h.io.appended[0].entry.pos.ordinal < h.io.appended[1].entry.pos.ordinal);
  // A read is issued after what was delivered before it has been handed over.
  ConnId b = h.connect("b");
  h.bytes(a, mcast({"log1"}, "w"));
  h.bytes(b, history("log1"));
  CHECK(h.io.log_calls == "aar");
  CHECK(h.io.appended.size() == 3);
}

TEST_CASE("history: the client's other output waits until the history's end", "[hub][persist]") {
  Hub h(persist_config());
  ConnId a = h.connect("a"), b = h.connect("b");
  h.bytes(b, join("other"));
  h.frames(b);
  h.bytes(b, history("log", 0, 0, 5));
  REQUIRE(h.io.reads.size() == 1);
  CHECK(h.io.reads[0].group == "log");
  CHECK(h.io.reads[0].after == persist::Position{0, 5});
  CHECK(h.io.reads[0].before == persist::kEnd);
  // Live traffic meanwhile is held.
  h.bytes(a, mcast({"other"}, "live"));
  CHECK(h.frames(b).empty());
  // A chunk, and more to come: the next read starts after its last entry.
  h.hub.on_history(b, h.io.reads[0].id, chunk({entry(6, "h6"), entry(9, "h9")}, true));
  auto f = h.frames(b);
  CHECK(verbs(f) == std::vector<Verb>{Verb::kPositionedData, Verb::kPositionedData});
  CHECK(proto::decode_positioned_data(f[1].body)->ordinal == 9);
  REQUIRE(h.io.reads.size() == 2);
  CHECK(h.io.reads[1].after == persist::Position{0, 9});
  // A stale answer (the first read again) changes nothing.
  h.hub.on_history(b, h.io.reads[0].id, chunk({entry(7, "stale")}, false));
  CHECK(h.frames(b).empty());
  h.hub.on_history(b, h.io.reads[1].id, chunk({entry(12, "h12")}, false));
  f = h.frames(b);
  REQUIRE(verbs(f) == std::vector<Verb>{Verb::kPositionedData, Verb::kHistoryEnd, Verb::kData});
  auto end = proto::decode_history_end(f[1].body);
  CHECK(end->group == "log");
  CHECK(end->count == 3);
  CHECK(end->ordinal == 12);
  CHECK(end->flags == 0);
  CHECK(proto::decode_data(f[2].body)->payload == "live");
  // Output flows again at once.
  h.bytes(a, mcast({"other"}, "next"));
  CHECK(verbs(h.frames(b)) == std::vector<Verb>{Verb::kData});
}

TEST_CASE("history: the next chunk waits until the client has read the last", "[hub][persist]") {
  Hub h(persist_config());  // queue limit 4000: the next chunk waits above 1000 unread
  ConnId b = h.connect("b");
  h.frames(b);
  h.bytes(b, history("log"));
  REQUIRE(h.io.reads.size() == 1);
  h.hub.on_history(b, h.io.reads[0].id,
                   chunk({entry(1, std::string(700, 'x')), entry(2, std::string(700, 'y'))}, true));
  CHECK(h.io.reads.size() == 1);  // 1400 bytes unread
  h.hub.on_sent(b, 1200);
  CHECK(h.io.reads.size() == 1);
  h.hub.on_sent(b, 0);
  REQUIRE(h.io.reads.size() == 2);
  CHECK(h.io.reads[1].after == persist::Position{0, 2});
}

TEST_CASE("history with a join: everything before the join, then the view and live messages",
          "[hub][persist]") {
  Hub h(persist_config());
  ConnId a = h.connect("a"), b = h.connect("b");
  h.bytes(a, mcast({"log"}, "before"));
  h.frames(b);
  h.bytes(b, history("log", proto::kHistoryJoin));
  // The join was ordered (this hub orders at once): the read ends before its position.
  REQUIRE(h.io.reads.size() == 1);
  CHECK(h.io.reads[0].before.ordinal == h.seq.last);
  CHECK(h.io.reads[0].after == persist::Position{});
  h.bytes(a, mcast({"log"}, "after"));
  CHECK(h.frames(b).empty());  // the view and the live message wait
  h.hub.on_history(b, h.io.reads[0].id, chunk({entry(3, "before")}, false));
  auto f = h.frames(b);
  REQUIRE(verbs(f) == std::vector<Verb>{Verb::kPositionedData, Verb::kHistoryEnd,
                                        Verb::kMembership, Verb::kData});
  CHECK(proto::decode_membership(f[2].body)->changed == "#b#d1");
  CHECK(proto::decode_data(f[3].body)->payload == "after");
  // Joined: a second join is refused, as a second history join.
  h.bytes(b, history("log", proto::kHistoryJoin));
  CHECK(h.errors(b) == std::vector<ErrorCode>{ErrorCode::kAlreadyMember});
}

TEST_CASE("history: refused for groups without a log, a failed read ends it", "[hub][persist]") {
  Hub h(persist_config());
  ConnId b = h.connect("b");
  h.frames(b);
  h.bytes(b, history("plain") + history("#b#d1"));
  CHECK(h.errors(b) == std::vector<ErrorCode>{ErrorCode::kNotPersistent, ErrorCode::kIllegalGroup});
  h.bytes(b, history("log"));
  persist::ReadResult failed;
  failed.error = "disk on fire";
  h.hub.on_history(b, h.io.reads.back().id, std::move(failed));
  auto f = h.frames(b);
  REQUIRE(verbs(f) == std::vector<Verb>{Verb::kError, Verb::kHistoryEnd});
  CHECK(proto::decode_error(f[0].body)->code == ErrorCode::kLogFailed);
  CHECK(proto::decode_history_end(f[1].body)->flags == proto::kHistoryFailed);
  // A reader that goes away: its answer finds nobody.
  h.bytes(b, history("log"));
  uint64_t id = h.io.reads.back().id;
  h.hub.on_closed(b);
  h.hub.on_history(b, id, chunk({entry(1, "late")}, false));
  CHECK(h.hub.client_count() == 0);

  Hub plain;  // no [persist] at all
  ConnId c = plain.connect("c");
  plain.frames(c);
  plain.bytes(c, history("log"));
  CHECK(plain.errors(c) == std::vector<ErrorCode>{ErrorCode::kNotPersistent});
  CHECK(plain.io.reads.empty());
}

TEST_CASE("clients that ask for positions get them on every data message", "[hub][persist]") {
  Hub h;
  ConnId a = h.connect("a", proto::kHelloWantMembership | proto::kHelloPositions);
  ConnId b = h.connect("b");
  h.bytes(a, join("g"));
  h.bytes(b, join("g"));
  h.frames(a);
  h.frames(b);
  h.bytes(b, mcast({"g"}, "p"));
  auto fa = h.frames(a), fb = h.frames(b);
  REQUIRE(verbs(fa) == std::vector<Verb>{Verb::kPositionedData});
  CHECK(verbs(fb) == std::vector<Verb>{Verb::kData});
  auto d = proto::decode_positioned_data(fa[0].body);
  CHECK(d->ordinal == h.seq.last);
  CHECK(d->payload == "p");
}

TEST_CASE("access rules: refusals answer every request, the log gets one line per 10 s",
          "[hub][access]") {
  Config c = Hub::make_config();
  AccessRule rule;
  rule.groups = {"secret*"};
  rule.join_listed = rule.send_listed = true;  // nobody
  rule.origin = "test.toml:1";
  c.access = {rule};
  Hub h(c);
  ConnId a = h.connect("a");
  h.frames(a);
  std::vector<std::string> lines;
  agent::log::set_level(agent::log::Level::kWarn);
  agent::log::set_sink([&](agent::log::Level, const std::string& t) { lines.push_back(t); });
  std::string requests;
  for (int i = 0; i < 50; ++i) requests += join("secret1") + mcast({"secret2", "open"}, "x");
  h.bytes(a, requests);
  h.hub.expire(11'000'000);  // 11 s on: the next refusal is reported with the count
  h.bytes(a, join("secret3"));
  agent::log::set_sink(nullptr);
  agent::log::set_level(agent::log::Level::kError);
  CHECK(h.errors(a) == std::vector<ErrorCode>(101, ErrorCode::kAccessDenied));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find("may not join secret1: access rule 1 (test.toml:1)") != std::string::npos);
  CHECK(lines[1].find("may not join secret3") != std::string::npos);
  CHECK(lines[1].find("99 more refusals since the last report") != std::string::npos);
  // Private groups are not subject to rules; a refused multicast sent nothing.
  CHECK(h.seq.last == 0);
}

namespace {

// A hub whose TCP clients authenticate against alice's secret.
Config auth_config() {
  Config c = Hub::make_config();
  auto s = std::make_shared<clientauth::Secrets>();
  s->by_name["alice"] = "alice-secret-0123456789";
  c.tcp_secrets = s;
  return c;
}

Peer tcp_peer() {
  Peer p;
  p.kind = Peer::Kind::kTcp;
  p.address = "192.0.2.7";
  return p;
}

// Opens a TCP connection with this nonce and says hello: the hello's body.
std::string tcp_hello(Hub& h, ConnId id, const std::string& nonce, const std::string& name) {
  REQUIRE(h.hub.on_open(id, 0, tcp_peer(), nonce));
  std::string b;
  proto::encode(b, proto::Hello{proto::kMagic, proto::kVersion, proto::kHelloWantMembership, name});
  h.bytes(id, b);
  return b.substr(proto::kFrameHeaderBytes);
}

std::string auth(const std::string& name, const std::string& secret, const std::string& nonce,
                 const std::string& body) {
  auto mac = clientauth::response(secret, nonce, body, name);
  std::string b;
  proto::encode(b, proto::Auth{clientauth::kMethodSecret, name,
                               std::string(reinterpret_cast<const char*>(mac.data()), mac.size())});
  return b;
}

}  // namespace

TEST_CASE("a TCP client's hello is answered with a challenge, the right answer with a welcome",
          "[hub][tcpauth]") {
  Hub h(auth_config());
  const std::string nonce(clientauth::kNonceBytes, 'n');
  std::string body = tcp_hello(h, 101, nonce, "alice");
  auto f = h.frames(101);
  REQUIRE(f.size() == 1);
  REQUIRE(f[0].verb == Verb::kChallenge);
  CHECK(proto::decode_challenge(f[0].body)->nonce == nonce);
  h.bytes(101, auth("alice", "alice-secret-0123456789", nonce, body));
  f = h.frames(101);
  REQUIRE(f.size() == 1);
  CHECK(f[0].verb == Verb::kWelcome);
  CHECK_FALSE(h.io.closed[101]);
  // The name counts for access rules.
  Principal p;
  REQUIRE(parse_principal("tcpuser:alice", p) == "");
  Peer authenticated = tcp_peer();
  authenticated.tcp_user = "alice";
  CHECK(authenticated.matches(p));
  CHECK_FALSE(tcp_peer().matches(p));
  // A Unix-socket client is not asked.
  ConnId u = h.connect("unix");
  CHECK(h.frames(u).at(0).verb == Verb::kWelcome);
}

TEST_CASE("a TCP client with a wrong answer, or none, gets error 20 and is closed",
          "[hub][tcpauth]") {
  Hub h(auth_config());
  const std::string nonce(clientauth::kNonceBytes, 'n');
  std::string body = tcp_hello(h, 101, nonce, "a");
  h.bytes(101, auth("alice", "not-alice-secret-0000", nonce, body));
  CHECK(h.errors(101) == std::vector<ErrorCode>{ErrorCode::kAuthFailed});
  CHECK(h.io.closed[101]);
  tcp_hello(h, 102, nonce, "b");
  h.bytes(102, join("g"));  // not the answer
  CHECK(h.errors(102) == std::vector<ErrorCode>{ErrorCode::kAuthFailed});
  CHECK(h.io.closed[102]);
  // An answer to another connection's nonce (a replay) is refused.
  const std::string other(clientauth::kNonceBytes, 'o');
  body = tcp_hello(h, 103, other, "c");
  h.bytes(103, auth("alice", "alice-secret-0123456789", nonce, body));
  CHECK(h.errors(103) == std::vector<ErrorCode>{ErrorCode::kAuthFailed});
  CHECK(h.io.closed[103]);
  CHECK(h.hub.client_count() == 0);
}

TEST_CASE("with tcp_auth = none TCP clients are welcomed at once", "[hub][tcpauth]") {
  Config c = Hub::make_config();
  c.tcp_auth = Config::TcpAuth::kNone;
  Hub h(c);
  tcp_hello(h, 101, "", "t");
  CHECK(h.frames(101).at(0).verb == Verb::kWelcome);
}

TEST_CASE("back-pressure: a client past half its queue limit holds the ring until it has read "
          "down to a quarter, or leaves, or passes slow_timeout_ms", "[hub][slow]") {
  Config c = Hub::make_config();  // queue limit 4000 bytes: hold past 2000, release at 1000
  c.slow_policy = Config::SlowPolicy::kBackpressure;
  c.slow_timeout_ms = 100;
  Hub h(c);
  CHECK(h.hub.hold_high_bytes() == 2000);
  CHECK(h.hub.hold_low_bytes() == 1000);
  ConnId slow = h.connect("slow");
  ConnId fast = h.connect("fast");
  h.bytes(slow, join("g"));
  h.bytes(fast, join("g"));
  h.hub.on_sent(slow, 0);
  h.hub.expire_holds(1'000'000);
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i) {
      h.bytes(fast, mcast({"g"}, std::string(900, 'x')));
      h.hub.on_sent(fast, 0);
    }
  };
  send(2);
  CHECK_FALSE(h.hub.holding_ring());  // under 2000 bytes
  send(1);
  REQUIRE(h.hub.holding_ring());
  CHECK(h.hub.holding_clients() == 1);
  CHECK(h.hub.stats().slow_holds == 1);
  CHECK(h.hub.hold_deadline() == 1'100'000);
  // Read down to 1500: still held; to 1000: released.
  h.hub.on_sent(slow, 1500);
  CHECK(h.hub.holding_ring());
  h.hub.on_sent(slow, 1000);
  CHECK_FALSE(h.hub.holding_ring());
  CHECK(h.hub.hold_deadline() == ~0ull);
  // Held again, then it disconnects: the hold ends with it.
  send(2);
  REQUIRE(h.hub.holding_ring());
  CHECK(h.hub.stats().slow_holds == 2);
  h.hub.on_closed(slow);
  CHECK_FALSE(h.hub.holding_ring());
  CHECK(h.hub.stats().slow_clients_dropped == 0);
  // Another holds past slow_timeout_ms: dropped with error 14 saying so.
  ConnId late = h.connect("late");
  h.bytes(late, join("g"));
  h.hub.on_sent(late, 0);
  send(3);
  REQUIRE(h.hub.holding_ring());
  h.hub.expire_holds(1'099'999);
  CHECK_FALSE(h.io.closed[late]);
  h.hub.expire_holds(1'100'000);
  CHECK(h.io.closed[late]);
  CHECK_FALSE(h.hub.holding_ring());
  CHECK(h.hub.stats().slow_hold_timeouts == 1);
  CHECK(h.hub.stats().slow_clients_dropped == 1);
  bool told = false;
  for (auto& f : h.frames(late))
    if (f.verb == Verb::kError) {
      auto e = proto::decode_error(f.body);
      told = e->code == ErrorCode::kSlowClient &&
             e->text.find("clients.slow_timeout_ms (100 ms)") != std::string::npos;
    }
  CHECK(told);
  CHECK_FALSE(h.io.closed[fast]);
}
