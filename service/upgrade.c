/*
 * upgrade.c: `iocp-service upgrade --name N [--exe PATH]` and the workers' lines of `status`,
 * the client side of a supervised service (supervisor.c). Through the status pipe, with the
 * trust checks of `status` (svc_instance_ask: the answer counts only from the service's
 * process): "UPGRADE <allow-unsafe> <timeout> <path>" queues the upgrade (the supervisor
 * checks the executable, with the service's view of the file system), then "WORKERS" is asked
 * until the upgrade has an outcome.
 */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

#define UPGRADE_TIMEOUT_S 30
#define POLL_MS           200

/* The value of key= in the answer, into out ("" when missing). */
static void value_of(const char *answer, const char *key, char *out, size_t size)
{
    size_t k = strlen(key);
    out[0] = '\0';
    for (const char *line = answer; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > k && strncmp(line, key, k) == 0 && line[k] == '=') {
            snprintf(out, size, "%.*s", (int)(len - k - 1), line + k + 1);
            return;
        }
        line = end ? end + 1 : NULL;
    }
}

int svc_upgrade(const svc_options *opt)
{
    char req[SVC_PROTO_REQUEST_MAX + 1], answer[SVC_PROTO_ANSWER_MAX], err[400];
    char path[SVC_PATH_MAX] = "-";
    uint32_t timeout_s = opt->timeout_s != 0 ? opt->timeout_s : UPGRADE_TIMEOUT_S;
    if (opt->exe[0] != '\0') {
        /* The supervisor resolves a relative path from its own folder: make it ours. */
        wchar_t given[SVC_PATH_MAX], full[SVC_PATH_MAX];
        svc_widen(opt->exe, given, SVC_PATH_MAX);
        if (GetFullPathNameW(given, SVC_PATH_MAX, full, NULL) == 0)
            swprintf(full, SVC_PATH_MAX, L"%ls", given);
        svc_narrow(full, path, sizeof path);
    }
    int n = snprintf(req, sizeof req, "UPGRADE %d %lu %s", opt->allow_unsafe_location ? 1 : 0,
                     (unsigned long)timeout_s, path);
    if (n < 0 || (size_t)n > SVC_PROTO_REQUEST_MAX) {
        fprintf(stderr, "iocp-service: --exe: the path is too long\n");
        return SVC_EXIT_USAGE;
    }
    svc_status_info info;
    if (svc_instance_ask_raw(opt->name, req, 10000, &info, answer, sizeof answer, err,
                             sizeof err) != 0) {
        if (strstr(err, "malformed request") != NULL)
            fprintf(stderr,
                    "iocp-service: instance '%s' is not a supervised service (installed with "
                    "--single-process?): `configure --name %s --supervised`, then restart it; "
                    "a console instance is replaced with run --take-over\n",
                    opt->name, opt->name);
        else
            fprintf(stderr, "iocp-service: cannot ask service '%s' to upgrade: %s\n", opt->name,
                    err);
        return SVC_EXIT_NOT_RUNNING;
    }
    char id[32], want_id[32], state[32], error[900], pid[32];
    value_of(answer, "upgrade_id", want_id, sizeof want_id);
    printf("service '%s' (supervisor pid %lu): starting a new worker from %s\n", opt->name,
           (unsigned long)info.pid, strcmp(path, "-") == 0 ? "the installed executable" : path);
    fflush(stdout);
    /* The ready's timeout, the checks and the start before it: the supervisor decides. */
    uint64_t until = svc_now_ms() + (uint64_t)timeout_s * 1000u + 30000u;
    for (;;) {
        if (svc_instance_ask_raw(opt->name, "WORKERS", 5000, &info, answer, sizeof answer, err,
                                 sizeof err) == 0) {
            char upgrade[120];
            value_of(answer, "upgrade", upgrade, sizeof upgrade);
            const char *rest = svc_link_word(upgrade, id, sizeof id);
            svc_link_word(svc_link_word(rest, state, sizeof state), pid, sizeof pid);
            if (strcmp(id, want_id) == 0 && strcmp(state, "done") == 0) {
                printf("upgraded: worker process %s serves; the old worker stops accepting and "
                       "drains (up to its drain timeout)\n",
                       pid);
                svc_upgrade_print_workers(opt->name);
                return SVC_EXIT_OK;
            }
            if (strcmp(id, want_id) == 0 && strcmp(state, "failed") == 0) {
                value_of(answer, "upgrade_error", error, sizeof error);
                fprintf(stderr, "iocp-service: upgrade of '%s' failed: %s\n", opt->name, error);
                return SVC_EXIT_CANNOT_START;
            }
        }
        if (svc_now_ms() >= until) {
            fprintf(stderr,
                    "iocp-service: the upgrade of '%s' has no outcome after %lu s (%s); see "
                    "iocp-service status --name %s\n",
                    opt->name, (unsigned long)(timeout_s + 30), err, opt->name);
            return SVC_EXIT_TIMEOUT;
        }
        Sleep(POLL_MS); /* a poll with a deadline: the supervisor has no way to call back */
    }
}

void svc_upgrade_print_workers(const char *name)
{
    char answer[SVC_PROTO_ANSWER_MAX], err[400], value[700];
    svc_status_info info;
    if (svc_instance_ask_raw(name, "WORKERS", 5000, &info, answer, sizeof answer, err,
                             sizeof err) != 0)
        return; /* not supervised (or gone): nothing more to say */
    char spid[32], sversion[40], restarts[32], deaths[32];
    value_of(answer, "supervisor", value, sizeof value);
    const char *sexe =
        svc_link_word(svc_link_word(value, spid, sizeof spid), sversion, sizeof sversion);
    if (spid[0] == '\0' || sversion[0] == '\0')
        return;
    value_of(answer, "restarts", restarts, sizeof restarts);
    value_of(answer, "deaths", deaths, sizeof deaths);
    printf("  supervisor: pid %s, iocp-service %s (%s); %s worker restarts, %s deaths\n", spid,
           sversion, sexe, restarts, deaths);
    value_of(answer, "last_death", value, sizeof value);
    if (value[0] != '\0')
        printf("  last worker death: %s\n", value);
    for (const char *line = answer; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, "worker=", 7) == 0) {
            char pid[32], state[32], conns[32], started[40], version[40];
            snprintf(value, sizeof value, "%.*s",
                     (int)((end ? (size_t)(end - line) : strlen(line)) - 7), line + 7);
            const char *rest = svc_link_word(value, pid, sizeof pid);
            rest = svc_link_word(rest, state, sizeof state);
            rest = svc_link_word(rest, conns, sizeof conns);
            rest = svc_link_word(rest, started, sizeof started);
            rest = svc_link_word(rest, version, sizeof version);
            if (version[0] != '\0')
                printf("  worker: pid %s, %s, %s connections, started %s, iocp-service %s "
                       "(%s)\n",
                       pid, state, conns, started, version, rest);
        }
        line = end ? end + 1 : NULL;
    }
}
