/* sp-flood: one-way throughput through Spread's API (sp.h): a sender mailbox multicasts N
 * messages of S bytes to a group that a receiver mailbox (another connection, on its own
 * thread) has joined; at most W messages are in flight. Prints one RESULT line, timed from the
 * first send to the last delivery.
 *
 *   sp-flood [-d daemon] [-g group] [-c count] [-s size] [-w window] [-S agreed|safe|fifo|...]
 */
#include <pthread.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sp.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress = PTHREAD_COND_INITIALIZER;
static long received, count, size;
static int failed;
static mailbox rx;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *receive_all(void *arg) {
  static char groups[8][MAX_GROUP_NAME];
  char sender[MAX_GROUP_NAME];
  char *buf = malloc((size_t)size + 1);
  long got = 0;
  (void)arg;
  while (got < count) {
    service type = 0;
    int ngroups, endian;
    int16 mess_type;
    int n = SP_receive(rx, &type, sender, 8, &ngroups, groups, &mess_type, &endian,
                       (int)size + 1, buf);
    if (n < 0) {
      SP_error(n);
      pthread_mutex_lock(&mu);
      failed = 1;
      pthread_cond_signal(&progress);
      pthread_mutex_unlock(&mu);
      break;
    }
    if (!Is_regular_mess(type)) continue;
    if (++got % 256 == 0 || got == count) {
      pthread_mutex_lock(&mu);
      received = got;
      pthread_cond_signal(&progress);
      pthread_mutex_unlock(&mu);
    }
  }
  free(buf);
  return NULL;
}

static int parse_service(const char *s, service *out) {
  static const struct { const char *name; service bit; } map[] = {
      {"unreliable", UNRELIABLE_MESS}, {"reliable", RELIABLE_MESS}, {"fifo", FIFO_MESS},
      {"causal", CAUSAL_MESS}, {"agreed", AGREED_MESS}, {"safe", SAFE_MESS}};
  size_t i;
  for (i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(s, map[i].name) == 0) {
      *out = map[i].bit;
      return 0;
    }
  return -1;
}

int main(int argc, char **argv) {
  const char *daemon = NULL, *group = "spflood", *service_name = "agreed";
  long window = 2000, sent = 0;
  service svc = AGREED_MESS;
  mailbox tx;
  char private_group[MAX_GROUP_NAME];
  char *payload;
  pthread_t thread;
  double t0, t1;
  int opt, rc;
  count = 100000;
  size = 1024;
  static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  while ((opt = getopt_long(argc, argv, "d:g:c:s:w:S:h", longopts, NULL)) != -1) {
    switch (opt) {
      case 'd': daemon = optarg; break;
      case 'g': group = optarg; break;
      case 'c': count = atol(optarg); break;
      case 's': size = atol(optarg); break;
      case 'w': window = atol(optarg); break;
      case 'S': service_name = optarg; break;
      default:
        fprintf(opt == 'h' ? stdout : stderr, "usage: sp-flood [-d daemon] [-g group] [-c count] [-s size] "
                        "[-w window] [-S agreed|safe|fifo|causal|reliable|unreliable]\n");
        return opt == 'h' ? 0 : 2;
    }
  }
  if (count <= 0 || size < 0 || window <= 0 || parse_service(service_name, &svc) != 0) {
    fprintf(stderr, "sp-flood: bad arguments (try -h)\n");
    return 2;
  }
  if ((rc = SP_connect(daemon, NULL, 0, 1, &rx, private_group)) != ACCEPT_SESSION ||
      (rc = SP_connect(daemon, NULL, 0, 0, &tx, private_group)) != ACCEPT_SESSION) {
    if (rc == COULD_NOT_CONNECT) {
      int err = errno;
      const char *where = daemon && *daemon ? daemon : getenv("AGENT_DAEMON");
      fprintf(stderr, "sp-flood: cannot connect to agentd at %s: %s\n",
              where && *where ? where : "/tmp/agentd.sock", strerror(err));
    } else {
      SP_error(rc);
    }
    return 1;
  }
  if ((rc = SP_join(rx, group)) < 0) {
    SP_error(rc);
    return 1;
  }
  /* The join has taken effect when the receiver's own membership message arrives: everything
   * sent after that reaches it. */
  {
    char sender[MAX_GROUP_NAME], groups[8][MAX_GROUP_NAME], buf[4096];
    int ngroups, endian;
    int16 mess_type;
    service type;
    do {
      type = 0;
      rc = SP_receive(rx, &type, sender, 8, &ngroups, groups, &mess_type, &endian, sizeof buf,
                      buf);
      if (rc < 0) {
        SP_error(rc);
        return 1;
      }
    } while (!(Is_reg_memb_mess(type) && Is_caused_join_mess(type)));
  }
  payload = calloc(1, size ? (size_t)size : 1);
  pthread_create(&thread, NULL, receive_all, NULL);
  t0 = now_s();
  while (sent < count) {
    pthread_mutex_lock(&mu);
    while (!failed && sent - received >= window) pthread_cond_wait(&progress, &mu);
    pthread_mutex_unlock(&mu);
    if (failed) return 1;
    memcpy(payload, &sent, size >= (long)sizeof sent ? sizeof sent : (size_t)size);
    rc = SP_multicast(tx, svc, group, 0, (int)size, payload);
    if (rc < 0) {
      SP_error(rc);
      return 1;
    }
    sent++;
  }
  pthread_join(thread, NULL);
  t1 = now_s();
  if (failed) return 1;
  printf("RESULT api=sp.h count=%ld size=%ld service=%s secs=%.3f msgs_per_s=%.0f mb_per_s=%.1f\n",
         count, size, service_name, t1 - t0, count / (t1 - t0),
         count * (double)size / (t1 - t0) / 1e6);
  free(payload);
  SP_disconnect(tx);
  SP_disconnect(rx);
  return 0;
}
