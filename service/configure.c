/*
 * configure.c: live reconfiguration of the installed service. The command side
 * (`iocp-service configure --name N [options]`) reads the Parameters, overlays the options
 * given, validates the result as `install` does, writes only the values that changed (the
 * DPAPI-protected TLS password only when --tls-password is given), and sends
 * SERVICE_CONTROL_PARAMCHANGE. The service side (svc_configure_apply, on the service's main
 * thread, never in the control handler) re-reads the Parameters and applies what can change
 * without a restart; `sc control N paramchange` after a registry edit does the same.
 */
#include "svc.h"

#include "secret_input.h"

#include <string.h>

/* What the running service changes at once. The engine's part is iocp_engine_reconfigure's
 * live list (the sweep's timeouts, the per-address limit between two non-zero values); the
 * rest is the host's own (read at stop, or by the log on each write). */
static const char *const live_flags[] = {
    "--idle-timeout",          "--message-timeout", "--send-timeout",
    "--tls-handshake-timeout", "--proxy-timeout",   "--drain-timeout",
    "--unready-delay",         "--log-max-size",    "--log-keep",
};

int svc_configure_is_live(const svc_server_opt *def, const svc_server_options *before,
                          const svc_server_options *after)
{
    if (strcmp(def->flag, "--max-connections-per-ip") == 0)
        /* The engine keeps a per-address table only when a limit was set at start, and 0 in
         * it would refuse everyone. */
        return before->max_connections_per_ip != 0 && after->max_connections_per_ip != 0;
    for (size_t i = 0; i < sizeof live_flags / sizeof live_flags[0]; i++)
        if (strcmp(def->flag, live_flags[i]) == 0)
            return 1;
    return 0;
}

void svc_configure_overlay(svc_server_options *into, const svc_server_options *from, uint64_t given)
{
    for (size_t k = 0; k < svc_server_opt_count; k++) {
        const svc_server_opt *def = &svc_server_opts[k];
        if (!(given & ((uint64_t)1 << k)) || def->kind == SVC_OPT_SECRET)
            continue;
        memcpy((char *)into + def->offset, (const char *)from + def->offset, def->size);
    }
}

static void append(char *out, size_t size, const char *text)
{
    size_t n = strlen(out);
    if (n + 1 < size)
        snprintf(out + n, size - n, "%s%s", n ? ", " : "", text);
}

/* 1 when the option's value differs (the password by its text, never printed). */
static int differs(const svc_server_opt *def, const svc_server_options *a,
                   const svc_server_options *b, char *now, char *was, size_t size)
{
    if (def->kind == SVC_OPT_SECRET) {
        snprintf(now, size, "(given)");
        was[0] = '\0';
        return strcmp((const char *)a + def->offset, (const char *)b + def->offset) != 0;
    }
    svc_server_opt_get(a, def, was, size);
    svc_server_opt_get(b, def, now, size);
    return strcmp(was, now) != 0;
}

int svc_configure_changes(const svc_server_options *before, const svc_server_options *after,
                          char *live, size_t live_size, char *restart, size_t restart_size)
{
    int n = 0;
    live[0] = restart[0] = '\0';
    for (size_t k = 0; k < svc_server_opt_count; k++) {
        const svc_server_opt *def = &svc_server_opts[k];
        char now[SVC_PATH_MAX], was[SVC_PATH_MAX], item[SVC_PATH_MAX * 2 + 80];
        if (!differs(def, before, after, now, was, sizeof now))
            continue;
        n++;
        if (def->kind == SVC_OPT_SECRET)
            snprintf(item, sizeof item, "%s", def->flag);
        else
            snprintf(item, sizeof item, "%s %s (was %s)", def->flag, now[0] ? now : "\"\"",
                     was[0] ? was : "\"\"");
        if (svc_configure_is_live(def, before, after))
            append(live, live_size, item);
        else
            append(restart, restart_size, item);
    }
    return n;
}

/* ---- the command ------------------------------------------------------------------------ */

static int fail_code(const char *what, DWORD e)
{
    char text[300];
    fprintf(stderr, "iocp-service: %s: %s\n", what, svc_win32_text(e, text, sizeof text));
    if (e == ERROR_ACCESS_DENIED) {
        fprintf(stderr, "iocp-service: this needs administrator rights: run it from an "
                        "elevated prompt (Run as administrator)\n");
        return SVC_EXIT_ACCESS_DENIED;
    }
    if (e == ERROR_SERVICE_DOES_NOT_EXIST)
        return SVC_EXIT_NAME;
    return SVC_EXIT_SYSTEM;
}

/* Writes the values that differ; the password only when given, or removed with the PFX. */
static DWORD write_changes(const wchar_t *path, const svc_server_options *before,
                           const svc_server_options *after, int password_given)
{
    HKEY key;
    LONG rc = RegOpenKeyExW(HKEY_LOCAL_MACHINE, path, 0, KEY_SET_VALUE, &key);
    if (rc != ERROR_SUCCESS)
        return (DWORD)rc;
    for (size_t k = 0; k < svc_server_opt_count && rc == ERROR_SUCCESS; k++) {
        const svc_server_opt *def = &svc_server_opts[k];
        char now[SVC_PATH_MAX], was[SVC_PATH_MAX];
        if (def->kind == SVC_OPT_SECRET) {
            if (password_given || (after->tls_pfx[0] == '\0' && before->tls_pfx[0] != '\0'))
                rc = (LONG)svc_params_write_value(key, def, after);
        } else if (differs(def, before, after, now, was, sizeof now)) {
            rc = (LONG)svc_params_write_value(key, def, after);
        }
    }
    RegCloseKey(key);
    return (DWORD)rc;
}

int svc_configure(svc_options *opt)
{
    static svc_server_options before, after; /* large; the passwords are wiped below */
    char err[700], live[2048], restart[2048];
    int rc = SVC_EXIT_OK;
    wchar_t path[200], wname[SVC_NAME_MAX + 1];
    svc_params_path(opt->name, path, sizeof path / sizeof path[0]);
    svc_widen(opt->name, wname, sizeof wname / sizeof wname[0]);

    /* The service first: nothing is written for a name that is not installed. */
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    if (scm == NULL)
        return fail_code("cannot open the Service Control Manager", GetLastError());
    /* SERVICE_PAUSE_CONTINUE is the right ControlService needs for PARAMCHANGE. */
    SC_HANDLE svc = OpenServiceW(scm, wname, SERVICE_PAUSE_CONTINUE | SERVICE_QUERY_STATUS);
    if (svc == NULL) {
        DWORD e = GetLastError();
        CloseServiceHandle(scm);
        snprintf(err, sizeof err, "service '%s'", opt->name);
        if (e == ERROR_SERVICE_DOES_NOT_EXIST) {
            fprintf(stderr, "iocp-service: %s: no such service is installed\n", err);
            return SVC_EXIT_NAME;
        }
        return fail_code(err, e);
    }

    svc_server_options_init(&before);
    DWORD e = svc_params_read(HKEY_LOCAL_MACHINE, path, &before, err, sizeof err);
    if (e == ERROR_FILE_NOT_FOUND) {
        /* Made by `sc create`: the defaults are its configuration; the key is made private. */
        e = svc_params_create_private(HKEY_LOCAL_MACHINE, path, opt->name);
        if (e != NO_ERROR) {
            rc = fail_code("cannot create the Parameters key", e);
            goto out;
        }
    } else if (e == ERROR_ACCESS_DENIED) {
        rc = fail_code("cannot read the Parameters key", e);
        goto out;
    } else if (e != NO_ERROR) {
        fprintf(stderr,
                "iocp-service: the stored %s; nothing changed (fix it with reg add, or install "
                "again)\n",
                err);
        rc = SVC_EXIT_USAGE;
        goto out;
    }

    after = before;
    svc_configure_overlay(&after, &opt->server, opt->server_given);
    if (opt->tls_password_given && after.tls_pfx[0] == '\0') {
        fprintf(stderr, "iocp-service: --tls-password is the password of --tls-pfx, which is "
                        "neither given nor stored\n");
        rc = SVC_EXIT_USAGE;
        goto out;
    }
    if (opt->tls_password_given == 1) {
        fprintf(stderr, "iocp-service: warning: a password on the command line can be read by "
                        "other programs; use --tls-password - to be asked for it\n");
        snprintf(after.tls_password, sizeof after.tls_password, "%s", opt->server.tls_password);
    } else if (opt->tls_password_given == 2) {
        char who[SVC_PATH_MAX + 20];
        snprintf(who, sizeof who, "the PFX file %s", after.tls_pfx);
        if (secret_get(who, after.tls_password, sizeof after.tls_password, err, sizeof err) !=
            NO_ERROR) {
            fprintf(stderr, "iocp-service: %s\n", err);
            rc = SVC_EXIT_USAGE;
            goto out;
        }
    } else if (after.tls_pfx[0] == '\0') {
        after.tls_password[0] = '\0'; /* no PFX: its password goes with it */
    }
    /* The same checks as install and run: an invalid result writes nothing. */
    if (svc_server_options_check(&after, err, sizeof err) != 0) {
        fprintf(stderr, "iocp-service: nothing changed: %s\n", err);
        rc = SVC_EXIT_USAGE;
        goto out;
    }
    if (svc_server_memory_check(&after, svc_physical_memory(), err, sizeof err) != 0) {
        fprintf(stderr, "iocp-service: nothing changed: %s\n", err);
        rc = SVC_EXIT_CANNOT_START;
        goto out;
    }
    if (svc_configure_changes(&before, &after, live, sizeof live, restart, sizeof restart) == 0 &&
        !opt->tls_password_given) {
        printf("service '%s': nothing to change (the options given are the stored ones)\n",
               opt->name);
        goto out;
    }
    e = write_changes(path, &before, &after, opt->tls_password_given != 0);
    if (e != NO_ERROR) {
        rc = fail_code("cannot write the Parameters key", e);
        goto out;
    }
    printf("service '%s': stored under HKLM\\SYSTEM\\CurrentControlSet\\Services\\%s\\Parameters\n",
           opt->name, opt->name);

    SERVICE_STATUS st;
    memset(&st, 0, sizeof st);
    if (!QueryServiceStatus(svc, &st) || st.dwCurrentState != SERVICE_RUNNING) {
        printf("not running: everything applies at its next start\n");
        if (live[0] != '\0')
            printf("  changed: %s\n", live);
        if (restart[0] != '\0')
            printf("  changed: %s\n", restart);
        goto out;
    }
    /* ControlService returns once the service's handler has taken the control; the service
     * applies it on its main thread at once (and logs what applied). */
    if (!ControlService(svc, SERVICE_CONTROL_PARAMCHANGE, &st)) {
        DWORD ce = GetLastError();
        if (ce == ERROR_INVALID_SERVICE_CONTROL || ce == ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
            fprintf(stderr,
                    "iocp-service: stored, but the running service does not take a parameter "
                    "change now (an older version, or it is stopping): restart it to apply\n");
        rc = fail_code("SERVICE_CONTROL_PARAMCHANGE", ce);
        goto out;
    }
    if (live[0] != '\0')
        printf("applied live: %s\n", live);
    if (restart[0] != '\0')
        printf("needs a restart (stored; `iocp-service stop` then `start`): %s\n", restart);
out:
    SecureZeroMemory(before.tls_password, sizeof before.tls_password);
    SecureZeroMemory(after.tls_password, sizeof after.tls_password);
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return rc;
}

/* ---- the service's side ----------------------------------------------------------------- */

void svc_configure_apply(svc_host *h)
{
    static svc_server_options next; /* the main thread's alone */
    char err[700], live[2048], restart[2048], not_live[600];
    wchar_t path[200];
    svc_params_path(h->opt.name, path, sizeof path / sizeof path[0]);
    svc_server_options_init(&next);
    DWORD e = svc_params_read(HKEY_LOCAL_MACHINE, path, &next, err, sizeof err);
    SecureZeroMemory(next.tls_password, sizeof next.tls_password); /* not needed live */
    if (e != NO_ERROR && e != ERROR_FILE_NOT_FOUND) {
        svc_log(IOCP_LOG_ERROR, "parameter change refused, the running configuration is kept: %s",
                err);
        return;
    }
    /* As at start: a thumbprint's store is the machine's unless the Parameters say. */
    if (next.tls_store == SVC_TLS_STORE_DEFAULT && next.tls_cert[0] != '\0')
        next.tls_store = SVC_TLS_STORE_MACHINE;
    /* The stored TLS password is not kept in memory: compare without it. */
    SecureZeroMemory(h->opt.server.tls_password, sizeof h->opt.server.tls_password);
    if (svc_configure_changes(&h->opt.server, &next, live, sizeof live, restart, sizeof restart) ==
        0) {
        svc_log(IOCP_LOG_INFO, "parameter change: nothing differs from the configuration in force");
        return;
    }
    iocp_config config;
    iocp_error_info ierr;
    svc_server_config(&next, &config);
    config.log = svc_log_engine;
    iocp_err ie = iocp_engine_reconfigure(h->engine, &config, not_live, sizeof not_live, &ierr);
    if (ie != IOCP_OK) {
        svc_log(IOCP_LOG_ERROR, "parameter change refused, the running configuration is kept: %s",
                ierr.message[0] ? ierr.message : iocp_strerror(ie));
        return;
    }
    /* The host's own live values; this thread also runs the stop that reads them. */
    svc_server_options *o = &h->opt.server;
    o->idle_timeout_s = next.idle_timeout_s;
    o->message_timeout_s = next.message_timeout_s;
    o->send_timeout_s = next.send_timeout_s;
    o->tls_handshake_timeout_s = next.tls_handshake_timeout_s;
    o->proxy_timeout_s = next.proxy_timeout_s;
    if (o->max_connections_per_ip != 0 && next.max_connections_per_ip != 0)
        o->max_connections_per_ip = next.max_connections_per_ip;
    o->drain_timeout_s = next.drain_timeout_s;
    o->unready_delay_s = next.unready_delay_s;
    o->log_max_mib = next.log_max_mib;
    o->log_keep = next.log_keep;
    svc_log_set_limits((uint64_t)o->log_max_mib << 20, o->log_keep);
    svc_log(IOCP_LOG_INFO, "parameter change: applied live: %s; needs a restart: %s%s%s",
            live[0] ? live : "none", restart[0] ? restart : "none",
            not_live[0] ? "; the engine kept: " : "", not_live);
}
