// The daemon's actor: a CAF broker that owns the client listeners and connections and hosts the
// client hub, the group state and the ordering layer (for now the ring of one).
#pragma once

#include <memory>

#include <caf/io/broker.hpp>

#include "agentd/admin_actor.h"
#include "agentd/config.h"
#include "persist/message_log.h"

namespace agent::daemon {

using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
// New ring keys (SIGHUP): a string of 32-byte keys, the first seals.
using rekey_atom = caf::atom_constant<caf::atom("rekey")>;
// New client secrets (SIGHUP): clients.secrets_file as read again.
using secrets_atom = caf::atom_constant<caf::atom("secrets")>;
using SecretsPtr = std::shared_ptr<const clientauth::Secrets>;

// unix_fd, tcp_fd: listening sockets created by the caller, or -1. log: the opened message
// log (persistence on), or null. published: where the admin actor puts the HTTP endpoint's
// pages (null: no endpoint).
caf::behavior daemon_actor(caf::io::broker* self, Config cfg, int unix_fd, int tcp_fd,
                           std::shared_ptr<persist::MessageLog> log,
                           std::shared_ptr<AdminPublished> published = nullptr);

}  // namespace agent::daemon

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(agent::daemon::SecretsPtr)
