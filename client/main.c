/* iocp-client: placeholder until the client issue lands. */
#include <stdio.h>

#include "iocp/iocp.h"

int main(void)
{
    iocp_install_crash_guard();
    fprintf(stderr, "iocp-client: not built yet\n");
    return 2;
}
