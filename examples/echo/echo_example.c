/*
 * echo_example.c: the iocp engine from the outside, through its public API only. One engine
 * listens on a free port and echoes (iocp_echo_handlers); a second, client-only engine dials
 * it, sends 4096 bytes and checks that the same bytes come back, in order. Prints one line
 * naming the library it ran with, and exits 0 only on an exact echo.
 */
#include <stdio.h>
#include <string.h>
#include <windows.h>

#include "iocp/iocp.h"

#define PAYLOAD_SIZE 4096

static unsigned char sent[PAYLOAD_SIZE];
static size_t received;   /* bytes back so far; one connection's callbacks never overlap */
static int mismatch = -1; /* offset of the first wrong byte, or -1 */
static char failure[256]; /* why the dial or the connection ended early */
static HANDLE done;       /* set when every byte is back, or it cannot be */

static void on_open(iocp_conn *conn)
{
    if (iocp_conn_send(conn, sent, sizeof sent) != IOCP_OK) {
        snprintf(failure, sizeof failure, "the send was refused");
        SetEvent(done);
    }
}

static void on_data(iocp_conn *conn, const void *data, size_t len)
{
    const unsigned char *bytes = data;
    for (size_t i = 0; i < len && mismatch < 0; i++)
        if (received + i >= sizeof sent || bytes[i] != sent[received + i])
            mismatch = (int)(received + i);
    received += len;
    if (mismatch >= 0 || received >= sizeof sent) {
        iocp_conn_close(conn, IOCP_GRACEFUL);
        SetEvent(done);
    }
}

static void on_close(iocp_conn *conn, iocp_close_reason reason, unsigned long sys_code)
{
    (void)conn;
    if (received < sizeof sent) {
        snprintf(failure, sizeof failure, "closed after %lu bytes: %s (%lu)",
                 (unsigned long)received, iocp_close_reason_str(reason), sys_code);
        SetEvent(done);
    }
}

static void on_connect_failed(iocp_engine *engine, void *user, iocp_err err, unsigned long sys_code)
{
    (void)engine;
    (void)user;
    char text[160];
    snprintf(failure, sizeof failure, "cannot connect: %s",
             iocp_format_error(err, sys_code, text, sizeof text));
    SetEvent(done);
}

int main(void)
{
    if (strcmp(iocp_version(), IOCP_VERSION_STRING) != 0) {
        fprintf(stderr, "iocp-echo-example: headers of iocp %s, library %s\n", IOCP_VERSION_STRING,
                iocp_version());
        return 1;
    }
    for (size_t i = 0; i < sizeof sent; i++)
        sent[i] = (unsigned char)(i * 7 + i / 256);
    done = CreateEventW(NULL, TRUE, FALSE, NULL);

    iocp_config server_cfg;
    iocp_config_init(&server_cfg);
    server_cfg.bind_address = "127.0.0.1";
    server_cfg.port = 0;                  /* any free port; iocp_engine_port says which */
    server_cfg.log_level = IOCP_LOG_WARN; /* this program's line only, unless something is wrong */
    iocp_engine *server = NULL, *client = NULL;
    iocp_error_info err;
    if (iocp_engine_start(&server_cfg, iocp_echo_handlers(), NULL, &server, &err) != IOCP_OK) {
        fprintf(stderr, "iocp-echo-example: server: %s\n", err.message);
        return 1;
    }

    iocp_config client_cfg;
    iocp_config_init(&client_cfg);
    client_cfg.listen = 0;
    client_cfg.log_level = IOCP_LOG_WARN;
    iocp_handlers handlers = {on_open, on_data, on_close, on_connect_failed};
    int rc = 1;
    if (iocp_engine_start(&client_cfg, &handlers, NULL, &client, &err) != IOCP_OK) {
        fprintf(stderr, "iocp-echo-example: client: %s\n", err.message);
    } else if (iocp_engine_connect(client, "127.0.0.1", iocp_engine_port(server), 5000, NULL) !=
               IOCP_OK) {
        fprintf(stderr, "iocp-echo-example: cannot start the dial\n");
    } else if (WaitForSingleObject(done, 20000) != WAIT_OBJECT_0) {
        fprintf(stderr, "iocp-echo-example: no echo within 20 s (%lu bytes back)\n",
                (unsigned long)received);
    } else if (failure[0] != '\0') {
        fprintf(stderr, "iocp-echo-example: %s\n", failure);
    } else if (mismatch >= 0) {
        fprintf(stderr, "iocp-echo-example: byte %d came back wrong\n", mismatch);
    } else {
        printf("iocp-echo-example: echoed %lu bytes through iocp %s (%s)\n",
               (unsigned long)received, iocp_version(),
               GetModuleHandleW(L"iocp.dll") != NULL ? "dll" : "static");
        rc = 0;
    }
    if (client != NULL)
        iocp_engine_destroy(client);
    iocp_engine_destroy(server);
    CloseHandle(done);
    return rc;
}
