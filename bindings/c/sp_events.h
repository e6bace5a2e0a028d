/* sp_events.h: the Spread Toolkit's event loop (5.0 API), implemented in libspread.
 *
 * sp.h includes this header, as Spread's does; a program may also include it alone. Callbacks
 * on descriptors and on timers, for single-threaded programs such as Spread's spuser and spping.
 * One loop per process: use it from one thread (E_exit_events_async_safe excepted, which any
 * thread or a signal handler may call). Calls returning int give 0 on success, -1 on bad
 * arguments or a full table, unless noted otherwise.
 */
#ifndef INC_SP_EVENTS
#define INC_SP_EVENTS

#include <stddef.h>

#ifndef NULL
#define NULL ((void *)0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define MAX_FD_EVENTS 2000 /* descriptors attached at once (per type and priority together) */

#define NUM_PRIORITY 3
#define LOW_PRIORITY 0
#define MEDIUM_PRIORITY 1
#define HIGH_PRIORITY 2

#define NUM_FDTYPES 3
#define READ_FD 0
#define WRITE_FD 1
#define EXCEPT_FD 2

typedef struct dummy_time {
  long sec;
  long usec;
} sp_time;

/* Forgets every descriptor and timer. Call once before the others. */
int E_init(void);

/* Wall-clock time, and a clock that never jumps (for measuring intervals). */
sp_time E_get_time(void);
sp_time E_get_time_monotonic(void);

/* Arithmetic on times (results normalised to 0 <= usec < 1000000). */
sp_time E_neg_time(sp_time t);
sp_time E_add_time(sp_time t, sp_time delta_t);
sp_time E_sub_time(sp_time t, sp_time delta_t);
/* 1, 0 or -1 as t1 >, ==, < t2 */
int E_compare_time(sp_time t1, sp_time t2);

/* Calls func(code, data) once, delta_time from now. Queueing the same (func, code, data) again
 * moves it. Timers due at the same moment run in the order they were queued. */
int E_queue(void (*func)(int code, void *data), int code, void *data, sp_time delta_time);
/* 1 if (func, code, data) is queued, else 0. */
int E_in_queue(void (*func)(int code, void *data), int code, void *data);
/* Removes it (data itself is not freed); -1 if it was not queued. */
int E_dequeue(void (*func)(int code, void *data), int code, void *data);

/* Sleeps for t, without running callbacks. */
void E_delay(sp_time t);

/* Calls func(fd, code, data) whenever fd is ready for fd_type (READ_FD, WRITE_FD, EXCEPT_FD).
 * Ready descriptors of the highest priority are served first. Attaching (fd, fd_type) again
 * replaces its callback. */
int E_attach_fd(int fd, int fd_type, void (*func)(int fd, int code, void *data), int code,
                void *data, int priority);
int E_detach_fd(int fd, int fd_type);
/* Detaches only if it was attached with that priority. */
int E_detach_fd_priority(int fd, int fd_type, int priority);
/* Serves only descriptors of this priority or above; returns the priority set. */
int E_set_active_threshold(int priority);
int E_activate_fd(int fd, int fd_type);
int E_deactivate_fd(int fd, int fd_type);
/* Active descriptors of that priority. */
int E_num_active(int priority);

/* Runs timers and descriptor callbacks until E_exit_events (from a callback) or
 * E_exit_events_async_safe (from a signal handler or another thread). */
void E_handle_events(void);
void E_exit_events(void);
/* Async-signal-safe: wakes E_handle_events and makes it return. */
void E_exit_events_async_safe(void);

#ifdef __cplusplus
}
#endif

#endif /* INC_SP_EVENTS */
