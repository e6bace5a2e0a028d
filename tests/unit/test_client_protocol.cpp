#include <catch2/catch.hpp>

#include "transport/client_protocol.h"
#include "transport/wire.h"

using namespace agent;
using namespace agent::proto;

namespace {
// Encodes with f, splits with a FrameReader, returns the single frame's verb and body.
template <class F>
std::pair<Verb, std::string> one_frame(F f) {
  std::string out;
  f(out);
  FrameReader r(1 << 20);
  r.feed(out.data(), out.size());
  Frame fr;
  REQUIRE(r.next(fr) == FrameReader::Status::kFrame);
  std::pair<Verb, std::string> res{fr.verb, std::string(fr.body)};
  REQUIRE(r.next(fr) == FrameReader::Status::kNeedMore);
  return res;
}
}  // namespace

TEST_CASE("every frame round-trips through encode, split and decode", "[codec]") {
  SECTION("hello") {
    auto [v, b] = one_frame([](std::string& o) { encode(o, Hello{kMagic, 1, 3, "alice"}); });
    CHECK(v == Verb::kHello);
    auto h = decode_hello(b);
    REQUIRE(h);
    CHECK(h->magic == kMagic);
    CHECK(h->flags == 3);
    CHECK(h->name == "alice");
  }
  SECTION("multicast to several groups with an empty and a binary payload") {
    for (std::string payload : {std::string(), std::string("a\0b\xff", 4)}) {
      Multicast m{service::kSafe | service::kSelfDiscard, -7, {"a", "bb", "#x#d"}, payload};
      auto [v, b] = one_frame([&](std::string& o) { encode(o, m); });
      CHECK(v == Verb::kMulticast);
      auto d = decode_multicast(b);
      REQUIRE(d);
      CHECK(d->service == m.service);
      CHECK(d->msg_type == -7);
      CHECK(d->groups == m.groups);
      CHECK(d->payload == payload);
    }
  }
  SECTION("data") {
    Data m{service::kAgreed, 42, "#a#d1", {"g1", "g2"}, std::string(100000, 'x')};
    auto [v, b] = one_frame([&](std::string& o) { encode(o, m); });
    CHECK(v == Verb::kData);
    auto d = decode_data(b);
    REQUIRE(d);
    CHECK(d->sender == "#a#d1");
    CHECK(d->groups == m.groups);
    CHECK(d->payload == m.payload);
  }
  SECTION("membership with vs-sets") {
    Membership m{service::kRegularMembership | service::kCausedByNetwork, "chat", {3, 99},
                 {"#a#d1", "#b#d2"}, "", {{"#a#d1"}, {"#b#d2"}}};
    auto [v, b] = one_frame([&](std::string& o) { encode(o, m); });
    CHECK(v == Verb::kMembership);
    auto d = decode_membership(b);
    REQUIRE(d);
    CHECK(d->view == ViewId{3, 99});
    CHECK(d->members == m.members);
    CHECK(d->vs_sets == m.vs_sets);
  }
  SECTION("welcome and error") {
    auto [v, b] = one_frame([](std::string& o) { encode(o, Welcome{1, "#a#d1", "d1", 1000}); });
    auto w = decode_welcome(b);
    REQUIRE(w);
    CHECK(w->private_group == "#a#d1");
    CHECK(w->max_message_bytes == 1000);
    auto [v2, b2] = one_frame(
        [](std::string& o) { encode(o, Error{ErrorCode::kNotMember, "g", "not a member"}); });
    auto e = decode_error(b2);
    REQUIRE(e);
    CHECK(e->code == ErrorCode::kNotMember);
    CHECK(e->text == "not a member");
  }
}

TEST_CASE("a frame split at every byte boundary is reassembled", "[codec]") {
  std::string out;
  encode(out, Data{service::kFifo, 1, "#a#d1", {"g"}, "payload"});
  encode_join(out, "second");
  for (size_t cut = 0; cut <= out.size(); ++cut) {
    FrameReader r(1 << 20);
    Frame f;
    r.feed(out.data(), cut);
    int frames = 0;
    while (r.next(f) == FrameReader::Status::kFrame) ++frames;
    r.feed(out.data() + cut, out.size() - cut);
    while (r.next(f) == FrameReader::Status::kFrame) {
      ++frames;
      if (frames == 2) CHECK(decode_group_request(f.body)->group == "second");
    }
    CHECK(frames == 2);
  }
}

TEST_CASE("frames read in place keep a partial frame once the bytes go away", "[codec]") {
  std::string out;
  encode(out, Data{service::kFifo, 1, "#a#d1", {"g"}, "payload"});
  encode_join(out, "second");
  encode_join(out, "third");
  for (size_t cut1 = 0; cut1 <= out.size(); ++cut1) {
    for (size_t cut2 = cut1; cut2 <= out.size(); cut2 += 3) {
      FrameReader r(1 << 20);
      Frame f;
      std::vector<std::string> got;
      // Each piece lives in a buffer of its own that is overwritten after keep_rest(), as a
      // read buffer is by the next read.
      for (auto [from, to] : {std::pair{size_t{0}, cut1}, {cut1, cut2}, {cut2, out.size()}}) {
        std::string piece = out.substr(from, to - from);
        r.feed_view(piece.data(), piece.size());
        while (r.next(f) == FrameReader::Status::kFrame) got.emplace_back(f.body);
        r.keep_rest();
        std::fill(piece.begin(), piece.end(), '\xff');
      }
      REQUIRE(got.size() == 3);
      CHECK(decode_data(got[0])->payload == "payload");
      CHECK(decode_group_request(got[1])->group == "second");
      CHECK(decode_group_request(got[2])->group == "third");
      CHECK(r.buffered() == 0);
    }
  }
}

TEST_CASE("the no-copy codecs agree with the struct codecs", "[codec]") {
  Multicast m{service::kFifo, 9, {"a", "#x#d1"}, std::string("p\0q", 3)};
  std::string frame;
  encode(frame, m);
  std::string body = frame.substr(kFrameHeaderBytes);
  auto v = decode_multicast_view(body);
  REQUIRE(v);
  CHECK(v->service == m.service);
  CHECK(v->msg_type == 9);
  REQUIRE(v->ngroups == 2);
  CHECK(v->groups[0] == "a");
  CHECK(v->groups[1] == "#x#d1");
  CHECK(v->payload == m.payload);
  CHECK(v->payload.data() >= body.data());  // a view into the body, not a copy
  CHECK(v->payload.data() < body.data() + body.size());
  for (size_t n = 0; n < body.size(); ++n) CHECK_FALSE(decode_multicast_view(body.substr(0, n)));
  CHECK_FALSE(decode_multicast_view(body + "x"));

  Data d{service::kSafe, -2, "#s#d2", {"g1", "g2"}, "payload"};
  std::string a, b;
  encode(a, d);
  encode_data(b, d.service, d.msg_type, d.sender, d.groups, d.payload);
  CHECK(a == b);
}

TEST_CASE("truncated or padded bodies never decode", "[codec]") {
  std::string out;
  encode(out, Membership{service::kRegularMembership, "g", {1, 2}, {"#a#d"}, "#a#d", {{"#a#d"}}});
  std::string body = out.substr(kFrameHeaderBytes);
  for (size_t n = 0; n < body.size(); ++n) CHECK_FALSE(decode_membership(body.substr(0, n)));
  CHECK_FALSE(decode_membership(body + "x"));
  CHECK(decode_membership(body));

  std::string mc;
  encode(mc, Multicast{service::kAgreed, 0, {"g"}, "abc"});
  std::string mb = mc.substr(kFrameHeaderBytes);
  for (size_t n = 0; n < mb.size(); ++n) CHECK_FALSE(decode_multicast(mb.substr(0, n)));
}

TEST_CASE("a group count beyond the limit is refused before allocating", "[codec]") {
  std::string body;
  wire::Writer w(body);
  w.u32(service::kAgreed);
  w.i16(0);
  w.u16(60000);  // claims 60000 groups, has none
  CHECK_FALSE(decode_multicast(body));
}

TEST_CASE("frame lengths of zero or above the limit are reported", "[codec]") {
  FrameReader r(100);
  std::string big;
  wire::Writer(big).u32(101);
  r.feed(big.data(), big.size());
  Frame f;
  CHECK(r.next(f) == FrameReader::Status::kTooLarge);
  CHECK(r.offending_length() == 101);
  FrameReader z(100);
  std::string zero(4, '\0');
  z.feed(zero.data(), zero.size());
  CHECK(z.next(f) == FrameReader::Status::kTooLarge);
}

TEST_CASE("service validation accepts exactly one regular service", "[codec]") {
  CHECK(service::valid_multicast(service::kAgreed));
  CHECK(service::valid_multicast(service::kSafe | service::kSelfDiscard));
  CHECK_FALSE(service::valid_multicast(0));
  CHECK_FALSE(service::valid_multicast(service::kSelfDiscard));
  CHECK_FALSE(service::valid_multicast(service::kAgreed | service::kSafe));
  CHECK_FALSE(service::valid_multicast(service::kAgreed | service::kCausedByJoin));
  CHECK(service::strongest(service::kFifo | service::kReliable) == service::kFifo);
}

// Found by fuzz_client_library: libagent sized its read buffer by the frame length the welcome's
// limit allowed, so a welcome announcing 4 GiB and a frame head claiming as much made it
// allocate 4 GiB (and a limit near 2^32 wrapped the frame limit).
TEST_CASE("a welcome announcing no limit or more than 16 MiB does not decode", "[codec]") {
  for (uint32_t limit : {kMaxMessageBytes, 1u}) {
    auto [v, b] = one_frame([&](std::string& o) { encode(o, Welcome{1, "#a#d1", "d1", limit}); });
    CHECK(decode_welcome(b));
  }
  for (uint32_t limit : {0u, kMaxMessageBytes + 1, 0xffffffffu}) {
    auto [v, b] = one_frame([&](std::string& o) { encode(o, Welcome{1, "#a#d1", "d1", limit}); });
    CHECK_FALSE(decode_welcome(b));
  }
}
