/* iocp-service: placeholder until the service issue lands. */
#include <stdio.h>

#include "iocp/iocp.h"

int main(void)
{
    iocp_install_crash_guard();
    fprintf(stderr, "iocp-service: not built yet\n");
    return 2;
}
