/*
 * version.c: iocp_version(), the version compiled into the library (iocp/version.h, from
 * CMake's project version).
 */
#include "iocp/iocp.h"

const char *iocp_version(void)
{
    return IOCP_VERSION_STRING;
}
