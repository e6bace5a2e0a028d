/* How the examples say that connecting failed: the address they tried and why. */
#ifndef AGENT_EXAMPLES_CONNECT_ERROR_H
#define AGENT_EXAMPLES_CONNECT_ERROR_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

/* daemon: as given to agent_connect (NULL: $AGENT_DAEMON, else the default socket). Call it
 * right after the failed agent_connect, before errno changes. */
static void report_connect_error(const char *program, const char *daemon, int rc) {
  int err = errno;
  const char *where = daemon && *daemon ? daemon : getenv("AGENT_DAEMON");
  if (!where || !*where) where = "/tmp/agentd.sock";
  if (rc == AGENT_ERR_CONNECT)
    fprintf(stderr, "%s: cannot connect to agentd at %s: %s\n", program, where, strerror(err));
  else
    fprintf(stderr, "%s: agentd at %s refused the connection: %s\n", program, where,
            agent_strerror(rc));
}

#endif
