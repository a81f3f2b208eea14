/* modes.h: the three ways iocp-client runs. Each returns the process exit code. */
#ifndef CLIENT_MODES_H
#define CLIENT_MODES_H

#include "args.h"

/* HOST PORT MESSAGE...: sends each message, prints each echo and a newline. */
int client_run_message(const client_args *args);
/* HOST PORT: sends each line of standard input, prints each echo, ends at end of input. */
int client_run_interactive(const client_args *args);
/* HOST PORT --load: many connections, verified echoes, progress and a summary. */
int client_run_load(const client_args *args);
/* --udp: MESSAGE... as datagrams, or --load over UDP (udp_mode.c). */
int client_run_udp_message(const client_args *args);
int client_run_udp_load(const client_args *args);

#endif
