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
  std::map<ConnId, std::string> out;
  std::map<ConnId, bool> closed;
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
