/* agent-flood: sends N messages of S bytes to a group and counts them coming back, or (with -r)
 * counts what arrives. Prints one RESULT line.
 *
 *   agent-flood [-d daemon] [-n name] [-g group] [-c count] [-s size] [-S service] [-r] [-w window]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "../connect_error.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_service(const char *s, uint32_t *out) {
  static const struct { const char *name; uint32_t bit; } map[] = {
      {"unreliable", AGENT_UNRELIABLE}, {"reliable", AGENT_RELIABLE}, {"fifo", AGENT_FIFO},
      {"causal", AGENT_CAUSAL}, {"agreed", AGENT_AGREED}, {"safe", AGENT_SAFE}};
  size_t i;
  for (i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(s, map[i].name) == 0) {
      *out = map[i].bit;
      return 0;
    }
  return -1;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: agent-flood [-d daemon] [-n name] [-g group] [-c count] [-s size]\n"
          "                   [-S unreliable|reliable|fifo|causal|agreed|safe] [-r] [-w window]\n"
          "                   [-b batch]   (-b N: write N messages at once with AGENT_MORE)\n");
}

int main(int argc, char **argv) {
  const char *daemon = NULL, *name = NULL, *group = "flood", *service_name = "agreed";
  long count = 100000, size = 1024, window = 1000, batch = 1;
  int receive_only = 0, opt, rc;
  uint32_t service = AGENT_AGREED;
  agent_conn *c = NULL;
  char *payload;
  long sent = 0, got = 0;
  double t0 = 0, t1;
  static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  while ((opt = getopt_long(argc, argv, "d:n:g:c:s:S:rw:b:h", longopts, NULL)) != -1) {
    switch (opt) {
      case 'd': daemon = optarg; break;
      case 'n': name = optarg; break;
      case 'g': group = optarg; break;
      case 'c': count = atol(optarg); break;
      case 's': size = atol(optarg); break;
      case 'S': service_name = optarg; break;
      case 'r': receive_only = 1; break;
      case 'w': window = atol(optarg); break;
      case 'b': batch = atol(optarg); break;
      default: usage(opt == 'h' ? stdout : stderr); return opt == 'h' ? 0 : 2;
    }
  }
  if (count <= 0 || size < 0 || window <= 0 || batch <= 0 || parse_service(service_name, &service) != 0) {
    usage(stderr);
    return 2;
  }
  rc = agent_connect(daemon, name, name ? 0 : AGENT_GENERATE_NAME, 5000, &c);
  if (rc != AGENT_OK) {
    report_connect_error("agent-flood", daemon, rc);
    return 1;
  }
  if ((size_t)size > agent_max_message(c)) {
    fprintf(stderr, "agent-flood: size %ld is above the daemon's limit %zu\n", size, agent_max_message(c));
    return 2;
  }
  rc = agent_join(c, group);
  if (rc != AGENT_OK) {
    fprintf(stderr, "agent-flood: join: %s\n", agent_strerror(rc));
    return 1;
  }
  payload = calloc(1, size ? (size_t)size : 1);
  if (!receive_only) t0 = now_s();
  while (got < count) {
    agent_message *m = NULL;
    if (!receive_only && sent < count && sent - got < window) {
      memcpy(payload, &sent, size >= (long)sizeof sent ? sizeof sent : (size_t)size);
      /* With -b, messages leave in groups of batch: all but the last of a group are held. */
      int more = batch > 1 && (sent + 1) % batch != 0 && sent + 1 < count;
      rc = agent_multicast(c, service | (more ? AGENT_MORE : 0), group, 0, payload, (size_t)size);
      if (rc != AGENT_OK) {
        fprintf(stderr, "agent-flood: send: %s\n", agent_strerror(rc));
        return 1;
      }
      sent++;
      /* Now and then take in what has arrived, without waiting. */
      if (sent % 64 != 0 && agent_pending(c) == 0) continue;
      rc = agent_receive(c, &m, 0);
      if (rc == AGENT_ERR_TIMEOUT) continue;
    } else {
      rc = agent_flush(c); /* about to wait: what is held must go out first */
      if (rc != AGENT_OK) {
        fprintf(stderr, "agent-flood: send: %s\n", agent_strerror(rc));
        return 1;
      }
      rc = agent_receive(c, &m, 10000);
      if (rc == AGENT_ERR_TIMEOUT) {
        fprintf(stderr, "agent-flood: nothing arrived for 10 s (%ld of %ld)\n", got, count);
        return 1;
      }
    }
    if (rc != AGENT_OK) {
      fprintf(stderr, "agent-flood: receive: %s\n", agent_strerror(rc));
      return 1;
    }
    if (m->kind == AGENT_MSG_DATA) {
      if (receive_only) {
        if (got == 0) t0 = now_s();
        got++;
      } else if (strcmp(m->sender, agent_private_group(c)) == 0) {
        got++;
      }
    } else if (m->kind == AGENT_MSG_ERROR) {
      fprintf(stderr, "agent-flood: daemon error %d: %.*s\n", m->error_code, (int)m->len,
              (const char *)m->data);
    }
    agent_message_free(m);
  }
  t1 = now_s();
  printf("RESULT count=%ld size=%ld service=%s secs=%.3f msgs_per_s=%.0f mb_per_s=%.1f\n", count,
         size, service_name, t1 - t0, count / (t1 - t0), count * (double)size / (t1 - t0) / 1e6);
  free(payload);
  agent_disconnect(c);
  return 0;
}
