// The WAN bridge's actors (docs/bridge.md): one CAF broker per TCP link to another site's
// bridge, a listener that accepts links, and a dialer per site this one connects to (with
// backoff). They only move bytes: the link protocol and everything it decides is the daemon
// core's (bridge/site_bridge.h), which runs in the daemon's actor. A link tells the daemon when
// it opens, what it reads and when it ends; the daemon sends it bytes to write, pauses and
// resumes its reading (while the ring's queue is full), and closes it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/io/broker.hpp>

#include "agentd/config.h"
#include "persist/bridge_store.h"

namespace agent::daemon {

// Link -> daemon.
using bridge_open_atom = caf::atom_constant<caf::atom("bropen")>;    // actor link
using bridge_in_atom = caf::atom_constant<caf::atom("brin")>;        // u64 link, string bytes
using bridge_closed_atom = caf::atom_constant<caf::atom("brclosed")>;  // u64 link
// Daemon -> link.
using bridge_out_atom = caf::atom_constant<caf::atom("brout")>;      // string bytes
using bridge_close_atom = caf::atom_constant<caf::atom("brclose")>;  // (none)
using bridge_read_atom = caf::atom_constant<caf::atom("brread")>;    // bool: read or pause

// The bridge's store (persist/bridge_store.h) on a thread of its own: the daemon sends it
// each round's changes, in order.
using bridge_store_atom = caf::atom_constant<caf::atom("brstore")>;  // BridgeChangesPtr
using BridgeChangesPtr = std::shared_ptr<persist::BridgeChanges>;
caf::actor spawn_bridge_store(caf::io::broker* daemon, std::unique_ptr<persist::BridgeStore> store);

// Spawns the bridge's listener (bridge.listen) and its dialers (the sites whose names sort
// after this site's); links report to daemon. "" or what went wrong (the listener's address).
// helpers: the listener and dialers, for the daemon to stop when it stops.
std::string start_bridge(caf::io::broker* daemon, const BridgeSettings& settings,
                         std::vector<caf::actor>& helpers);

}  // namespace agent::daemon

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(agent::daemon::BridgeChangesPtr)
