/*
 * iocpi.h: the engine's private header, and the only place the Win32 headers are included
 * (in this order: winsock2 before windows, then the extensions).
 */
#ifndef IOCP_IOCPI_H
#define IOCP_IOCPI_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0601 /* Windows 7: GetQueuedCompletionStatusEx, CancelIoEx, ... */
#endif

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp/iocp.h"

/* Wine completes a receive pending at closesocket with this; older MinGW headers lack it. */
#ifndef ERROR_HANDLES_CLOSED
#define ERROR_HANDLES_CLOSED 676L
#endif

/* Fills an iocp_error_info: "what failed: text (WSA n)". info may be NULL. */
void iocpi_error_set(iocp_error_info *info, iocp_err code, unsigned long sys_code,
                     const char *fmt, ...);

#endif
