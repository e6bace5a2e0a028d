// The message log's actor: owns the RocksDB log (persist/message_log.h) on a thread of its own,
// so the daemon's loop never waits for the disk. The loop sends it batches of delivered
// messages and history reads, in order; it answers reads, reports what became durable and what
// failed, syncs by the configured durability and applies retention in the background.
#pragma once

#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "agentd/client_hub.h"
#include "agentd/config.h"
#include "persist/message_log.h"

namespace agent::daemon {

using RecordBatch = std::shared_ptr<std::vector<persist::Record>>;
using ReadRequest = std::shared_ptr<LogRead>;
using ReadAnswer = std::shared_ptr<persist::ReadResult>;

// To the log actor.
using log_append_atom = caf::atom_constant<caf::atom("logappend")>;  // RecordBatch
using log_read_atom = caf::atom_constant<caf::atom("logread")>;      // ReadRequest
using log_stop_atom = caf::atom_constant<caf::atom("logstop")>;      // sync, report, quit
// Catch-up (agentd/catch_up.h): config, ring, after, upto, max_bytes -> fill_read_atom.
using log_read_ring_atom = caf::atom_constant<caf::atom("logreadrng")>;
// Catch-up: another daemon's records of a ring (RecordBatch, ring, upto).
using log_fill_atom = caf::atom_constant<caf::atom("logfill")>;
// From it, to the daemon.
using history_atom = caf::atom_constant<caf::atom("history")>;  // conn, read id, ReadAnswer
// What went wrong, and the senders (private groups) of messages that were not written.
using log_failed_atom = caf::atom_constant<caf::atom("logfailed")>;
// ring, ordinal: everything up to it is written ("none", "batch") or synced ("always")
using durable_atom = caf::atom_constant<caf::atom("durable")>;
// The answer to log_read_ring_atom: config, ring, after, upto, RecordBatch, reached, error.
using fill_read_atom = caf::atom_constant<caf::atom("fillread")>;

struct LogActorState {
  std::shared_ptr<persist::MessageLog> log;
  PersistSettings settings;
  caf::actor daemon;
  persist::Position appended, synced;  // the last position written / made durable
  bool sync_queued = false;
  uint64_t appends = 0, append_failures = 0, syncs = 0, reads = 0, expired = 0;
  uint64_t fills = 0, ring_reads = 0;
  uint64_t last_report_us = 0;
  uint64_t space_checked_us = 0, written_since_check = 0;
  uint64_t free_bytes = ~0ull;  // on the log's filesystem, when last checked
  static const char* name;
};

caf::behavior log_actor(caf::stateful_actor<LogActorState>* self,
                        std::shared_ptr<persist::MessageLog> log, PersistSettings settings,
                        caf::actor daemon);

}  // namespace agent::daemon

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(agent::daemon::RecordBatch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(agent::daemon::ReadRequest)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(agent::daemon::ReadAnswer)
