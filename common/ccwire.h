/*
 * ccwire.h - the spoke->hub change-context transport: frames and CURVE keys.
 *
 * One ZeroMQ message carries one dhcc.Frame (proto/cc.proto): a Batch of
 * encoded ChangeContexts from a spoke's DEALER socket, or an Ack from the
 * hub's ROUTER socket; for `hubctl verify`, a LedgerRequest from the hub
 * and the spoke's LedgerChunks answering it. An empty Batch is the hello
 * and the idle spoke's heartbeat. The hub's socket is a CURVE server; each spoke has
 * its own key pair and the hub admits only the public keys of its
 * [spoke.ID] sections (ZAP), so the spoke_id a Batch names must be the one
 * its key authenticated.
 *
 * Decoding is total like dh_cc_decode: any byte string gives either a
 * frame or -1 with a reason, never reads outside the input, and bounds its
 * memory (DH_CCWIRE_MAX_FRAME, DH_CCWIRE_MAX_ITEMS, DH_CCWIRE_MAX_LEDGER_ROWS;
 * a chunk's rows must lie within its announced total). Batch items stay
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

typedef enum {
	DH_CCWIRE_BATCH = 1,
	DH_CCWIRE_ACK = 2,
	DH_CCWIRE_LEDGER_REQUEST = 3, /* hub -> spoke: send your ledger (verify) */
	DH_CCWIRE_LEDGER_CHUNK = 4    /* spoke -> hub: part of the answer */
} dh_ccwire_type;

/* Rows in one LedgerChunk (the encoder refuses more, the decoder too). */
#define DH_CCWIRE_MAX_LEDGER_ROWS DH_CCWIRE_MAX_ITEMS

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

/* One ledger object (dhcc.LedgerRow); never NULL strings ("" = empty). */
typedef struct {
	const char *sop_uid, *series_uid, *study_uid, *sop_class_uid, *digest;
	int deleted;
	const char *fwd_state;
	const char *patient_id, *issuer, *patient_name, *birth_date, *sex;
	const char *study_id, *study_date, *study_time, *accession, *referring_physician, *study_description;
	const char *modality, *series_number, *series_description, *instance_number;
	const char *transfer_syntax;
} dh_ccwire_ledger_row;

/* A LedgerChunk's header. */
typedef struct {
	uint64_t request_id;
	uint64_t total;  /* rows in the whole answer */
	uint64_t offset; /* index of this chunk's first row */
	int last;
	const char *error; /* "" unless the spoke could not answer */
} dh_ccwire_chunk_head;

typedef struct dh_ccwire_frame dh_ccwire_frame;

int dh_ccwire_encode_batch(const char *spoke_id, const dh_ccwire_item *items, size_t n, uint8_t **buf,
			   size_t *len);
int dh_ccwire_encode_ack(const char *spoke_id, uint64_t acked_through, const dh_ccwire_refusal *refused,
			 size_t n_refused, uint8_t **buf, size_t *len);

int dh_ccwire_encode_ledger_request(const char *spoke_id, uint64_t request_id, const char *study_uid,
				    uint8_t **buf, size_t *len);
/* rows may be NULL when n is 0; NULL strings in rows encode as "". */
int dh_ccwire_encode_ledger_chunk(const char *spoke_id, const dh_ccwire_chunk_head *head,
				  const dh_ccwire_ledger_row *rows, size_t n, uint8_t **buf, size_t *len);

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

/* LedgerRequest */
uint64_t dh_ccwire_request_id(const dh_ccwire_frame *f);      /* also for a LedgerChunk */
const char *dh_ccwire_request_study(const dh_ccwire_frame *f); /* "" = every study */
/* LedgerChunk (zeroed / "" for other frames or i out of range) */
dh_ccwire_chunk_head dh_ccwire_chunk_header(const dh_ccwire_frame *f);
size_t dh_ccwire_chunk_count(const dh_ccwire_frame *f);
dh_ccwire_ledger_row dh_ccwire_chunk_row(const dh_ccwire_frame *f, size_t i);

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
