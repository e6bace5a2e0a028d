// What libspread's Spread API (sp.cpp) and Flush library (fl.cpp) share: daemon names, error
// mapping, view ids, scatters. Internal: not installed, not exported.
#pragma once

#include <cstddef>
#include <string>

#include "agent.h"
// Last: it defines int16 and int32 as macros, as Spread's header does.
#include "sp.h"

namespace agent::spread {

// "4803", "4803@host", "host:4803", "[v6]:4803", or a path starting with '/' or '.'.
bool valid_daemon_name(const std::string& n);
// agent_connect's error as SP_connect's.
int map_connect_error(int rc);
// The checks of SP_connect_timeout's time_out: ILLEGAL_TIME, or 0.
int check_timeout(sp_time t);
// agentd's view id folded into Spread's three integers.
group_id fold_view(const agent_view_id& v);
// Error codes of the daemon after which it closes the connection.
bool closes_connection(int code);

size_t scatter_capacity(const scatter& s);
// At most max_elements elements, and no NULL buffer with a length.
bool scatter_ok(const scatter* s, size_t max_elements = MAX_CLIENT_SCATTER_ELEMENTS);
// Copies n bytes (at most the scatter's capacity) into the scatter's buffers, in order.
void scatter_write(scatter& s, const char* src, size_t n);

}  // namespace agent::spread
