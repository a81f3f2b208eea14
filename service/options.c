/* options.c: the command line: commands, options, validation, usage text. */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h" /* the engine's CIDR list parser: the same rules as the engine's */

#define MIB (1024u * 1024u)

/* The server options, in the order of the usage text. Both `run` and `install` take them;
 * `install` stores each under Parameters with the value name given here. */
#define FIELD(f) offsetof(svc_server_options, f), sizeof(((svc_server_options *)0)->f)

const svc_server_opt svc_server_opts[] = {
    {"--port", L"Port", SVC_OPT_NUMBER, 0, 65535, FIELD(port),
     "TCP port (default 9000; 0 = any free port)"},
    {"--bind", L"Bind", SVC_OPT_TEXT, 0, SVC_TEXT_MAX - 1, FIELD(bind),
     "address to listen on (default [::], dual-stack)"},
    {"--max-connections", L"MaxConnections", SVC_OPT_NUMBER, 1, 1000000, FIELD(max_connections),
     "connections served at once (default 1024)"},
    {"--max-connections-per-ip", L"MaxConnectionsPerIp", SVC_OPT_NUMBER, 0, 1000000,
     FIELD(max_connections_per_ip),
     "connections one IP address may hold at once; more are reset at once (default 256, a "
     "quarter of the default slots, so that one address never holds them all; 0 = no limit)"},
    {"--buffer-size", L"BufferSize", SVC_OPT_NUMBER, 512, 16 * MIB, FIELD(buffer_size),
     "receive buffer per connection, bytes (default 16384)"},
    {"--buffer-pool", L"BufferPool", SVC_OPT_NUMBER, 1, 1024 * 1024, FIELD(buffer_pool_mib),
     "MiB of receive buffers in use at once: a connection holds one only while it is active "
     "(a second after its last byte it waits with none); at the cap reading pauses until "
     "one comes back (default 32; at least one buffer)"},
    {"--send-queue-cap", L"SendQueueCap", SVC_OPT_NUMBER, 1024, 1024 * MIB, FIELD(send_queue_cap),
     "echo bytes queued for one peer at most, bytes (default 1048576: reading pauses at half, "
     "512 KiB, enough to keep a 1 Gbit/s path with 4 ms round trips busy; line/length framing "
     "raises it to 2 x (buffer + max message + 4))"},
    {"--memory-budget", L"MemoryBudget", SVC_OPT_NUMBER, 0, 16 * MIB, FIELD(memory_budget_mib),
     "MiB that hostile peers may make the server hold: start is refused when max connections x "
     "(send queue cap + max message in line/length framing) + receive buffers (one per "
     "connection, at most the buffer pool) is over it (default 0 = half of this machine's "
     "physical memory)"},
    {"--framing", L"Framing", SVC_OPT_FRAMING, 0, 0, FIELD(framing),
     "raw | line | length (default raw)"},
    {"--max-message", L"MaxMessage", SVC_OPT_NUMBER, 1, 256 * MIB, FIELD(max_message),
     "largest message in line/length framing, bytes (default 1048576)"},
    {"--idle-timeout", L"IdleTimeout", SVC_OPT_NUMBER, 0, 4294967, FIELD(idle_timeout_s),
     "close a connection idle this many seconds (default 300; 0 = never)"},
    {"--message-timeout", L"MessageTimeout", SVC_OPT_NUMBER, 0, 4294967, FIELD(message_timeout_s),
     "line/length framing: reset a peer whose message is not whole this many seconds after "
     "its first byte, the slowloris guard (default 60; 0 = never)"},
    {"--send-timeout", L"SendTimeout", SVC_OPT_NUMBER, 0, 4294967, FIELD(send_timeout_s),
     "reset a peer that takes none of its queued echo for this many seconds (default 60; "
     "0 = never)"},
    {"--workers", L"Workers", SVC_OPT_NUMBER, 0, 256, FIELD(workers),
     "worker threads (default 0 = one per processor)"},
    {"--drain-timeout", L"DrainTimeout", SVC_OPT_NUMBER, 0, 3600, FIELD(drain_timeout_s),
     "seconds a stop lets connections finish (default 10)"},
    {"--log-file", L"LogFile", SVC_OPT_TEXT, 0, SVC_PATH_MAX - 1, FIELD(log_file),
     "append log lines to this file (default none)"},
    {"--log-max-size", L"LogMaxSize", SVC_OPT_NUMBER, 1, 4096, FIELD(log_max_mib),
     "MiB: the log file is rotated before it passes this size (default 16)"},
    {"--log-keep", L"LogKeep", SVC_OPT_NUMBER, 0, 99, FIELD(log_keep),
     "rotated log files kept, FILE.1 the newest (default 5; 0 = the full file is deleted)"},
    {"--tls-pfx", L"TlsPfx", SVC_OPT_TEXT, 0, SVC_PATH_MAX - 1, FIELD(tls_pfx),
     "serve TLS with the certificate and private key in this PFX (PKCS#12) file"},
    {"--tls-password", L"TlsPasswordProtected", SVC_OPT_SECRET, 0, SVC_TEXT_MAX - 1,
     FIELD(tls_password),
     "the PFX's password; left out or '-': asked for (echo off) on a console, else one line of "
     "standard input. install stores it encrypted by DPAPI (machine scope) in a key only "
     "SYSTEM, administrators and the service may read"},
    {"--tls-cert", L"TlsCert", SVC_OPT_THUMB, 0, SVC_TEXT_MAX - 1, FIELD(tls_cert),
     "serve TLS with the certificate of this SHA-1 thumbprint (40 hex digits) from the store's "
     "My folder; its private key must be readable by the account (not with --tls-pfx)"},
    {"--tls-store", L"TlsStore", SVC_OPT_STORE, 0, 0, FIELD(tls_store),
     "LocalMachine | CurrentUser: where --tls-cert is (default LocalMachine for the service, "
     "CurrentUser for run)"},
    {"--tls-handshake-timeout", L"TlsHandshakeTimeout", SVC_OPT_NUMBER, 1, 3600,
     FIELD(tls_handshake_timeout_s),
     "reset a TLS peer whose handshake is not done this many seconds after it connected "
     "(default 10)"},
    {"--tls-min-version", L"TlsMinVersion", SVC_OPT_TEXT, 0, 7, FIELD(tls_min_version),
     "1.0 | 1.1 | 1.2: the oldest TLS a client may speak (default 1.2). A ClientHello offering "
     "less gets a protocol_version alert; whatever the version, a suite without forward "
     "secrecy, or a CBC suite on TLS 1.2, is refused after the handshake (status counts both "
     "as tls_below_floor)"},
    {"--tls-client-ca", L"TlsClientCa", SVC_OPT_TEXT, 0, SVC_PATH_MAX - 1, FIELD(tls_client_ca),
     "mutual TLS: every client must present a certificate chaining to a CA in this file (PEM "
     "or DER; its roots only are trusted); the subject is logged"},
    {"--tls-revocation", L"TlsRevocation", SVC_OPT_TEXT, 0, 7, FIELD(tls_revocation),
     "off | soft | hard, with --tls-client-ca: revocation of a client's chain, from the "
     "system's URL cache only (never a network wait). soft (the default) refuses a certificate "
     "known revoked; hard also one whose status is unknown; off checks nothing"},
    {"--udp", L"Udp", SVC_OPT_SWITCH, 0, 1, FIELD(udp),
     "serve UDP echo as well, on the same port number: each datagram goes back whole to its "
     "sender (a flag; `status` shows the UDP counters)"},
    {"--udp-only", L"UdpOnly", SVC_OPT_SWITCH, 0, 1, FIELD(udp_only),
     "serve UDP echo alone on --port, no TCP listener (a flag)"},
    {"--ipv6-prefix", L"Ipv6Prefix", SVC_OPT_NUMBER, 1, 128, FIELD(ipv6_prefix),
     "leading bits of an IPv6 address that make one peer for every per-address limit (default "
     "64: a host is given a whole /64; IPv4-mapped addresses count as IPv4)"},
    {"--evict-idle", L"EvictIdle", SVC_OPT_NUMBER, 0, 4294967, FIELD(evict_idle_s),
     "when every connection slot is taken, a newcomer closes the connection idle longest if it "
     "has been silent this many seconds, and takes its slot; otherwise it is reset (default 10; "
     "0 = never: only resets)"},
    {"--conn-rate", L"ConnRate", SVC_OPT_NUMBER, 0, 1000000, FIELD(conn_rate),
     "new connections a second one IP address (an IPv6 prefix) may open after its burst; one "
     "more is reset before any TLS handshake (default 0 = no limit)"},
    {"--conn-burst", L"ConnBurst", SVC_OPT_NUMBER, 0, 1000000, FIELD(conn_burst),
     "new connections one address may open at once before --conn-rate applies (default 0 = "
     "the rate)"},
    {"--udp-rate", L"UdpRate", SVC_OPT_NUMBER, 0, 10000000, FIELD(udp_rate),
     "datagrams a second answered to one source address (an IPv6 prefix), whatever its ports, "
     "after its burst; more are dropped and counted (default 32000, twice what the UDP "
     "benchmark sends from its one address; 0 = no limit)"},
    {"--udp-burst", L"UdpBurst", SVC_OPT_NUMBER, 1, 10000000, FIELD(udp_burst),
     "datagrams one address may send at once before --udp-rate applies (default 4000)"},
    {"--udp-byte-rate", L"UdpByteRate", SVC_OPT_NUMBER, 0, 4294967295u, FIELD(udp_byte_rate),
     "bytes a second answered to one address after its byte burst (default 33554432; 0 = no "
     "limit)"},
    {"--udp-byte-burst", L"UdpByteBurst", SVC_OPT_NUMBER, 65507, 4294967295u, FIELD(udp_byte_burst),
     "bytes one address may send at once before --udp-byte-rate applies (default 4194304; at "
     "least 65507, the longest datagram)"},
    {"--udp-sources", L"UdpSources", SVC_OPT_NUMBER, 16, 1048576, FIELD(udp_sources),
     "sources whose rates are tracked at once; the one seen longest ago gives its place up "
     "(default 4096)"},
    {"--udp-total-rate", L"UdpTotalRate", SVC_OPT_NUMBER, 0, 100000000, FIELD(udp_total_rate),
     "datagrams a second answered in all, whatever their sources (default 100000; 0 = no "
     "limit)"},
    {"--udp-flow-rate", L"UdpFlowRate", SVC_OPT_NUMBER, 0, 10000000, FIELD(udp_flow_rate),
     "datagrams a second answered to one address and port, after half a second's worth: what "
     "shrinks an echo loop of many datagrams until it is caught (default 2000, twice what one "
     "socket of the UDP benchmark sends; 0 = no limit)"},
    {"--proxy-protocol", L"ProxyProtocol", SVC_OPT_TEXT, 0, SVC_TEXT_MAX - 1, FIELD(proxy_protocol),
     "CIDR[,CIDR...]: connections from these sources (a load balancer: HAProxy's send-proxy or "
     "send-proxy-v2) must begin with a PROXY protocol v1 or v2 header, whose client address "
     "is then the connection's (per-IP limit, log); from any other source a PROXY line is "
     "data (default none, e.g. 127.0.0.1/32,::1/128,10.0.0.0/8)"},
    {"--proxy-timeout", L"ProxyTimeout", SVC_OPT_NUMBER, 1, 600, FIELD(proxy_timeout_s),
     "reset a connection from a --proxy-protocol source whose header is not whole this many "
     "seconds after it connected (default 5)"},
    {"--admin-port", L"AdminPort", SVC_OPT_NUMBER, 0, 65535, FIELD(admin_port),
     "serve HTTP GET /metrics (Prometheus text), /healthz and /readyz on this TCP port "
     "(default 0 = none)"},
    {"--admin-bind", L"AdminBind", SVC_OPT_TEXT, 0, SVC_TEXT_MAX - 1, FIELD(admin_bind),
     "address of the admin port (default 127.0.0.1: loopback only; the endpoint has no "
     "authentication, so bind it beyond loopback only on a network you trust)"},
    {"--unready-delay", L"UnreadyDelay", SVC_OPT_NUMBER, 0, 3600, FIELD(unready_delay_s),
     "seconds a stop answers 503 on /readyz while still accepting, before the drain, so that a "
     "load balancer's health check takes the instance out of rotation first (default 0)"},
    {"--supervised", L"Supervised", SVC_OPT_SWITCH, 0, 1, FIELD(supervised),
     "the service (the default; --single-process turns it off): a supervisor process holds the "
     "listener (and the UDP socket and admin listener) and runs the server as a worker process, "
     "replaced at once if it dies (connects wait in the backlog) and by `upgrade` without "
     "refusing a connection"},
};
const size_t svc_server_opt_count = sizeof svc_server_opts / sizeof svc_server_opts[0];
/* svc_options.server_given has a bit for each (a negative array size if not). */
typedef char svc_server_opts_fit_in_64_bits[sizeof svc_server_opts / sizeof svc_server_opts[0] <= 64
                                                ? 1
                                                : -1];

static void *opt_field(svc_server_options *o, const svc_server_opt *def, size_t *size)
{
    *size = def->size;
    return (char *)o + def->offset;
}

void svc_server_options_init(svc_server_options *o)
{
    iocp_config c;
    iocp_config_init(&c);
    memset(o, 0, sizeof *o);
    o->port = SVC_DEFAULT_PORT;
    o->max_connections = c.max_connections;
    o->max_connections_per_ip = SVC_DEFAULT_PER_IP;
    o->buffer_size = c.buffer_size;
    o->buffer_pool_mib = (uint32_t)(c.buffer_pool_max / MIB);
    /* Not the engine's 4 MiB: 1,024 connections x (1 MiB + 16 KiB) is 1.02 GiB at worst, which
     * fits the default budget of a 4 GiB machine (2 GiB); with 4 MiB it would be 4.02 GiB. */
    o->send_queue_cap = SVC_DEFAULT_SEND_CAP;
    o->memory_budget_mib = 0;
    o->workers = c.workers;
    o->framing = c.framing;
    o->max_message = c.max_message;
    /* A public server's defaults: a silent connection is closed after 5 minutes, a message
     * must be whole within a minute of its first byte, and a peer that reads nothing for a
     * minute is reset (nginx's client_body_timeout and send_timeout are 60 s). */
    o->idle_timeout_s = SVC_DEFAULT_IDLE_S;
    o->message_timeout_s = SVC_DEFAULT_MESSAGE_S;
    o->send_timeout_s = c.send_timeout_ms / 1000u;
    o->drain_timeout_s = SVC_DEFAULT_DRAIN_S;
    o->log_max_mib = SVC_DEFAULT_LOG_MIB;
    o->log_keep = SVC_DEFAULT_LOG_KEEP;
    /* An installed service is supervised unless installed with --single-process: a crash
     * keeps the port and `upgrade` works without the operator having asked for it. */
    o->supervised = 1;
    o->tls_store = SVC_TLS_STORE_DEFAULT;
    o->tls_handshake_timeout_s = SVC_DEFAULT_TLS_HANDSHAKE_S;
    o->ipv6_prefix = c.ipv6_prefix_len;
    o->evict_idle_s = c.evict_idle_ms / 1000u;
    o->conn_rate = c.conn_rate;
    o->conn_burst = c.conn_burst;
    o->udp_rate = c.udp_rate;
    o->udp_burst = c.udp_burst;
    o->udp_byte_rate = c.udp_byte_rate;
    o->udp_byte_burst = c.udp_byte_burst;
    o->udp_sources = c.udp_sources;
    o->udp_total_rate = c.udp_total_rate;
    o->udp_flow_rate = c.udp_flow_rate;
    o->proxy_timeout_s = c.proxy_header_timeout_ms / 1000u;
    snprintf(o->tls_min_version, sizeof o->tls_min_version, "1.2");
    snprintf(o->tls_revocation, sizeof o->tls_revocation, "soft");
}

void svc_options_init(svc_options *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", SVC_DEFAULT_NAME);
    svc_server_options_init(&o->server);
    o->start_type = SVC_START_DEMAND;
    o->account[0] = '\0'; /* install: SVC_DEFAULT_ACCOUNT, NT SERVICE\<name> */
    o->restart_delay_s = SVC_DEFAULT_RESTART_S;
}

int svc_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > SVC_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Decimal digits only: no sign, no spaces, no hex, no overflow. */
static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int svc_server_opt_set_number(svc_server_options *o, const svc_server_opt *def, uint32_t v,
                              char *err, size_t err_size)
{
    size_t size;
    void *field = opt_field(o, def, &size);
    if ((def->kind != SVC_OPT_NUMBER && def->kind != SVC_OPT_SWITCH) || field == NULL) {
        snprintf(err, err_size, "%s takes text, not a number", def->flag);
        return -1;
    }
    if (v < def->min || v > def->max) {
        snprintf(err, err_size, "%s %lu is out of range %lu..%lu", def->flag, (unsigned long)v,
                 (unsigned long)def->min, (unsigned long)def->max);
        return -1;
    }
    if (size == sizeof(uint16_t)) {
        uint16_t v16 = (uint16_t)v;
        memcpy(field, &v16, sizeof v16);
    } else {
        memcpy(field, &v, sizeof v);
    }
    return 0;
}

int svc_server_opt_set(svc_server_options *o, const svc_server_opt *def, const char *text,
                       char *err, size_t err_size)
{
    size_t size;
    void *field = opt_field(o, def, &size);
    if (field == NULL) {
        snprintf(err, err_size, "unknown option");
        return -1;
    }
    switch (def->kind) {
    case SVC_OPT_SWITCH:
    case SVC_OPT_NUMBER: {
        uint32_t v;
        if (parse_u32(text, &v) != 0) {
            snprintf(err, err_size, "%s needs a whole number %lu..%lu, not '%.64s'", def->flag,
                     (unsigned long)def->min, (unsigned long)def->max, text);
            return -1;
        }
        return svc_server_opt_set_number(o, def, v, err, err_size);
    }
    case SVC_OPT_FRAMING: {
        iocp_framing f;
        if (iocp_framing_parse(text, &f) != 0) {
            snprintf(err, err_size, "%s must be raw, line or length, not '%.64s'", def->flag, text);
            return -1;
        }
        o->framing = f;
        return 0;
    }
    case SVC_OPT_STORE:
        if (text[0] == '\0') {
            o->tls_store = SVC_TLS_STORE_DEFAULT;
        } else if (_stricmp(text, "LocalMachine") == 0) {
            o->tls_store = SVC_TLS_STORE_MACHINE;
        } else if (_stricmp(text, "CurrentUser") == 0) {
            o->tls_store = SVC_TLS_STORE_USER;
        } else {
            snprintf(err, err_size, "%s must be LocalMachine or CurrentUser, not '%.64s'",
                     def->flag, text);
            return -1;
        }
        return 0;
    case SVC_OPT_THUMB: {
        size_t digits = 0;
        for (const char *p = text; *p != '\0'; p++) {
            int hex =
                (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F');
            if (hex) {
                digits++;
            } else if (*p != ' ') {
                digits = 0;
                break;
            }
        }
        /* "" clears it (a registry value written by install when no certificate is set). */
        if (text[0] != '\0' && (digits != 40 || strlen(text) > def->max)) {
            snprintf(err, err_size,
                     "%s needs a SHA-1 thumbprint: 40 hex digits (spaces allowed), not '%.64s'",
                     def->flag, text);
            return -1;
        }
        snprintf((char *)field, size, "%s", text);
        return 0;
    }
    case SVC_OPT_SECRET:
    case SVC_OPT_TEXT:
        if (strlen(text) > def->max) {
            snprintf(err, err_size, "%s is longer than %lu bytes", def->flag,
                     (unsigned long)def->max);
            return -1;
        }
        for (const char *p = text; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20) {
                snprintf(err, err_size, "%s contains a control character", def->flag);
                return -1;
            }
        }
        snprintf((char *)field, size, "%s", text);
        return 0;
    }
    return -1;
}

void svc_server_opt_get(const svc_server_options *o, const svc_server_opt *def, char *out,
                        size_t size)
{
    size_t field_size;
    const void *field = opt_field((svc_server_options *)o, def, &field_size);
    if (field == NULL) {
        snprintf(out, size, "?");
    } else if (def->kind == SVC_OPT_FRAMING) {
        snprintf(out, size, "%s", iocp_framing_name(o->framing));
    } else if (def->kind == SVC_OPT_STORE) {
        snprintf(out, size, "%s",
                 o->tls_store == SVC_TLS_STORE_DEFAULT ? "" : svc_tls_store_name(o->tls_store));
    } else if (def->kind == SVC_OPT_SECRET) {
        snprintf(out, size, "%s", ((const char *)field)[0] ? "(set, not shown)" : "");
    } else if (def->kind == SVC_OPT_TEXT || def->kind == SVC_OPT_THUMB) {
        snprintf(out, size, "%s", (const char *)field);
    } else if (field_size == sizeof(uint16_t)) {
        uint16_t v;
        memcpy(&v, field, sizeof v);
        snprintf(out, size, "%u", (unsigned)v);
    } else {
        uint32_t v;
        memcpy(&v, field, sizeof v);
        snprintf(out, size, "%lu", (unsigned long)v);
    }
}

uint16_t svc_tls_min_version(const char *text)
{
    return strcmp(text, "1.0") == 0   ? IOCP_TLS_1_0
           : strcmp(text, "1.1") == 0 ? IOCP_TLS_1_1
           : strcmp(text, "1.2") == 0 ? IOCP_TLS_1_2
                                      : 0;
}

int svc_tls_revocation(const char *text)
{
    return strcmp(text, "soft") == 0   ? IOCP_TLS_REVOCATION_SOFT
           : strcmp(text, "off") == 0  ? IOCP_TLS_REVOCATION_OFF
           : strcmp(text, "hard") == 0 ? IOCP_TLS_REVOCATION_HARD
                                       : -1;
}

const char *svc_tls_store_name(int store)
{
    return store == SVC_TLS_STORE_MACHINE ? "LocalMachine"
           : store == SVC_TLS_STORE_USER  ? "CurrentUser"
                                          : "default";
}

int svc_server_options_check(const svc_server_options *o, char *err, size_t err_size)
{
    if (o->tls_pfx[0] != '\0' && o->tls_cert[0] != '\0') {
        snprintf(err, err_size,
                 "--tls-pfx and --tls-cert exclude each other: give the certificate as a PFX "
                 "file or as a thumbprint in a store, not both");
        return -1;
    }
    if (o->tls_password[0] != '\0' && o->tls_pfx[0] == '\0') {
        snprintf(err, err_size, "--tls-password is the password of --tls-pfx, which is missing");
        return -1;
    }
    if (o->tls_client_ca[0] != '\0' && o->tls_pfx[0] == '\0' && o->tls_cert[0] == '\0') {
        snprintf(err, err_size,
                 "--tls-client-ca asks TLS clients for certificates: give the server's own "
                 "with --tls-pfx or --tls-cert");
        return -1;
    }
    if (o->tls_store != SVC_TLS_STORE_DEFAULT && o->tls_cert[0] == '\0') {
        snprintf(err, err_size, "--tls-store says where --tls-cert is, which is missing");
        return -1;
    }
    if (svc_tls_min_version(o->tls_min_version) == 0) {
        snprintf(err, err_size,
                 "--tls-min-version must be 1.0, 1.1 or 1.2 (the oldest TLS allowed), not '%s'",
                 o->tls_min_version);
        return -1;
    }
    if (svc_tls_revocation(o->tls_revocation) < 0) {
        snprintf(err, err_size, "--tls-revocation must be off, soft or hard, not '%s'",
                 o->tls_revocation);
        return -1;
    }
    if (strcmp(o->tls_revocation, "soft") != 0 && o->tls_client_ca[0] == '\0') {
        snprintf(err, err_size,
                 "--tls-revocation checks client certificates, which only --tls-client-ca asks "
                 "for: give --tls-client-ca FILE or leave --tls-revocation out");
        return -1;
    }
    if (o->udp && o->udp_only) {
        snprintf(err, err_size,
                 "--udp (TCP and UDP) and --udp-only (UDP alone) exclude each other");
        return -1;
    }
    if (o->udp_only && (o->tls_pfx[0] != '\0' || o->tls_cert[0] != '\0')) {
        snprintf(err, err_size, "--udp-only serves no TCP, so TLS has nothing to protect");
        return -1;
    }
    if (o->proxy_protocol[0] != '\0') {
        char why[200];
        size_t n = 0;
        if (!iocpi_cidr_list_parse(o->proxy_protocol, NULL, 0, &n, why, sizeof why)) {
            snprintf(err, err_size, "--proxy-protocol: %s", why);
            return -1;
        }
    }
    if (o->admin_bind[0] != '\0' && o->admin_port == 0) {
        snprintf(err, err_size, "--admin-bind is the address of --admin-port, which is missing");
        return -1;
    }
    return 0;
}

const char *svc_start_type_name(svc_start_type t)
{
    switch (t) {
    case SVC_START_AUTO:
        return "auto";
    case SVC_START_DELAYED:
        return "delayed";
    default:
        return "demand";
    }
}

void svc_server_config(const svc_server_options *o, iocp_config *config)
{
    iocp_config_init(config);
    config->bind_address = o->bind[0] != '\0' ? o->bind : NULL;
    config->port = o->port;
    config->max_connections = o->max_connections;
    config->max_connections_per_address = o->max_connections_per_ip;
    config->buffer_size = o->buffer_size;
    config->buffer_pool_max = (size_t)o->buffer_pool_mib * MIB;
    if (config->buffer_pool_max < o->buffer_size)
        config->buffer_pool_max = o->buffer_size; /* one buffer at least */
    config->send_queue_cap = o->send_queue_cap;
    config->workers = o->workers;
    config->framing = o->framing;
    config->max_message = o->max_message;
    config->idle_timeout_ms = o->idle_timeout_s * 1000u;
    config->message_timeout_ms = o->message_timeout_s * 1000u; /* raw framing: no messages */
    config->send_timeout_ms = o->send_timeout_s * 1000u;
    /* The engine needs room for two reads' worth of echo per connection (a whole message in
     * line/length framing): raise the cap for large messages rather than refuse them. */
    size_t per_read = o->buffer_size;
    if (o->framing != IOCP_FRAMING_RAW)
        per_read += (size_t)o->max_message + IOCP_LENGTH_HEADER_SIZE;
    if (config->send_queue_cap < 2 * per_read)
        config->send_queue_cap = 2 * per_read;
    /* TLS: pointers into o, which must outlive iocp_engine_start. The store's default is the
     * caller's to settle (svc_host_start: by mode); left unsettled it is CurrentUser. */
    if (o->tls_pfx[0] != '\0') {
        config->tls.pfx_path = o->tls_pfx;
        config->tls.pfx_password = o->tls_password;
    } else if (o->tls_cert[0] != '\0') {
        config->tls.cert_thumbprint = o->tls_cert;
        config->tls.cert_store_machine = o->tls_store == SVC_TLS_STORE_MACHINE;
    }
    config->tls.handshake_timeout_ms = o->tls_handshake_timeout_s * 1000u;
    config->tls.min_version = svc_tls_min_version(o->tls_min_version);
    if (o->tls_client_ca[0] != '\0')
        config->tls.client_ca_file = o->tls_client_ca;
    config->tls.revocation = svc_tls_revocation(o->tls_revocation);
    /* UDP on the TCP port's number (the engine's default), or alone on --port. */
    if (o->udp || o->udp_only)
        config->udp = 1;
    if (o->udp_only) {
        config->listen = 0;
        config->udp_port = o->port;
    }
    config->ipv6_prefix_len = o->ipv6_prefix;
    config->evict_idle_ms = o->evict_idle_s * 1000u;
    config->conn_rate = o->conn_rate;
    config->conn_burst = o->conn_burst;
    config->udp_rate = o->udp_rate;
    config->udp_burst = o->udp_burst;
    config->udp_byte_rate = o->udp_byte_rate;
    config->udp_byte_burst = o->udp_byte_burst;
    config->udp_sources = o->udp_sources;
    config->udp_total_rate = o->udp_total_rate;
    config->udp_flow_rate = o->udp_flow_rate;
    config->proxy_protocol_from = o->proxy_protocol[0] != '\0' ? o->proxy_protocol : NULL;
    config->proxy_header_timeout_ms = o->proxy_timeout_s * 1000u;
}

uint64_t svc_physical_memory(void)
{
    MEMORYSTATUSEX ms;
    ms.dwLength = sizeof ms;
    return GlobalMemoryStatusEx(&ms) ? (uint64_t)ms.ullTotalPhys : 0;
}

/* "16 KiB", "1.0 MiB", "5.0 GiB": the unit that keeps the number short. */
static const char *size_text(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
        return buf;
    }
    double v = (double)bytes / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 3) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

int svc_server_memory_check(const svc_server_options *o, uint64_t physical, char *err,
                            size_t err_size)
{
    iocp_config c;
    svc_server_config(o, &c); /* the send queue cap as the engine will have it */
    int framed = o->framing != IOCP_FRAMING_RAW;
    uint64_t message = framed ? o->max_message : 0;
    /* Receive buffers come from one pool (buffer_pool_max): every connection holds one at most,
     * and all of them together no more than the pool. */
    uint64_t buffers = (uint64_t)o->max_connections * o->buffer_size;
    int pooled = buffers > (uint64_t)c.buffer_pool_max;
    if (pooled)
        buffers = c.buffer_pool_max;
    uint64_t worst =
        (uint64_t)o->max_connections * ((uint64_t)c.send_queue_cap + message) + buffers;
    uint64_t per_conn = worst / o->max_connections;
    uint64_t budget = o->memory_budget_mib ? (uint64_t)o->memory_budget_mib * MIB : physical / 2;
    if (budget == 0 || worst <= budget)
        return 0; /* no budget known (the system did not say how much memory it has): no check */
    char t_per[32], t_worst[32], t_budget[32], t_cap[32], t_msg[32], t_buf[32], t_phys[48] = "";
    if (o->memory_budget_mib == 0) {
        char p[32];
        snprintf(t_phys, sizeof t_phys, " (half of the %s of physical memory)",
                 size_text(physical, p, sizeof p));
    }
    char parts[160], buffer_part[80];
    if (pooled)
        snprintf(buffer_part, sizeof buffer_part, "a share of the %s receive buffer pool",
                 size_text(c.buffer_pool_max, t_buf, sizeof t_buf));
    else
        snprintf(buffer_part, sizeof buffer_part, "buffer %s",
                 size_text(o->buffer_size, t_buf, sizeof t_buf));
    if (framed)
        snprintf(parts, sizeof parts, "send queue %s + message %s + %s",
                 size_text(c.send_queue_cap, t_cap, sizeof t_cap),
                 size_text(message, t_msg, sizeof t_msg), buffer_part);
    else
        snprintf(parts, sizeof parts, "send queue %s + %s",
                 size_text(c.send_queue_cap, t_cap, sizeof t_cap), buffer_part);
    snprintf(err, err_size,
             "worst case %lu connections x %s (%s) = %s is over the memory budget of %s%s: lower "
             "--max-connections, --send-queue-cap%s, or raise --memory-budget",
             (unsigned long)o->max_connections, size_text(per_conn, t_per, sizeof t_per), parts,
             size_text(worst, t_worst, sizeof t_worst),
             size_text(budget, t_budget, sizeof t_budget), t_phys,
             framed ? ", --max-message or --buffer-size" : " or --buffer-size");
    return -1;
}

/* ---- the command line ----------------------------------------------------------------- */

/* Which commands take which options (bits by command). */
#define FOR(cmd)    (1u << (cmd))
#define SERVER_CMDS (FOR(SVC_CMD_RUN) | FOR(SVC_CMD_INSTALL) | FOR(SVC_CMD_CONFIGURE))
#define NAME_CMDS                                                                                  \
    (FOR(SVC_CMD_RUN) | FOR(SVC_CMD_INSTALL) | FOR(SVC_CMD_UNINSTALL) | FOR(SVC_CMD_START) |       \
     FOR(SVC_CMD_STOP) | FOR(SVC_CMD_STATUS) | FOR(SVC_CMD_SERVICE) | FOR(SVC_CMD_DRAIN) |         \
     FOR(SVC_CMD_CONFIGURE) | FOR(SVC_CMD_UPGRADE))
#define WAIT_CMDS                                                                                  \
    (FOR(SVC_CMD_UNINSTALL) | FOR(SVC_CMD_START) | FOR(SVC_CMD_STOP) | FOR(SVC_CMD_UPGRADE))

static const struct {
    const char *word;
    svc_command cmd;
} commands[] = {
    {"run", SVC_CMD_RUN},
    {"install", SVC_CMD_INSTALL},
    {"uninstall", SVC_CMD_UNINSTALL},
    {"start", SVC_CMD_START},
    {"stop", SVC_CMD_STOP},
    {"status", SVC_CMD_STATUS},
    {"service", SVC_CMD_SERVICE},
    {"help", SVC_CMD_HELP},
    {"drain", SVC_CMD_DRAIN},
    {"list", SVC_CMD_LIST},
    {"configure", SVC_CMD_CONFIGURE},
    {"upgrade", SVC_CMD_UPGRADE},
};

static const char *command_word(svc_command cmd)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].cmd == cmd)
            return commands[i].word;
    return "?";
}

/* "--flag=value" or "--flag value": returns the value or NULL (err set). */
static const char *take_value(int argc, char **argv, int *i, const char *flag, size_t flag_len,
                              char *err, size_t err_size)
{
    const char *arg = argv[*i];
    if (arg[flag_len] == '=')
        return arg + flag_len + 1;
    if (*i + 1 >= argc) {
        snprintf(err, err_size, "%s needs a value", flag);
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

/* Matches "--flag" and "--flag=...". */
static int is_flag(const char *arg, const char *flag, size_t *flag_len)
{
    size_t n = strlen(flag);
    if (strncmp(arg, flag, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
        return 0;
    *flag_len = n;
    return 1;
}

static int set_text(char *dst, size_t size, const char *flag, const char *v, char *err,
                    size_t err_size)
{
    if (strlen(v) >= size) {
        snprintf(err, err_size, "%s is longer than %zu bytes", flag, size - 1);
        return -1;
    }
    snprintf(dst, size, "%s", v);
    return 0;
}

/* What a command-specific option's setter gets: the options being built, and whether
 * --display-name and --account were given (install makes them up otherwise). */
typedef struct parse_state {
    svc_options *out;
    int display_set;
    int account_set;
} parse_state;

typedef int (*opt_setter)(parse_state *ps, const char *flag, const char *v, char *err,
                          size_t err_size);

static int set_name(parse_state *ps, const char *flag, const char *v, char *err, size_t err_size)
{
    if (!svc_name_valid(v)) {
        snprintf(err, err_size,
                 "%s '%.64s' is not valid: use 1 to %d letters, digits, '.', '_' or '-'", flag, v,
                 SVC_NAME_MAX);
        return -1;
    }
    snprintf(ps->out->name, sizeof ps->out->name, "%s", v);
    return 0;
}

static int set_timeout(parse_state *ps, const char *flag, const char *v, char *err, size_t err_size)
{
    uint32_t *t = &ps->out->timeout_s;
    if (parse_u32(v, t) != 0 || *t < 1 || *t > 3600) {
        snprintf(err, err_size, "%s needs seconds 1..3600, not '%.64s'", flag, v);
        return -1;
    }
    return 0;
}

static int set_display_name(parse_state *ps, const char *flag, const char *v, char *err,
                            size_t err_size)
{
    ps->display_set = 1;
    return set_text(ps->out->display_name, sizeof ps->out->display_name, flag, v, err, err_size);
}

static int set_description(parse_state *ps, const char *flag, const char *v, char *err,
                           size_t err_size)
{
    return set_text(ps->out->description, sizeof ps->out->description, flag, v, err, err_size);
}

static int set_account(parse_state *ps, const char *flag, const char *v, char *err, size_t err_size)
{
    ps->account_set = 1;
    return set_text(ps->out->account, sizeof ps->out->account, flag, v, err, err_size);
}

static int set_password(parse_state *ps, const char *flag, const char *v, char *err,
                        size_t err_size)
{
    ps->out->password_given = 1;
    return set_text(ps->out->password, sizeof ps->out->password, flag, v, err, err_size);
}

static int set_start(parse_state *ps, const char *flag, const char *v, char *err, size_t err_size)
{
    static const struct {
        const char *word;
        svc_start_type type;
    } types[] = {{"demand", SVC_START_DEMAND},
                 {"manual", SVC_START_DEMAND},
                 {"auto", SVC_START_AUTO},
                 {"delayed", SVC_START_DELAYED}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(v, types[i].word) == 0) {
            ps->out->start_type = types[i].type;
            return 0;
        }
    }
    snprintf(err, err_size, "%s must be demand, auto or delayed, not '%.64s'", flag, v);
    return -1;
}

static int set_restart_delay(parse_state *ps, const char *flag, const char *v, char *err,
                             size_t err_size)
{
    uint32_t *d = &ps->out->restart_delay_s;
    if (parse_u32(v, d) != 0 || *d > 86400) {
        snprintf(err, err_size, "%s needs seconds 0..86400, not '%.64s'", flag, v);
        return -1;
    }
    return 0;
}

static int set_exe(parse_state *ps, const char *flag, const char *v, char *err, size_t err_size)
{
    if (v[0] == '\0' || strlen(v) >= sizeof ps->out->exe) {
        snprintf(err, err_size, "%s needs the path of an iocp-service executable", flag);
        return -1;
    }
    snprintf(ps->out->exe, sizeof ps->out->exe, "%s", v);
    return 0;
}

/* The options that are not server options: which commands take each, and its setter. */
static const struct {
    const char *flag;
    uint32_t commands;
    opt_setter set;
} command_opts[] = {
    {"--name", NAME_CMDS, set_name},
    {"--timeout", WAIT_CMDS, set_timeout},
    {"--display-name", FOR(SVC_CMD_INSTALL), set_display_name},
    {"--description", FOR(SVC_CMD_INSTALL), set_description},
    {"--account", FOR(SVC_CMD_INSTALL), set_account},
    {"--password", FOR(SVC_CMD_INSTALL), set_password},
    {"--start", FOR(SVC_CMD_INSTALL), set_start},
    {"--restart-delay", FOR(SVC_CMD_INSTALL), set_restart_delay},
    {"--exe", FOR(SVC_CMD_UPGRADE), set_exe},
};

/* Options without a value: which commands take each, and the flag they set. */
static const struct {
    const char *flag;
    uint32_t commands;
    size_t offset; /* an int in svc_options */
} command_switches[] = {
    {"--allow-unsafe-location", FOR(SVC_CMD_INSTALL) | FOR(SVC_CMD_UPGRADE),
     offsetof(svc_options, allow_unsafe_location)},
    {"--take-over", FOR(SVC_CMD_RUN), offsetof(svc_options, take_over)},
};

/* The command word (argv[1]): 0, 1 when it was a help flag (nothing more to parse), or -1
 * with err set. */
static int parse_command(const char *word, svc_options *out, char *err, size_t err_size)
{
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0 || strcmp(word, "/?") == 0) {
        out->command = SVC_CMD_HELP;
        return 1;
    }
    if (strcmp(word, "--version") == 0) {
        out->command = SVC_CMD_VERSION;
        return 1;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(word, commands[c].word) == 0)
            out->command = commands[c].cmd;
    if (out->command == SVC_CMD_NONE) {
        snprintf(err, err_size, "unknown command '%.64s'", word);
        return -1;
    }
    return 0;
}

/* One option at argv[*i] (its value may take the next one); 0, or -1 with err set. */
static int parse_option(int argc, char **argv, int *i, parse_state *ps, char *err, size_t err_size)
{
    const char *arg = argv[*i];
    uint32_t me = FOR(ps->out->command);
    size_t fl = 0;
    const char *v;
    if (strncmp(arg, "--", 2) != 0) {
        snprintf(err, err_size, "unexpected argument '%.64s'", arg);
        return -1;
    }
    if (strcmp(arg, "--single-process") == 0) {
        /* Supervision's opt-out: stored as Supervised = 0, which --supervised turns back. */
        fl = strlen(arg);
        if (!(me & SERVER_CMDS))
            goto not_here;
        for (size_t k = 0; k < svc_server_opt_count; k++)
            if (strcmp(svc_server_opts[k].flag, "--supervised") == 0) {
                ps->out->server_given |= (uint64_t)1 << k;
                return svc_server_opt_set(&ps->out->server, &svc_server_opts[k], "0", err,
                                          err_size) != 0
                           ? -1
                           : 0;
            }
    }
    for (size_t k = 0; k < svc_server_opt_count; k++) {
        const svc_server_opt *def = &svc_server_opts[k];
        if (!is_flag(arg, def->flag, &fl))
            continue;
        if (!(me & SERVER_CMDS))
            goto not_here;
        ps->out->server_given |= (uint64_t)1 << k; /* configure changes only these */
        if (def->kind == SVC_OPT_SWITCH) {
            if (arg[fl] != '\0') {
                snprintf(err, err_size, "%s takes no value", def->flag);
                return -1;
            }
            return svc_server_opt_set(&ps->out->server, def, "1", err, err_size) != 0 ? -1 : 0;
        }
        if ((v = take_value(argc, argv, i, def->flag, fl, err, err_size)) == NULL)
            return -1;
        if (def->kind == SVC_OPT_SECRET) {
            ps->out->tls_password_given = 1;
            if (strcmp(v, "-") == 0) {
                ps->out->tls_password_given = 2; /* main reads it from standard input */
                return 0;
            }
        }
        return svc_server_opt_set(&ps->out->server, def, v, err, err_size) != 0 ? -1 : 0;
    }
    for (size_t k = 0; k < sizeof command_opts / sizeof command_opts[0]; k++) {
        const char *flag = command_opts[k].flag;
        if (!is_flag(arg, flag, &fl))
            continue;
        if (!(me & command_opts[k].commands))
            goto not_here;
        if ((v = take_value(argc, argv, i, flag, fl, err, err_size)) == NULL)
            return -1;
        return command_opts[k].set(ps, flag, v, err, err_size) != 0 ? -1 : 0;
    }
    for (size_t k = 0; k < sizeof command_switches / sizeof command_switches[0]; k++) {
        if (strcmp(arg, command_switches[k].flag) != 0)
            continue;
        fl = strlen(arg);
        if (!(me & command_switches[k].commands))
            goto not_here;
        int on = 1;
        memcpy((char *)ps->out + command_switches[k].offset, &on, sizeof on);
        return 0;
    }
    snprintf(err, err_size, "unknown option '%.64s'", arg);
    return -1;
not_here:
    snprintf(err, err_size, "'%s' does not take %.*s", command_word(ps->out->command), (int)fl,
             arg);
    return -1;
}

int svc_options_parse(int argc, char **argv, svc_options *out, char *err, size_t err_size)
{
    svc_options_init(out);
    err[0] = '\0';
    if (argc < 2)
        return 0; /* SVC_CMD_NONE: usage */
    int rc = parse_command(argv[1], out, err, err_size);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    parse_state ps = {out, 0, 0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            out->command = SVC_CMD_HELP;
            return 0;
        }
        if (parse_option(argc, argv, &i, &ps, err, err_size) != 0)
            return -1;
    }
    /* configure: the PFX may be the one stored (configure.c checks after the overlay). */
    if (out->tls_password_given && out->server.tls_pfx[0] == '\0' &&
        out->command != SVC_CMD_CONFIGURE) {
        snprintf(err, err_size, "--tls-password is the password of --tls-pfx, which is missing");
        return -1;
    }
    if ((out->command == SVC_CMD_RUN || out->command == SVC_CMD_INSTALL) &&
        svc_server_options_check(&out->server, err, err_size) != 0)
        return -1;
    if (out->command == SVC_CMD_INSTALL) {
        /* The service's own virtual account: its files and keys are its alone, not shared
         * with every service that runs as LocalService. */
        if (!ps.account_set)
            snprintf(out->account, sizeof out->account, "NT SERVICE\\%s", out->name);
        if (!ps.display_set)
            snprintf(out->display_name, sizeof out->display_name, "IOCP echo server (%s)",
                     out->name);
        if (out->description[0] == '\0')
            snprintf(out->description, sizeof out->description,
                     "TCP echo server on I/O completion ports. Parameters are under "
                     "HKLM\\SYSTEM\\CurrentControlSet\\Services\\%s\\Parameters.",
                     out->name);
    }
    return 0;
}

/* "  --flag N   help", the help wrapped at 100 columns under its first line, and on a line
 * of its own when the flag is too long for the column. */
static void print_help(FILE *to, const char *left, const char *help)
{
    enum { INDENT = 24, WIDTH = 100 };
    if (strlen(left) > INDENT - 3)
        fprintf(to, "  %s\n%*s", left, INDENT, "");
    else
        fprintf(to, "  %-*s ", INDENT - 3, left);
    int col = INDENT;
    const char *p = help;
    while (*p != '\0') {
        size_t word = strcspn(p, " ");
        if (col > INDENT && col + 1 + (int)word > WIDTH) {
            fprintf(to, "\n%*s", INDENT, "");
            col = INDENT;
        } else if (col > INDENT) {
            fputc(' ', to);
            col++;
        }
        fprintf(to, "%.*s", (int)word, p);
        col += (int)word;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', to);
}

void svc_usage(FILE *to)
{
    fprintf(to,
            "usage: iocp-service <command> [options]\n"
            "\n"
            "commands:\n"
            "  run         run the server in this console; Ctrl+C or Ctrl+Break stops it\n"
            "  install     register the Windows service (administrator)\n"
            "  uninstall   stop and remove the service, its parameters and Event Log source\n"
            "  start       start the service and wait until it is running\n"
            "  stop        stop the service and wait until it has stopped\n"
            "  status      the service's state and, while running, its live statistics\n"
            "  --version   print the version (iocp-service X.Y.Z) and exit\n"
            "  drain       the running instance (console or service) stops as a stop does:\n"
            "              /readyz says 503 for --unready-delay, then the listener closes\n"
            "              and open connections finish (through the status pipe: local,\n"
            "              the instance's account or an administrator only)\n"
            "  list        every instance on this machine (services and consoles): state, port\n"
            "  configure   change the installed service's options (administrator): stores\n"
            "              the ones given, then the running service applies the timeouts,\n"
            "              per-IP limit, drain timeout, unready delay and log limits at once\n"
            "              (SERVICE_CONTROL_PARAMCHANGE); it says which need a restart\n"
            "  upgrade     a service (unless --single-process) starts a new worker process\n"
            "              on its listener, then the old one drains: no connect refused\n"
            "\n"
            "every command:\n"
            "  --name NAME           service / instance name (default %s)\n"
            "\n"
            "run, install and configure (install and configure store them under the service's\n"
            "Parameters key):\n",
            SVC_DEFAULT_NAME);
    for (size_t i = 0; i < svc_server_opt_count; i++) {
        const svc_server_opt *d = &svc_server_opts[i];
        char left[40];
        static const char *const arg[] = {"N", "TEXT", "MODE", "THUMBPRINT", "STORE", "TEXT", ""};
        snprintf(left, sizeof left, "%s%s%s", d->flag, arg[d->kind][0] ? " " : "", arg[d->kind]);
        print_help(to, left, d->help);
    }
    print_help(to, "--single-process",
               "the service as one process (Supervised = 0): no `upgrade`, a crash restarts "
               "through the SCM's failure actions and refuses connects until then");
    fprintf(to,
            "\n"
            "install:\n"
            "  --display-name TEXT   name shown in services.msc\n"
            "  --description TEXT    description shown in services.msc\n"
            "  --start demand|auto|delayed   start type (default demand)\n"
            "  --account NAME        account to run as (default %s, the service's\n"
            "                        own virtual account); for an account with a\n"
            "                        password, install asks for it (echo off) on a console,\n"
            "                        or reads one line of standard input when that is not one\n"
            "  --password TEXT       discouraged: other programs, audit logs and shell history\n"
            "                        see a command line; leave it out to be asked\n"
            "  --allow-unsafe-location  install even if users other than administrators may\n"
            "                        change the executable, its folder or a folder above it\n"
            "                        (warns instead)\n"
            "  --restart-delay N     after a failure (a crash, or a stop with an error) the\n"
            "                        service restarts after N seconds (default %d), then 5 s,\n"
            "                        30 s, and 60 s after every later failure (each at least N);\n"
            "                        an hour without a failure starts the count again\n"
            "\n"
            "run:\n"
            "  --take-over           take over from the running instance of --name: start on\n"
            "                        its listening socket, its UDP socket (--udp, --udp-only)\n"
            "                        and its admin listener (--admin-port), each on the same\n"
            "                        port; then it stops accepting and receiving, lets its\n"
            "                        connections run for up to its drain timeout and exits;\n"
            "                        no connect or health check is refused, no datagram lost\n"
            "                        (through the status pipe)\n"
            "\n"
            "upgrade (a service installed without --single-process):\n"
            "  --exe PATH            the new worker's executable (default: the installed one,\n"
            "                        for a restart with the stored options); checked as\n"
            "                        install checks its own (--allow-unsafe-location warns)\n"
            "                        the new worker starts on the listener (and the UDP socket\n"
            "                        and admin listener) and reports ready, then the old one\n"
            "                        stops accepting and receiving and drains; if the new\n"
            "                        one fails its start, the old one serves on (exit 2)\n"
            "\n"
            "start, stop, uninstall, upgrade:\n"
            "  --timeout N           seconds to wait for the state (default: start 30,\n"
            "                        stop the drain timeout + 30, upgrade 30 for the ready)\n"
            "\n"
            "exit codes: 0 ok (status: running), 1 usage, 2 cannot start, 3 already running,\n"
            "4 needs administrator, 5 no such service (install: exists), 6 timed out,\n"
            "7 not running (status), 8 other system error, 9 install refused: others may\n"
            "change the executable or its folder, 70 crashed\n",
            SVC_DEFAULT_ACCOUNT, SVC_DEFAULT_RESTART_S);
}
