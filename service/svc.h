/*
 * svc.h: the private header of iocp-service, and the only place its Win32 headers are
 * included (winsock2 before windows, as in the engine).
 *
 * Files, one job each:
 *   main.c          command line to command: the dispatch
 *   options.c       command-line options: parsing, validation, usage text
 *   params.c        the server options stored under the service's Parameters registry key
 *   console.c       `run`: the server in the foreground, Ctrl+C / Ctrl+Break stop it
 *   svc.c           the service process: dispatcher, ServiceMain, control handler
 *   host.c          what console and service share: mutex, engine, status pipe, drain, events
 *   scm.c           install / uninstall / start / stop / status (the SCM client side)
 *   secure.c        install's checks: the executable's location, the account's password
 *   instance.c      the instance mutex and who holds it
 *   namespace.c     where the mutex lives: a private namespace, or a plain name and why
 *   status_pipe.c   the local named pipe: server (in the instance) and client (`status`)
 *   status_proto.c  the pipe's requests and answers (plain C, no Win32)
 *   log.c           log file (size cap, rotation), stderr, Event Log; rate limit per kind
 *   safefile.c      opening what the service writes: no links, trusted owner, private DACL
 *   util.c          UTF-8 / UTF-16 conversion, Win32 error text
 *   recovery.c      the failure actions install sets: restart on every failure, growing delay
 */
#ifndef IOCP_SERVICE_SVC_H
#define IOCP_SERVICE_SVC_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
/* _WIN32_WINNT and WINVER come from CMakeLists.txt, the same for every file. */
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0601
/* Windows 7: preshutdown, delayed auto-start, RegDeleteTreeW */
#error "_WIN32_WINNT 0x0601 (Windows 7) or later is needed"
#endif

#include <winsock2.h>
#include <windows.h>
#include <wincrypt.h> /* DPAPI: CryptProtectData (after windows.h) */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "iocp/iocp.h"
#include "status_proto.h"

/* ---- exit codes (the table in service/README.md; scripts depend on these numbers) ------- */

enum {
    SVC_EXIT_OK = 0,              /* done; for `status`: the service is running */
    SVC_EXIT_USAGE = 1,           /* bad command line or option value */
    SVC_EXIT_CANNOT_START = 2,    /* the server could not start: port in use, bad parameter */
    SVC_EXIT_ALREADY_RUNNING = 3, /* another instance with this name holds the mutex */
    SVC_EXIT_ACCESS_DENIED = 4,   /* needs administrator rights */
    SVC_EXIT_NAME = 5,            /* no service by that name (or, for install: it exists) */
    SVC_EXIT_TIMEOUT = 6,         /* the service did not reach the state in time */
    SVC_EXIT_NOT_RUNNING = 7,     /* `status`: installed but not running */
    SVC_EXIT_SYSTEM = 8,          /* any other Win32 failure (the message has the code) */
    SVC_EXIT_UNSAFE = 9           /* install: others may change the executable or its folder */
};

/* ---- options ---------------------------------------------------------------------------- */

#define SVC_DEFAULT_NAME      "iocp-echo"
#define SVC_DEFAULT_PORT      9000
#define SVC_DEFAULT_ACCOUNT   "NT SERVICE\\<name>" /* install fills in the name */
#define SVC_DEFAULT_DRAIN_S   10
#define SVC_DEFAULT_IDLE_S    300
#define SVC_DEFAULT_MESSAGE_S 60
#define SVC_DEFAULT_RESTART_S 1               /* the first restart; recovery.c has the rest */
#define SVC_DEFAULT_PER_IP    256             /* a quarter of the default 1,024 slots */
#define SVC_DEFAULT_SEND_CAP  (1024u * 1024u) /* see svc_server_options_init */
#define SVC_DEFAULT_LOG_MIB   16              /* log file size cap before it is rotated */
#define SVC_DEFAULT_LOG_KEEP  5               /* rotated copies kept: file.1 (newest) .. file.5 */
#define SVC_NAME_MAX          64
#define SVC_TEXT_MAX          256
#define SVC_PATH_MAX          1024

typedef enum svc_command {
    SVC_CMD_NONE = 0,
    SVC_CMD_HELP,
    SVC_CMD_RUN,
    SVC_CMD_INSTALL,
    SVC_CMD_UNINSTALL,
    SVC_CMD_START,
    SVC_CMD_STOP,
    SVC_CMD_STATUS,
    SVC_CMD_SERVICE,   /* started by the SCM (the ImagePath says so); not for people */
    SVC_CMD_VERSION,   /* --version: print "iocp-service X.Y.Z" (the project's version) */
    SVC_CMD_DRAIN,     /* drain.c: the running instance stops accepting and drains */
    SVC_CMD_LIST,      /* every instance on this machine, service or console */
    SVC_CMD_CONFIGURE, /* configure.c: store changed options, SERVICE_CONTROL_PARAMCHANGE */
    SVC_CMD_UPGRADE    /* upgrade.c: a supervised service's new worker, then the old drains */
} svc_command;

typedef enum svc_start_type {
    SVC_START_DEMAND = 0,
    SVC_START_AUTO,
    SVC_START_DELAYED
} svc_start_type;

/* What the server needs: the options of `run`, stored by `install` in the registry. */
typedef struct svc_server_options {
    uint16_t port;
    char bind[SVC_TEXT_MAX]; /* "" = dual-stack [::] */
    uint32_t max_connections;
    uint32_t max_connections_per_ip; /* 0 = no limit */
    uint32_t buffer_size;
    uint32_t buffer_pool_mib;   /* receive buffers in use at once, MiB (the engine's pool) */
    uint32_t send_queue_cap;    /* bytes; raised to what the framing needs (svc_server_config) */
    uint32_t memory_budget_mib; /* 0 = half of the physical memory */
    uint32_t workers;           /* 0 = one per processor */
    iocp_framing framing;
    uint32_t max_message;
    uint32_t idle_timeout_s;    /* 0 = none */
    uint32_t message_timeout_s; /* a framed message's first byte to its last; 0 = none */
    uint32_t send_timeout_s;    /* the peer took none of our queued bytes; 0 = none */
    uint32_t drain_timeout_s;   /* how long a stop lets connections finish */
    char log_file[SVC_PATH_MAX];
    uint32_t log_max_mib; /* the log file is rotated before it passes this size */
    uint32_t log_keep;    /* rotated copies kept; 0 = none (the full file is deleted) */
    /* TLS (server role): a PFX file and its password, or a certificate in a store by its
     * thumbprint; neither = plaintext. The password is stored DPAPI-protected (params.c). */
    char tls_pfx[SVC_PATH_MAX];
    char tls_password[SVC_TEXT_MAX]; /* plaintext only in memory, wiped after the start */
    char tls_cert[SVC_TEXT_MAX];     /* SHA-1 thumbprint: 40 hex digits, spaces allowed */
    int tls_store;                   /* svc_tls_store */
    uint32_t tls_handshake_timeout_s;
    char tls_min_version[8];          /* "1.0" | "1.1" | "1.2" (svc_tls_min_version) */
    char tls_client_ca[SVC_PATH_MAX]; /* client certificates required, chaining to these */
    char tls_revocation[8];           /* "off" | "soft" | "hard" (svc_tls_revocation) */
    /* UDP echo (the engine's UDP endpoint) on the TCP port's number as well; or alone */
    uint32_t udp;
    uint32_t udp_only;
    /* Hostile peers (iocp_config's fields of the same names; docs/reliability.md) */
    uint32_t ipv6_prefix;  /* bits of an IPv6 address that make one peer */
    uint32_t evict_idle_s; /* 0 = never evict */
    uint32_t conn_rate, conn_burst;
    uint32_t udp_rate, udp_burst, udp_byte_rate, udp_byte_burst, udp_sources, udp_total_rate;
    uint32_t udp_flow_rate;
    /* Behind a load balancer: the PROXY protocol from these CIDR ranges ("" = off), within
     * proxy_timeout_s; the admin HTTP endpoint (admin_http.c: /metrics, /healthz, /readyz)
     * on admin_port (0 = none) of admin_bind ("" = 127.0.0.1); a stop makes /readyz answer
     * 503 for unready_delay_s before the listener closes, so a balancer takes the instance
     * out of rotation while it still accepts */
    char proxy_protocol[SVC_TEXT_MAX];
    uint32_t proxy_timeout_s;
    uint32_t admin_port;
    char admin_bind[SVC_TEXT_MAX];
    uint32_t unready_delay_s;
    /* The service as a supervisor holding the listener and the server as worker processes
     * (supervisor.c): `upgrade`, and a crashed worker replaced at once */
    uint32_t supervised;
} svc_server_options;

/* Where --tls-cert is looked up. The default follows the mode: LocalMachine\My for the
 * service (install stores that), CurrentUser\My for `run` in a console. */
typedef enum svc_tls_store {
    SVC_TLS_STORE_DEFAULT = 0,
    SVC_TLS_STORE_MACHINE,
    SVC_TLS_STORE_USER
} svc_tls_store;
#define SVC_DEFAULT_TLS_HANDSHAKE_S 10

typedef struct svc_options {
    svc_command command;
    char name[SVC_NAME_MAX + 1];
    svc_server_options server;
    /* install */
    char display_name[SVC_TEXT_MAX];
    char description[SVC_TEXT_MAX * 2];
    svc_start_type start_type;
    char account[SVC_TEXT_MAX];
    char password[SVC_TEXT_MAX];
    int password_given;        /* --password was on the command line (discouraged) */
    int tls_password_given;    /* 1: --tls-password TEXT; 2: "-" (read like --password) */
    int allow_unsafe_location; /* install from a folder others may write: warn, not refuse */
    uint32_t restart_delay_s;
    /* start / stop / uninstall: how long to wait for the state; 0 = the default */
    uint32_t timeout_s;
    int take_over; /* run --take-over: start on the running instance's listener (takeover.c) */
    uint64_t server_given;  /* bit k: svc_server_opts[k] was on the command line (configure) */
    char exe[SVC_PATH_MAX]; /* upgrade --exe: the new worker's executable ("" = installed) */
    /* A supervised service's worker (worker_proc.c): the listener it starts on (NULL with
     * --udp-only), and with --udp / --udp-only the UDP socket, with --admin-port the admin
     * listener, all held by the supervisor (NULL otherwise) */
    const iocp_listener_export *inherit;
    const iocp_udp_export *inherit_udp;
    const iocp_listener_export *inherit_admin;
} svc_options;

/* One server option: its flag, its registry value, its range. Shared by the command line and
 * the registry so both validate the same way. */
typedef enum svc_opt_kind {
    SVC_OPT_NUMBER,  /* stored as REG_DWORD */
    SVC_OPT_TEXT,    /* REG_SZ */
    SVC_OPT_FRAMING, /* REG_SZ: raw | line | length */
    SVC_OPT_THUMB,   /* REG_SZ: a certificate's SHA-1 thumbprint (40 hex digits, spaces) */
    SVC_OPT_STORE,   /* REG_SZ: LocalMachine | CurrentUser ("" = the mode's default) */
    SVC_OPT_SECRET,  /* REG_BINARY: DPAPI-protected (machine scope); never printed */
    SVC_OPT_SWITCH   /* REG_DWORD 0 or 1; on the command line a flag without a value */
} svc_opt_kind;

typedef struct svc_server_opt {
    const char *flag;     /* "--port" */
    const wchar_t *value; /* L"Port" under Parameters */
    svc_opt_kind kind;
    uint32_t min, max;   /* numbers: range; text: max length in bytes */
    size_t offset, size; /* the field in svc_server_options */
    const char *help;
} svc_server_opt;

extern const svc_server_opt svc_server_opts[];
extern const size_t svc_server_opt_count;

void svc_server_options_init(svc_server_options *o);
void svc_options_init(svc_options *o);
/* Sets one server option from text, validated. Returns 0, or -1 with err set. */
int svc_server_opt_set(svc_server_options *o, const svc_server_opt *def, const char *text,
                       char *err, size_t err_size);
/* Numbers only (the registry's REG_DWORD path). */
int svc_server_opt_set_number(svc_server_options *o, const svc_server_opt *def, uint32_t v,
                              char *err, size_t err_size);
/* The option's value as text ("9000", "line", a path). */
void svc_server_opt_get(const svc_server_options *o, const svc_server_opt *def, char *out,
                        size_t size);
/* The rules between options: --tls-pfx and --tls-cert exclude each other, --tls-password
 * needs --tls-pfx, --tls-store needs --tls-cert. 0, or -1 with err set. */
int svc_server_options_check(const svc_server_options *o, char *err, size_t err_size);
const char *svc_tls_store_name(int store);
/* --tls-min-version's text as the engine's IOCP_TLS_1_x, or 0 when it is none of 1.0, 1.1,
 * 1.2. */
uint16_t svc_tls_min_version(const char *text);
/* --tls-revocation's text as IOCP_TLS_REVOCATION_*, or -1 when it is none of off, soft, hard. */
int svc_tls_revocation(const char *text);
/* 1 for letters, digits, '.', '_', '-', 1 to SVC_NAME_MAX characters. */
int svc_name_valid(const char *name);

/* Parses argv[1..]; returns 0, or -1 with err set (exit SVC_EXIT_USAGE). */
int svc_options_parse(int argc, char **argv, svc_options *out, char *err, size_t err_size);
void svc_usage(FILE *to);
const char *svc_start_type_name(svc_start_type t);

/* The engine configuration for these options (log callback set by the caller). */
void svc_server_config(const svc_server_options *o, iocp_config *config);
/* The machine's physical memory in bytes (GlobalMemoryStatusEx); 0 if unknown. */
uint64_t svc_physical_memory(void);
/* The memory budget: the most that hostile peers may make the server hold. The worst case
 * is max_connections x (send queue cap + the largest message the decoder assembles (line
 * and length framing) + buffer_size). Returns 0 when it fits in the budget (memory_budget_mib,
 * or half of `physical` when that is 0; no check when both are 0), or -1 with err naming the
 * numbers and what to change. `run`, the service and `install` all refuse such a
 * configuration (exit code 2). */
int svc_server_memory_check(const svc_server_options *o, uint64_t physical, char *err,
                            size_t err_size);

/* ---- registry parameters ------------------------------------------------------------------ */

/* HKLM\SYSTEM\CurrentControlSet\Services\<name>\Parameters */
void svc_params_path(const char *name, wchar_t *out, size_t count);
/* Writes every server option under root\path (created if missing); the TLS password only as a
 * DPAPI blob (REG_BINARY TlsPasswordProtected), and only with a PFX (else the value is
 * removed). Win32 code. */
DWORD svc_params_write(HKEY root, const wchar_t *path, const svc_server_options *o);
/* Reads them over the defaults (the password decrypted), then svc_server_options_check.
 * Missing values keep the default. A value of the wrong type or
 * out of range gives ERROR_INVALID_PARAMETER with err saying which; a missing key gives
 * ERROR_FILE_NOT_FOUND. */
DWORD svc_params_read(HKEY root, const wchar_t *path, svc_server_options *o, char *err,
                      size_t err_size);
/* Creates root\path (or takes the existing key) with a protected DACL: LocalSystem and
 * Administrators full control, NT SERVICE\<service> read, nobody else: the protected TLS
 * password (machine-scope DPAPI: any local process could decrypt it) is not for users to
 * read. Win32 code. */
DWORD svc_params_create_private(HKEY root, const wchar_t *path, const char *service);
/* The password blob: DPAPI, machine scope, with this program's entropy. Win32 code; *out is
 * LocalFree'd by the caller. */
DWORD svc_secret_protect(const char *text, BYTE **out, DWORD *out_size);
/* Back to text (wiped on failure). Win32 code. */
DWORD svc_secret_unprotect(const BYTE *blob, DWORD size, char *out, size_t out_size);
/* Removes root\path and everything under it; a missing key is success. */
DWORD svc_params_delete(HKEY root, const wchar_t *path);

/* ---- the instance mutex ------------------------------------------------------------------- */

typedef enum svc_lock_result {
    SVC_LOCK_OK = 0,
    SVC_LOCK_ABANDONED, /* ours now; the previous holder ended without releasing it */
    SVC_LOCK_HELD,      /* another process holds it: holder says who */
    SVC_LOCK_ERROR      /* *sys_code says why */
} svc_lock_result;

/* What the instance mutex is called, and why (namespace.c). */
#define SVC_SID_TEXT_MAX 200 /* "S-1-5-21-..." with every subauthority a SID may have */
typedef enum svc_ns_state {
    SVC_NS_NOT_TRIED = 0,
    SVC_NS_READY,       /* the private namespace is created or opened */
    SVC_NS_UNAVAILABLE, /* no boundary descriptor (Wine), or the functions are missing */
    SVC_NS_FAILED       /* creating and opening it failed: ns_code */
} svc_ns_state;

typedef struct svc_instance_names {
    int use_namespace;                             /* a private namespace applies (boundary_sid) */
    int in_namespace;                              /* mutex is inside it */
    wchar_t boundary_sid[SVC_SID_TEXT_MAX];        /* the one SID the boundary names */
    wchar_t alias[32];                             /* the namespace's alias prefix */
    wchar_t namespace_sddl[SVC_SID_TEXT_MAX + 64]; /* who may open it */
    wchar_t plain[SVC_NAME_MAX + 240];             /* the name without a namespace */
    wchar_t mutex[SVC_NAME_MAX + 240];             /* the name to use */
    char note[600]; /* why the plain name is used (for the log); "" otherwise */
} svc_instance_names;

/* The decision, from what the caller found out: service_mode (this process is the service
 * of that name), the token's user SID, the service SID when the token holds it (else NULL),
 * and what came of trying the namespace (SVC_NS_NOT_TRIED before trying: out->use_namespace
 * says whether to). Service: boundary = the service SID, else Global\iocp-service-<name>;
 * console: boundary = the user SID, else Local\iocp-service-<name>-<user SID>. */
void svc_instance_plan(const char *name, int service_mode, const wchar_t *user_sid,
                       const wchar_t *service_sid, svc_ns_state ns, DWORD ns_code,
                       svc_instance_names *out);
/* Creates (create = 1) or opens the plan's private namespace. NULL with *state and *code
 * saying why not (never calls past a NULL boundary descriptor). */
HANDLE svc_instance_open_namespace(const svc_instance_names *plan, int create, svc_ns_state *state,
                                   DWORD *code);
void svc_instance_close_namespace(HANDLE ns);
/* 1 when this system has private namespaces (a boundary descriptor can be made). */
int svc_instance_private_namespaces(void);
/* The process the SCM runs as the service of this name (not stopped), or 0. */
DWORD svc_instance_service_pid(const char *name);

typedef struct svc_instance {
    HANDLE mutex;
    HANDLE ns; /* the private namespace it is in, or NULL */
    int in_namespace;
    wchar_t name[SVC_NAME_MAX + 240]; /* the mutex's name (also when refused) */
    char note[600];                   /* why a plain name, for the log; "" otherwise */
} svc_instance;

/* Takes the instance mutex (svc_instance_plan) without waiting. SVC_LOCK_HELD also when the mutex
 * exists and its security keeps this account out (*sys_code ERROR_ACCESS_DENIED). Must be released
 * by the same thread. */
svc_lock_result svc_instance_lock(svc_instance *inst, const char *name, DWORD *sys_code);
void svc_instance_unlock(svc_instance *inst);
/* For a refused second instance: "process 1234 (service, account NT SERVICE\x,
 * listening on [::]:9000)", or, when no trusted instance answers, who owns the name and how to
 * free it. Waits up to 2 s for a holder that is still starting. */
void svc_instance_describe_holder(const char *name, char *out, size_t size);
/* Asks the instance of this name over its status pipe (req: "INFO" or "STATS"). The answer
 * counts only from a pipe whose owner is the instance mutex's owner, or whose server is the
 * service's process; otherwise -1 with err saying who answered. */
int svc_instance_ask(const char *name, const char *req, uint32_t timeout_ms, svc_status_info *info,
                     char *err, size_t err_size);
/* The same, with the answer's text kept in answer (NUL-terminated), for the keys
 * svc_status_info has no field for (takeover.c). */
int svc_instance_ask_raw(const char *name, const char *req, uint32_t timeout_ms,
                         svc_status_info *info, char *answer, size_t answer_size, char *err,
                         size_t err_size);
/* The plain name (no namespace) this process would use for the instance mutex. */
void svc_instance_mutex_name(const char *name, wchar_t *out, size_t count);

/* ---- status pipe ---------------------------------------------------------------------------- */

/* Answers one request: writes the answer into resp (at most resp_size bytes) and returns its
 * length; *close_after = 1 makes the server close the pipe once the answer is read. */
typedef size_t (*svc_pipe_handler)(void *user, const char *req, size_t len, char *resp,
                                   size_t resp_size, int *close_after);

typedef struct svc_pipe_server svc_pipe_server;

/* Who serves a pipe the client opened: its process and the pipe's owner. */
typedef struct svc_pipe_peer {
    DWORD pid; /* 0 if unknown */
    int has_owner;
    BYTE owner[SECURITY_MAX_SID_SIZE];
} svc_pipe_peer;
/* A client's session with the status pipe ends this long after it connected, whatever it
 * sends: eight clients that keep asking cannot lock `status` out for longer. */
#define SVC_PIPE_SESSION_MS 10000

void svc_pipe_name(const char *name, wchar_t *out, size_t count);
/* Creates the pipe's instances and its thread. Win32 code (ERROR_PIPE_BUSY / ACCESS_DENIED:
 * another process already owns that pipe name). */
DWORD svc_pipe_server_start(const char *name, svc_pipe_handler fn, void *user,
                            svc_pipe_server **out);
void svc_pipe_server_stop(svc_pipe_server *s);
/* Inside a handler: the process id of the client asking (0 if the system does not say). */
DWORD svc_pipe_client_pid(void);
/* Client: one request, one answer (NUL-terminated in resp), within timeout_ms; *peer (may be
 * NULL) says who answered. Win32 code. */
DWORD svc_pipe_request(const char *name, const char *req, size_t len, char *resp, size_t resp_size,
                       size_t *resp_len, uint32_t timeout_ms, svc_pipe_peer *peer);

/* ---- logging -------------------------------------------------------------------------------- */

/* name: the Event Log source (NULL = no Event Log); to_stderr: console mode. */
void svc_log_init(const char *name, int to_stderr);
/* The log file's size cap in bytes (0 = none) and how many rotated copies to keep; for the
 * file opened next. Default: SVC_DEFAULT_LOG_MIB MiB, SVC_DEFAULT_LOG_KEEP. */
void svc_log_set_limits(uint64_t max_bytes, uint32_t keep);
/* Opens (appends to) the log file through svc_file_open_checked, in a folder opened by
 * svc_dir_open_checked (made if missing). Win32 code; why says what was refused and why. */
DWORD svc_log_open_file_ex(const char *path, char *why, size_t why_size);
DWORD svc_log_open_file(const char *path);
/* Writes the summaries of suppressed engine lines whose second has passed (host tick). */
void svc_log_flush(void);
void svc_log_close(void);
void svc_log(iocp_log_level level, const char *fmt, ...)
#if defined(__MINGW_PRINTF_FORMAT) /* MinGW's stdio is its own (C99 formats) */
    __attribute__((format(__MINGW_PRINTF_FORMAT, 2, 3)))
#elif defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The engine's log callback: lines caused by peers, so rate-limited per kind (below);
 * svc_log and svc_event (start, stop, failures) never are. */
void svc_log_engine(void *user, iocp_log_level level, const char *message);

/* The rate limit of engine lines: at most SVC_LOG_BURST lines of one kind per second; the
 * rest are counted and summed up in one line ("N similar messages suppressed in the last
 * S s") before the next line of that kind, or within a second by svc_log_flush. A message's
 * kind is its words that contain no digit, and its level: "protocol error from
 * 10.0.0.7:4411: line longer than 16 bytes; closing it" is of the kind "protocol error from
 * line longer than bytes; closing it", whatever the peer and the numbers. A fixed table of
 * kinds keeps the memory bounded; kinds beyond it share its last slot. */
#define SVC_LOG_BURST     10
#define SVC_LOG_WINDOW_MS 1000u
#define SVC_LOG_KINDS     32

typedef struct svc_log_kind {
    uint64_t key; /* 0 = free */
    iocp_log_level level;
    uint64_t window_ms;     /* start of the current second */
    uint32_t lines;         /* written in it */
    uint64_t suppressed;    /* since the last summary */
    uint64_t first_dropped; /* when the first of them was dropped */
    uint64_t used_ms;       /* last seen: the least recently used free slot is reused */
    char sample[160];       /* the last suppressed message */
} svc_log_kind;

typedef struct svc_ratelimit {
    svc_log_kind kinds[SVC_LOG_KINDS];
} svc_ratelimit;

uint64_t svc_log_kind_key(iocp_log_level level, const char *message);
/* 1: write the message; 0: suppressed (counted). When *summary is not empty, write it first
 * (the kind's earlier lines that were suppressed). */
int svc_ratelimit_pass(svc_ratelimit *rl, iocp_log_level level, const char *message,
                       uint64_t now_ms, char *summary, size_t summary_size);
/* Summaries of the kinds whose second has passed (every kind if all) with lines suppressed:
 * emit(user, level, text) for each. */
void svc_ratelimit_flush(svc_ratelimit *rl, uint64_t now_ms, int all,
                         void (*emit)(void *user, iocp_log_level level, const char *text),
                         void *user);

/* ---- files the service writes (safefile.c) ------------------------------------------------ */

/* Why a file (want_dir 0) or folder (1) with these attributes, hard-link count and owner must
 * not be written by the service, or NULL (then *code is NO_ERROR). self: this process's
 * account. Trusted owners: LocalSystem, Administrators, TrustedInstaller, self. *code: the
 * Win32 code to report (ERROR_REPARSE_POINT_ENCOUNTERED 4395, ERROR_TOO_MANY_LINKS,
 * ERROR_INVALID_OWNER, ERROR_DIRECTORY). */
const char *svc_file_refusal(DWORD attributes, DWORD links, PSID owner, PSID self, int want_dir,
                             DWORD *code);
/* svc_file_refusal on an open handle (opened with READ_CONTROL and FILE_READ_ATTRIBUTES).
 * Win32 code; why says what was wrong. */
DWORD svc_file_check(HANDLE h, int want_dir, char *why, size_t why_size);
/* The DACL (SDDL) of a file (folder 0) or log folder (1) the service creates: system and
 * administrators, and service_sid (NT SERVICE\<name>) when given, else user_sid. */
void svc_private_file_sddl(int folder, const wchar_t *user_sid, const wchar_t *service_sid,
                           wchar_t *out, size_t count);
/* Opens path (never through a reparse point) with access (plus FILE_READ_ATTRIBUTES,
 * READ_CONTROL, SYNCHRONIZE), sharing read, write and delete, and checks it; a new file gets
 * a protected DACL: system, administrators, this account. INVALID_HANDLE_VALUE with *code
 * and why on failure. */
HANDLE svc_file_open_checked(const wchar_t *path, DWORD access, DWORD disposition, DWORD *code,
                             char *why, size_t why_size);
/* Opens a folder to hold while writing in it (it cannot be renamed meanwhile) and checks it;
 * a missing one is made (one level) with a protected DACL: system and administrators full,
 * this account modify, nobody else (*created = 1). */
HANDLE svc_dir_open_checked(const wchar_t *dir, int *created, DWORD *code, char *why,
                            size_t why_size);
/* An Event Log event (message id from messages.mc, inserts %2.. after the service name as
 * %1), and the same text as a log line. */
void svc_event(iocp_log_level level, DWORD message_id, const char *text);

DWORD svc_eventlog_register(const char *name, const wchar_t *exe_path);
DWORD svc_eventlog_unregister(const char *name);

/* ---- pieces run by main ------------------------------------------------------------------- */

int svc_console_run(svc_options *opt); /* wipes opt's TLS password once started */
int svc_service_dispatch(const svc_options *opt);
int svc_scm_install(const svc_options *opt);
int svc_scm_uninstall(const svc_options *opt);
int svc_scm_start(const svc_options *opt);
int svc_scm_stop(const svc_options *opt);
int svc_scm_status(const svc_options *opt);
/* start_report.c: after a failed start, the cause and the fix to stderr (the Parameters
 * value that is wrong and what it should be, the port and how to find its holder, the log
 * file); and notes for a service made without `install` (no Parameters key: defaults; no
 * Event Log source: how to add it). */
void svc_start_explain(const char *name, DWORD win32_exit);
void svc_setup_notes(const char *name);
/* status_config.c: for `status`, the service's start type, account, command, version, log
 * file and the options that differ from the defaults (svc: opened with SERVICE_QUERY_CONFIG). */
void svc_print_config(SC_HANDLE svc, const char *name);
/* list.c: `list`, every instance on this machine (services whose command runs this program,
 * consoles found by their status pipes) with its state, process and address. */
int svc_list(const svc_options *opt);

/* ---- install's checks (secure.c) --------------------------------------------------------- */

/* Whether anyone but SYSTEM, Administrators, TrustedInstaller (and CREATOR OWNER) may change
 * the file (folder = 0) or folder (1) that sd describes: by an allow entry with a writing
 * right, or by owning it. 1 with who saying who and how ("BUILTIN\Users may change it (add
 * files)"), 0 if nobody else, -1 if sd cannot be read. */
int svc_sd_writable_by_others(PSECURITY_DESCRIPTOR sd, int folder, char *who, size_t who_size);
/* folder for svc_sd_writable_by_others, and a step of the executable's path. A folder above
 * the executable's own counts only the rights that replace what is below it (delete or
 * rename a child, change its permissions or owner), not adding a folder (C:\ allows that). */
typedef enum svc_location_kind {
    SVC_LOCATION_FILE = 0,   /* the executable */
    SVC_LOCATION_FOLDER = 1, /* its folder: adding a file (a DLL beside it) counts too */
    SVC_LOCATION_ANCESTOR = 2
} svc_location_kind;
typedef struct svc_location_entry {
    const wchar_t *path;
    svc_location_kind kind;
    DWORD attributes; /* FILE_ATTRIBUTE_REPARSE_POINT: refused, whoever owns it */
    PSECURITY_DESCRIPTOR sd;
} svc_location_entry;
/* The verdict on the executable, its folder and every folder above (in that order): the
 * first step that is a reparse point or that others may change. 0 safe; 1 unsafe and -1
 * unreadable, both with msg saying which path and why. */
int svc_location_verdict(const svc_location_entry *entries, size_t count, char *msg,
                         size_t msg_size);
/* The same, read from the file system for the executable's path. */
int svc_check_exe_location(const wchar_t *exe, char *msg, size_t msg_size);
/* 1 for the accounts that need no password: LocalSystem, LocalService, NetworkService (with
 * or without NT AUTHORITY\ or .\), NT SERVICE\<name>, group managed accounts (name$). */
int svc_account_is_builtin(const char *account);
/* 1 for the accounts CreateServiceW must get a NULL password for: virtual accounts
 * (NT SERVICE\<name>) and managed service accounts (name$). */
int svc_account_password_null(const char *account);
/* The account's password from standard input: asked for with echo off on a console, one
 * line otherwise. 0, or -1 with err set. */
int svc_get_password(const char *account, char *out, size_t size, char *err, size_t err_size);
/* Any other secret: secret_get (common/secret_input.h), whose `who` ("the PFX file Y") names
 * it in the prompt and in the errors. */

/* ---- the host: what console and service share --------------------------------------------- */

typedef struct svc_admin svc_admin;

/* Called between start steps and about every 500 ms while stopping (service checkpoints). */
typedef void (*svc_progress_fn)(void *user);

typedef struct svc_host {
    svc_options opt;
    const char *mode; /* "console" or "service" */
    svc_instance instance;
    int locked;
    iocp_engine *engine;
    svc_pipe_server *pipe;
    uint64_t started_ms;
    uint64_t summary_ms;           /* when the last protocol-error summary was taken */
    uint64_t summary_errors;       /* protocol_errors at that moment */
    volatile LONG draining;        /* 1 once the stop began (the pipe reports it) */
    volatile LONG drain_requested; /* `iocp-service drain` asked for a stop (drain.c) */
    svc_admin *admin;              /* the admin HTTP endpoint, NULL without --admin-port */
    /* take-over (takeover.c): the listener this instance started on and whom it came from;
     * the successor this one exported to, and whether it has taken over */
    iocp_listener_export inherited;
    DWORD predecessor_pid;
    DWORD successor_pid;
    volatile LONG handed_over;
    /* what the predecessor handed over besides (the successor's side: has_* says which blob
     * is filled; the running instance's side: exported, SVC_TAKEOVER_* bits) */
    int has_inherited, has_inherited_udp, has_inherited_admin;
    iocp_udp_export inherited_udp;
    iocp_listener_export inherited_admin;
    volatile LONG exported;
    char failure[700]; /* why svc_host_start failed ("" after a start) */
} svc_host;

/* Starts everything: log file, mutex, engine, status pipe. Returns SVC_EXIT_OK, or an exit
 * code with *win32_exit set (the code a service reports with SERVICE_STOPPED) and the reason
 * already logged and written to the Event Log. */
int svc_host_start(svc_host *h, const svc_options *opt, const char *mode, svc_progress_fn progress,
                   void *user, DWORD *win32_exit);
/* Periodic work while running (about once a second): the protocol-error summary. Returns 0,
 * or -1 if the engine has stopped on its own. */
int svc_host_tick(svc_host *h);
/* What the status pipe's STATS answer says about this instance (the worker's report too). */
void svc_host_info(svc_host *h, svc_status_info *info);
/* The TCP listener's address, or the UDP endpoint's with --udp-only. */
const char *svc_host_address(const svc_host *h);
/* Drains (stops accepting, lets connections finish, up to the drain timeout), then releases
 * everything, logs "stopped", releases the mutex. Same thread as svc_host_start. */
void svc_host_stop(svc_host *h, svc_progress_fn progress, void *user);

/* ---- behind a load balancer: metrics.c, admin_http.c, drain.c ------------------------------ */

/* What /metrics and /readyz say beyond the engine's statistics. */
typedef struct svc_metrics_state {
    int ready;    /* accepting: not draining, not stopping, a slot free */
    int draining; /* a stop or a drain has begun */
} svc_metrics_state;
/* The Prometheus text (format 0.0.4); returns its length (< size, NUL-terminated). */
size_t svc_metrics_format(const iocp_stats *st, const svc_metrics_state *s, char *out, size_t size);

/* The admin HTTP endpoint: its own small engine (raw framing), one GET or HEAD per
 * connection, at most SVC_ADMIN_REQUEST_MAX bytes within SVC_ADMIN_REQUEST_MS. */
#define SVC_ADMIN_REQUEST_MAX 8192
#define SVC_ADMIN_REQUEST_MS  5000
/* Reads the server's state for one request (on the admin engine's worker). */
typedef void (*svc_admin_view)(void *user, iocp_stats *st, svc_metrics_state *s);
/* bind "" = 127.0.0.1. Returns 0, or -1 with err naming what failed. */
int svc_admin_start(const char *bind, uint16_t port, svc_admin_view view, void *user,
                    svc_admin **out, char *err, size_t err_size);
/* The same on a predecessor's admin listener (take-over; NULL = bind), and the endpoint's
 * engine, whose listener a take-over exports and stops accepting on. */
int svc_admin_start_inherited(const char *bind, uint16_t port, const iocp_listener_export *inherit,
                              svc_admin_view view, void *user, svc_admin **out, char *err,
                              size_t err_size);
iocp_engine *svc_admin_engine(svc_admin *a);
const char *svc_admin_address(const svc_admin *a);
void svc_admin_stop(svc_admin *a);

/* One request's head, parsed (plain text; tested in test_service_unit). */
typedef enum svc_http_result {
    SVC_HTTP_INCOMPLETE = 0, /* no end of the head yet, and within the size */
    SVC_HTTP_OK,             /* a GET or HEAD of target */
    SVC_HTTP_BAD,            /* 400: not an HTTP/1.x request line */
    SVC_HTTP_METHOD,         /* 405: a method other than GET and HEAD */
    SVC_HTTP_TOO_LARGE,      /* 431: the head passes max bytes */
    SVC_HTTP_VERSION         /* 505: not HTTP/1.0 or 1.1 */
} svc_http_result;
typedef struct svc_http_request {
    int head;        /* HEAD: the answer has no body */
    char target[64]; /* the path, query dropped; longer targets are truncated (404) */
} svc_http_request;
svc_http_result svc_http_parse(const char *buf, size_t len, size_t max, svc_http_request *out);

/* ---- take-over: takeover.c ------------------------------------------------------------------ */

/* The running instance's side, from its status pipe: "EXPORT <pid>", "EXPORT-UDP <pid>" and
 * "EXPORT-ADMIN <pid>" (the TCP listener, UDP socket or admin listener duplicated for the
 * asking process, which must be that pid; an answer without the blob when this instance has
 * no such socket) and "HANDOVER" (from that process only: stop accepting and receiving on
 * what was exported, let open connections run for up to the drain timeout, then stop).
 * Returns the answer's length, or 0 when req is none of them (the status requests then). */
#define SVC_TAKEOVER_TCP   1
#define SVC_TAKEOVER_UDP   2
#define SVC_TAKEOVER_ADMIN 4
size_t svc_takeover_answer(svc_host *h, const char *req, size_t len, char *resp, size_t size,
                           int *close_after);
/* The successor's side, in svc_host_start: before the engine, asks instance opt->name for the
 * sockets this one will serve (into h->inherited*; one the old instance does not have is
 * bound afresh); after the engine and the admin endpoint have started (the self-check
 * passed), tells the old one to hand over and waits until it has exited. 0, or -1 with why
 * set. */
int svc_takeover_begin(svc_host *h, const svc_options *opt, char *why, size_t why_size);
int svc_takeover_finish(svc_host *h, char *why, size_t why_size);
/* In svc_host_stop after a handover: waits up to the drain timeout for the open connections
 * to end by themselves (progress called meanwhile). */
void svc_takeover_drain(svc_host *h, svc_progress_fn progress, void *user);

/* `iocp-service drain --name N`: asks the running instance (through its status pipe, with the
 * same trust checks as `status`) to stop as a stop does: /readyz 503 for --unready-delay,
 * then the drain. */
int svc_drain(const svc_options *opt);
/* ---- failure actions (recovery.c) ------------------------------------------------------- */

#define SVC_FAILURE_STEPS   4    /* first delay, 5 s, 30 s, 60 s (the last repeats) */
#define SVC_FAILURE_RESET_S 3600 /* an hour without a failure: the next one is a "first" again */

/* The failure actions install sets: restart on every failure, after first_delay_s, then 5 s,
 * 30 s and 60 s (each at least first_delay_s); the SCM repeats the last for every later
 * failure. out points into actions. */
void svc_failure_schedule(uint32_t first_delay_s, SC_ACTION actions[SVC_FAILURE_STEPS],
                          SERVICE_FAILURE_ACTIONSW *out);
/* "failure actions (restart after 1 s, 5 s, 30 s, 60 s, then 60 s after every later failure;
 * the count restarts after 60 min without one)": what install prints. */
void svc_failure_text(const SERVICE_FAILURE_ACTIONSW *fa, char *out, size_t size);

/* ---- utilities ---------------------------------------------------------------------------- */

/* UTF-8 to UTF-16 into a fixed buffer (always terminated; truncates). */
void svc_widen(const char *s, wchar_t *out, size_t count);
void svc_narrow(const wchar_t *s, char *out, size_t size);
/* ---- identity (identity.c) ------------------------------------------------------------------ */

/* Running as the service of this name: the private DACL names NT SERVICE\<name>. */
void svc_identity_set_service(const char *name);
/* The token's user SID as text into user, and NT SERVICE\<name> into service when this is
 * the service and its token holds that SID ("" otherwise). 1 when running as the service. */
int svc_identity_sids(wchar_t *user, size_t user_count, wchar_t *service, size_t service_count);
/* NT SERVICE\<name>, computed (S-1-5-80-<SHA-1 of the upper-case name>). 0 or -1. */
int svc_service_sid(const char *name, BYTE *sid, DWORD size);
/* Full control for local system, administrators and this instance's own SID only (the
 * per-service SID, else the process's user): the instance mutex and the status pipe. NULL on
 * failure; LocalFree it. */
PSECURITY_DESCRIPTOR svc_private_sd(void);
/* The owner of a kernel object (a mutex, a pipe). 0 or -1. */
int svc_object_owner(HANDLE h, BYTE *sid, DWORD size);
/* "NT AUTHORITY\LocalService", or the SID as text. */
void svc_sid_name(const BYTE *sid, char *out, size_t size);
/* Whether an answer on the status pipe comes from the instance: its server's pid is the pid
 * it claims, and it is the service's process or the pipe's owner is the mutex's owner
 * (mutex_sid NULL: no mutex). 1, or 0 with why set. */
int svc_instance_trust(const svc_pipe_peer *peer, const BYTE *mutex_sid, DWORD service_pid,
                       uint32_t claimed_pid, char *why, size_t why_size);
/* "The parameter is incorrect (Win32 87)": the system's text, one line, and the code. */
const char *svc_win32_text(DWORD code, char *buf, size_t size);
uint64_t svc_now_ms(void);
/* The Win32 code a service reports for an engine start failure. */
DWORD svc_win32_from_iocp(const iocp_error_info *err);
/* The exit code (table above) for a Win32 code a service stopped with. */
int svc_exit_from_win32(DWORD code);

/* ---- live reconfiguration: configure.c ------------------------------------------------------ */

/* Copies into `into` the server options whose bit is set in `given` (svc_options.server_given),
 * the TLS password excepted: the caller settles that one. */
void svc_configure_overlay(svc_server_options *into, const svc_server_options *from,
                           uint64_t given);
/* 1 when the running service applies a change of this option from `before` to `after` at
 * once (SERVICE_CONTROL_PARAMCHANGE), 0 when it needs a restart. */
int svc_configure_is_live(const svc_server_opt *def, const svc_server_options *before,
                          const svc_server_options *after);
/* The options that differ between before and after, as "--idle-timeout 1 (was 300)" lists
 * separated by ", ": those that apply live and those that need a restart ("" = none). Returns
 * how many differ. The TLS password is compared but never printed. */
int svc_configure_changes(const svc_server_options *before, const svc_server_options *after,
                          char *live, size_t live_size, char *restart, size_t restart_size);
/* `iocp-service configure`: reads the Parameters, overlays the command line, validates,
 * writes what changed, sends SERVICE_CONTROL_PARAMCHANGE. An exit code. */
int svc_configure(svc_options *opt);
/* The service's side of SERVICE_CONTROL_PARAMCHANGE, on its main thread: re-reads the
 * Parameters and applies what can change live (iocp_engine_reconfigure, the log limits, the
 * drain timeout, the unready delay); logs what applied and what needs a restart. An invalid
 * Parameters key changes nothing. */
void svc_configure_apply(svc_host *h);
/* Writes one server option's value under an open Parameters key (params.c; the TLS password
 * as its DPAPI blob, removed without a PFX). */
DWORD svc_params_write_value(HKEY key, const svc_server_opt *def, const svc_server_options *o);

/* ---- the supervised service: supervisor.c, worker_proc.c, worker_link.c, upgrade.c -------- */

/* What the supervisor reports to the SCM through svc.c. */
typedef struct svc_supervisor_scm {
    svc_progress_fn progress; /* one more START_PENDING / STOP_PENDING checkpoint */
    void *progress_user;
    void (*running)(void);  /* SERVICE_RUNNING */
    void (*stopping)(void); /* SERVICE_STOP_PENDING */
    HANDLE stop_event;
    HANDLE paramchange_event;
} svc_supervisor_scm;
/* 1 when the service runs supervised (--supervised; the supervisor holds the TCP listener,
 * the UDP socket and the admin listener alike); why says why not otherwise. */
int svc_supervised(const svc_server_options *o, char *why, size_t why_size);
/* The service process as a supervisor: mutex, listener, status pipe, the first worker (its
 * ready before RUNNING), then restarts, upgrades and the stop. Returns the Win32 exit code
 * for SERVICE_STOPPED (NO_ERROR after a clean stop). */
DWORD svc_supervisor_run(svc_options *opt, const svc_supervisor_scm *scm);
/* The delay before the next worker when failing_in_row workers in a row have ended within
 * 60 s of their start (0 for the first death: at once; then 1, 2, 4, 8, 16, 30, 30 ... s). */
uint32_t svc_restart_delay_s(uint32_t failing_in_row);
/* The hidden `worker` verb: argv as main has it. An exit code. */
int svc_worker_main(int argc, char **argv);
/* `iocp-service upgrade --name N [--exe PATH] [--timeout N] [--allow-unsafe-location]`. */
int svc_upgrade(const svc_options *opt);
/* For `status`: the supervisor's and its workers' lines, when the instance is supervised. */
void svc_upgrade_print_workers(const char *name);

/* The private channel between a supervisor and a worker: lines over anonymous pipes. */
typedef struct svc_link_reader {
    HANDLE pipe;
    size_t len;
    char buf[8192];
} svc_link_reader;
/* One line without its "\n" into out; 0, or -1 at the pipe's end or on a line too long. */
int svc_link_read_line(svc_link_reader *r, char *out, size_t size);
/* Writes the whole line (the caller ends it with "\n"). 0 or -1. */
int svc_link_write(HANDLE pipe, const char *line);
/* Bytes as lower-case hex (out holds 2 * len + 1); back: the length, or -1 when not hex. */
void svc_link_hex(const void *data, size_t len, char *out);
long svc_link_unhex(const char *hex, void *out, size_t size);
/* The next word of text (up to a space; truncated to fit out) into out; returns where the
 * word after it starts (the rest of the line). */
const char *svc_link_word(const char *text, char *out, size_t size);

#endif
