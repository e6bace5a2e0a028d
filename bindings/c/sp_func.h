/* sp_func.h: the SP_ calls of Spread's C client API (5.0), implemented in libspread.
 *
 * Include sp.h, which includes this header after the types these calls use (as Spread's does);
 * including this one alone pulls in sp.h first.
 */
#ifndef INC_SP_FUNC
#define INC_SP_FUNC

#include "sp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills in the version of Spread's API provided (5.0.1); returns 1, or 0 if a pointer is NULL.
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
/* The same, giving up after time_out (connect and handshake); {0, 0} waits forever. A time_out
 * whose parts disagree in sign or whose usec is not in (-1000000, 1000000): ILLEGAL_TIME. */
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

/* The text SP_error prints, for programs that log elsewhere. */
const char *SP_strerror(int error);
/* Prints what error means to stdout, as Spread does. */
void SP_error(int error);

#ifdef __cplusplus
}
#endif

#endif /* INC_SP_FUNC */
