/* A session through sp.h written in C (sp_c_session.c). */
#ifndef SP_C_SESSION_H
#define SP_C_SESSION_H
#ifdef __cplusplus
extern "C" {
#endif
/* Connects to daemon as "cprog" (the daemon must be called d1), joins, multicasts to itself and
 * checks what comes back. 0 on success, else the line of the first failed check. */
int sp_c_session(const char *daemon);
#ifdef __cplusplus
}
#endif
#endif
