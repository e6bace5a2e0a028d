/* The package test's client: run inside the fresh root against the installed libagent.so.0.
 * Connects to the daemon at argv[1], joins a group, multicasts to it and waits for its own
 * message back (AGREED: through the daemon's ring). Prints one line; exit status 0 when the
 * message came back, 1 otherwise. */
#include <stdio.h>
#include <string.h>

#include "agent.h"

int main(int argc, char **argv) {
  static const char text[] = "hello from the package test";
  agent_conn *c = NULL;
  agent_message *m = NULL;
  int rc, got = 0, i;
  if (argc != 2 || strcmp(argv[1], "--help") == 0) {
    fprintf(argc == 2 ? stdout : stderr, "usage: pkg-client SOCKET\n");
    return argc == 2 ? 0 : 2;
  }
  rc = agent_connect(argv[1], "pkgtest", AGENT_WANT_MEMBERSHIP, 5000, &c);
  if (rc != AGENT_OK) {
    printf("pkg-client: cannot connect to %s: %s\n", argv[1], agent_strerror(rc));
    return 1;
  }
  if ((rc = agent_join(c, "pkg")) != AGENT_OK ||
      (rc = agent_multicast(c, AGENT_AGREED, "pkg", 0, text, sizeof text - 1)) != AGENT_OK) {
    printf("pkg-client: join or multicast failed: %s\n", agent_strerror(rc));
    agent_disconnect(c);
    return 1;
  }
  for (i = 0; i < 100 && !got; ++i) {
    if (agent_receive(c, &m, 100) != AGENT_OK) continue;
    got = m->kind == AGENT_MSG_DATA && m->len == sizeof text - 1 &&
          memcmp(m->data, text, m->len) == 0;
    agent_message_free(m);
  }
  printf(got ? "pkg-client: joined pkg and got its message back (libagent %s)\n"
             : "pkg-client: no message back within 10 s (libagent %s)\n",
         agent_version());
  agent_disconnect(c);
  return got ? 0 : 1;
}
