/* fl.h: the Flush library of the Spread Toolkit (5.0 API): view-synchronous, closed groups on
 * top of sp.h, implemented in libspread (link with -lspread).
 *
 * View synchrony: when a group's membership changes, each member of the current view gets a
 * flush request (FLUSH_REQ_MESS, sender = the group) and answers it with FL_flush once it has
 * sent what it wants delivered in the old view. The new view (REG_MEMB_MESS) is delivered only
 * once every member of it has flushed (a member that joins flushes implicitly), and every
 * message sent in a view is delivered, in that view, to every member that survives into the
 * next one. Several underlying changes before the flush completes make one new view. Between
 * FL_flush and the new view a member may not send to the group (ILLEGAL_STATE).
 *
 * Closed groups: only a member that has received a view containing it (and is not leaving) may
 * send to the group, leave it or flush it; anyone may send to a private group "#name#daemon".
 * Order guarantees hold within a group, not across groups.
 *
 * Messages as FL_receive gives them:
 *   data           service_type as sent (plus SUBGROUP_CAST for FL_subgroupcast and
 *                  FL_unicast), sender the sender's private group, groups the group (for a
 *                  subgroupcast: the receivers' private groups, then the group last).
 *   FLUSH_REQ_MESS sender the group to flush; nothing else.
 *   TRANSITION_MESS sender the group, just before a regular view that some members of the
 *                  previous view are not in; nothing else.
 *   REG_MEMB_MESS | CAUSED_BY_*  sender the group, groups the members (the same order at
 *                  every member), mess_type this member's index, body: group_id,
 *                  int32 count, count names of MAX_GROUP_NAME bytes (offsets below) --
 *                  the member who joined, left or disconnected, or for CAUSED_BY_NETWORK the
 *                  members of the new view that come from this member's previous view.
 *   CAUSED_BY_LEAVE alone: this member's own leave took effect (sender the group).
 */
#ifndef INC_FL_H
#define INC_FL_H

#include "sp.h"

/* Service bits of the Flush library. */
#define DONT_BLOCK 0x10000000     /* FL_receive: return WOULD_BLOCK instead of waiting */
#define FLUSH_REQ_MESS 0x20000000 /* a flush request (FL_receive) */
#define SUBGROUP_CAST 0x40000000  /* a message sent with FL_subgroupcast or FL_unicast */

#define Is_flush_req_mess(serv) (((serv) & FLUSH_REQ_MESS) != 0)
#define Is_subgroup_mess(serv) (((serv) & SUBGROUP_CAST) != 0)

/* Errors of the Flush library (besides sp.h's). */
#define ILLEGAL_PARAM -24        /* a negative count or size, a NULL pointer */
#define WOULD_BLOCK -25          /* FL_receive with DONT_BLOCK: no message ready */
#define ILLEGAL_MESSAGE_TYPE -26 /* mess_type below FL_MIN_LEGAL_MESS_TYPE */
#define ILLEGAL_STATE -27        /* a send after FL_flush, or a second FL_flush in one view */
#define ILLEGAL_RECEIVERS -28    /* a receiver not in the group's current view */

/* Scatter elements a Flush message may use (the library needs one). */
#define FL_MAX_SCATTER_ELEMENTS (MAX_CLIENT_SCATTER_ELEMENTS - 1)

/* The smallest mess_type an application may send; the ones below are the library's. */
#define FL_MIN_LEGAL_MESS_TYPE ((int16)-32765)

#ifdef __cplusplus
extern "C" {
#endif

/* Nothing to prepare: returns 0. Kept for programs that call it first. */
int FL_lib_init(void);

/* The Flush API's version: 2.0.0. */
void FL_version(int *major_ver, int *minor_ver, int *patch_ver);

/* Connects (daemon names as SP_connect, membership messages always on). ACCEPT_SESSION or an
 * SP_connect error. */
int FL_connect(const char *daemon_name, const char *user_name, int priority, mailbox *mbox,
               char *private_name);
/* Closes the connection: the groups see a disconnect. 0, or ILLEGAL_SESSION. */
int FL_disconnect(mailbox mbox);

/* 0, or ILLEGAL_GROUP if this connection already joined (or is joining or leaving) the group. */
int FL_join(mailbox mbox, const char *group_name);
/* 0, or ILLEGAL_GROUP unless this connection is a member of the group and not leaving it. The
 * leave is done when the self-leave message (CAUSED_BY_LEAVE alone) arrives. */
int FL_leave(mailbox mbox, const char *group_name);
/* Gives permission to install the next view, once per flush request. 0; ILLEGAL_GROUP if not a
 * member; ILLEGAL_STATE without a flush request since the last view, or a second time. */
int FL_flush(mailbox mbox, const char *group_name);

/* Send to the whole group, to one member, or to some members (by private group name; all must
 * be in the group's current view, duplicates allowed). Return the payload bytes sent. The
 * group may be a private group for FL_multicast. */
int FL_unicast(mailbox mbox, service serv_type, const char *group_name, const char *recvr_name,
               int16 mess_type, int mess_len, const char *mess);
int FL_scat_unicast(mailbox mbox, service serv_type, const char *group_name,
                    const char *recvr_name, int16 mess_type, const scatter *scat);
int FL_subgroupcast(mailbox mbox, service serv_type, const char *group_name, int num_recvrs,
                    char recvr_names[][MAX_GROUP_NAME], int16 mess_type, int mess_len,
                    const char *mess);
int FL_scat_subgroupcast(mailbox mbox, service serv_type, const char *group_name,
                         int num_recvrs, char recvr_names[][MAX_GROUP_NAME], int16 mess_type,
                         const scatter *scat);
int FL_multicast(mailbox mbox, service serv_type, const char *group_name, int16 mess_type,
                 int mess_len, const char *mess);
int FL_scat_multicast(mailbox mbox, service serv_type, const char *group_name, int16 mess_type,
                      const scatter *scat_mess);

/* The next message (see above); the length of its body, or an error. *serv_type in: 0, or
 * DONT_BLOCK and/or DROP_RECV. Too-small buffers behave as SP_receive's. *more_msgs: messages
 * ready in the library after this one. */
int FL_receive(mailbox mbox, service *serv_type, char *sender_name, int max_groups,
               int *num_groups, char group_names[][MAX_GROUP_NAME], int16 *mess_type,
               int *endian_mismatch, int max_mess_len, char *mess, int *more_msgs);
int FL_scat_receive(mailbox mbox, service *serv_type, char *sender_name, int max_groups,
                    int *num_groups, char group_names[][MAX_GROUP_NAME], int16 *mess_type,
                    int *endian_mismatch, scatter *scat_mess, int *more_msgs);

/* Messages ready in the library (not a substitute for polling the mailbox). */
int FL_more_msgs(mailbox mbox);
/* Bytes waiting (the library's and the socket's); activity, not necessarily a message. */
int FL_poll(mailbox mbox);

/* Prints what error_code (Flush's or Spread's) means to stdout. */
void FL_error(int error_code);

/* Offsets in a regular membership body of the group id, the count and the names. */
int FL_get_gid_offset_memb_mess(void);
int FL_get_num_vs_offset_memb_mess(void);
int FL_get_vs_set_offset_memb_mess(void);

#ifdef __cplusplus
}
#endif

#endif /* INC_FL_H */
