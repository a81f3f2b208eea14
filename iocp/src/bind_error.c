/*
 * bind_error.c: a failed bind() in words a user can act on: the address, what the code means
 * for a bind, and how to find whoever holds the port.
 *
 * A taken port answers WSAEADDRINUSE (10048), or WSAEACCES (10013) when the holder set
 * SO_EXCLUSIVEADDRUSE (as this engine does; Wine answers 10013 for any holder). 10013 also
 * means "this account may not bind it" (a port range reserved by the system, or a firewall
 * product), which the code cannot tell apart: the text says both. WSAEADDRNOTAVAIL (10049) is
 * an address that is not one of this machine's.
 */
#include "iocpi.h"

iocp_err iocpi_bind_failed(iocp_error_info *err, unsigned long sys, int udp, const char *want,
                           uint16_t port)
{
    /* PowerShell and netstat name the owning process id (-o, OwningProcess). */
    char find[128];
    if (udp)
        snprintf(find, sizeof find,
                 "find it with: netstat -ano -p udp | findstr :%u, or Get-NetUDPEndpoint "
                 "-LocalPort %u",
                 (unsigned)port, (unsigned)port);
    else
        snprintf(find, sizeof find,
                 "find it with: netstat -ano | findstr :%u, or Get-NetTCPConnection -LocalPort %u",
                 (unsigned)port, (unsigned)port);
    const char *what = udp ? "udp: cannot bind" : "cannot bind";
    iocp_err code;
    char why[200];
    switch (sys) {
    case WSAEADDRINUSE:
        code = IOCP_E_ADDR_IN_USE;
        snprintf(why, sizeof why, "port %u is in use by another program (WSA %lu); %s",
                 (unsigned)port, sys, find);
        break;
    case WSAEACCES:
        code = IOCP_E_ADDR_IN_USE;
        snprintf(why, sizeof why,
                 "port %u is in use by another program, or this account may not use it (WSA "
                 "%lu); %s",
                 (unsigned)port, sys, find);
        break;
    case WSAEADDRNOTAVAIL:
        code = IOCP_E_ADDR_NOT_HERE;
        snprintf(why, sizeof why,
                 "this address is not on this machine (WSA %lu); use one of its addresses "
                 "(ipconfig) or none, to listen on all",
                 sys);
        break;
    default:
        code = iocp_err_from_sys(sys);
        iocp_format_error(code, sys, why, sizeof why);
        break;
    }
    if (err != NULL) {
        err->code = code;
        err->sys_code = sys;
        snprintf(err->message, sizeof err->message, "%s %s: %s", what, want, why);
    }
    return code;
}
