/* exit-sender SOCKET GROUP COUNT: joins GROUP, multicasts COUNT 1 KB AGREED messages to it and
 * returns from main without agent_disconnect. Everything agent_multicast accepted must still
 * reach the daemon: what the library's send queue holds is written at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

/* Kept in a global: the connection stays reachable at exit (it is never closed, on purpose),
 * which LeakSanitizer would otherwise report. */
static agent_conn* c = NULL;

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: exit-sender SOCKET GROUP COUNT\n");
    return 2;
  }
  int rc = agent_connect(argv[1], "exiter", 0, 5000, &c);
  if (rc == AGENT_OK) rc = agent_join(c, argv[2]);
  if (rc != AGENT_OK) {
    fprintf(stderr, "exit-sender: %s\n", agent_strerror(rc));
    return 1;
  }
  char body[1024];
  memset(body, 'x', sizeof body);
  long n = atol(argv[3]);
  for (long i = 0; i < n; ++i) {
    rc = agent_multicast(c, AGENT_AGREED, argv[2], 0, body, sizeof body);
    if (rc != AGENT_OK) {
      fprintf(stderr, "exit-sender: message %ld: %s\n", i, agent_strerror(rc));
      return 1;
    }
  }
  return 0; /* no agent_disconnect */
}
