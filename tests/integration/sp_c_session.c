/* Compiled as C (C99, -pedantic): sp.h is a valid C header, and a C program can drive a
 * session through it. Called from test_sp.cpp. */
#include "sp_c_session.h"

#include <poll.h>
#include <string.h>

#include "sp.h"

/* Waits up to 5 s for the mailbox to become readable: a test must not block forever. */
static int readable(mailbox mbox) {
  struct pollfd p;
  p.fd = mbox;
  p.events = POLLIN;
  p.revents = 0;
  return SP_poll(mbox) > 0 || poll(&p, 1, 5000) == 1;
}

#define CHECK(cond) \
  do {              \
    if (!(cond)) {  \
      SP_disconnect(mbox); \
      return __LINE__; \
    }               \
  } while (0)

int sp_c_session(const char *daemon) {
  mailbox mbox = -1;
  char private_group[MAX_GROUP_NAME];
  char sender[MAX_GROUP_NAME];
  char groups[8][MAX_GROUP_NAME];
  char members[8][MAX_GROUP_NAME];
  char mess[256];
  service type;
  int16 mess_type;
  int num_groups, endian, ret;
  membership_info info;
  vs_set_info sets[4];
  unsigned int mine = 99;
  int major, minor, patch;

  if (SP_connect(daemon, "cprog", 0, 1, &mbox, private_group) != ACCEPT_SESSION) return __LINE__;
  CHECK(strcmp(private_group, "#cprog#d1") == 0);
  CHECK(SP_version(&major, &minor, &patch) == 1 && major == 5);
  CHECK(SP_join(mbox, "c-group") == 0);

  CHECK(readable(mbox));
  type = 0;
  ret = SP_receive(mbox, &type, sender, 8, &num_groups, groups, &mess_type, &endian,
                   (int)sizeof mess, mess);
  CHECK(ret > 0);
  CHECK(Is_membership_mess(type) && Is_reg_memb_mess(type) && Is_caused_join_mess(type));
  CHECK(strcmp(sender, "c-group") == 0 && num_groups == 1 && mess_type == 0);
  CHECK(SP_get_memb_info(mess, type, &info) == 1);
  CHECK(strcmp(info.changed_member, "#cprog#d1") == 0 && info.num_vs_sets == 1);
  CHECK(SP_get_vs_sets_info(mess, sets, 4, &mine) == 1 && mine == 0);
  CHECK(SP_get_vs_set_members(mess, &sets[0], members, 8) == 1);
  CHECK(strcmp(members[0], "#cprog#d1") == 0);

  CHECK(SP_multicast(mbox, AGREED_MESS, "c-group", 42, 5, "hello") == 5);
  CHECK(readable(mbox));
  type = 0;
  ret = SP_receive(mbox, &type, sender, 8, &num_groups, groups, &mess_type, &endian,
                   (int)sizeof mess, mess);
  CHECK(ret == 5 && memcmp(mess, "hello", 5) == 0);
  CHECK(Is_regular_mess(type) && Is_agreed_mess(type) && !Is_self_discard(type));
  CHECK(strcmp(sender, "#cprog#d1") == 0 && mess_type == 42 && endian == 0);
  CHECK(num_groups == 1 && strcmp(groups[0], "c-group") == 0);

  if (SP_disconnect(mbox) != 0) return __LINE__;
  if (SP_join(mbox, "c-group") != ILLEGAL_SESSION) return __LINE__;
  return 0;
}
