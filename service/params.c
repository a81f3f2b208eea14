/* params.c: the server options under the service's Parameters registry key. `install`
 * writes every option (defaults included, so the key documents the configuration); the
 * service reads them at start through the same validation as the command line. */
#include "svc.h"

#include <aclapi.h>
#include <sddl.h>
#include <string.h>

/* Ties the blob to this program: another program that calls CryptUnprotectData on the value
 * without it gets ERROR_INVALID_DATA. Not a secret (it is in the executable); DPAPI's machine
 * key and the key's DACL are the protection. */
static const char entropy_text[] = "iocp-service TLS password v1";

DWORD svc_secret_protect(const char *text, BYTE **out, DWORD *out_size)
{
    DATA_BLOB in = {(DWORD)strlen(text), (BYTE *)text};
    DATA_BLOB ent = {sizeof entropy_text - 1, (BYTE *)entropy_text};
    DATA_BLOB blob = {0, NULL};
    /* Machine scope: the service's account (LocalService, a virtual account) has no profile
     * of the installing administrator's to decrypt a user-scope blob with. */
    if (!CryptProtectData(&in, L"iocp-service", &ent, NULL, NULL,
                          CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN, &blob))
        return GetLastError();
    *out = blob.pbData;
    *out_size = blob.cbData;
    return NO_ERROR;
}

DWORD svc_secret_unprotect(const BYTE *data, DWORD size, char *out, size_t out_size)
{
    DATA_BLOB in = {size, (BYTE *)data};
    DATA_BLOB ent = {sizeof entropy_text - 1, (BYTE *)entropy_text};
    DATA_BLOB blob = {0, NULL};
    DWORD e = NO_ERROR;
    out[0] = '\0';
    if (!CryptUnprotectData(&in, NULL, &ent, NULL, NULL, CRYPTPROTECT_UI_FORBIDDEN, &blob))
        return GetLastError();
    if (blob.cbData >= out_size || memchr(blob.pbData, '\0', blob.cbData) != NULL) {
        e = ERROR_INVALID_DATA;
    } else {
        memcpy(out, blob.pbData, blob.cbData);
        out[blob.cbData] = '\0';
    }
    SecureZeroMemory(blob.pbData, blob.cbData);
    LocalFree(blob.pbData);
    return e;
}

DWORD svc_params_create_private(HKEY root, const wchar_t *path, const char *service)
{
    BYTE sid[SECURITY_MAX_SID_SIZE];
    wchar_t *sid_text = NULL, sddl[300];
    PSECURITY_DESCRIPTOR sd = NULL;
    PACL dacl = NULL;
    BOOL present = FALSE, defaulted = FALSE;
    HKEY key = NULL;
    DWORD e;
    if (svc_service_sid(service, sid, sizeof sid) != 0 || !ConvertSidToStringSidW(sid, &sid_text))
        return ERROR_INVALID_SID;
    /* P: protected, nothing inherited from Services\<name> (which Users may read). CI: the
     * same for subkeys. KA full control, KR read. */
    swprintf(sddl, sizeof sddl / sizeof sddl[0], L"D:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;%ls)",
             sid_text);
    sddl[sizeof sddl / sizeof sddl[0] - 1] = L'\0';
    LocalFree(sid_text);
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL))
        return GetLastError();
    if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) || !present) {
        e = ERROR_INVALID_SECURITY_DESCR;
        goto out;
    }
    e = (DWORD)RegCreateKeyExW(root, path, 0, NULL, REG_OPTION_NON_VOLATILE,
                               KEY_SET_VALUE | WRITE_DAC | READ_CONTROL, NULL, &key, NULL);
    if (e != ERROR_SUCCESS)
        goto out;
    /* Also for a key that existed already: before any value is written into it. */
    e = SetSecurityInfo(key, SE_REGISTRY_KEY,
                        DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL, NULL,
                        dacl, NULL);
out:
    if (key != NULL)
        RegCloseKey(key);
    LocalFree(sd);
    return e;
}

void svc_params_path(const char *name, wchar_t *out, size_t count)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    swprintf(out, count, L"SYSTEM\\CurrentControlSet\\Services\\%ls\\Parameters", wname);
    out[count - 1] = L'\0';
}

DWORD svc_params_write_value(HKEY key, const svc_server_opt *def, const svc_server_options *o)
{
    LONG rc;
    char text[SVC_PATH_MAX];
    svc_server_opt_get(o, def, text, sizeof text);
    if (def->kind == SVC_OPT_SECRET) {
        /* Only with a PFX; never as text. */
        const char *secret = (const char *)o + def->offset;
        if (o->tls_pfx[0] == '\0') {
            rc = RegDeleteValueW(key, def->value);
            return rc == ERROR_FILE_NOT_FOUND ? ERROR_SUCCESS : (DWORD)rc;
        }
        BYTE *blob = NULL;
        DWORD blob_size = 0;
        rc = (LONG)svc_secret_protect(secret, &blob, &blob_size);
        if (rc == ERROR_SUCCESS) {
            rc = RegSetValueExW(key, def->value, 0, REG_BINARY, blob, blob_size);
            LocalFree(blob);
        }
    } else if (def->kind == SVC_OPT_NUMBER || def->kind == SVC_OPT_SWITCH) {
        DWORD v = (DWORD)strtoul(text, NULL, 10);
        rc = RegSetValueExW(key, def->value, 0, REG_DWORD, (const BYTE *)&v, sizeof v);
    } else {
        wchar_t wide[SVC_PATH_MAX];
        svc_widen(text, wide, sizeof wide / sizeof wide[0]);
        rc = RegSetValueExW(key, def->value, 0, REG_SZ, (const BYTE *)wide,
                            (DWORD)((wcslen(wide) + 1) * sizeof(wchar_t)));
    }
    return (DWORD)rc;
}

DWORD svc_params_write(HKEY root, const wchar_t *path, const svc_server_options *o)
{
    HKEY key;
    LONG rc = RegCreateKeyExW(root, path, 0, NULL, REG_OPTION_NON_VOLATILE, KEY_SET_VALUE, NULL,
                              &key, NULL);
    if (rc != ERROR_SUCCESS)
        return (DWORD)rc;
    for (size_t i = 0; i < svc_server_opt_count && rc == ERROR_SUCCESS; i++)
        rc = (LONG)svc_params_write_value(key, &svc_server_opts[i], o);
    RegCloseKey(key);
    return (DWORD)rc;
}

static const char *type_name(DWORD type)
{
    switch (type) {
    case REG_DWORD:
        return "REG_DWORD";
    case REG_SZ:
        return "REG_SZ";
    case REG_EXPAND_SZ:
        return "REG_EXPAND_SZ";
    case REG_QWORD:
        return "REG_QWORD";
    case REG_BINARY:
        return "REG_BINARY";
    case REG_MULTI_SZ:
        return "REG_MULTI_SZ";
    default:
        return "another type";
    }
}

DWORD svc_params_read(HKEY root, const wchar_t *path, svc_server_options *o, char *err,
                      size_t err_size)
{
    HKEY key;
    err[0] = '\0';
    LONG rc = RegOpenKeyExW(root, path, 0, KEY_QUERY_VALUE, &key);
    if (rc != ERROR_SUCCESS) {
        char text[200];
        char where[300];
        svc_narrow(path, where, sizeof where);
        snprintf(err, err_size, "cannot open %s: %s", where,
                 svc_win32_text((DWORD)rc, text, sizeof text));
        return (DWORD)rc;
    }
    /* Every value is read even after a bad one, so that the log file is known when the
     * service reports the first error. */
    DWORD result = ERROR_SUCCESS;
    for (size_t i = 0; i < svc_server_opt_count; i++) {
        const svc_server_opt *def = &svc_server_opts[i];
        char name[64];
        char why[300];
        char problem[400] = "";
        DWORD bad = ERROR_INVALID_PARAMETER;
        svc_narrow(def->value, name, sizeof name);
        /* Room for the longest text option, in UTF-16, plus one: longer is refused. */
        wchar_t data[SVC_PATH_MAX + 1];
        DWORD type = 0;
        DWORD size = sizeof data - sizeof(wchar_t);
        memset(data, 0, sizeof data);
        rc = RegQueryValueExW(key, def->value, NULL, &type, (BYTE *)data, &size);
        if (rc == ERROR_FILE_NOT_FOUND) {
            continue; /* keep the default */
        } else if (rc == ERROR_MORE_DATA) {
            snprintf(problem, sizeof problem, "parameter %s is too long", name);
        } else if (rc != ERROR_SUCCESS) {
            char text[200];
            snprintf(problem, sizeof problem, "cannot read parameter %s: %s", name,
                     svc_win32_text((DWORD)rc, text, sizeof text));
            bad = (DWORD)rc;
        } else if (def->kind == SVC_OPT_NUMBER || def->kind == SVC_OPT_SWITCH) {
            DWORD v;
            if (type != REG_DWORD || size != sizeof v) {
                snprintf(problem, sizeof problem, "parameter %s is %s, expected REG_DWORD", name,
                         type_name(type));
            } else {
                memcpy(&v, data, sizeof v);
                if (svc_server_opt_set_number(o, def, v, why, sizeof why) != 0)
                    snprintf(problem, sizeof problem, "parameter %s: %s", name, why);
            }
        } else if (def->kind == SVC_OPT_SECRET) {
            if (type != REG_BINARY) {
                snprintf(problem, sizeof problem, "parameter %s is %s, expected REG_BINARY", name,
                         type_name(type));
            } else {
                char *secret = (char *)o + def->offset;
                DWORD ue = svc_secret_unprotect((const BYTE *)data, size, secret, def->size);
                if (ue != NO_ERROR) {
                    char text[200];
                    snprintf(problem, sizeof problem,
                             "cannot decrypt parameter %s (DPAPI, machine scope: written on "
                             "another machine, or damaged? install again): %s",
                             name, svc_win32_text(ue, text, sizeof text));
                    bad = ue;
                }
            }
        } else if (type != REG_SZ) {
            snprintf(problem, sizeof problem, "parameter %s is %s, expected REG_SZ", name,
                     type_name(type));
        } else {
            data[size / sizeof(wchar_t)] = L'\0'; /* the registry does not promise a NUL */
            char text[SVC_PATH_MAX * 3];
            svc_narrow(data, text, sizeof text);
            if (svc_server_opt_set(o, def, text, why, sizeof why) != 0)
                snprintf(problem, sizeof problem, "parameter %s: %s", name, why);
        }
        if (problem[0] != '\0' && result == ERROR_SUCCESS) {
            snprintf(err, err_size, "%s", problem);
            result = bad;
        }
    }
    RegCloseKey(key);
    char why[300];
    if (result == ERROR_SUCCESS && svc_server_options_check(o, why, sizeof why) != 0) {
        snprintf(err, err_size, "parameters: %s", why);
        result = ERROR_INVALID_PARAMETER;
    }
    return result;
}

DWORD svc_params_delete(HKEY root, const wchar_t *path)
{
    LONG rc = RegDeleteTreeW(root, path);
    if (rc == ERROR_SUCCESS || rc == ERROR_FILE_NOT_FOUND)
        rc = RegDeleteKeyW(root, path);
    if (rc == ERROR_FILE_NOT_FOUND)
        rc = ERROR_SUCCESS;
    return (DWORD)rc;
}
