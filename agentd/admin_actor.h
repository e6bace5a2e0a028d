// The admin service's actor: keeps the daemon's latest snapshot (agentd/admin_snapshot.h) and
// the rates of the last minutes, renders what agentctl asks for and what the HTTP endpoint
// serves (/metrics, /status). The daemon's loop only takes snapshots and sends them here, once
// a second and for each agentctl request; rendering, and every HTTP client, stay off it.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "agentd/admin_render.h"
#include "agentd/admin_snapshot.h"

namespace agent::daemon {

using SnapshotPtr = std::shared_ptr<const AdminSnapshot>;

// To the admin actor: the periodic snapshot (SnapshotPtr).
using admin_tick_atom = caf::atom_constant<caf::atom("admintick")>;
// To the admin actor: conn, command, flags (proto::kAdminJson), SnapshotPtr taken for it.
using admin_query_atom = caf::atom_constant<caf::atom("adminquery")>;
// From it, to the daemon: conn, command, the rendered answer.
using admin_answer_atom = caf::atom_constant<caf::atom("adminansw")>;

// What the HTTP endpoint serves, rendered by the actor once a second; the HTTP threads take
// the latest under a lock held only to copy a pointer.
struct AdminPages {
  std::string metrics;  // Prometheus text
  std::string status;   // JSON, with rates and history
};
class AdminPublished {
 public:
  std::shared_ptr<const AdminPages> get() const {
    std::lock_guard<std::mutex> l(mu_);
    return pages_;
  }
  void set(std::shared_ptr<const AdminPages> p) {
    std::lock_guard<std::mutex> l(mu_);
    pages_ = std::move(p);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const AdminPages> pages_;
};

struct AdminActorState {
  AdminHistory history;
  std::shared_ptr<AdminPublished> published;  // null: no HTTP endpoint
  static const char* name;
};

caf::behavior admin_actor(caf::stateful_actor<AdminActorState>* self,
                          std::shared_ptr<AdminPublished> published);

}  // namespace agent::daemon

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(agent::daemon::SnapshotPtr)
