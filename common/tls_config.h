/*
 * tls_config.h - the [tls] section hubd and spoked share: where the
 * certificate, key and trusted CAs are, whether peers must present a
 * certificate (mutual authentication), the cipher suite profile, and the
 * port of the TLS listener.
 *
 * A program embeds a dh_tls_config in its configuration struct and puts
 * DH_TLS_CFG_OPTIONS(its_struct, its_field) into its option table, so the
 * parser, --print-config and the example file know the options; at
 * start-up dh_tls_config_open turns them into the dh_dcm_tls contexts
 * (common/dcm.h) the listener and the associations it requests use.
 *
 * TLS listener and plain listener side by side: the plain port keeps
 * serving; the TLS listener is a second port (tls.port), as IMPAX and
 * most archives do it, so peers move to TLS one by one.
 */
#ifndef DH_TLS_CONFIG_H
#define DH_TLS_CONFIG_H

#include "config.h"
#include "dcm.h"

#include <stddef.h>

typedef struct {
	long port;         /* TLS listener port; 0: none */
	char *certificate; /* PEM, may carry the chain */
	char *private_key; /* PEM, not encrypted */
	char *ca_file;     /* PEM bundle of trusted CAs */
	char *ca_dir;      /* OpenSSL hashed CA directory */
	char *crl_file;    /* PEM CRLs of the trusted CAs */
	int verify_peer;   /* DH_TLS_VERIFY_* (the enum's order is the choices') */
	int profile;       /* DH_TLS_PROFILE_* (idem) */
} dh_tls_config;

/* Option-table rows for the dh_tls_config `field` of struct `type`, in section [tls]. */
#define DH_TLS_CFG_OPTIONS(type, field)                                                                     \
	{ "tls", "port", DH_CFG_INT, "0", offsetof(type, field.port), 0, 65535, NULL,                        \
	  "TCP port of the DICOM TLS listener, beside the plain one (all IPv4 addresses); 0: none", 1 },   \
	{ "tls", "certificate", DH_CFG_STRING, "", offsetof(type, field.certificate), 0, 0, NULL,            \
	  "our certificate (PEM, may be followed by intermediate CAs): TLS server and client", 1 },         \
	{ "tls", "private_key", DH_CFG_STRING, "", offsetof(type, field.private_key), 0, 0, NULL,            \
	  "its private key (PEM, not encrypted: protect the file, mode 0600)", 1 },                        \
	{ "tls", "ca_file", DH_CFG_STRING, "", offsetof(type, field.ca_file), 0, 0, NULL,                    \
	  "trusted CA certificates (PEM bundle) peer certificates are verified against", 1 },              \
	{ "tls", "ca_dir", DH_CFG_STRING, "", offsetof(type, field.ca_dir), 0, 0, NULL,                      \
	  "a directory of trusted CA certificates (OpenSSL hashed names, `openssl rehash`)", 1 },          \
	{ "tls", "crl_file", DH_CFG_STRING, "", offsetof(type, field.crl_file), 0, 0, NULL,                  \
	  "revocation lists (PEM) of the trusted CAs: revoked peers are refused; empty: no check", 1 },    \
	{ "tls", "verify_peer", DH_CFG_ENUM, "require", offsetof(type, field.verify_peer), 0, 0,             \
	  "require|check|ignore",                                                                           \
	  "client certificate on the TLS port: required and verified (mutual auth), verified if sent, "    \
	  "or not asked for", 1 },                                                                           \
	{ "tls", "profile", DH_CFG_ENUM, "bcp195-nd", offsetof(type, field.profile), 0, 0,                   \
	  "bcp195-nd|bcp195|bcp195-ext",                                                                    \
	  "TLS profile: Non-downgrading BCP 195 (TLS 1.2+), BCP 195 (may fall back), Extended BCP 195", 1 }

/*
 * Loads the contexts the configuration asks for: *server when tls.port is
 * set, *client when want_client (some peer is reached over TLS); the other
 * is left NULL. Returns 0, or -1 with a message naming the option and file
 * (the caller reports it and does not start). The caller owns both.
 */
int dh_tls_config_open(const dh_tls_config *c, int want_client, dh_dcm_tls **server, dh_dcm_tls **client,
		       char *err, size_t errlen);

#endif
