/*
 * churn.c: the connecting loop of churn.h.
 */
#include "churn.h"

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "net_util.h"

static DWORD WINAPI churn_main(LPVOID arg)
{
    churn *c = arg;
    for (unsigned n = 0; !c->stop; n++) {
        SOCKET s = tn_connect("127.0.0.1", c->port, 5000);
        if (s == INVALID_SOCKET) {
            InterlockedIncrement(&c->refused);
            Sleep(2);
            continue;
        }
        InterlockedIncrement(&c->connects);
        char msg[64], back[64];
        int len = snprintf(msg, sizeof msg, "churn connection %u says hello\n", n);
        if (tn_send_all(s, msg, (size_t)len) != 0 ||
            tn_recv_exact(s, back, (size_t)len) != (size_t)len || memcmp(msg, back, (size_t)len))
            InterlockedIncrement(&c->wrong_echo);
        shutdown(s, SD_SEND);
        char tail;
        if (recv(s, &tail, 1, 0) != 0) /* the server's FIN after ours, not a reset */
            InterlockedIncrement(&c->resets);
        closesocket(s);
        Sleep(2); /* pacing: a new connection every few milliseconds */
    }
    return 0;
}

void churn_start(churn *c, uint16_t port)
{
    memset(c, 0, sizeof *c);
    c->port = port;
    c->thread = CreateThread(NULL, 0, churn_main, c, 0, NULL);
    CHECK(c->thread != NULL);
}

void churn_stop(churn *c)
{
    InterlockedExchange(&c->stop, 1);
    CHECK(WaitForSingleObject(c->thread, 60000) == WAIT_OBJECT_0);
    CloseHandle(c->thread);
}
