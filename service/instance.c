/*
 * instance.c: one server per name. The listener runs only while the process holds the
 * instance mutex: as a service, "iocp-service-<name>\instance" in a private namespace only
 * the service can create; in a console, the same in the user's own namespace; where there are
 * no private namespaces (Wine), a plain name protected by its DACL (namespace.c says which
 * and why). A console refuses to start while the SCM runs the service of that name.
 *
 * A mutex does not say who holds it. The holder says so itself, on its status pipe
 * \\.\pipe\iocp-service-<name> (pid, console or service, address); nothing is written to disk,
 * so there is no shared file a local user could redirect. A pipe cannot live in a private
 * namespace (pipes are files of the named-pipe file system, not objects of the object
 * manager's directories), so any local user may create its name first; an answer on the pipe
 * counts only from the process the SCM runs as the service of that name, or, when no such
 * service runs, from a pipe whose owner is the mutex's owner (the account that holds the name
 * made both). Everything else is reported as what it is: a name taken by another program,
 * with the way to free it.
 *
 * A killed holder's mutex is reported abandoned (WAIT_ABANDONED) to a process that had it
 * open at that moment; when nobody had, the object goes away with the holder and the next one
 * simply creates a fresh one.
 */
#include "svc.h"

#include <string.h>

#define HOLDER_WAIT_MS 2000 /* a holder creates its pipe a moment after taking the mutex */

/* This process's plan for the name: the namespace tried (and opened or created), then the
 * name decided from what came of it. *ns: the namespace handle, or NULL. */
static void plan_names(const char *name, int create, svc_instance_names *plan, HANDLE *ns)
{
    wchar_t user[SVC_SID_TEXT_MAX], service[SVC_SID_TEXT_MAX];
    int service_mode = svc_identity_sids(user, SVC_SID_TEXT_MAX, service, SVC_SID_TEXT_MAX);
    const wchar_t *own = service[0] != L'\0' ? service : NULL;
    svc_ns_state state = SVC_NS_NOT_TRIED;
    DWORD code = 0;
    svc_instance_plan(name, service_mode, user, own, state, 0, plan);
    *ns = svc_instance_open_namespace(plan, create, &state, &code);
    svc_instance_plan(name, service_mode, user, own, state, code, plan);
}

void svc_instance_mutex_name(const char *name, wchar_t *out, size_t count)
{
    wchar_t user[SVC_SID_TEXT_MAX], service[SVC_SID_TEXT_MAX];
    svc_instance_names plan;
    int service_mode = svc_identity_sids(user, SVC_SID_TEXT_MAX, service, SVC_SID_TEXT_MAX);
    svc_instance_plan(name, service_mode, user, service[0] != L'\0' ? service : NULL,
                      SVC_NS_UNAVAILABLE, 0, &plan);
    swprintf(out, count, L"%ls", plan.plain);
    out[count - 1] = L'\0';
}

svc_lock_result svc_instance_lock(svc_instance *inst, const char *name, DWORD *sys_code)
{
    svc_instance_names plan;
    memset(inst, 0, sizeof *inst);
    *sys_code = 0;
    plan_names(name, 1, &plan, &inst->ns);
    memcpy(inst->name, plan.mutex, sizeof inst->name);
    memcpy(inst->note, plan.note, sizeof inst->note);
    inst->in_namespace = plan.in_namespace;

    PSECURITY_DESCRIPTOR sd = svc_private_sd();
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    /* Not owned at creation: the wait below tells "free", "held" and "abandoned" apart the
     * same way whether this call created the mutex or opened it. */
    inst->mutex = CreateMutexW(sd ? &sa : NULL, FALSE, plan.mutex);
    DWORD create_err = GetLastError();
    if (sd != NULL)
        LocalFree(sd);
    if (inst->mutex == NULL) {
        *sys_code = create_err;
        svc_instance_close_namespace(inst->ns);
        inst->ns = NULL;
        /* It exists and its security keeps us out: a holder of another account, or a
         * squatter; svc_instance_describe_holder tells which it can. */
        return create_err == ERROR_ACCESS_DENIED ? SVC_LOCK_HELD : SVC_LOCK_ERROR;
    }
    switch (WaitForSingleObject(inst->mutex, 0)) {
    case WAIT_OBJECT_0:
        return SVC_LOCK_OK;
    case WAIT_ABANDONED:
        return SVC_LOCK_ABANDONED;
    case WAIT_TIMEOUT:
        *sys_code = ERROR_SERVICE_ALREADY_RUNNING;
        CloseHandle(inst->mutex);
        inst->mutex = NULL;
        svc_instance_close_namespace(inst->ns);
        inst->ns = NULL;
        return SVC_LOCK_HELD;
    default:
        *sys_code = GetLastError();
        CloseHandle(inst->mutex);
        inst->mutex = NULL;
        svc_instance_close_namespace(inst->ns);
        inst->ns = NULL;
        return SVC_LOCK_ERROR;
    }
}

void svc_instance_unlock(svc_instance *inst)
{
    if (inst->mutex != NULL) {
        ReleaseMutex(inst->mutex);
        CloseHandle(inst->mutex);
        inst->mutex = NULL;
    }
    svc_instance_close_namespace(inst->ns);
    inst->ns = NULL;
}

/* The owner of the instance mutex: 0; -1 when there is no mutex; -2 when its security keeps
 * this account out; -3 when it records no owner (Wine's objects made without a descriptor). */
static int mutex_owner(const char *name, BYTE *sid, DWORD size)
{
    svc_instance_names plan;
    HANDLE ns = NULL;
    plan_names(name, 0, &plan, &ns);
    HANDLE m = OpenMutexW(READ_CONTROL, FALSE, plan.mutex);
    int rc;
    if (m == NULL) {
        rc = GetLastError() == ERROR_ACCESS_DENIED ? -2 : -1;
    } else {
        rc = svc_object_owner(m, sid, size) == 0 ? 0 : -3;
        CloseHandle(m);
    }
    svc_instance_close_namespace(ns);
    return rc;
}

DWORD svc_instance_service_pid(const char *name)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    SERVICE_STATUS_PROCESS st;
    DWORD n = 0, pid = 0;
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    if (scm == NULL)
        return 0;
    SC_HANDLE svc = OpenServiceW(scm, wname, SERVICE_QUERY_STATUS);
    if (svc != NULL) {
        if (QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)&st, sizeof st, &n) &&
            st.dwCurrentState != SERVICE_STOPPED)
            pid = st.dwProcessId;
        CloseServiceHandle(svc);
    }
    CloseServiceHandle(scm);
    return pid;
}

int svc_instance_trust(const svc_pipe_peer *peer, const BYTE *mutex_sid, DWORD service_pid,
                       uint32_t claimed_pid, char *why, size_t why_size)
{
    char who[300];
    if (peer->pid == 0 || claimed_pid != peer->pid) {
        snprintf(why, why_size, "the pipe's server (process %lu) answered for process %lu",
                 (unsigned long)peer->pid, (unsigned long)claimed_pid);
        return 0;
    }
    /* The service of this name runs: only its process speaks for it, whoever owns what. */
    if (service_pid != 0) {
        if (peer->pid == service_pid)
            return 1;
        snprintf(why, why_size,
                 "the pipe is served by process %lu, but the Service Control Manager runs the "
                 "service as process %lu",
                 (unsigned long)peer->pid, (unsigned long)service_pid);
        return 0;
    }
    if (peer->has_owner && mutex_sid != NULL && EqualSid((PSID)peer->owner, (PSID)mutex_sid))
        return 1;
    if (peer->has_owner)
        svc_sid_name(peer->owner, who, sizeof who);
    else
        snprintf(who, sizeof who, "an account this one may not see");
    if (mutex_sid == NULL)
        snprintf(why, why_size,
                 "the pipe is served by process %lu (%s), not known to hold the instance mutex",
                 (unsigned long)peer->pid, who);
    else
        snprintf(why, why_size,
                 "the pipe is served by process %lu (%s), not by the account that holds the "
                 "instance mutex",
                 (unsigned long)peer->pid, who);
    return 0;
}

int svc_instance_ask(const char *name, const char *req, uint32_t timeout_ms, svc_status_info *info,
                     char *err, size_t err_size)
{
    char answer[SVC_PROTO_ANSWER_MAX];
    return svc_instance_ask_raw(name, req, timeout_ms, info, answer, sizeof answer, err, err_size);
}

int svc_instance_ask_raw(const char *name, const char *req, uint32_t timeout_ms,
                         svc_status_info *info, char *answer, size_t answer_size, char *err,
                         size_t err_size)
{
    char text[300];
    size_t len;
    svc_pipe_peer peer;
    BYTE owner[SECURITY_MAX_SID_SIZE];
    DWORD e =
        svc_pipe_request(name, req, strlen(req), answer, answer_size, &len, timeout_ms, &peer);
    if (e != NO_ERROR) {
        snprintf(err, err_size, "%s", svc_win32_text(e, text, sizeof text));
        return -1;
    }
    if (svc_proto_parse_answer(answer, len, info, err, err_size) != 0)
        return -1;
    int have_owner = mutex_owner(name, owner, sizeof owner) == 0;
    char why[400];
    if (!svc_instance_trust(&peer, have_owner ? owner : NULL, svc_instance_service_pid(name),
                            info->pid, why, sizeof why)) {
        snprintf(err, err_size, "answer ignored: %s (another program has taken the name?)", why);
        memset(info, 0, sizeof *info);
        return -1;
    }
    return 0;
}

void svc_instance_describe_holder(const char *name, char *out, size_t size)
{
    svc_status_info info;
    char err[500], account[300];
    BYTE owner[SECURITY_MAX_SID_SIZE];
    uint64_t deadline = svc_now_ms() + HOLDER_WAIT_MS;
    int r;
    /* The holder answers once its engine is up: ask again for a little while. */
    while ((r = svc_instance_ask(name, "INFO", 1000, &info, err, sizeof err)) != 0 &&
           svc_now_ms() < deadline)
        Sleep(100);
    int m = mutex_owner(name, owner, sizeof owner);
    if (m == 0)
        svc_sid_name(owner, account, sizeof account);
    if (r == 0) {
        char where[120] = "";
        if (info.address[0] != '\0')
            snprintf(where, sizeof where, ", listening on %s", info.address);
        snprintf(out, size, "process %lu (%s%s%s%s)", (unsigned long)info.pid, info.mode,
                 m == 0 ? ", account " : "", m == 0 ? account : "", where);
        return;
    }
    const char *who = m == 0    ? "a process of account "
                      : m == -2 ? "a process of another account (the mutex's security keeps "
                                  "this account out)"
                                : "a process";
    snprintf(out, size,
             "%s%s, which does not answer as an instance on \\\\.\\pipe\\iocp-service-%s (%s). "
             "If no instance named '%s' is running, another program has taken the name: end it "
             "(Sysinternals: handle.exe -a iocp-service-%s finds it) or use another --name",
             who, m == 0 ? account : "", name, err, name, name);
}
