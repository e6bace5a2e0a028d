/* sp.h: the Spread Toolkit's C client API (5.0), implemented on libagent (agent.h).
 *
 * Programs written for Spread compile against this header unchanged and link with -lspread
 * (libspread, which uses libagent). Names, types, constants and return values are Spread's;
 * where agentd differs, the difference is noted next to the call below and in
 * bindings/README.md.
 *
 * Daemon names (spread_name of SP_connect):
 *   NULL or ""      $AGENT_DAEMON, else agentd's default Unix socket /tmp/agentd.sock
 *   "4803"          TCP port 4803 on 127.0.0.1 (agentd listens there by default;
 *                   Spread itself would use the Unix socket /tmp/4803)
 *   "4803@host"     TCP port 4803 on host
 *   "host:4803"     the same (libagent's form)
 *   "/path/sock"    a Unix socket path (any name starting with '/' or '.')
 *
 * Like Spread's, this header includes sp_events.h (the event loop E_*, and sp_time) and
 * sp_func.h (the SP_ calls).
 *
 * A mailbox is the connection's socket descriptor: it can be given to select/poll, and it
 * stays readable while messages wait (one message is read from it per SP_receive).
 */
#ifndef INC_SP
#define INC_SP

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Spread defines these integer names as macros; its programs use them. */
#ifndef int16
#define int16 short
#endif
#ifndef int32
#define int32 int
#endif

/* Byte swaps of a 16- and 32-bit value (agentd sends every value in the reader's byte order, so
 * a program never needs them for data this library produces). */
#define Flip_int16(v) ((((v) >> 8) & 0x00ff) | (((v) << 8) & 0xff00))
#define Flip_int32(v)                                                                       \
  ((((v) >> 24) & 0x000000ff) | (((v) >> 8) & 0x0000ff00) | (((v) << 8) & 0x00ff0000) | \
   (((v) << 24) & 0xff000000))

/* Connection priorities (SP_connect ignores them); the same values as the event loop's. */
#define LOW_PRIORITY 0
#define MEDIUM_PRIORITY 1
#define HIGH_PRIORITY 2

#define DEFAULT_SPREAD_PORT 4803
/* The version of Spread's API this header provides: Spread 5.0's (its header says 5.0.0;
 * SP_version reports the release, 5.0.1). */
#define SPREAD_VERSION ((5 << 24) | (0 << 16) | 0)

#define MAX_GROUP_NAME 32   /* bytes of a group or private group name, with the NUL */
#define MAX_PRIVATE_NAME 10 /* longest private_name of SP_connect (longer names are cut) */
#define MAX_PROC_NAME 20    /* longest daemon name */

/* Services: exactly one per message; the strongest wins if a program sets several. */
#define UNRELIABLE_MESS 0x00000001
#define RELIABLE_MESS 0x00000002
#define FIFO_MESS 0x00000004
#define CAUSAL_MESS 0x00000008
#define AGREED_MESS 0x00000010
#define SAFE_MESS 0x00000020
#define REGULAR_MESS 0x0000003f

#define SELF_DISCARD 0x00000040 /* the sender does not receive its own copy */
#define DROP_RECV 0x01000000    /* SP_receive: truncate what does not fit, instead of failing */

/* The service_type of membership messages. */
#define REG_MEMB_MESS 0x00001000
#define TRANSITION_MESS 0x00002000
#define CAUSED_BY_JOIN 0x00000100
#define CAUSED_BY_LEAVE 0x00000200
#define CAUSED_BY_DISCONNECT 0x00000400
#define CAUSED_BY_NETWORK 0x00000800
#define MEMBERSHIP_MESS 0x00003f00

#define ENDIAN_RESERVED 0x80000080
#define RESERVED 0x003fc000
/* A request the daemon refused (see SP_receive). */
#define REJECT_MESS 0x00400000

#define Is_unreliable_mess(type) ((type) & UNRELIABLE_MESS)
#define Is_reliable_mess(type) ((type) & RELIABLE_MESS)
#define Is_fifo_mess(type) ((type) & FIFO_MESS)
#define Is_causal_mess(type) ((type) & CAUSAL_MESS)
#define Is_agreed_mess(type) ((type) & AGREED_MESS)
#define Is_safe_mess(type) ((type) & SAFE_MESS)
#define Is_regular_mess(type) (((type) & REGULAR_MESS) && !((type) & REJECT_MESS))
#define Is_self_discard(type) ((type) & SELF_DISCARD)
#define Is_reg_memb_mess(type) ((type) & REG_MEMB_MESS)
#define Is_transition_mess(type) ((type) & TRANSITION_MESS)
#define Is_caused_join_mess(type) ((type) & CAUSED_BY_JOIN)
#define Is_caused_leave_mess(type) ((type) & CAUSED_BY_LEAVE)
#define Is_caused_disconnect_mess(type) ((type) & CAUSED_BY_DISCONNECT)
#define Is_caused_network_mess(type) ((type) & CAUSED_BY_NETWORK)
#define Is_membership_mess(type) (((type) & MEMBERSHIP_MESS) && !((type) & REJECT_MESS))
#define Is_reject_mess(type) ((type) & REJECT_MESS)
/* The notice a member gets when it leaves a group itself. */
#define Is_self_leave(type) \
  (((type) & CAUSED_BY_LEAVE) && !((type) & (REG_MEMB_MESS | TRANSITION_MESS)))

/* Return values. */
#define ACCEPT_SESSION 1
#define ILLEGAL_SPREAD -1       /* the daemon name is not one of the forms above */
#define COULD_NOT_CONNECT -2    /* nothing answered there (is agentd running?) */
#define REJECT_QUOTA -3         /* the daemon has too many clients or is shutting down */
#define REJECT_NO_NAME -4
#define REJECT_ILLEGAL_NAME -5  /* private name with a space, '#' or a control character */
#define REJECT_NOT_UNIQUE -6    /* private name already connected to that daemon */
#define REJECT_VERSION -7       /* the daemon speaks another client protocol version */
#define CONNECTION_CLOSED -8    /* the daemon closed the connection */
#define REJECT_AUTH -9
#define ILLEGAL_SESSION -11     /* not a mailbox of this process (e.g. after SP_disconnect) */
#define ILLEGAL_SERVICE -12     /* no service bit, or REJECT_MESS/membership bits set */
#define ILLEGAL_MESSAGE -13     /* a NULL pointer, negative length or bad scatter; not a
                                   membership message (SP_get_memb_info) */
#define ILLEGAL_GROUP -14       /* group name empty, too long, or with bad characters */
#define BUFFER_TOO_SHORT -15
#define GROUPS_TOO_SHORT -16
#define MESSAGE_TOO_LONG -17    /* larger than the daemon accepts (agentd: 16 MiB default) */
#define NET_ERROR_ON_SESSION -18 /* the connection failed earlier; SP_disconnect it */
#define SP_BUG -19
#define ILLEGAL_TIME -20        /* SP_connect_timeout: a malformed time_out */

#define MAX_CLIENT_SCATTER_ELEMENTS 100

typedef int mailbox;
typedef int service;

typedef struct dummy_scat_element {
  char *buf;
  size_t len;
} scat_element;

typedef struct dummy_scatter {
  size_t num_elements;
  scat_element elements[MAX_CLIENT_SCATTER_ELEMENTS];
} scatter;

/* A view's identity: equal at every member that installs the view (agentd's view id folded
 * into Spread's three integers: representative, ring sequence, event position). */
typedef struct dummy_group_id {
  int32 id[3];
} group_id;

typedef struct dummy_vs_set_info {
  unsigned int num_members;
  unsigned int members_offset; /* from the start of the message body */
} vs_set_info;

typedef struct dummy_membership_info {
  group_id gid;
  char changed_member[MAX_GROUP_NAME]; /* joins, leaves and disconnects; "" for network */
  unsigned int num_vs_sets;
  vs_set_info my_vs_set; /* the set this connection came with (the first set if none) */
} membership_info;

#include "sp_events.h" /* the event loop, and sp_time */
#include "sp_func.h"   /* the SP_ calls */

#ifdef __cplusplus
}
#endif

#endif /* INC_SP */
