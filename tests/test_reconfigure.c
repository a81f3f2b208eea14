/*
 * test_reconfigure.c: iocp_engine_reconfigure changes a running engine's timeouts and limits;
 * what cannot change live is named and left alone; an invalid configuration changes nothing.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "net_util.h"

/* A silent connection outlives no idle timeout; after the change to 300 ms, the next one is
 * closed by it (and the open one too, from the next sweep). */
static void idle_timeout_changes_live(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.bind_address = "127.0.0.1";
    cfg.max_connections_per_address = 4;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_port(e);
    SOCKET quiet = tn_connect("127.0.0.1", port, 10000);
    CHECK(quiet != INVALID_SOCKET);
    CHECK(tn_wait_stat(e, ST(active), 1, 10000));

    iocp_config next = cfg;
    next.idle_timeout_ms = 300;
    char not_live[200];
    iocp_error_info err;
    CHECK_MSG(iocp_engine_reconfigure(e, &next, not_live, sizeof not_live, &err) == IOCP_OK, "%s",
              err.message);
    CHECK_MSG(not_live[0] == '\0', "not live: %s", not_live);
    CHECK(tn_wait_closed(quiet, 10000)); /* the open one is closed by the new timeout */
    closesocket(quiet);
    CHECK(tn_wait_stat(e, ST(closed[IOCP_CLOSE_IDLE_TIMEOUT]), 1, 10000));

    /* The per-address limit, from 4 to 1: a second connection from the address is refused. */
    next.idle_timeout_ms = 0;
    next.max_connections_per_address = 1;
    CHECK_OK(iocp_engine_reconfigure(e, &next, not_live, sizeof not_live, &err));
    SOCKET a = tn_connect("127.0.0.1", port, 10000);
    CHECK(a != INVALID_SOCKET);
    tn_echo_message(a, IOCP_FRAMING_RAW, "first");
    SOCKET b = tn_connect("127.0.0.1", port, 10000);
    CHECK(b != INVALID_SOCKET);
    CHECK(tn_wait_closed(b, 10000));
    closesocket(b);
    tn_echo_message(a, IOCP_FRAMING_RAW, "still served");
    closesocket(a);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.rejected_per_address, 1);
    tn_stop_clean(e);
}

/* What shapes the engine at start is named and kept; an invalid configuration is refused
 * with the reason and the running one stays. */
static void not_live_named_invalid_refused(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.bind_address = "127.0.0.1";
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_port(e);

    iocp_config next = cfg;
    next.port = (uint16_t)(port + 1);
    next.framing = IOCP_FRAMING_LINE;
    next.max_connections_per_address = 3; /* no table at start: not live */
    next.idle_timeout_ms = 200;
    char not_live[200];
    iocp_error_info err;
    CHECK_OK(iocp_engine_reconfigure(e, &next, not_live, sizeof not_live, &err));
    CHECK_MSG(strcmp(not_live, "port, framing, max_connections_per_address") == 0, "%s", not_live);
    SOCKET s = tn_connect("127.0.0.1", port, 10000);
    CHECK(s != INVALID_SOCKET);
    tn_echo_message(s, IOCP_FRAMING_RAW, "raw still, no newline");
    CHECK(tn_wait_closed(s, 10000)); /* the live part applied: the idle timeout */
    closesocket(s);

    next = cfg;
    next.idle_timeout_ms = 0;
    next.max_connections = 0;
    CHECK(iocp_engine_reconfigure(e, &next, not_live, sizeof not_live, &err) == IOCP_E_INVALID_ARG);
    CHECK_MSG(strstr(err.message, "max_connections 0") != NULL, "%s", err.message);
    /* the running idle timeout (200 ms) was kept */
    s = tn_connect("127.0.0.1", port, 10000);
    CHECK(s != INVALID_SOCKET);
    CHECK(tn_wait_closed(s, 10000));
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(closed[IOCP_CLOSE_IDLE_TIMEOUT]), 2, 10000));
    tn_stop_clean(e);
}

static const test_case cases[] = {
    {"idle_timeout_changes_live", idle_timeout_changes_live},
    {"not_live_named_invalid_refused", not_live_named_invalid_refused},
};

TEST_MAIN(cases)
