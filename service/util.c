/* util.c: UTF-8 / UTF-16 conversion, Win32 error text, and the error-code mappings. */
#include "svc.h"

#include <string.h>

void svc_widen(const char *s, wchar_t *out, size_t count)
{
    if (count == 0)
        return;
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, out, (int)count);
    if (n == 0) {
        /* Too long for out (or invalid UTF-8): keep what fits, always terminated. */
        size_t i = 0;
        for (; s[i] != '\0' && i + 1 < count; i++)
            out[i] = (wchar_t)(unsigned char)s[i];
        out[i] = L'\0';
    }
    out[count - 1] = L'\0';
}

void svc_narrow(const wchar_t *s, char *out, size_t size)
{
    if (size == 0)
        return;
    int n = WideCharToMultiByte(CP_UTF8, 0, s, -1, out, (int)size, NULL, NULL);
    if (n == 0) {
        size_t i = 0;
        for (; s[i] != L'\0' && i + 1 < size; i++)
            out[i] = s[i] < 0x80 ? (char)s[i] : '?';
        out[i] = '\0';
    }
    out[size - 1] = '\0';
}

/* Texts for the codes this program reports itself, for systems (Wine) whose message table
 * lacks some of them. */
static const char *known_text(DWORD code)
{
    switch (code) {
    case ERROR_SERVICE_ALREADY_RUNNING:
        return "An instance of the service is already running";
    case ERROR_INVALID_PARAMETER:
        return "The parameter is incorrect";
    case WSAEADDRINUSE:
        return "Only one usage of each socket address is normally permitted (address in use)";
    case WSAEACCES:
        return "An attempt was made to access a socket in a way forbidden by its access "
               "permissions";
    case ERROR_SERVICE_DOES_NOT_EXIST:
        return "The specified service does not exist as an installed service";
    case ERROR_SERVICE_EXISTS:
        return "The specified service already exists";
    case ERROR_ACCESS_DENIED:
        return "Access is denied";
    case ERROR_FAILED_SERVICE_CONTROLLER_CONNECT:
        return "The service process could not connect to the service controller";
    default:
        return NULL;
    }
}

const char *svc_win32_text(DWORD code, char *buf, size_t size)
{
    wchar_t wide[512];
    char text[512];
    DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code,
                             MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), wide,
                             (DWORD)(sizeof wide / sizeof wide[0]), NULL);
    if (n > 0) {
        svc_narrow(wide, text, sizeof text);
    } else if (known_text(code) != NULL) {
        snprintf(text, sizeof text, "%s", known_text(code));
    } else {
        snprintf(text, sizeof text, "error");
    }
    /* One line, no trailing period or spaces: the code follows in parentheses. */
    for (char *p = text; *p != '\0'; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '.'))
        text[--len] = '\0';
    if (code >= WSABASEERR && code < WSABASEERR + 2000)
        snprintf(buf, size, "%s (WSA %lu)", text, (unsigned long)code);
    else
        snprintf(buf, size, "%s (Win32 %lu)", text, (unsigned long)code);
    return buf;
}

uint64_t svc_now_ms(void)
{
    return GetTickCount64();
}

DWORD svc_win32_from_iocp(const iocp_error_info *err)
{
    if (err->sys_code != 0)
        return (DWORD)err->sys_code;
    switch (err->code) {
    case IOCP_E_INVALID_ARG:
        return ERROR_INVALID_PARAMETER;
    case IOCP_E_NO_MEMORY:
        return ERROR_NOT_ENOUGH_MEMORY;
    case IOCP_E_ADDR_IN_USE:
        return WSAEADDRINUSE;
    case IOCP_E_RESOLVE:
        return WSAHOST_NOT_FOUND;
    case IOCP_E_ACCESS:
        return ERROR_ACCESS_DENIED;
    case IOCP_E_NO_RESOURCES:
        return ERROR_NO_SYSTEM_RESOURCES;
    default:
        return ERROR_SERVICE_SPECIFIC_ERROR;
    }
}

int svc_exit_from_win32(DWORD code)
{
    switch (code) {
    case NO_ERROR:
        return SVC_EXIT_OK;
    case ERROR_SERVICE_ALREADY_RUNNING: /* the instance mutex is held */
        return SVC_EXIT_ALREADY_RUNNING;
    case ERROR_ACCESS_DENIED:
        return SVC_EXIT_ACCESS_DENIED;
    case ERROR_SERVICE_DOES_NOT_EXIST:
    case ERROR_SERVICE_EXISTS:
    case ERROR_DUPLICATE_SERVICE_NAME:
        return SVC_EXIT_NAME;
    case ERROR_SERVICE_REQUEST_TIMEOUT:
    case WAIT_TIMEOUT:
        return SVC_EXIT_TIMEOUT;
    default:
        /* Port in use, bad parameter, any other reason the server did not start. */
        return SVC_EXIT_CANNOT_START;
    }
}
