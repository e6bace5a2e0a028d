/* agent-chat: an interactive client, like Spread's spuser.
 *
 *   agent-chat [-d daemon] [-n name]
 *
 * Commands (one per line): j <group> | l <group> | s <group> <text> |
 * m <g1,g2,...> <text> | p <#name#daemon> <text> | h | q
 */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "../connect_error.h"

static const char *service_name(uint32_t s) {
  if (s & AGENT_SAFE) return "SAFE";
  if (s & AGENT_AGREED) return "AGREED";
  if (s & AGENT_CAUSAL) return "CAUSAL";
  if (s & AGENT_FIFO) return "FIFO";
  if (s & AGENT_RELIABLE) return "RELIABLE";
  return "UNRELIABLE";
}

static const char *cause_name(uint32_t s) {
  if (s & AGENT_CAUSED_BY_JOIN) return "JOIN";
  if (s & AGENT_CAUSED_BY_LEAVE) return "LEAVE";
  if (s & AGENT_CAUSED_BY_DISCONNECT) return "DISCONNECT";
  return "NETWORK";
}

static void show(const agent_message *m) {
  size_t i;
  if (m->kind == AGENT_MSG_DATA) {
    printf("DATA from %s to ", m->sender);
    for (i = 0; i < m->ngroups; i++) printf("%s%s", i ? "," : "", m->groups[i]);
    printf(" type=%d service=%s: %.*s\n", m->msg_type, service_name(m->service), (int)m->len,
           (const char *)m->data);
  } else if (m->kind == AGENT_MSG_MEMBERSHIP) {
    const char *kind = (m->service & AGENT_REG_MEMB) ? "REG"
                       : (m->service & AGENT_TRANSITION) ? "TRANS" : "SELF-LEAVE";
    // A view id is (ring, seq): the ring as sequence.representative; seq is the ordinal of the
    // event in that ring, or for views between a transitional and a regular configuration
    // "t" and the low half of its value.
    unsigned long long ring_seq = m->view.config >> 32, rep = m->view.config & 0xffffffffu;
    unsigned long long seq = m->view.seq;
    char seq_text[32];
    if (seq >> 63)
      snprintf(seq_text, sizeof seq_text, "t%llu", seq & 0xffffffffu);
    else
      snprintf(seq_text, sizeof seq_text, "%llu", seq);
    printf("MEMBERSHIP %s %s cause=%s view=%llu.%llu/%s changed=%s members=[", m->sender, kind,
           cause_name(m->service), ring_seq, rep, seq_text, m->changed[0] ? m->changed : "-");
    for (i = 0; i < m->ngroups; i++) printf("%s%s", i ? "," : "", m->groups[i]);
    printf("]\n");
  } else {
    printf("ERROR %d %s: %.*s\n", m->error_code, m->sender[0] ? m->sender : "-", (int)m->len,
           (const char *)m->data);
  }
  fflush(stdout);
}

static void help(void) {
  printf("commands: j <group> | l <group> | s <group> <text> | m <g1,g2,...> <text> |\n"
         "          p <#name#daemon> <text> | h | q\n");
  fflush(stdout);
}

/* Runs one command line; returns 0 to quit. */
static int command(agent_conn *c, char *line) {
  char *arg, *text;
  int rc = AGENT_OK;
  line[strcspn(line, "\r\n")] = '\0';
  if (line[0] == '\0') return 1;
  arg = line + 1;
  while (*arg == ' ') arg++;
  text = strchr(arg, ' ');
  if (text) *text++ = '\0';
  switch (line[0]) {
    case 'q': return 0;
    case 'h': help(); return 1;
    case 'j': rc = agent_join(c, arg); break;
    case 'l': rc = agent_leave(c, arg); break;
    case 's':
    case 'p':
      if (!text) text = "";
      rc = agent_multicast(c, AGENT_AGREED, arg, 0, text, strlen(text));
      break;
    case 'm': {
      const char *groups[64];
      size_t n = 0;
      char *save = NULL, *g;
      for (g = strtok_r(arg, ",", &save); g && n < 64; g = strtok_r(NULL, ",", &save)) groups[n++] = g;
      if (!text) text = "";
      rc = agent_multicast_groups(c, AGENT_AGREED, groups, n, 0, text, strlen(text));
      break;
    }
    default: printf("unknown command '%c'\n", line[0]); help(); return 1;
  }
  if (rc != AGENT_OK) {
    printf("failed: %s\n", agent_strerror(rc));
    fflush(stdout);
    if (rc == AGENT_ERR_CLOSED) return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  const char *daemon = NULL, *name = NULL;
  agent_conn *c = NULL;
  char input[8192];
  size_t have = 0;
  int opt, rc, running = 1;
  static const struct option longopts[] = {{"daemon", required_argument, NULL, 'd'},
                                            {"name", required_argument, NULL, 'n'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
  while ((opt = getopt_long(argc, argv, "d:n:h", longopts, NULL)) != -1) {
    if (opt == 'd') daemon = optarg;
    else if (opt == 'n') name = optarg;
    else {
      fprintf(opt == 'h' ? stdout : stderr,
              "usage: agent-chat [-d|--daemon daemon] [-n|--name name]\n"
              "  daemon: a socket path, host:port, port or port@host (default $AGENT_DAEMON,\n"
              "  else /tmp/agentd.sock). Commands: j GROUP, l GROUP, s GROUP TEXT, q.\n");
      return opt == 'h' ? 0 : 2;
    }
  }
  rc = agent_connect(daemon, name, AGENT_WANT_MEMBERSHIP | (name ? 0 : AGENT_GENERATE_NAME), 5000, &c);
  if (rc != AGENT_OK) {
    report_connect_error("agent-chat", daemon, rc);
    return 1;
  }
  printf("connected as %s\n", agent_private_group(c));
  fflush(stdout);
  while (running) {
    struct pollfd p[2] = {{0, POLLIN, 0}, {agent_fd(c), POLLIN, 0}};
    if (agent_pending(c) == 0 && poll(p, 2, -1) < 0) continue;
    if (agent_pending(c) > 0 || (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      agent_message *m;
      rc = agent_receive(c, &m, 0);
      if (rc == AGENT_OK) {
        show(m);
        agent_message_free(m);
      } else if (rc != AGENT_ERR_TIMEOUT) {
        printf("connection ended: %s\n", agent_strerror(rc));
        break;
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP)) {
      /* read(2), not stdio: poll() must see every line, not only the first of a buffer. */
      ssize_t n = read(0, input + have, sizeof input - 1 - have);
      char *start, *nl;
      if (n <= 0) break;
      have += (size_t)n;
      input[have] = '\0';
      start = input;
      while (running && (nl = strchr(start, '\n')) != NULL) {
        *nl = '\0';
        running = command(c, start);
        start = nl + 1;
      }
      have -= (size_t)(start - input);
      memmove(input, start, have);
      if (have == sizeof input - 1) have = 0; /* a line longer than the buffer: drop it */
    }
  }
  agent_disconnect(c);
  return 0;
}
