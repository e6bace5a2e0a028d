/* libagent: the C client library of the agent group-messaging daemon (agentd).
 *
 * A connection joins named groups and multicasts messages to one or many groups with a chosen
 * service; it receives data and membership messages in one ordered stream. Private names
 * ("#name#daemon") are groups too: multicast to one to send point-to-point.
 *
 * Thread safety: one agent_conn may be used by two threads at once when one only sends
 * (agent_join, agent_leave, agent_multicast*, agent_send_private) and the other only receives
 * (agent_receive, agent_next). Sends from several threads are serialised by an internal lock, as are
 * receives. agent_disconnect must not race with any other call on the same connection.
 * Functions that take no agent_conn are thread-safe.
 */
#ifndef AGENT_H
#define AGENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AGENT_MAX_GROUP_NAME 32 /* bytes including the terminating NUL */
#define AGENT_MAX_PRIVATE_NAME 10

/* Services (one per message) and flags; the values are Spread's. */
#define AGENT_UNRELIABLE 0x00000001u
#define AGENT_RELIABLE 0x00000002u
#define AGENT_FIFO 0x00000004u
#define AGENT_CAUSAL 0x00000008u
#define AGENT_AGREED 0x00000010u
#define AGENT_SAFE 0x00000020u
#define AGENT_SELF_DISCARD 0x00000040u
/* Send-side only, never delivered: more messages follow at once. The library may keep this
 * message in its send buffer (up to AGENT_SEND_BUFFER bytes) and write it together with the
 * next ones, in one system call, when a send without AGENT_MORE, agent_join, agent_leave,
 * agent_flush or agent_disconnect comes, or when the buffer is full. Like MSG_MORE of send(2):
 * a sender that stops after an AGENT_MORE send must call agent_flush. A failed write of held
 * messages is reported by the call that writes them (AGENT_ERR_CLOSED). */
#define AGENT_MORE 0x80000000u
#define AGENT_SEND_BUFFER 65536
/* Bits of a membership message's service. */
#define AGENT_CAUSED_BY_JOIN 0x00000100u
#define AGENT_CAUSED_BY_LEAVE 0x00000200u
#define AGENT_CAUSED_BY_DISCONNECT 0x00000400u
#define AGENT_CAUSED_BY_NETWORK 0x00000800u
#define AGENT_REG_MEMB 0x00001000u
#define AGENT_TRANSITION 0x00002000u

/* agent_connect flags */
#define AGENT_WANT_MEMBERSHIP 0x01 /* deliver membership messages */
#define AGENT_GENERATE_NAME 0x02   /* let the daemon choose a unique private name */
/* Read the socket one message at a time instead of in large chunks, so that it stays readable
 * while messages wait: for select/poll loops that never look at agent_pending (Spread's
 * programs). A message's rest is read together with the next one's 4-byte length prefix (a
 * message always has more bytes after it, so the socket stays readable): one system call per
 * message while they wait, instead of the one a large chunk serves for many. */
#define AGENT_NO_READ_AHEAD 0x04
/* Data messages carry their position in the total order (agent_message.position): where a
 * program that stops can ask for the history after (agent_history). */
#define AGENT_WANT_POSITIONS 0x08

/* Return codes: 0 is success, negative values are errors (see agent_strerror). */
#define AGENT_OK 0
#define AGENT_ERR_CONNECT -1         /* could not reach the daemon (errno says why) */
#define AGENT_ERR_CLOSED -2          /* the connection is closed */
#define AGENT_ERR_TIMEOUT -3         /* agent_receive: nothing arrived in time */
#define AGENT_ERR_ILLEGAL_NAME -4    /* private name empty, too long or bad characters */
#define AGENT_ERR_NAME_TAKEN -5      /* private name already connected to that daemon */
#define AGENT_ERR_ILLEGAL_GROUP -6   /* group name empty, too long or bad characters */
#define AGENT_ERR_ILLEGAL_SERVICE -7 /* not exactly one service (+ AGENT_SELF_DISCARD) */
#define AGENT_ERR_TOO_LARGE -8       /* message larger than the daemon accepts */
#define AGENT_ERR_PROTOCOL -9        /* the daemon sent something this library cannot read */
#define AGENT_ERR_VERSION -10        /* the daemon does not speak this protocol version */
#define AGENT_ERR_INVALID -11        /* a NULL or out-of-range argument */
#define AGENT_ERR_NOMEM -12
#define AGENT_ERR_REJECTED -13       /* the daemon refused the connection for another reason */
#define AGENT_ERR_AUTH -14           /* authentication failed, or was asked for and not possible */

typedef struct agent_conn agent_conn;

/* Where a message stands in the total order: the ring (configuration) that ordered it and its
 * ordinal there. The same at every daemon; later messages have greater positions (compare ring,
 * then ordinal). Not dense: a group's messages skip the positions of other groups' messages. */
typedef struct agent_position {
  uint64_t ring;
  uint64_t ordinal;
} agent_position;

typedef struct agent_view_id {
  uint64_t config; /* configuration the view was installed in */
  uint64_t seq;    /* position in the total order of the event that made the view */
} agent_view_id;

enum agent_message_kind {
  AGENT_MSG_DATA = 1,
  AGENT_MSG_MEMBERSHIP = 2,
  AGENT_MSG_ERROR = 3, /* the daemon refused a request (e.g. a join of a group already joined) */
  AGENT_MSG_HISTORY_END = 4 /* a history is complete: sender is the group, see history_* */
};

/* agent_message.history_flags */
#define AGENT_HISTORY_GAP 0x01    /* retention had removed messages after the requested start */
#define AGENT_HISTORY_FAILED 0x02 /* the daemon could not read its log (an ERROR came first) */

typedef struct agent_message {
  int kind;          /* enum agent_message_kind */
  uint32_t service;  /* DATA: the service; MEMBERSHIP: AGENT_REG_MEMB or AGENT_TRANSITION | cause */
  /* DATA: the sender's private group. MEMBERSHIP: the group. ERROR: the group or name concerned. */
  char sender[AGENT_MAX_GROUP_NAME];
  int16_t msg_type;  /* DATA only */
  /* DATA: the groups the message was sent to. MEMBERSHIP: the members, sorted. */
  size_t ngroups;
  char (*groups)[AGENT_MAX_GROUP_NAME];
  const void *data;  /* DATA: payload. ERROR: NUL-terminated text. */
  size_t len;
  /* MEMBERSHIP only */
  agent_view_id view;
  char changed[AGENT_MAX_GROUP_NAME]; /* who joined/left/disconnected; "" for network changes */
  size_t nvs_sets;
  size_t *vs_set_sizes;                  /* nvs_sets entries */
  char (*vs_members)[AGENT_MAX_GROUP_NAME]; /* all vs-sets' members, one set after another */
  int error_code;    /* ERROR: the daemon's error code (docs/client-protocol.md) */
  /* DATA: the message's position, for history entries and with AGENT_WANT_POSITIONS (else
   * zero). HISTORY_END: the last entry's position (the requested start when none was sent):
   * ask for the history after it to go on. */
  agent_position position;
  uint64_t history_count; /* HISTORY_END: entries sent */
  int history_flags;      /* HISTORY_END: AGENT_HISTORY_GAP, AGENT_HISTORY_FAILED */
} agent_message;

/* daemon: "/path/to/socket", "host:port", "port" (localhost), or "port@host" (Spread's form).
 * NULL means $AGENT_DAEMON or, failing that, the default Unix socket /tmp/agentd.sock.
 * name: the private name (1..10 chars), ignored with AGENT_GENERATE_NAME.
 * timeout_ms: for connect + handshake; <0 waits forever. */
int agent_connect(const char *daemon, const char *name, int flags, int timeout_ms,
                  agent_conn **out);
/* Authentication (TCP; docs/client-protocol.md): a daemon whose TCP listener requires it
 * answers hello with a challenge, and the client proves that it knows the secret of a name of
 * the daemon's secrets file (an HMAC over the daemon's fresh nonce; the secret is never sent).
 * agent_connect answers with the credentials of the environment: $AGENT_SECRET_FILE names a
 * file of "NAME SECRET" lines (the daemon's format; mode 0600, not readable by group or others)
 * and $AGENT_USER the line to use (not needed when the file has one line). agent_connect_auth
 * answers with the name and secret given (16..1024 bytes), whatever the environment says.
 * Either returns AGENT_ERR_AUTH when the daemon refuses the name or secret, or asks and there
 * is nothing to answer with. Unix-socket daemons ask nothing: the credentials go unused. */
int agent_connect_auth(const char *daemon, const char *name, int flags, int timeout_ms,
                       const char *user, const void *secret, size_t secret_len,
                       agent_conn **out);
/* Sends a goodbye, waits until the daemon has read everything sent before it (up to
 * AGENT_DISCONNECT_WAIT_MS; deliveries that arrive meanwhile are discarded), closes and frees.
 * Every message a send call accepted then reaches the daemon, over TCP as over the Unix
 * socket. Safe to call with NULL. A program that exits or is killed without disconnecting:
 * over the Unix socket the daemon still reads everything written; over TCP, messages the
 * daemon had not read yet are lost if deliveries were waiting unread in the program's socket
 * (the kernel then resets the connection). */
void agent_disconnect(agent_conn *c);
#define AGENT_DISCONNECT_WAIT_MS 10000

/* "#name#daemon" of this connection. */
const char *agent_private_group(const agent_conn *c);
/* The largest payload the daemon accepts. */
size_t agent_max_message(const agent_conn *c);

int agent_join(agent_conn *c, const char *group);
int agent_leave(agent_conn *c, const char *group);
/* A send returns once its message is written to the socket or, when the socket is full (the
 * daemon is behind), queued in the library (up to 256 KiB, or one larger message alone), from
 * where a writer thread of the library writes it, in order, as the daemon reads: a sender
 * sending one message per call does not wait for each write while the daemon is behind.
 * agent_disconnect, and exit(), write what is queued first; a write that fails is reported
 * by the next call (AGENT_ERR_CLOSED). */
int agent_multicast(agent_conn *c, uint32_t service, const char *group, int16_t msg_type,
                    const void *data, size_t len);
int agent_multicast_groups(agent_conn *c, uint32_t service, const char *const *groups,
                           size_t ngroups, int16_t msg_type, const void *data, size_t len);
/* History of a persistent group (one the daemon's [persist] groups name): the logged messages
 * after position `after` (NULL or zero: from the oldest kept), as DATA messages with their
 * positions, then an AGENT_MSG_HISTORY_END; meanwhile nothing else is delivered (it follows).
 * With join != 0 the connection also joins the group: the history runs up to the join, and
 * live messages follow it without a gap or a repeat. Resuming after a restart: remember the
 * last position handled, and join with the history after it. */
int agent_history(agent_conn *c, const char *group, const agent_position *after, int join);
/* The same from the first message the daemon delivered at or after unix_ms (ms since 1970). */
int agent_history_since(agent_conn *c, const char *group, int64_t unix_ms, int join);
/* Writes the messages that AGENT_MORE sends hold in the library; AGENT_OK when none are held. */
int agent_flush(agent_conn *c);
/* private_group is "#name#daemon" (as in agent_message.sender). */
int agent_send_private(agent_conn *c, uint32_t service, const char *private_group,
                       int16_t msg_type, const void *data, size_t len);

/* Waits up to timeout_ms (<0: forever, 0: poll) for the next message. On success *out is a
 * message owned by the caller; free it with agent_message_free. */
int agent_receive(agent_conn *c, agent_message **out, int timeout_ms);
void agent_message_free(agent_message *m);
/* Like agent_receive, but the message belongs to the connection: no allocation, and a data
 * message's payload is not copied (it points into the library's receive buffer and is not
 * NUL-terminated). It stays valid until the next agent_next, agent_receive or agent_disconnect
 * on this connection; do not free it. For receivers that handle each message before the next. */
int agent_next(agent_conn *c, const agent_message **out, int timeout_ms);
/* Messages already read from the socket and waiting in the library's buffer. When this is 0 and
 * agent_fd is not readable, agent_receive would block. */
size_t agent_pending(agent_conn *c);
/* The socket, for poll/epoll/select loops: readable means agent_receive will make progress. */
int agent_fd(const agent_conn *c);

const char *agent_strerror(int err);
const char *agent_version(void);

#ifdef __cplusplus
}
#endif
#endif /* AGENT_H */
