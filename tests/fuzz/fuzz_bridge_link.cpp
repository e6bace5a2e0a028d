// The WAN bridge's link (bridge/site_bridge.h, bridge/bridge_wire.h): bytes from another
// site's bridge into site east's. The first input byte picks where they start: 0, at the
// link's beginning (hello, proof: the fuzzer cannot forge the proof, so this covers what a
// stranger can reach); otherwise after a valid handshake the target makes itself, unsealed
// (snapshots, batches with LZ4, acks, gaps: what a peer holding the key can send). The rest
// is fed in pieces whose sizes come from the input, with the site's own traffic and timers
// between them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "bridge/bridge_wire.h"
#include "bridge/site_bridge.h"
#include "groups/events.h"

using namespace agent;
using namespace agent::bridge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  SiteSettings s;
  s.site = "east";
  s.daemons = {"e1"};
  s.sites = {"west"};
  s.key = std::string(32, 'k');
  s.encrypt = false;
  s.queue_bytes = 1u << 20;
  s.window_bytes = 64u << 10;
  SiteBridge b(s, 1);
  uint64_t now = 1;
  b.link_opened(1, std::string(kNonceBytes, 'a'), now);
  std::string stream;
  if (data[0] != 0) {
    Hello h;
    h.sealed = false;
    h.site = "west";
    h.epoch = 5;
    h.daemons = {"w1"};
    h.nonce = std::string(kNonceBytes, 'b');
    encode_hello(stream, h);
    encode_proof(stream, link_proof(s.key, "west", std::string(kNonceBytes, 'a'), h.nonce));
    encode_ack(stream, 0);
  }
  stream.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  groups::Event ev;
  ev.kind = groups::EventKind::kData;
  ev.member = "#alice#e1";
  ev.groups = {"chat"};
  ev.payload = "x";
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t n = 1 + static_cast<uint8_t>(stream[pos]) % 64 * 16;
    n = std::min(n, stream.size() - pos);
    b.on_bytes(1, stream.data() + pos, n, now);
    pos += n;
    b.on_local_data(ev, {});
    now += 100000;
    b.tick(now);
    b.pump();
    auto& out = b.output();
    for (auto& [tag_service, bytes] : out.submissions) {
      RemoteTag tag;
      std::string_view inner;
      if (decode_remote(bytes, tag, inner)) b.on_remote_delivered(tag);
    }
    bool closed = !out.close.empty();
    out = SiteBridge::Output{};
    if (closed) {
      b.link_closed(1, now);
      break;
    }
  }
  // The decoders alone, on the raw input.
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::vector<Item> items;
  decode_batch(body, items, 1u << 20);
  Snapshot snap;
  decode_snapshot(body, snap);
  Hello h;
  decode_hello(body, h);
  RemoteTag tag;
  std::string_view inner;
  decode_remote(body, tag, inner);
  return 0;
}
