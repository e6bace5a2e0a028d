/* The C sender of the cross-language test (cross_language.py), through sp.h: two senders on two
 * daemons multicast to one group, interleaved, while a third connection joins and later leaves
 * it (waiting until each change has taken effect); each sender ends with "END A" / "END B".
 *
 *   cross_sender DAEMON_A DAEMON_B GROUP COUNT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp.h"

static mailbox connect_or_die(const char *daemon, const char *name, int membership) {
  mailbox m;
  char private_group[MAX_GROUP_NAME];
  int rc = SP_connect(daemon, name, 0, membership, &m, private_group);
  if (rc != ACCEPT_SESSION) {
    fprintf(stderr, "cross_sender: cannot connect %s to %s: %s\n", name, daemon, SP_strerror(rc));
    exit(1);
  }
  return m;
}

static void check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "cross_sender: %s: %s\n", what, SP_strerror(rc));
    exit(1);
  }
}

/* Receives on m until a membership message of group with all the bits of want: the join or
 * leave has taken effect (the test's driver bounds the time). */
static void await_membership(mailbox m, const char *group, service want) {
  static char mess[65536];
  char sender[MAX_GROUP_NAME], groups[64][MAX_GROUP_NAME];
  int ngroups, endian, rc;
  int16 type;
  service st;
  do {
    st = 0;
    rc = SP_receive(m, &st, sender, 64, &ngroups, groups, &type, &endian, sizeof mess, mess);
    check(rc, "SP_receive");
  } while (!(Is_membership_mess(st) && (st & want) == want && strcmp(sender, group) == 0));
}

static void send_text(mailbox m, service s, const char *group, int16 type, const char *text) {
  check(SP_multicast(m, s, group, type, (int)strlen(text), text), "SP_multicast");
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: cross_sender DAEMON_A DAEMON_B GROUP COUNT\n");
    return 2;
  }
  const char *group = argv[3];
  int count = atoi(argv[4]);
  mailbox a = connect_or_die(argv[1], "csendA", 0);
  mailbox b = connect_or_die(argv[2], "csendB", 0);
  mailbox ctl = connect_or_die(argv[1], "cctl", 1);
  check(SP_join(a, group), "SP_join");
  check(SP_join(b, group), "SP_join");
  char text[64];
  for (int i = 0; i < count; ++i) {
    snprintf(text, sizeof text, "A %d", i);
    send_text(a, AGREED_MESS, group, 1, text);
    snprintf(text, sizeof text, "B %d", i);
    send_text(b, SAFE_MESS, group, 2, text);
    /* A member joins and leaves mid-stream, each change in effect before the sends go on. */
    if (i == count / 3) {
      check(SP_join(ctl, group), "SP_join");
      await_membership(ctl, group, REG_MEMB_MESS | CAUSED_BY_JOIN);
    }
    if (i == 2 * count / 3) {
      check(SP_leave(ctl, group), "SP_leave");
      await_membership(ctl, group, CAUSED_BY_LEAVE);
    }
  }
  send_text(a, AGREED_MESS, group, 1, "END A");
  send_text(b, SAFE_MESS, group, 2, "END B");
  SP_disconnect(ctl);
  SP_disconnect(b);
  SP_disconnect(a);
  return 0;
}
