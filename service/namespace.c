/*
 * namespace.c: where the instance mutex lives, so that no other user can take its name first.
 *
 * A plain name (Global\iocp-service-<name>) can be created by any local user before the
 * service starts, and then the service cannot start. A private namespace closes that door:
 * its boundary descriptor names a SID, and only a process whose token holds every SID of the
 * boundary can create it (CreatePrivateNamespace: "the caller must be within this boundary").
 * A namespace is found by its alias and its boundary together, so a user's namespace with
 * the same alias is another namespace, and the objects in the service's one can only be made
 * by the service. So:
 *
 *   service   boundary: NT SERVICE\<name> (in the token with SERVICE_SID_TYPE_UNRESTRICTED,
 *             which install sets); the namespace's DACL: SYSTEM, Administrators and that SID.
 *             Administrators are in the DACL, not the boundary: a boundary with two SIDs
 *             admits only a token with both, and the service's virtual account is not an
 *             administrator.
 *   console   boundary: the user's own SID: `run` is per user, and another user can neither
 *             make it first nor share it.
 *
 * One namespace per instance name, alias "iocp-service-<name>", and the mutex inside it is
 * "iocp-service-<name>\instance": the process that creates a namespace is the one that holds
 * its mutex. That matters because once the creator closes its handle (or ends), the namespace
 * can no longer be opened, although it lives on while anyone has it or its objects open: a
 * namespace shared by several names would be left unopenable by the first instance to stop.
 * Opening asks the boundary too (older documentation: "the caller must be within this
 * boundary"), so only the service's own processes and administrators' tools that run as it
 * look inside; `status` does not need to (it believes the process the SCM names).
 *
 * Where there is no namespace (Wine: no private
 * namespaces at all, docs/wine.md; a service token without its SID), the plain name is used,
 * protected by its DACL, and the log says so:
 *
 *   service   Global\iocp-service-<name>: one name for the machine, as before.
 *   console   Local\iocp-service-<name>-<user SID>: per user (another user's console of the
 *             same name is another instance, not a conflict) and per session (a user of
 *             another session cannot create names in this one's Local\ through the usual
 *             calls, so squatting it needs a process in this session).
 *
 * The decision is svc_instance_plan, plain C over what the caller found out, tested on its
 * own (test_service_unit: instance_names_plan); the Win32 calls are in
 * svc_instance_open_namespace. The namespace functions are looked up with GetProcAddress:
 * Wine exports CreateBoundaryDescriptorW (it returns NULL) but not the rest, and a program
 * that imports them does not load there.
 */
#include "svc.h"

#include <sddl.h>
#include <string.h>

#define NS_ALIAS_FORMAT L"iocp-service-%ls"

void svc_instance_plan(const char *name, int service_mode, const wchar_t *user_sid,
                       const wchar_t *service_sid, svc_ns_state ns, DWORD ns_code,
                       svc_instance_names *out)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    memset(out, 0, sizeof *out);
    const wchar_t *boundary = service_mode ? service_sid : user_sid;
    if (service_mode)
        swprintf(out->plain, sizeof out->plain / sizeof out->plain[0], L"Global\\iocp-service-%ls",
                 wname);
    else
        swprintf(out->plain, sizeof out->plain / sizeof out->plain[0],
                 L"Local\\iocp-service-%ls-%ls", wname, user_sid != NULL ? user_sid : L"");
    out->plain[sizeof out->plain / sizeof out->plain[0] - 1] = L'\0';
    if (boundary != NULL && boundary[0] != L'\0') {
        out->use_namespace = 1;
        swprintf(out->boundary_sid, sizeof out->boundary_sid / sizeof out->boundary_sid[0], L"%ls",
                 boundary);
        swprintf(out->alias, sizeof out->alias / sizeof out->alias[0], NS_ALIAS_FORMAT, wname);
        out->alias[sizeof out->alias / sizeof out->alias[0] - 1] = L'\0';
        swprintf(out->namespace_sddl, sizeof out->namespace_sddl / sizeof out->namespace_sddl[0],
                 L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;%ls)", boundary);
    }
    char plain[SVC_NAME_MAX + 240];
    svc_narrow(out->plain, plain, sizeof plain);
    if (out->use_namespace && ns == SVC_NS_READY) {
        swprintf(out->mutex, sizeof out->mutex / sizeof out->mutex[0], L"%ls\\instance",
                 out->alias);
        out->in_namespace = 1;
        return;
    }
    swprintf(out->mutex, sizeof out->mutex / sizeof out->mutex[0], L"%ls", out->plain);
    const char *who = service_mode ? "the service" : "this user's instance";
    if (!out->use_namespace && !service_mode) {
        snprintf(out->note, sizeof out->note,
                 "cannot read this process's user SID: the instance mutex is the plain name "
                 "%s, protected by its DACL only",
                 plain);
    } else if (!out->use_namespace) {
        snprintf(out->note, sizeof out->note,
                 "the token lacks NT SERVICE\\%s (installed by an older version: run install "
                 "again; or a system without per-service SIDs, as Wine): the instance mutex is "
                 "the plain name %s, protected by its DACL only; a local user who creates it "
                 "first keeps %s from starting (the refusal names them)",
                 name, plain, who);
    } else if (ns == SVC_NS_UNAVAILABLE) {
        snprintf(out->note, sizeof out->note,
                 "private namespaces are not available on this system (no boundary "
                 "descriptor: Wine has none): the instance mutex is the plain name %s, "
                 "protected by its DACL only; a local user who creates it first keeps %s from "
                 "starting (the refusal names them)",
                 plain, who);
    } else if (ns == SVC_NS_FAILED) {
        char text[300];
        snprintf(out->note, sizeof out->note,
                 "cannot create or open the private namespace iocp-service-%s (%s): the "
                 "instance mutex is the plain name %s, protected by its DACL only",
                 name, svc_win32_text(ns_code, text, sizeof text), plain);
    }
    /* SVC_NS_NOT_TRIED: the caller tries the namespace and asks again. */
}

/* ---- the Win32 side ----------------------------------------------------------------------- */

typedef HANDLE(WINAPI *create_boundary_fn)(LPCWSTR, ULONG);
typedef BOOL(WINAPI *add_sid_fn)(HANDLE *, PSID);
typedef VOID(WINAPI *delete_boundary_fn)(HANDLE);
typedef HANDLE(WINAPI *create_ns_fn)(LPSECURITY_ATTRIBUTES, LPVOID, LPCWSTR);
typedef HANDLE(WINAPI *open_ns_fn)(LPVOID, LPCWSTR);
typedef BOOLEAN(WINAPI *close_ns_fn)(HANDLE, ULONG);

static struct {
    create_boundary_fn create_boundary;
    add_sid_fn add_sid;
    delete_boundary_fn delete_boundary;
    create_ns_fn create_ns;
    open_ns_fn open_ns;
    close_ns_fn close_ns;
} api;

static BOOL CALLBACK load_api(PINIT_ONCE once, void *param, void **context)
{
    (void)once;
    (void)param;
    (void)context;
    HMODULE k = GetModuleHandleW(L"kernel32.dll");
    if (k == NULL)
        return TRUE;
    /* Through void (*)(void): a FARPROC is not the function's own type (-Wcast-function-type). */
    api.create_boundary =
        (create_boundary_fn)(void (*)(void))GetProcAddress(k, "CreateBoundaryDescriptorW");
    api.add_sid = (add_sid_fn)(void (*)(void))GetProcAddress(k, "AddSIDToBoundaryDescriptor");
    api.delete_boundary =
        (delete_boundary_fn)(void (*)(void))GetProcAddress(k, "DeleteBoundaryDescriptor");
    api.create_ns = (create_ns_fn)(void (*)(void))GetProcAddress(k, "CreatePrivateNamespaceW");
    api.open_ns = (open_ns_fn)(void (*)(void))GetProcAddress(k, "OpenPrivateNamespaceW");
    api.close_ns = (close_ns_fn)(void (*)(void))GetProcAddress(k, "ClosePrivateNamespace");
    return TRUE;
}

static void ensure_api(void)
{
    static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
    InitOnceExecuteOnce(&once, load_api, NULL, NULL);
}

/* A boundary descriptor naming sid_text, or NULL: *state says why not. */
static HANDLE make_boundary(const wchar_t *sid_text, svc_ns_state *state, DWORD *code)
{
    ensure_api();
    *state = SVC_NS_UNAVAILABLE;
    *code = 0;
    if (api.create_boundary == NULL)
        return NULL;
    HANDLE b = api.create_boundary(L"iocp-service", 0);
    /* Wine returns NULL (and sets no error); its AddSIDToBoundaryDescriptor is not there,
     * and a stub of it would end the process: stop at the NULL boundary. */
    if (b == NULL)
        return NULL;
    if (api.add_sid == NULL || api.create_ns == NULL || api.open_ns == NULL ||
        api.close_ns == NULL || api.delete_boundary == NULL) {
        if (api.delete_boundary != NULL)
            api.delete_boundary(b);
        return NULL;
    }
    PSID sid = NULL;
    if (!ConvertStringSidToSidW(sid_text, &sid) || !api.add_sid(&b, sid)) {
        *state = SVC_NS_FAILED;
        *code = GetLastError();
        if (sid != NULL)
            LocalFree(sid);
        api.delete_boundary(b);
        return NULL;
    }
    LocalFree(sid);
    return b;
}

HANDLE svc_instance_open_namespace(const svc_instance_names *plan, int create, svc_ns_state *state,
                                   DWORD *code)
{
    *state = SVC_NS_UNAVAILABLE;
    *code = 0;
    if (!plan->use_namespace)
        return NULL;
    HANDLE b = make_boundary(plan->boundary_sid, state, code);
    if (b == NULL)
        return NULL;
    HANDLE ns = NULL;
    if (create) {
        PSECURITY_DESCRIPTOR sd = NULL;
        if (ConvertStringSecurityDescriptorToSecurityDescriptorW(plan->namespace_sddl,
                                                                 SDDL_REVISION_1, &sd, NULL)) {
            SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
            ns = api.create_ns(&sa, b, plan->alias);
            *code = ns == NULL ? GetLastError() : 0;
            LocalFree(sd);
        } else {
            *code = GetLastError();
        }
        /* Made by an earlier holder still running, or being shut: open it. */
        if (ns == NULL && *code == ERROR_ALREADY_EXISTS)
            ns = api.open_ns(b, plan->alias);
    } else {
        ns = api.open_ns(b, plan->alias);
    }
    if (ns == NULL) {
        if (*code == 0 || *code == ERROR_ALREADY_EXISTS)
            *code = GetLastError();
        *state = SVC_NS_FAILED;
    } else {
        *code = 0;
        *state = SVC_NS_READY;
    }
    api.delete_boundary(b);
    return ns;
}

void svc_instance_close_namespace(HANDLE ns)
{
    /* Not PRIVATE_NAMESPACE_FLAG_DESTROY: it goes with its last handle and its last object,
     * and a holder that has it open meanwhile keeps it. */
    if (ns != NULL && api.close_ns != NULL)
        api.close_ns(ns, 0);
}

int svc_instance_private_namespaces(void)
{
    ensure_api();
    if (api.create_boundary == NULL)
        return 0;
    HANDLE b = api.create_boundary(L"iocp-service", 0);
    if (b == NULL)
        return 0;
    int all = api.add_sid != NULL && api.create_ns != NULL && api.open_ns != NULL &&
              api.close_ns != NULL && api.delete_boundary != NULL;
    if (api.delete_boundary != NULL)
        api.delete_boundary(b);
    return all;
}
