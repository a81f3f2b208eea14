/*
 * service_probes.c: the UDP sender and the admin endpoint's health check of the no-refusal
 * tests (service_probes.h): test_handover.c's take-over, test_supervisor.c's upgrade.
 */
#include "service_probes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "net_util.h"

static DWORD WINAPI udp_sender_main(LPVOID arg)
{
    udp_load *u = arg;
    for (LONG n = 0; !u->stop_sending && n < UDP_MAX_SEQ; n++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "udp %ld", (long)n);
        if (sendto(u->s, msg, len, 0, (const struct sockaddr *)&u->to, sizeof u->to) == len)
            InterlockedIncrement(&u->sent);
        Sleep(1); /* a steady rate: about 500 to 1000 a second under Wine */
    }
    return 0;
}

static DWORD WINAPI udp_receiver_main(LPVOID arg)
{
    udp_load *u = arg;
    while (!u->stop_receiving) {
        char buf[128];
        int got = recv(u->s, buf, sizeof buf - 1, 0);
        if (got <= 0)
            continue; /* the receive timeout: look at the stop flag */
        buf[got] = '\0';
        char *end = NULL;
        long n = strncmp(buf, "udp ", 4) == 0 ? strtol(buf + 4, &end, 10) : -1;
        if (n < 0 || n >= UDP_MAX_SEQ || end == NULL || *end != '\0')
            InterlockedIncrement(&u->wrong);
        else if (u->seen[n]++)
            InterlockedIncrement(&u->duplicates);
        else
            InterlockedIncrement(&u->echoed);
    }
    return 0;
}

void udp_load_start(udp_load *u, uint16_t port)
{
    memset(u, 0, sizeof *u);
    u->seen = calloc(UDP_MAX_SEQ, 1);
    CHECK(u->seen != NULL);
    u->s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    CHECK(u->s != INVALID_SOCKET);
    struct sockaddr_in me;
    memset(&me, 0, sizeof me);
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(u->s, (struct sockaddr *)&me, sizeof me) == 0);
    int big = 4 * 1024 * 1024;
    setsockopt(u->s, SOL_SOCKET, SO_RCVBUF, (const char *)&big, sizeof big);
    DWORD timeout = 100;
    setsockopt(u->s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&timeout, sizeof timeout);
    u->to = me;
    u->to.sin_port = htons(port);
    u->receiver = CreateThread(NULL, 0, udp_receiver_main, u, 0, NULL);
    u->sender = CreateThread(NULL, 0, udp_sender_main, u, 0, NULL);
    CHECK(u->receiver != NULL && u->sender != NULL);
}

/* Waits until `count` more echoes than `from` have come back. */
int udp_wait_echoed(udp_load *u, LONG count, uint32_t timeout_ms)
{
    DWORD until = GetTickCount() + timeout_ms;
    while (u->echoed < count) {
        if ((LONG)(GetTickCount() - until) >= 0)
            return 0;
        Sleep(5);
    }
    return 1;
}

/* Stops sending, waits up to 5 s for the last echoes (a poll with a deadline: a lost one
 * never comes), stops receiving; returns how many were lost. */
LONG udp_load_stop(udp_load *u)
{
    InterlockedExchange(&u->stop_sending, 1);
    CHECK(WaitForSingleObject(u->sender, 30000) == WAIT_OBJECT_0);
    DWORD until = GetTickCount() + 5000;
    while (u->echoed + u->duplicates < u->sent && (LONG)(GetTickCount() - until) < 0)
        Sleep(10);
    InterlockedExchange(&u->stop_receiving, 1);
    CHECK(WaitForSingleObject(u->receiver, 30000) == WAIT_OBJECT_0);
    CloseHandle(u->sender);
    CloseHandle(u->receiver);
    closesocket(u->s);
    free(u->seen);
    return u->sent - u->echoed;
}

/* A port free on loopback now (bound, read back, closed): the admin endpoint's port must
 * be given, 0 there means none. */
uint16_t free_port(void)
{
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(s != INVALID_SOCKET);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sizeof a;
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    closesocket(s);
    return ntohs(a.sin_port);
}

/* GET path on 127.0.0.1:port: the status code, or -1 when the connect was refused or the
 * answer did not come. */
int http_status(uint16_t port, const char *path)
{
    SOCKET s = tn_connect("127.0.0.1", port, 5000);
    if (s == INVALID_SOCKET)
        return -1;
    char req[128], buf[512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    int status = -1;
    size_t got = 0;
    if (tn_send_all(s, req, (size_t)len) == 0) {
        int n;
        while (got < sizeof buf - 1 && (n = recv(s, buf + got, (int)(sizeof buf - 1 - got), 0)) > 0)
            got += (size_t)n;
        buf[got] = '\0';
        if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
            status = atoi(buf + 9);
    }
    closesocket(s);
    return status;
}
