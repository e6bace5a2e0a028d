#include "agentd/catch_up.h"

#include <algorithm>

#include "base/check.h"
#include "groups/event_codec.h"
#include "transport/wire.h"

namespace agent::daemon {

namespace {
constexpr uint8_t kSummaryVersion = 1;
}

void encode_log_summary(std::string& out, const LogSummary& s) {
  wire::Writer w(out);
  w.u8(kSummaryVersion);
  w.u8(s.has_log ? 1 : 0);
  w.u16(static_cast<uint16_t>(s.coverage.size()));
  for (auto& [ring, c] : s.coverage) {
    w.u64(ring);
    w.u64(c.through);
    w.u8(c.past_gap ? 1 : 0);
  }
}

bool decode_log_summary(std::string_view bytes, LogSummary& s) {
  wire::Reader r(bytes);
  s = LogSummary{};
  if (r.u8() != kSummaryVersion) return false;
  uint8_t has = r.u8();
  size_t n = r.u16();
  if (has > 1 || n > persist::kCoveredRings) return false;
  s.has_log = has;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    uint64_t ring = r.u64();
    persist::RingCover c;
    c.through = r.u64();
    uint8_t flags = r.u8();
    if (flags > 1) return false;
    c.past_gap = flags;
    s.coverage[ring] = c;
  }
  return r.done() && (s.has_log || s.coverage.empty());
}

std::vector<CatchUpTask> plan_catch_up(uint64_t ring, const std::map<NodeId, LogSummary>& all) {
  // Rings below a member's horizon (the oldest it still describes, when it describes as many as
  // it keeps) are not compared: it may hold their messages without saying so.
  uint64_t horizon = 0;
  std::vector<uint64_t> rings;
  for (auto& [id, s] : all) {
    if (!s.has_log) continue;
    if (s.coverage.size() >= persist::kCoveredRings)
      horizon = std::max(horizon, s.coverage.begin()->first);
    for (auto& [r, c] : s.coverage)
      if (r < ring) rings.push_back(r);
  }
  std::sort(rings.begin(), rings.end());
  rings.erase(std::unique(rings.begin(), rings.end()), rings.end());
  std::vector<CatchUpTask> plan;
  for (uint64_t r : rings) {
    if (r < horizon) continue;
    CatchUpTask t;
    t.ring = r;
    for (auto& [id, s] : all) {  // ids ascending: the first of the most is the donor
      if (!s.has_log) continue;
      auto c = s.coverage.find(r);
      if (c != s.coverage.end() && c->second.through > t.upto) {
        t.upto = c->second.through;
        t.donor = id;
      }
    }
    if (t.upto == 0) continue;
    bool needed = false;
    t.after = t.upto;
    for (auto& [id, s] : all) {
      if (!s.has_log || id == t.donor) continue;
      auto c = s.coverage.find(r);
      persist::RingCover have = c == s.coverage.end() ? persist::RingCover{} : c->second;
      if (have.past_gap || have.through >= t.upto) continue;
      needed = true;
      t.after = std::min(t.after, have.through);
    }
    if (needed) plan.push_back(t);
  }
  return plan;
}

void encode_fill(std::string& out, const FillEvent& f) {
  wire::Writer w(out);
  w.u8(groups::kEventCodecVersion);
  w.u8(kFillEventKind);
  w.u64(f.config);
  w.u64(f.ring);
  w.u64(f.after);
  w.u64(f.reached);
  w.u8(static_cast<uint8_t>((f.final ? 1 : 0) | (f.failed ? 2 : 0)));
  w.u32(static_cast<uint32_t>(f.records.size()));
  for (auto& r : f.records) {
    const persist::Entry& e = r.entry;
    w.u64(e.pos.ordinal);
    w.u64(e.time_us);
    w.u32(e.service);
    w.i16(e.msg_type);
    w.str8(e.sender);
    w.u16(static_cast<uint16_t>(e.groups.size()));
    for (auto& g : e.groups) w.str8(g);
    w.u16(static_cast<uint16_t>(r.log_groups.size()));
    for (auto& g : r.log_groups) w.str8(g);
    w.bytes32(e.payload);
  }
}

bool decode_fill(std::string_view bytes, FillEvent& f) {
  wire::Reader r(bytes);
  f = FillEvent{};
  if (r.u8() != groups::kEventCodecVersion || r.u8() != kFillEventKind) return false;
  f.config = r.u64();
  f.ring = r.u64();
  f.after = r.u64();
  f.reached = r.u64();
  uint8_t flags = r.u8();
  if (flags > 3 || f.reached < f.after) return false;
  f.final = flags & 1;
  f.failed = flags & 2;
  size_t n = r.u32();
  if (!r.ok() || n > r.remaining() / 24) return false;  // each record takes more than that
  uint64_t prev = f.after;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    persist::Record rec;
    persist::Entry& e = rec.entry;
    e.pos = {f.ring, r.u64()};
    if (e.pos.ordinal <= prev || e.pos.ordinal > f.reached) return false;  // in order, in range
    prev = e.pos.ordinal;
    e.time_us = r.u64();
    e.service = r.u32();
    e.msg_type = r.i16();
    e.sender.assign(r.str8());
    size_t ng = r.u16();
    if (ng > 256) return false;
    for (size_t j = 0; j < ng && r.ok(); ++j) e.groups.emplace_back(r.str8());
    size_t nl = r.u16();
    if (nl > 256 || nl == 0) return false;
    for (size_t j = 0; j < nl && r.ok(); ++j) rec.log_groups.emplace_back(r.str8());
    e.payload.assign(r.bytes32());
    f.records.push_back(std::move(rec));
  }
  return r.done();
}

void CatchUp::on_regular(uint64_t config, std::vector<NodeId> members) {
  config_ = config;
  members_ = std::move(members);
  states_.clear();
  planned_ = false;
  plan_.clear();
  donate_.clear();
  donated_upto_ = 0;
  in_flight_ = false;
  needs_.clear();
}

void CatchUp::on_transitional() {
  // Nothing more of the plan happens in this configuration; reads keep waiting for the next.
  donate_.clear();
  in_flight_ = false;
}

void CatchUp::on_state(NodeId origin, uint64_t config, std::string_view summary) {
  if (config != config_ || planned_) return;
  if (!std::binary_search(members_.begin(), members_.end(), origin)) return;
  LogSummary s;
  if (!summary.empty() && !decode_log_summary(summary, s)) s = LogSummary{};
  states_[origin] = std::move(s);
  if (states_.size() < members_.size()) return;
  planned_ = true;
  ++stats_.plans;
  plan_ = plan_catch_up(config_, states_);
  auto mine = states_.find(self_);
  for (auto& t : plan_) {
    if (t.donor == self_) {
      donate_.push_back(t);
      continue;
    }
    if (mine == states_.end() || !mine->second.has_log) continue;
    auto c = mine->second.coverage.find(t.ring);
    persist::RingCover have = c == mine->second.coverage.end() ? persist::RingCover{} : c->second;
    if (!have.past_gap && have.through < t.upto) needs_[t.ring] = t.upto;
  }
  if (!donate_.empty()) donated_upto_ = donate_.front().after;
}

std::optional<FillRead> CatchUp::next_read() {
  if (in_flight_ || donate_.empty()) return std::nullopt;
  in_flight_ = true;
  const CatchUpTask& t = donate_.front();
  return FillRead{config_, t.ring, donated_upto_, t.upto};
}

std::optional<FillEvent> CatchUp::on_read(const FillRead& r, std::vector<persist::Record>&& records,
                                          uint64_t reached, const std::string& error) {
  if (r.config != config_ || donate_.empty() || !in_flight_ || donate_.front().ring != r.ring)
    return std::nullopt;  // the plan it was for has ended
  FillEvent f;
  f.config = config_;
  f.ring = r.ring;
  f.after = r.after;
  if (!error.empty()) {
    f.failed = f.final = true;
    f.reached = r.after;
  } else {
    AGENT_CHECK(reached > r.after && reached <= r.upto);
    f.reached = reached;
    f.final = reached == r.upto;
    f.records = std::move(records);
  }
  ++stats_.donated_chunks;
  return f;
}

bool CatchUp::on_fill(NodeId origin, const FillEvent& f) {
  if (f.config != config_ || !planned_) return false;
  if (origin == self_ && !donate_.empty() && donate_.front().ring == f.ring) {
    in_flight_ = false;
    donated_upto_ = f.reached;
    if (f.final) {
      donate_.erase(donate_.begin());
      if (!donate_.empty()) donated_upto_ = donate_.front().after;
    }
  }
  auto need = needs_.find(f.ring);
  if (need == needs_.end()) return false;
  // The plan names one donor per ring: only its chunks count.
  auto t = std::find_if(plan_.begin(), plan_.end(),
                        [&](const CatchUpTask& x) { return x.ring == f.ring; });
  if (t == plan_.end() || t->donor != origin) return false;
  if (f.final) needs_.erase(need);
  if (f.failed) return false;
  ++stats_.filled_chunks;
  stats_.filled_messages += f.records.size();
  return true;
}

}  // namespace agent::daemon
