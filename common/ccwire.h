/*
 * ccwire.h - the spoke->hub change-context transport: frames and CURVE keys.
 *
 * One ZeroMQ message carries one dhcc.Frame (proto/cc.proto): a Batch of
 * encoded ChangeContexts from a spoke's DEALER socket, or an Ack from the
 * hub's ROUTER socket. The hub's socket is a CURVE server; each spoke has
 * its own key pair and the hub admits only the public keys of its
 * [spoke.ID] sections (ZAP), so the spoke_id a Batch names must be the one
 * its key authenticated.
 *
 * Decoding is total like dh_cc_decode: any byte string gives either a
 * frame or -1 with a reason, never reads outside the input, and bounds its
 * memory (DH_CCWIRE_MAX_FRAME, DH_CCWIRE_MAX_ITEMS). Batch items stay
 * encoded; the receiver decodes each with dh_cc_decode.
 *
 * Ownership: a dh_ccwire_frame from dh_ccwire_decode is the caller's
 * (dh_ccwire_frame_free); pointers read from it are borrowed from it.
 * Encoders return a malloc'd buffer the caller free()s.
 */
#ifndef DH_CCWIRE_H
#define DH_CCWIRE_H

#include <stddef.h>
#include <stdint.h>

#define DH_CCWIRE_MAX_FRAME (64u * 1024u * 1024u) /* bytes of one message */
#define DH_CCWIRE_MAX_ITEMS 10000u                /* cc in one batch, refusals in one ack */

typedef enum { DH_CCWIRE_BATCH = 1, DH_CCWIRE_ACK = 2 } dh_ccwire_type;

typedef struct {
	const uint8_t *data; /* one encoded dhcc.ChangeContext */
	size_t len;
} dh_ccwire_item;

typedef struct {
	uint64_t sequence;
	const char *uuid;   /* may be "" */
	const char *reason;
	int permanent;      /* 0: parked, will be retried at the hub */
} dh_ccwire_refusal;

typedef struct dh_ccwire_frame dh_ccwire_frame;

int dh_ccwire_encode_batch(const char *spoke_id, const dh_ccwire_item *items, size_t n, uint8_t **buf,
			   size_t *len);
int dh_ccwire_encode_ack(const char *spoke_id, uint64_t acked_through, const dh_ccwire_refusal *refused,
			 size_t n_refused, uint8_t **buf, size_t *len);

/* Total decoder: 0 and *out, or -1, *out NULL and the reason in why. */
int dh_ccwire_decode(const uint8_t *buf, size_t len, dh_ccwire_frame **out, char *why, size_t whylen);
void dh_ccwire_frame_free(dh_ccwire_frame *f);

dh_ccwire_type dh_ccwire_frame_type(const dh_ccwire_frame *f);
const char *dh_ccwire_frame_spoke_id(const dh_ccwire_frame *f);
/* Batch: the items (borrowed). */
size_t dh_ccwire_batch_count(const dh_ccwire_frame *f);
dh_ccwire_item dh_ccwire_batch_item(const dh_ccwire_frame *f, size_t i);
/* Ack */
uint64_t dh_ccwire_ack_through(const dh_ccwire_frame *f);
size_t dh_ccwire_ack_refused_count(const dh_ccwire_frame *f);
dh_ccwire_refusal dh_ccwire_ack_refused(const dh_ccwire_frame *f, size_t i);

/* ---- CURVE keys (Z85 text, 40 characters + NUL) ---- */

/* A fresh key pair. Returns 0 or -1 (libzmq without CURVE). */
int dh_ccwire_keygen(char public_key[41], char secret_key[41]);

/*
 * Reads a secret key file (Z85, surrounding blanks ignored; the file must
 * not be readable by group or others) and derives its public key
 * (public_key may be NULL). Returns 0, or -1 with a reason in err.
 */
int dh_ccwire_load_secret(const char *path, char secret_key[41], char public_key[41], char *err,
			  size_t errlen);

/* Writes a secret key file with mode 0600, durably. Returns 0 or -1 with err. */
int dh_ccwire_save_secret(const char *path, const char secret_key[41], char *err, size_t errlen);

#endif
