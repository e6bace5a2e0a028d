/* sp.h: the Spread Toolkit's C client API (4.x), implemented on libagent (agent.h).
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

#define LOW_PRIORITY 0
#define MEDIUM_PRIORITY 1
#define HIGH_PRIORITY 2

#define DEFAULT_SPREAD_PORT 4803
/* The version of Spread's API this header provides (SP_version reports the same numbers). */
#define SPREAD_VERSION ((4 << 24) | (4 << 16) | 0)

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

#define MAX_CLIENT_SCATTER_ELEMENTS 100

typedef int mailbox;
typedef int service;

typedef struct dummy_time {
  long sec;
  long usec;
} sp_time;

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

/* Spread's small event loop (its sp_events.h, which sp.h includes): callbacks on readable
 * descriptors and on timers, for single-threaded programs such as Spread's spuser. Not
 * thread-safe: use it from one thread. Returns 0 on success, -1 on bad arguments. */
#define MAX_FD_EVENTS 2000
#define NUM_PRIORITY 3
#define NUM_FDTYPES 3
#define READ_FD 0
#define WRITE_FD 1
#define EXCEPT_FD 2

int E_init(void);
sp_time E_get_time(void);
sp_time E_sub_time(sp_time t, sp_time delta_t);
sp_time E_add_time(sp_time t, sp_time delta_t);
int E_compare_time(sp_time t1, sp_time t2); /* 1, 0 or -1 as t1 >, ==, < t2 */
/* Calls func(code, data) once, delta_time from now; queueing the same (func, code, data) again
 * moves it. */
int E_queue(void (*func)(int code, void *data), int code, void *data, sp_time delta_time);
int E_dequeue(void (*func)(int code, void *data), int code, void *data);
void E_delay(sp_time t);
/* Calls func(fd, code, data) whenever fd is ready for fd_type; ready descriptors of the highest
 * priority are served first. */
int E_attach_fd(int fd, int fd_type, void (*func)(int fd, int code, void *data), int code,
                void *data, int priority);
int E_detach_fd(int fd, int fd_type);
int E_set_active_threshold(int priority); /* serve only descriptors of this priority or above */
int E_activate_fd(int fd, int fd_type);
int E_deactivate_fd(int fd, int fd_type);
int E_num_active(int priority);
/* Runs until E_exit_events. */
void E_handle_events(void);
void E_exit_events(void);

/* Fills in the version of Spread's API provided (4.4.0); returns 1, or 0 if a pointer is NULL.
 * agent_version() (agent.h) gives libagent's own version. */
int SP_version(int *major_version, int *minor_version, int *patch_version);

/* Authentication: agentd has only Spread's "NULL" method. These accept it (returning 1) and
 * refuse any other method (returning 0). */
int SP_set_auth_method(const char *auth_name, int (*auth_function)(int, void *), void *auth_data);
int SP_set_auth_methods(int num_methods, const char *auth_name[],
                        int (*auth_function[])(int, void *), void *auth_data[]);

/* Connects to a daemon (names above). private_name NULL or "" lets the daemon choose a unique
 * name; names longer than MAX_PRIVATE_NAME are cut, as Spread does. priority is ignored.
 * group_membership != 0 asks for membership messages. On ACCEPT_SESSION, *mbox is the mailbox
 * and private_group (MAX_GROUP_NAME bytes) holds "#name#daemon". */
int SP_connect(const char *spread_name, const char *private_name, int priority,
               int group_membership, mailbox *mbox, char *private_group);
/* The same, giving up after time_out (connect and handshake); {0, 0} waits forever. */
int SP_connect_timeout(const char *spread_name, const char *private_name, int priority,
                       int group_membership, mailbox *mbox, char *private_group,
                       sp_time time_out);
/* Says goodbye and closes: the groups see a disconnect. 0, or ILLEGAL_SESSION. A thread blocked
 * in SP_receive on the mailbox returns CONNECTION_CLOSED. */
int SP_disconnect(mailbox mbox);
/* Closes without a goodbye. */
void SP_kill(mailbox mbox);

/* 0 once the request is sent; the join has taken effect when this connection's own membership
 * message for the group arrives. Joining a group twice or leaving one not joined comes back as
 * a REJECT_MESS message. */
int SP_join(mailbox mbox, const char *group);
int SP_leave(mailbox mbox, const char *group);

/* Send one message to one group (a group or a private group "#name#daemon"), or to num_groups
 * groups at once (each receiver gets it once). Return the number of payload bytes sent.
 * Groups need not be joined. */
int SP_multicast(mailbox mbox, service service_type, const char *group, int16 mess_type,
                 int mess_len, const char *mess);
int SP_scat_multicast(mailbox mbox, service service_type, const char *group, int16 mess_type,
                      const scatter *scat_mess);
int SP_multigroup_multicast(mailbox mbox, service service_type, int num_groups,
                            const char groups[][MAX_GROUP_NAME], int16 mess_type, int mess_len,
                            const char *mess);
int SP_multigroup_scat_multicast(mailbox mbox, service service_type, int num_groups,
                                 const char groups[][MAX_GROUP_NAME], int16 mess_type,
                                 const scatter *scat_mess);

/* Blocks until the next message and returns the length of its body.
 *
 * In:  *service_type 0, or DROP_RECV; max_groups entries of groups; max_mess_len bytes of mess.
 * Data:       service_type the service as sent (SELF_DISCARD included), sender the sender's
 *             private group, groups the destinations, mess_type as sent, body the payload.
 * Membership: service_type REG_MEMB_MESS or TRANSITION_MESS plus the cause (a member's own
 *             leave: CAUSED_BY_LEAVE alone), sender the group, groups the members (sorted),
 *             mess_type this member's index among them (-1 if not a member), body the
 *             group id and vs-sets in Spread's layout (read it with SP_get_memb_info,
 *             SP_get_vs_sets_info, SP_get_vs_set_members).
 * Rejected:   REJECT_MESS: a join of a group already joined, a leave of a group not joined,
 *             or another request the daemon refused; sender and groups[0] name the group,
 *             mess_type is agentd's error code (docs/client-protocol.md), body its text.
 * endian_mismatch is always 0: the library converts everything to this host's order.
 *
 * Too small: without DROP_RECV nothing is consumed and nothing but service_type, sender and
 * mess_type is filled in; *num_groups is minus the groups needed (or 0 if enough) and
 * *endian_mismatch minus the body bytes needed (or 0); the result is GROUPS_TOO_SHORT if groups
 * are short, else BUFFER_TOO_SHORT. Call again with larger buffers, or with DROP_RECV.
 * With DROP_RECV the message is consumed and what fits is copied; the same negative counts
 * report what was cut, and the result is BUFFER_TOO_SHORT if the body was cut, else
 * GROUPS_TOO_SHORT if groups were (Spread returns the length in that case).
 *
 * After CONNECTION_CLOSED every call but SP_disconnect returns NET_ERROR_ON_SESSION. */
int SP_receive(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME], int max_groups,
               int *num_groups, char groups[][MAX_GROUP_NAME], int16 *mess_type,
               int *endian_mismatch, int max_mess_len, char *mess);
int SP_scat_receive(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME],
                    int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                    int16 *mess_type, int *endian_mismatch, scatter *scat_mess);

/* Parse the body of a membership message (memb_mess: as SP_receive filled it in, at least as
 * long as its length). SP_get_memb_info: 1, or ILLEGAL_MESSAGE if service_type is not a
 * membership; transitional and self-leave messages carry only the group id (num_vs_sets 0).
 * SP_get_vs_sets_info: the number of vs-sets, BUFFER_TOO_SHORT if more than num_vs_sets.
 * SP_get_vs_set_members: the number of members, BUFFER_TOO_SHORT if more than
 * member_names_count. */
int SP_get_memb_info(const char *memb_mess, const service service_type,
                     membership_info *memb_info);
int SP_get_vs_sets_info(const char *memb_mess, vs_set_info *vs_sets, int num_vs_sets,
                        unsigned int *my_vs_set_index);
int SP_get_vs_set_members(const char *memb_mess, const vs_set_info *vs_set,
                          char member_names[][MAX_GROUP_NAME], int member_names_count);
int SP_scat_get_memb_info(const scatter *memb_mess_scat, const service service_type,
                          membership_info *memb_info);
int SP_scat_get_vs_sets_info(const scatter *memb_mess_scat, vs_set_info *vs_sets,
                             int num_vs_sets, unsigned int *my_vs_set_index);
int SP_scat_get_vs_set_members(const scatter *memb_mess_scat, const vs_set_info *vs_set,
                               char member_names[][MAX_GROUP_NAME], int member_names_count);

/* Bytes waiting to be received (> 0: SP_receive will not block for long), or ILLEGAL_SESSION. */
int SP_poll(mailbox mbox);

/* 1 if both ids name the same view, else 0. */
int SP_equal_group_ids(group_id g1, group_id g2);

/* Prints what error means to stdout, as Spread does. */
void SP_error(int error);
/* Not in Spread: the text SP_error prints, for programs that log elsewhere. */
const char *SP_strerror(int error);

#ifdef __cplusplus
}
#endif

#endif /* INC_SP */
