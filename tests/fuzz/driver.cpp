#include "tests/fuzz/driver.h"

#include "transport/client_auth.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "agentd/admin_snapshot.h"
#include "agentd/log.h"
#include "transport/wire.h"

namespace agent::fuzz {

namespace {

// Nothing is written (a fuzzer's inputs make the daemon log a lot); the lines are still made.
// Set when the first driver is made: log.cpp's sink may be initialised after this file's
// statics.
void quiet() {
  static bool done = false;
  if (done) return;
  done = true;
  log::set_level(log::Level::kError);
  log::set_sink([](log::Level, const std::string&) {});
}

[[noreturn]] void oracle_failed(const char* what, daemon::ConnId id, proto::Verb verb) {
  std::fprintf(stderr, "fuzz oracle: the daemon sent connection %llu %s (verb 0x%02x)\n",
               static_cast<unsigned long long>(id), what, static_cast<unsigned>(verb));
  std::abort();
}

}  // namespace

// ---- trace ----

void TraceWriter::advance(uint32_t delta_us) {
  wire::Writer w(out_);
  w.u8(kAdvance);
  w.u32(delta_us);
}
void TraceWriter::run() { out_.push_back(static_cast<char>(kRun)); }
void TraceWriter::datagram(uint8_t from, std::string_view bytes, Op op) {
  wire::Writer w(out_);
  w.u8(op);
  w.u8(from);
  w.u16(static_cast<uint16_t>(bytes.size()));
  w.raw(bytes.substr(0, 0xffff));
}
void TraceWriter::open(uint8_t conn) {
  out_.push_back(static_cast<char>(kOpen));
  out_.push_back(static_cast<char>(conn));
}
void TraceWriter::bytes(uint8_t conn, std::string_view bytes) {
  wire::Writer w(out_);
  w.u8(kBytes);
  w.u8(conn);
  w.u16(static_cast<uint16_t>(bytes.size()));
  w.raw(bytes.substr(0, 0xffff));
}
void TraceWriter::closed(uint8_t conn) {
  out_.push_back(static_cast<char>(kClosed));
  out_.push_back(static_cast<char>(conn));
}
void TraceWriter::sent(uint8_t conn, uint32_t queued) {
  wire::Writer w(out_);
  w.u8(kSent);
  w.u8(conn);
  w.u32(queued);
}

// ---- output oracle ----

void FuzzIo::send(daemon::ConnId id, std::string_view bytes) {
  auto it = readers_.find(id);
  if (it == readers_.end())
    it = readers_.emplace(id, proto::FrameReader(64u << 20)).first;
  proto::FrameReader& r = it->second;
  r.feed(bytes.data(), bytes.size());
  proto::Frame f;
  for (;;) {
    auto st = r.next(f);
    if (st == proto::FrameReader::Status::kNeedMore) return;
    if (st == proto::FrameReader::Status::kTooLarge) oracle_failed("a frame too large", id, f.verb);
    bool ok = false;
    switch (f.verb) {
      case proto::Verb::kWelcome: ok = proto::decode_welcome(f.body).has_value(); break;
      case proto::Verb::kData: ok = proto::decode_data(f.body).has_value(); break;
      case proto::Verb::kPositionedData: ok = proto::decode_positioned_data(f.body).has_value(); break;
      case proto::Verb::kMembership: ok = proto::decode_membership(f.body).has_value(); break;
      case proto::Verb::kError: ok = proto::decode_error(f.body).has_value(); break;
      case proto::Verb::kHistoryEnd: ok = proto::decode_history_end(f.body).has_value(); break;
      case proto::Verb::kChallenge: ok = proto::decode_challenge(f.body).has_value(); break;
      case proto::Verb::kAdminReply: ok = proto::decode_admin_reply(f.body).has_value(); break;
      default: oracle_failed("a frame of a verb clients do not get", id, f.verb);
    }
    if (!ok) oracle_failed("a frame that does not decode", id, f.verb);
  }
}

void FuzzIo::send_datagram(membership::NodeId to, std::string_view bytes,
                           const std::vector<membership::NodeId>& ring_members) {
  datagram_bytes += bytes.size();
  if (capture) captured.push_back(Datagram{to, std::string(bytes), ring_members});
}

void FuzzIo::log_append(std::vector<persist::Record>& batch) {
  for (auto& r : batch) logged = std::max(logged, r.entry.pos);
  batch.clear();
}

// ---- configuration ----

daemon::Config fuzz_config(membership::NodeId self, uint32_t ring) {
  daemon::Config c;
  c.name = "d" + std::to_string(self);
  c.log_level = log::Level::kError;
  c.ring.id = self;
  if (ring > 1)
    for (uint32_t id = 1; id <= ring; ++id)
      c.ring.daemons.push_back(daemon::RingDaemon{id, "127.0.0.1", 0, ""});
  c.ring.min_rotation_us = 0;
  c.ring.packet_bytes = 1024;  // small: messages of a few KB are fragmented
  c.max_message_bytes = 8192;
  c.max_clients = 6;
  c.max_clients_per_user = 4;
  c.max_groups_per_client = 8;
  c.hello_timeout_ms = 100;
  c.client_queue_bytes = 64 * 1024;
  c.client_queue_total_bytes = 160 * 1024;
  c.persist.groups = {"p*"};
  c.persist.durability = daemon::PersistSettings::Durability::kAlways;  // the durability gate
  daemon::AccessRule rule;
  rule.groups = {"locked*"};
  rule.join_listed = rule.send_listed = true;
  daemon::Principal tcp;
  tcp.kind = daemon::Principal::Kind::kTcpAny;
  tcp.text = "tcp:*";
  rule.join = rule.send = {tcp};
  rule.origin = "fuzz";
  c.access.push_back(rule);
  return c;
}

daemon::Config sealed_config(membership::NodeId self, uint32_t ring) {
  daemon::Config c = fuzz_config(self, ring);
  c.ring.key_file = "fuzz.key";  // not read: the key is given
  c.ring_keys = {fuzz_key()};
  c.ring_epoch = fuzz_epoch(self);
  return c;
}

ringseal::Key fuzz_key() {
  ringseal::Key k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(0xa0 + i);
  return k;
}

// ---- driver ----

Driver::Driver(daemon::Config cfg) : cfg_(std::make_unique<daemon::Config>(std::move(cfg))) {
  quiet();
  for (auto& d : cfg_->ring.daemons)
    if (d.id != cfg_->ring.id) peers_.push_back(d.id);
  core_ = std::make_unique<daemon::DaemonCore>(*cfg_, io_, now_);
  receive_ = [](Driver& d, uint8_t from, std::string_view bytes, Op) {
    if (membership::NodeId id = d.peer(from)) d.core().on_datagram(id, bytes, d.now());
  };
}

membership::NodeId Driver::peer(uint8_t from) const {
  return peers_.empty() ? 0 : peers_[from % peers_.size()];
}

uint8_t Driver::index_of(membership::NodeId id) const {
  auto it = std::find(peers_.begin(), peers_.end(), id);
  return static_cast<uint8_t>(it - peers_.begin());
}

void Driver::advance_to(membership::Time t) {
  if (t <= now_) return;
  // Deltas above 32 bits are cut into several (a trace may only move time by u32 steps).
  while (t > now_) {
    uint32_t step = static_cast<uint32_t>(std::min<membership::Time>(t - now_, 0xffffffffu));
    if (record_) record_->advance(step);
    now_ += step;
  }
}

void Driver::run() {
  if (record_) record_->run();
  core_->run(now_);
  // The simulated log syncs at once; reads are answered, and the core runs on with that.
  if (synced_ < io_.logged) {
    synced_ = io_.logged;
    core_->on_log_synced(synced_);
    core_->run(now_);
  }
  if (!io_.reads.empty()) {
    answer_reads();
    core_->run(now_);
  }
  if (!io_.admins.empty()) {
    answer_admins();
    core_->run(now_);
  }
}

// As agentd's admin actor would, from a snapshot of the core (its JSON and text renderers are
// unit-tested; here the snapshot and the reply's path are what is fuzzed).
void Driver::answer_admins() {
  auto admins = std::move(io_.admins);
  io_.admins.clear();
  for (auto& [id, req] : admins) {
    auto s = daemon::take_snapshot(*core_, *cfg_, daemon::ShellCounters{}, now_, 0);
    core_->admin_reply(id, req.command,
                       req.command + ": " + std::to_string(s.clients.size()) + " clients, " +
                           std::to_string(s.groups.size()) + " groups");
  }
}

void Driver::answer_reads() {
  auto reads = std::move(io_.reads);
  io_.reads.clear();
  for (auto& r : reads) {
    persist::ReadResult res;
    res.after = r.after;
    persist::Position next{r.after.ring, r.after.ordinal + 1};
    if (r.since_us == 0 && next < r.before) {
      persist::Entry e;
      e.pos = next;
      e.time_us = 1;
      e.service = proto::service::kAgreed;
      e.sender = "#logged#" + cfg_->name;
      e.groups = {r.group};
      e.payload = "from the log";
      res.entries.push_back(std::move(e));
    }
    core_->on_history(r.conn, r.id, std::move(res));
  }
}

void Driver::datagram(uint8_t from, std::string_view bytes, Op op) {
  if (record_) record_->datagram(from, bytes, op);
  receive_(*this, from, bytes, op);
}

daemon::ConnId Driver::conn(uint8_t slot) const {
  auto it = slots_.find(slot);
  return it != slots_.end() && core_->hub().has_session(it->second) ? it->second : 0;
}

void Driver::open(uint8_t slot) {
  if (record_) record_->open(slot);
  if (daemon::ConnId old = conn(slot)) {
    io_.forget(old);
    core_->on_closed(old);
  }
  daemon::ConnId id = ++last_conn_;
  slots_[slot] = id;
  daemon::Peer p;
  if (slot % 2) {
    p.kind = daemon::Peer::Kind::kUnix;
    p.uid = p.gid = 1000 + slot % 3;
    p.pid = slot;
  } else {
    p.kind = daemon::Peer::Kind::kTcp;
    p.address = "127.0.0." + std::to_string(1 + slot % 3);
  }
  // TCP clients authenticate: a nonce as the shell would give (fixed here, so that a run
  // replays exactly; the fuzzer then reaches the challenge and the answers to it).
  std::string nonce(clientauth::kNonceBytes, static_cast<char>(id));
  core_->on_open(id, now_, std::move(p), nonce);
}

void Driver::bytes(uint8_t slot, std::string_view bytes) {
  if (record_) record_->bytes(slot, bytes);
  if (daemon::ConnId id = conn(slot)) core_->on_bytes(id, bytes.data(), bytes.size(), now_);
}

void Driver::closed(uint8_t slot) {
  if (record_) record_->closed(slot);
  if (daemon::ConnId id = conn(slot)) {
    io_.forget(id);
    core_->on_closed(id);
  }
  slots_.erase(slot);
}

void Driver::sent(uint8_t slot, uint32_t queued) {
  if (record_) record_->sent(slot, queued);
  if (daemon::ConnId id = conn(slot)) core_->on_sent(id, queued);
}

void Driver::play(std::string_view trace, uint32_t allowed) {
  wire::Reader r(trace);
  while (r.remaining() > 0) {
    auto op = static_cast<Op>(r.u8() % kOpCount);
    bool on = (allowed >> op) & 1;
    switch (op) {
      case kAdvance: {
        uint32_t d = r.u32();
        if (r.ok() && on) advance_to(now_ + d);
        break;
      }
      case kRun:
        if (on) run();
        break;
      case kDatagram:
      case kSealed: {
        uint8_t from = r.u8();
        std::string_view b = r.bytes(r.u16());
        if (r.ok() && on) datagram(from, b, op);
        break;
      }
      case kOpen: {
        uint8_t c = r.u8();
        if (r.ok() && on) open(c);
        break;
      }
      case kBytes: {
        uint8_t c = r.u8();
        std::string_view b = r.bytes(r.u16());
        if (r.ok() && on) bytes(c, b);
        break;
      }
      case kClosed: {
        uint8_t c = r.u8();
        if (r.ok() && on) closed(c);
        break;
      }
      case kSent: {
        uint8_t c = r.u8();
        uint32_t q = r.u32();
        if (r.ok() && on) sent(c, q);
        break;
      }
      case kOpCount:
        break;
    }
  }
  run();
}

void Driver::settle(membership::Time for_us) {
  membership::Time end = now_ + for_us;
  for (int i = 0; i < 200; ++i) {
    membership::Time t = core_->next_timeout();
    if (t > end) break;
    advance_to(std::max(t, now_));
    run();
  }
}

}  // namespace agent::fuzz
