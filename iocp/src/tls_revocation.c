/*
 * tls_revocation.c: what tls.revocation asks of the chain engine, and what it refuses.
 *
 * Validation runs on a worker under the connection's lock (tls.c, verify_peer), so it must
 * never wait on the network: every mode builds the chain from the cache only
 * (CERT_CHAIN_CACHE_ONLY_URL_RETRIEVAL), and the revocation check, when asked for, reads only
 * the CRLs and OCSP answers already in the system's URL cache
 * (CERT_CHAIN_REVOCATION_CHECK_CACHE_ONLY). A bounded dwUrlRetrievalTimeout was the other
 * choice; it was not taken because even a bounded wait holds the connection's lock and a
 * worker for that long per handshake, which a peer choosing its certificate's CRL URL could
 * repeat at will. The root is excluded (..._CHAIN_EXCLUDE_ROOT): a root is trusted by being
 * in the store, not by a CRL it would sign itself.
 *
 *   OFF   no revocation check; the unknown/offline flags do not count.
 *   SOFT  (the default, as .NET and browsers do) a certificate known revoked is refused;
 *         CERT_TRUST_REVOCATION_STATUS_UNKNOWN and CERT_TRUST_IS_OFFLINE_REVOCATION (nothing
 *         cached, or no CRL distribution point at all) are accepted.
 *   HARD  revoked, unknown and offline are all refused: only a chain whose every certificate
 *         below the root has a fresh answer in the cache passes.
 */
#include "tls.h"

#ifndef CERT_CHAIN_REVOCATION_CHECK_CACHE_ONLY
#define CERT_CHAIN_REVOCATION_CHECK_CACHE_ONLY 0x80000000
#endif

/* Revocation is read from a chain of its own, built with the revocation flags, and judged
 * here (iocpi_tls_revocation_error); the chain the SSL policy judges is built without them, so
 * the policy's own handling of an unknown status (CERT_CHAIN_POLICY_IGNORE_ALL_REV_UNKNOWN_
 * FLAGS, which not every implementation honours) never decides, and never hides a check the
 * policy would make after it (the name). The cost: a second chain build per validation,
 * bounded CPU from the cache. */

iocpi_tls_revocation_plan iocpi_tls_revocation(int mode)
{
    iocpi_tls_revocation_plan p;
    p.chain_flags = CERT_CHAIN_CACHE_ONLY_URL_RETRIEVAL;
    p.revocation_flags = 0;
    if (mode != IOCPI_TLS_REVOCATION_OFF)
        p.revocation_flags = CERT_CHAIN_CACHE_ONLY_URL_RETRIEVAL |
                             CERT_CHAIN_REVOCATION_CHECK_CHAIN_EXCLUDE_ROOT |
                             CERT_CHAIN_REVOCATION_CHECK_CACHE_ONLY;
    return p;
}

DWORD iocpi_tls_revocation_error(int mode, DWORD chain_status)
{
    if (mode == IOCPI_TLS_REVOCATION_OFF)
        return 0;
    if (chain_status & CERT_TRUST_IS_REVOKED)
        return (DWORD)CERT_E_REVOKED;
    if (mode != IOCPI_TLS_REVOCATION_HARD)
        return 0;
    if (chain_status & CERT_TRUST_IS_OFFLINE_REVOCATION)
        return (DWORD)CRYPT_E_REVOCATION_OFFLINE;
    if (chain_status & CERT_TRUST_REVOCATION_STATUS_UNKNOWN)
        return (DWORD)CRYPT_E_NO_REVOCATION_CHECK;
    return 0;
}

_Static_assert(IOCPI_TLS_REVOCATION_SOFT == IOCP_TLS_REVOCATION_SOFT &&
                   IOCPI_TLS_REVOCATION_OFF == IOCP_TLS_REVOCATION_OFF &&
                   IOCPI_TLS_REVOCATION_HARD == IOCP_TLS_REVOCATION_HARD,
               "tls.revocation's values are the engine's");
