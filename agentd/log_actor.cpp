#include "agentd/log_actor.h"

#include <algorithm>
#include <chrono>

#include <sys/statvfs.h>

#include <caf/all.hpp>

#include "agentd/log.h"

namespace agent::daemon {

const char* LogActorState::name = "message-log";

namespace {

using log_sync_atom = caf::atom_constant<caf::atom("logsync")>;
using log_expire_atom = caf::atom_constant<caf::atom("logexpire")>;

constexpr auto kExpireEvery = std::chrono::seconds(1);
constexpr uint64_t kReportEveryUs = 300ull * 1000 * 1000;
constexpr size_t kReadEntries = 1000;
constexpr size_t kReadBytes = 1u << 20;

uint64_t wall_us() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void report(LogActorState& st) {
  uint64_t messages = 0;
  for (auto& [group, g] : st.log->groups()) messages += g.count;
  AGENT_LOG(kInfo, "message log: " << st.log->groups().size() << " groups, " << messages
                                   << " messages, " << st.log->disk_bytes() / 1024
                                   << " KiB on disk; " << st.appends << " batches written, "
                                   << st.syncs << " syncs, " << st.reads << " history reads, "
                                   << st.expired << " messages expired, " << st.append_failures
                                   << " failed writes");
}

// Keeps RocksDB from running out of disk (it cannot write again after that): a batch is
// refused while the log's filesystem has less than persist.min_free_bytes free. Checked every
// 100 ms or MiB written.
std::string check_space(LogActorState& st, uint64_t now, const std::vector<persist::Record>& b) {
  for (auto& r : b) st.written_since_check += r.payload().size() + 64;
  if (now - st.space_checked_us >= 100000 || st.written_since_check >= (1u << 20)) {
    st.space_checked_us = now;
    st.written_since_check = 0;
    struct statvfs fs {};
    if (::statvfs(st.settings.dir.c_str(), &fs) == 0)
      st.free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  }
  if (st.free_bytes >= st.settings.min_free_bytes) return {};
  return "the disk holding " + st.settings.dir + " has " + std::to_string(st.free_bytes) +
         " bytes free, below persist.min_free_bytes (" +
         std::to_string(st.settings.min_free_bytes) + ")";
}

void sync(caf::stateful_actor<LogActorState>* self) {
  auto& st = self->state;
  st.sync_queued = false;
  if (st.synced == st.appended) return;
  std::string err = st.log->sync();
  if (!err.empty()) {
    ++st.append_failures;
    self->send(st.daemon, log_failed_atom::value, "cannot sync the message log: " + err,
               std::vector<std::string>{});
    return;
  }
  ++st.syncs;
  st.synced = st.appended;
  self->send(st.daemon, durable_atom::value, st.synced.ring, st.synced.ordinal);
}

}  // namespace

caf::behavior log_actor(caf::stateful_actor<LogActorState>* self,
                        std::shared_ptr<persist::MessageLog> log, PersistSettings settings,
                        caf::actor daemon) {
  auto& st = self->state;
  st.log = std::move(log);
  st.settings = std::move(settings);
  st.daemon = std::move(daemon);
  st.last_report_us = wall_us();
  // Every second: retention, and every 5 minutes the report.
  self->delayed_send(self, kExpireEvery, log_expire_atom::value);
  return {
      [=](log_append_atom, const RecordBatch& batch) {
        auto& st = self->state;
        uint64_t now = wall_us();
        for (auto& r : *batch) r.entry.time_us = now;
        std::string err = check_space(st, now, *batch);
        if (err.empty()) err = st.log->append(*batch, false);
        if (!err.empty()) {
          ++st.append_failures;
          // The senders of what was lost, once each (their daemon tells them).
          std::vector<std::string> senders;
          for (auto& r : *batch)
            if (std::find(senders.begin(), senders.end(), r.entry.sender) == senders.end() &&
                senders.size() < 256)
              senders.push_back(r.entry.sender);
          self->send(st.daemon, log_failed_atom::value,
                     "cannot write " + std::to_string(batch->size()) +
                         " messages to the message log: " + err,
                     std::move(senders));
          return;
        }
        ++st.appends;
        st.appended = batch->back().entry.pos;
        using D = PersistSettings::Durability;
        // Written: what "none" and "batch" report to the ring (its pace follows the log's).
        if (st.settings.durability != D::kAlways)
          self->send(st.daemon, durable_atom::value, st.appended.ring, st.appended.ordinal);
        if (st.settings.durability == D::kNone || st.sync_queued) return;
        st.sync_queued = true;
        // Group commit: one sync covers every batch that arrived before it runs.
        if (st.settings.durability == D::kAlways)
          self->send(self, log_sync_atom::value);
        else
          self->delayed_send(self, std::chrono::milliseconds(st.settings.batch_ms),
                             log_sync_atom::value);
      },
      [=](log_sync_atom) { sync(self); },
      [=](log_read_atom, const ReadRequest& r) {
        auto& st = self->state;
        ++st.reads;
        persist::Position after = r->after;
        if (r->since_us) after = st.log->before_time(r->group, r->since_us);
        auto answer = std::make_shared<persist::ReadResult>(
            st.log->read(r->group, after, r->before, kReadEntries, kReadBytes));
        answer->after = after;
        self->send(st.daemon, history_atom::value, r->conn, r->id, answer);
      },
      [=](log_read_ring_atom, uint64_t config, uint64_t ring, uint64_t after, uint64_t upto,
          uint64_t max_bytes) {
        auto& st = self->state;
        ++st.ring_reads;
        uint64_t reached = 0;
        std::string error;
        auto records = std::make_shared<std::vector<persist::Record>>(
            st.log->read_ring(ring, after, upto, max_bytes, reached, error));
        self->send(st.daemon, fill_read_atom::value, config, ring, after, upto, records, reached,
                   error);
      },
      [=](log_fill_atom, const RecordBatch& batch, uint64_t ring, uint64_t upto) {
        auto& st = self->state;
        uint64_t now = wall_us();
        std::string err = check_space(st, now, *batch);
        if (err.empty()) err = st.log->fill(*batch, ring, upto);
        if (!err.empty()) {
          ++st.append_failures;
          self->send(st.daemon, log_failed_atom::value,
                     "cannot write " + std::to_string(batch->size()) +
                         " messages from another daemon's log (catch-up): " + err,
                     std::vector<std::string>{});
          return;
        }
        ++st.fills;
      },
      [=](log_expire_atom) {
        auto& st = self->state;
        uint64_t now = wall_us();
        std::vector<std::string> groups;
        if (st.settings.retains())
          for (auto& [group, g] : st.log->groups()) groups.push_back(group);
        for (auto& group : groups) {
          GroupRetention r = retention_for(st.settings, group);
          if (!r.messages && !r.bytes && !r.seconds) continue;
          persist::Retention ret;
          ret.max_messages = r.messages;
          ret.max_bytes = r.bytes;
          ret.max_age_us = r.seconds * 1000000;
          std::string err;
          st.expired += st.log->expire(group, ret, now, err);
          if (!err.empty())
            AGENT_LOG(kError, "message log: expiring group " << group << ": " << err);
        }
        if (now - st.last_report_us >= kReportEveryUs) {
          st.last_report_us = now;
          report(st);
        }
        self->delayed_send(self, kExpireEvery, log_expire_atom::value);
      },
      [=](log_stop_atom) {
        auto& st = self->state;
        if (st.settings.durability != PersistSettings::Durability::kNone) sync(self);
        report(st);
        self->quit();
      },
  };
}

}  // namespace agent::daemon
