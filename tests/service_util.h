/*
 * service_util.h: the executable and the log files of the service tests (test_service.c,
 * test_supervisor.c): where iocp-service.exe is, where a case's service writes its log, and
 * reading that log back while the service may still be writing it.
 */
#ifndef IOCP_TEST_SERVICE_UTIL_H
#define IOCP_TEST_SERVICE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* iocp-service.exe: %IOCP_SERVICE_EXE% when set, else the one this build made. */
const char *service_exe(void);
/* A log file the service account can write: %ProgramData%\iocp-service-tests\<name>.log,
 * deleted now so that a case reads only what its own service wrote. */
void log_path(char *out, size_t size, const char *name);
/* The file's text (at most size - 1 bytes), shared with a writer; "" when it cannot be read. */
void read_file(const char *path, char *out, size_t size);
/* Whether the log at path holds text within timeout_ms (polled); at the timeout it prints
 * what the log holds and returns 0. */
int log_has(const char *path, const char *text, uint32_t timeout_ms);

#endif
