/* error.c: the public error enum, its texts, and the one table that maps Win32/WSA codes. */
#include "iocpi.h"

static const char *const error_text[IOCP_E_COUNT_] = {
    [IOCP_OK] = "success",
    [IOCP_E_INVALID_ARG] = "invalid argument",
    [IOCP_E_NO_MEMORY] = "out of memory",
    [IOCP_E_RESOLVE] = "cannot resolve host name",
    [IOCP_E_ADDR_IN_USE] = "address in use",
    [IOCP_E_REFUSED] = "connection refused",
    [IOCP_E_TIMEOUT] = "timed out",
    [IOCP_E_RESET] = "connection reset",
    [IOCP_E_NOT_CONNECTED] = "not connected",
    [IOCP_E_QUEUE_FULL] = "send queue full",
    [IOCP_E_PROTOCOL] = "protocol error",
    [IOCP_E_STOPPED] = "engine stopped",
    [IOCP_E_STATE] = "not allowed in this state",
    [IOCP_E_NO_RESOURCES] = "out of system resources",
    [IOCP_E_ACCESS] = "access denied",
    [IOCP_E_SYSTEM] = "system error",
    [IOCP_E_TLS] = "TLS error",
    [IOCP_E_ADDR_NOT_HERE] = "address not on this machine",
};

const char *iocp_strerror(iocp_err err)
{
    if ((unsigned)err >= IOCP_E_COUNT_ || error_text[err] == NULL)
        return "unknown error";
    return error_text[err];
}

iocp_err iocp_err_from_sys(unsigned long sys_code)
{
    switch (sys_code) {
    case 0:
        return IOCP_OK;
    case WSAEINVAL:
    case ERROR_INVALID_PARAMETER:
        return IOCP_E_INVALID_ARG;
    case WSA_NOT_ENOUGH_MEMORY: /* == ERROR_NOT_ENOUGH_MEMORY */
    case ERROR_OUTOFMEMORY:
        return IOCP_E_NO_MEMORY;
    case WSAHOST_NOT_FOUND:
    case WSANO_DATA:
    case WSATRY_AGAIN:
    case WSANO_RECOVERY:
        return IOCP_E_RESOLVE;
    case WSAEADDRINUSE:
        return IOCP_E_ADDR_IN_USE;
    case WSAEADDRNOTAVAIL: /* to bind: not one of this machine's addresses */
        return IOCP_E_ADDR_NOT_HERE;
    case WSAECONNREFUSED:
    case ERROR_CONNECTION_REFUSED:
        return IOCP_E_REFUSED;
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT:
        return IOCP_E_TIMEOUT;
    /* Every way Windows and Wine say "the connection is gone" (docs/wine.md): a reset, an
     * abort, a cancelled or closed-under-us operation, a dropped network name. */
    case WSAECONNRESET:
    case WSAECONNABORTED:
    case WSAENETRESET:
    case WSAESHUTDOWN:
    case WSAEDISCON:
    case ERROR_NETNAME_DELETED:    /* 64 */
    case ERROR_CONNECTION_ABORTED: /* 1236 */
    case ERROR_OPERATION_ABORTED:  /* 995 */
    case ERROR_HANDLES_CLOSED:     /* 676, Wine's closesocket-with-pending-recv */
    case ERROR_INVALID_HANDLE:     /* 6 */
        return IOCP_E_RESET;
    case WSAENOTCONN:
    case WSAENOTSOCK:
        return IOCP_E_NOT_CONNECTED;
    case WSAEMFILE:
    case WSAENOBUFS:
    case ERROR_TOO_MANY_OPEN_FILES:
    case ERROR_NO_SYSTEM_RESOURCES:
        return IOCP_E_NO_RESOURCES;
    case WSAEACCES:
    case ERROR_ACCESS_DENIED:
        return IOCP_E_ACCESS;
    default:
        return IOCP_E_SYSTEM;
    }
}

char *iocp_format_error(iocp_err err, unsigned long sys_code, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return buf;
    if (sys_code == 0)
        snprintf(buf, size, "%s", iocp_strerror(err));
    else if (sys_code >= WSABASEERR && sys_code < WSABASEERR + 2000)
        snprintf(buf, size, "%s (WSA %lu)", iocp_strerror(err), sys_code);
    else
        snprintf(buf, size, sys_code >= 0x80000000ul ? "%s (0x%08lx)" : "%s (Win32 %lu)",
                 iocp_strerror(err), sys_code); /* an HRESULT or SSPI status: hex, as documented */
    return buf;
}

static const char *const close_text[IOCP_CLOSE_REASON_COUNT_] = {
    [IOCP_CLOSE_PEER] = "peer closed",
    [IOCP_CLOSE_RESET] = "connection reset",
    [IOCP_CLOSE_LOCAL] = "closed locally",
    [IOCP_CLOSE_IDLE_TIMEOUT] = "idle timeout",
    [IOCP_CLOSE_MESSAGE_TIMEOUT] = "message timeout",
    [IOCP_CLOSE_SEND_TIMEOUT] = "send timeout",
    [IOCP_CLOSE_PROTOCOL] = "protocol error",
    [IOCP_CLOSE_SEND_OVERFLOW] = "send queue overflow",
    [IOCP_CLOSE_STOP] = "engine stopping",
    [IOCP_CLOSE_ERROR] = "I/O error",
    [IOCP_CLOSE_HANDSHAKE] = "TLS handshake failed",
    [IOCP_CLOSE_EVICTED] = "evicted (idle longest while every context was taken)",
};

const char *iocp_close_reason_str(iocp_close_reason reason)
{
    if ((unsigned)reason >= IOCP_CLOSE_REASON_COUNT_)
        return "unknown reason";
    return close_text[reason];
}

void iocpi_error_set(iocp_error_info *info, iocp_err code, unsigned long sys_code, const char *fmt,
                     ...)
{
    if (info == NULL)
        return;
    info->code = code;
    info->sys_code = sys_code;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char why[96];
    iocp_format_error(code, sys_code, why, sizeof why);
    snprintf(info->message, sizeof info->message, "%s: %s", what, why);
}
