/* echo.c: the default handler set, the seed's echo server: what arrives goes back, re-framed
 * in line and length modes. */
#include "iocpi.h"

static void echo_data(iocp_conn *conn, const void *data, size_t len)
{
    iocp_err rc = iocp_conn_send_message(conn, data, len);
    if (rc == IOCP_E_QUEUE_FULL) {
        /* Reading pauses at half the cap, so only a peer that stopped reading gets here. */
        iocpi_log(conn->engine, IOCP_LOG_WARN, "%s does not read its echoes: closing it",
                  conn->peer);
        iocpi_conn_close(conn, IOCP_CLOSE_SEND_OVERFLOW, 0, 0);
    }
}

static const iocp_handlers echo_handlers = {NULL, echo_data, NULL, NULL};

const iocp_handlers *iocp_echo_handlers(void)
{
    return &echo_handlers;
}
