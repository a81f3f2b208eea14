/* echo.c: the default handler set, the seed's echo server: what arrives goes back, re-framed
 * in line and length modes. Written with the public API only, as any handler would be. */
#include "iocp/iocp.h"

static void echo_data(iocp_conn *conn, const void *data, size_t len)
{
    iocp_err rc = iocp_conn_send_message(conn, data, len);
    if (rc == IOCP_E_QUEUE_FULL) {
        /* Reading pauses at half the cap, so only a peer that stopped reading gets here. */
        iocp_engine_log(iocp_conn_engine(conn), IOCP_LOG_WARN,
                        "%s does not read its echoes: closing it", iocp_conn_peer(conn));
        iocp_conn_abort(conn, IOCP_CLOSE_SEND_OVERFLOW);
    }
}

static const iocp_handlers echo_handlers = {NULL, echo_data, NULL, NULL};

const iocp_handlers *iocp_echo_handlers(void)
{
    return &echo_handlers;
}
