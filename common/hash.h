/*
 * hash.h - MD5 of files and buffers (OpenSSL EVP), as lowercase hex.
 *
 * MD5 identifies object content as the conformance statement asks; it is
 * not used for security.
 */
#ifndef DH_HASH_H
#define DH_HASH_H

#include <stddef.h>

#define DH_MD5_HEX_LEN 32

/* out must hold DH_MD5_HEX_LEN + 1 bytes. Returns 0, or -1 on I/O error (errno set). */
int dh_md5_file(const char *path, char out[DH_MD5_HEX_LEN + 1]);
int dh_md5_buffer(const void *buf, size_t len, char out[DH_MD5_HEX_LEN + 1]);

/* Incremental form for streams. Opaque; dh_md5_free accepts NULL. */
typedef struct dh_md5 dh_md5;
int dh_md5_new(dh_md5 **out);
int dh_md5_update(dh_md5 *h, const void *buf, size_t len);
/* Writes the hex digest; the context may not be updated afterwards. */
int dh_md5_final(dh_md5 *h, char out[DH_MD5_HEX_LEN + 1]);
void dh_md5_free(dh_md5 *h);

/*
 * An XXH3-128 digest (libxxhash's XXH128_hash_t halves) as the 32 lowercase
 * hex digits the index stores (instance.file_digest, dataset_digest,
 * tar_file.digest): high 64 bits, then low. out holds 33 bytes.
 */
void dh_xxh128_hex(unsigned long long high64, unsigned long long low64, char out[33]);

#endif
