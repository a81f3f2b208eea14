/* crash_on_purpose.c: crashes under the crash guard; CTest must report it as failed. */
#include <stdio.h>

#include "iocp/iocp.h"

int main(void)
{
    iocp_install_crash_guard();
    printf("1 passed, 0 failed\n"); /* even a success line must not hide the crash */
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
    return 0;
}
