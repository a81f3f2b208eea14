/* sockets.c: small socket helpers shared by the listener, the dialer and connections. */
#include "iocpi.h"

#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

SOCKET iocpi_socket(int family)
{
    /* Not inheritable: a child process (a service's helper) must not keep our ports open.
     * Windows before 7 SP1 rejects the flag; then plain overlapped is all we can ask. */
    SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
        s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    return s;
}

iocp_err iocpi_associate(iocp_engine *e, SOCKET s, DWORD *sys)
{
    if (CreateIoCompletionPort((HANDLE)s, e->port, 0, 0) == NULL) {
        *sys = GetLastError();
        return iocp_err_from_sys(*sys);
    }
    return IOCP_OK;
}

void iocpi_format_addr(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "(family %d)", (int)sa->sa_family);
    }
}

void iocpi_close_socket(SOCKET s, int abortive)
{
    if (s == INVALID_SOCKET)
        return;
    if (abortive) {
        /* Linger 0: the peer sees a reset at once and no TIME_WAIT is left behind. */
        struct linger lg;
        lg.l_onoff = 1;
        lg.l_linger = 0;
        setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
    }
    closesocket(s);
}

int iocpi_utf8_to_wide(const char *in, wchar_t *out, int out_len)
{
    return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, in, -1, out, out_len) > 0;
}

iocp_err iocpi_load_extensions(iocp_engine *e, SOCKET s, DWORD *sys)
{
    GUID accept_guid = WSAID_ACCEPTEX;
    GUID addrs_guid = WSAID_GETACCEPTEXSOCKADDRS;
    GUID connect_guid = WSAID_CONNECTEX;
    DWORD bytes = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &accept_guid, sizeof accept_guid,
                 &e->accept_ex, sizeof e->accept_ex, &bytes, NULL, NULL) != 0 ||
        WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &addrs_guid, sizeof addrs_guid,
                 &e->get_accept_addrs, sizeof e->get_accept_addrs, &bytes, NULL, NULL) != 0 ||
        WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &connect_guid, sizeof connect_guid,
                 &e->connect_ex, sizeof e->connect_ex, &bytes, NULL, NULL) != 0) {
        *sys = (DWORD)WSAGetLastError();
        return iocp_err_from_sys(*sys);
    }
    return IOCP_OK;
}

iocp_err iocpi_resolve_bind(const char *host, uint16_t port, int socktype, int protocol,
                            ADDRINFOW **out, iocp_error_info *err)
{
    int dual =
        host == NULL || host[0] == '\0' || strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0;
    wchar_t whost[256], wport[8];
    char trimmed[256];
    if (dual) {
        snprintf(trimmed, sizeof trimmed, "::");
    } else {
        size_t n = strlen(host);
        /* Accept "[::1]" as well as "::1". */
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof trimmed) {
            memcpy(trimmed, host + 1, n - 2);
            trimmed[n - 2] = '\0';
        } else if (n < sizeof trimmed) {
            memcpy(trimmed, host, n + 1);
        } else {
            iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "bind address is too long");
            return IOCP_E_INVALID_ARG;
        }
    }
    if (!iocpi_utf8_to_wide(trimmed, whost, 256)) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "bind address '%s' is not UTF-8", host);
        return IOCP_E_INVALID_ARG;
    }
    swprintf(wport, 8, L"%u", (unsigned)port);
    ADDRINFOW hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_protocol = protocol;
    hints.ai_flags = AI_PASSIVE;
    int rc = GetAddrInfoW(whost, wport, &hints, out);
    if (rc != 0) {
        iocpi_error_set(err, IOCP_E_RESOLVE, (DWORD)rc, "cannot resolve bind address '%s'",
                        trimmed);
        return IOCP_E_RESOLVE;
    }
    return IOCP_OK;
}

int iocpi_providers_are_ifs(int socktype, int protocol)
{
    DWORD size = 0;
    WSAEnumProtocolsW(NULL, NULL, &size);
    WSAPROTOCOL_INFOW *infos = malloc(size ? size : 1);
    if (infos == NULL)
        return 0;
    int n = WSAEnumProtocolsW(NULL, infos, &size);
    int ok = n != SOCKET_ERROR;
    for (int i = 0; ok && i < n; i++) {
        if (infos[i].iSocketType == socktype && infos[i].iProtocol == protocol &&
            !(infos[i].dwServiceFlags1 & XP1_IFS_HANDLES))
            ok = 0;
    }
    free(infos);
    return ok;
}
