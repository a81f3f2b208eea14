/*
 * tls_hello.h: the first flight of a TLS client, read before Schannel sees it (plain C11, no
 * Win32, so it builds natively for the fuzzer and the unit tests).
 *
 * The engine holds its own protocol floor (tls_floor.c): a ClientHello whose highest offered
 * version is below the minimum is answered with a fatal protocol_version alert and never
 * reaches AcceptSecurityContext, whatever the system's Schannel would have negotiated.
 */
#ifndef IOCP_TLS_HELLO_H
#define IOCP_TLS_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* Wire versions (the TLS record layer's numbering). */
#define IOCPI_TLS_V1_0 0x0301u
#define IOCPI_TLS_V1_1 0x0302u
#define IOCPI_TLS_V1_2 0x0303u
#define IOCPI_TLS_V1_3 0x0304u

/* A ClientHello must lie whole within the first IOCPI_HELLO_WIRE_MAX bytes of the stream
 * (records included): one record of the largest plaintext size and its header. Real
 * ClientHellos are a few hundred bytes (about 1.8 KiB with a post-quantum key share). */
#define IOCPI_HELLO_WIRE_MAX (16384u + 5u)
/* ... and in at most this many records (real clients use one; each record read again costs a
 * parse of what came before, so a peer dribbling one-byte records is cut off early). */
#define IOCPI_HELLO_MAX_RECORDS 32u

typedef enum iocpi_hello_result {
    IOCPI_HELLO_NEED_MORE, /* the ClientHello goes on past the input: read more, call again */
    IOCPI_HELLO_OK,        /* parsed: see the iocpi_hello */
    IOCPI_HELLO_MALFORMED, /* not a well-formed ClientHello (why: iocpi_hello.error) */
    IOCPI_HELLO_TOO_LARGE  /* not whole within IOCPI_HELLO_WIRE_MAX bytes */
} iocpi_hello_result;

typedef struct iocpi_hello {
    uint16_t record_version; /* of the first record */
    uint16_t legacy_version; /* ClientHello.legacy_version (client_version before TLS 1.3) */
    uint16_t highest;        /* the highest version offered: the largest non-GREASE entry of
                                supported_versions when present, else legacy_version; 0 when
                                supported_versions lists nothing real */
    int has_supported_versions;
    /* Among the offered cipher suites (iocpi_tls_suite), as IOCPI_TLS_AUTH_* bits of the
     * certificates they can be used with: those with forward secrecy and an AEAD cipher (TLS
     * 1.3 suites included); those with forward secrecy whatever their cipher. */
    unsigned offers_fs_aead, offers_fs;
    size_t wire_len;   /* the input bytes the ClientHello's records take */
    size_t need;       /* NEED_MORE: the input length at which a parse can get further (the end
                          of the record, or of the header, being waited for) */
    const char *error; /* MALFORMED: what was wrong (a static string) */
} iocpi_hello;

/* Reads the ClientHello at the front of in[0..len) (the client's first bytes, from the first
 * record header). Never reads outside in[0..len); uses a fixed amount of stack (the message is
 * reassembled from its records into a local buffer of IOCPI_HELLO_WIRE_MAX bytes). */
iocpi_hello_result iocpi_hello_parse(const uint8_t *in, size_t len, iocpi_hello *out);

/* What the suite floor needs to know of a cipher suite, by its IANA number; NULL for a suite
 * this table does not know (the floor then judges by the name the system reports). */
#define IOCPI_TLS_AUTH_ANY   1u /* TLS 1.3: the suite does not name the certificate's key */
#define IOCPI_TLS_AUTH_RSA   2u /* ..._RSA_WITH_...: an RSA certificate */
#define IOCPI_TLS_AUTH_ECDSA 4u /* ..._ECDSA_WITH_...: an EC certificate */
typedef struct iocpi_tls_suite {
    unsigned short id;
    unsigned char forward_secret; /* ECDHE or DHE key exchange, or any TLS 1.3 suite */
    unsigned char aead;           /* GCM, CCM, ChaCha20-Poly1305 */
    unsigned char auth;           /* IOCPI_TLS_AUTH_* */
    const char *name;
} iocpi_tls_suite;
const iocpi_tls_suite *iocpi_tls_suite_find(unsigned id);

/* "TLS 1.2", "TLS 1.0", "SSL 3.0", "0x7f1c": a wire version for people. */
const char *iocpi_tls_version_name(unsigned version, char *buf, size_t size);

/* A fatal alert record in out[0..7): type 21, the given record version, level 2, description
 * (70 protocol_version, 50 decode_error, 71 insufficient_security). Returns 7. */
#define IOCPI_TLS_ALERT_LEN 7u
size_t iocpi_tls_alert(uint8_t out[IOCPI_TLS_ALERT_LEN], unsigned record_version,
                       unsigned description);

#endif
