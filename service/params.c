/* params.c: the server options under the service's Parameters registry key. `install`
 * writes every option (defaults included, so the key documents the configuration); the
 * service reads them at start through the same validation as the command line. */
#include "svc.h"

#include <string.h>

void svc_params_path(const char *name, wchar_t *out, size_t count)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    swprintf(out, count, L"SYSTEM\\CurrentControlSet\\Services\\%ls\\Parameters", wname);
    out[count - 1] = L'\0';
}

DWORD svc_params_write(HKEY root, const wchar_t *path, const svc_server_options *o)
{
    HKEY key;
    LONG rc = RegCreateKeyExW(root, path, 0, NULL, REG_OPTION_NON_VOLATILE, KEY_SET_VALUE, NULL,
                              &key, NULL);
    if (rc != ERROR_SUCCESS)
        return (DWORD)rc;
    for (size_t i = 0; i < svc_server_opt_count && rc == ERROR_SUCCESS; i++) {
        const svc_server_opt *def = &svc_server_opts[i];
        char text[SVC_PATH_MAX];
        svc_server_opt_get(o, def, text, sizeof text);
        if (def->kind == SVC_OPT_NUMBER) {
            DWORD v = (DWORD)strtoul(text, NULL, 10);
            rc = RegSetValueExW(key, def->value, 0, REG_DWORD, (const BYTE *)&v, sizeof v);
        } else {
            wchar_t wide[SVC_PATH_MAX];
            svc_widen(text, wide, sizeof wide / sizeof wide[0]);
            rc = RegSetValueExW(key, def->value, 0, REG_SZ, (const BYTE *)wide,
                                (DWORD)((wcslen(wide) + 1) * sizeof(wchar_t)));
        }
    }
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
        } else if (def->kind == SVC_OPT_NUMBER) {
            DWORD v;
            if (type != REG_DWORD || size != sizeof v) {
                snprintf(problem, sizeof problem, "parameter %s is %s, expected REG_DWORD", name,
                         type_name(type));
            } else {
                memcpy(&v, data, sizeof v);
                if (svc_server_opt_set_number(o, def, v, why, sizeof why) != 0)
                    snprintf(problem, sizeof problem, "parameter %s: %s", name, why);
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
