/*
 * tls_windows_build.c: whether this Windows' TLS 1.3 is offered.
 *
 * Schannel accepts SP_PROT_TLS1_3 from Windows 10 1809 (SCH_CREDENTIALS), but its TLS 1.3 is
 * sound only from build 20348 (Windows Server 2022; Windows 11 is 22000 and later): curl's
 * lib/vtls/schannel.c enables it from that build and not before, and so does this engine.
 * Below it, SCH_CREDENTIALS still carries the floor and the suite refusals, without
 * SP_PROT_TLS1_3.
 *
 * The build comes from RtlGetVersion (ntdll, looked up at run time): GetVersionEx answers
 * Windows 8's 6.2.9200 to a program without a compatibility manifest. Wine reports the build of
 * the Windows its prefix imitates (7601 in the tests' Wine 8 prefix, 19043 under Wine 10), so
 * TLS 1.3 is not offered there, which matches what Wine does anyway (it never negotiates 1.3,
 * docs/wine.md).
 */
#include "tls.h"

int iocpi_tls13_sound(unsigned long build)
{
    return build >= 20348ul;
}

typedef LONG(WINAPI *rtl_get_version_fn)(OSVERSIONINFOW *);

unsigned long iocpi_windows_build(void)
{
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    if (ntdll == NULL)
        return 0;
    FARPROC proc = GetProcAddress(ntdll, "RtlGetVersion");
    if (proc == NULL)
        return 0;
    rtl_get_version_fn get;
    memcpy(&get, &proc, sizeof get); /* a function pointer cast without the warning */
    OSVERSIONINFOW v;
    memset(&v, 0, sizeof v);
    v.dwOSVersionInfoSize = sizeof v;
    if (get(&v) != 0)
        return 0;
    return (unsigned long)v.dwBuildNumber;
}
