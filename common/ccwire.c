/*
 * ccwire.c - the spoke->hub change-context transport: frame codec and CURVE
 * key files. See ccwire.h.
 *
 * The decoder is the hub's first trust boundary for bytes from the network
 * (after CURVE authenticated the sender), so it follows dh_cc_decode: input
 * longer than DH_CCWIRE_MAX_FRAME is refused before parsing, protobuf-c
 * parses with an allocator bounded by CCWIRE_MAX_DECODE_MEMORY (protobuf-c
 * copies every bytes field, and a frame of many empty items would
 * otherwise expand ~8x), and the structure is checked afterwards: schema
 * version, exactly one body, spoke id syntax, item and refusal counts.
 * Batch items are not decoded here (the receiver runs dh_cc_decode on each).
 */
#include "ccwire.h"

#include "cc.pb-c.h"
#include "durable.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define CCWIRE_SCHEMA_VERSION 1u
/* Frame copy + per-item bookkeeping + the refusals' strings, with headroom. */
#define CCWIRE_MAX_DECODE_MEMORY (2u * DH_CCWIRE_MAX_FRAME + 16u * 1024u * 1024u)
#define CCWIRE_MAX_SPOKE_ID 64u
#define CCWIRE_MAX_UID 64u /* DICOM UI */

struct dh_ccwire_frame {
	Dhcc__Frame *m;
	ProtobufCAllocator alloc;
	size_t used; /* bytes handed out by alloc */
};

static void fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* bounded allocator for decoding (same scheme as cc.c) */

typedef union {
	size_t size;
	max_align_t align;
} block_head;

static void *budget_alloc(void *data, size_t size)
{
	dh_ccwire_frame *f = data;
	block_head *h;

	if (size > CCWIRE_MAX_DECODE_MEMORY - f->used ||
	    sizeof(block_head) + size > CCWIRE_MAX_DECODE_MEMORY - f->used)
		return NULL;
	h = malloc(sizeof(*h) + size);
	if (!h)
		return NULL;
	h->size = sizeof(*h) + size;
	f->used += h->size;
	return h + 1;
}

static void budget_free(void *data, void *ptr)
{
	dh_ccwire_frame *f = data;
	block_head *h;

	if (!ptr)
		return;
	h = (block_head *)ptr - 1;
	f->used -= h->size;
	free(h);
}

void dh_ccwire_frame_free(dh_ccwire_frame *f)
{
	if (!f)
		return;
	if (f->m)
		protobuf_c_message_free_unpacked(&f->m->base, &f->alloc);
	free(f);
}

/* ------------------------------------------------------------------ */
/* encoding */

static int spoke_id_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == ':' || c == '-'))
			return 0;
		if (n >= CCWIRE_MAX_SPOKE_ID)
			return 0;
	}
	return n > 0;
}

static int pack_frame(const Dhcc__Frame *fr, uint8_t **buf, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(&fr->base);
	uint8_t *out;

	if (n > DH_CCWIRE_MAX_FRAME)
		return -1;
	out = malloc(n ? n : 1);
	if (!out)
		return -1;
	protobuf_c_message_pack(&fr->base, out);
	*buf = out;
	*len = n;
	return 0;
}

int dh_ccwire_encode_batch(const char *spoke_id, const dh_ccwire_item *items, size_t n, uint8_t **buf,
			   size_t *len)
{
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__Batch b = DHCC__BATCH__INIT;
	ProtobufCBinaryData *bin = NULL;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (!spoke_id_valid(spoke_id) || n > DH_CCWIRE_MAX_ITEMS || (n && !items))
		goto done;
	if (n && !(bin = calloc(n, sizeof(*bin))))
		goto done;
	for (size_t i = 0; i < n; i++) {
		bin[i].len = items[i].len;
		bin[i].data = (uint8_t *)items[i].data; /* packing only reads it */
	}
	b.spoke_id = (char *)spoke_id;
	b.n_items = n;
	b.items = bin;
	fr.schema_version = CCWIRE_SCHEMA_VERSION;
	fr.body_case = DHCC__FRAME__BODY_BATCH;
	fr.batch = &b;
	rc = pack_frame(&fr, buf, len);
done:
	free(bin);
	return rc;
}

int dh_ccwire_encode_ack(const char *spoke_id, uint64_t acked_through, const dh_ccwire_refusal *refused,
			 size_t n_refused, uint8_t **buf, size_t *len)
{
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__Ack a = DHCC__ACK__INIT;
	Dhcc__Refusal *r = NULL, **rp = NULL;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (!spoke_id_valid(spoke_id) || n_refused > DH_CCWIRE_MAX_ITEMS || (n_refused && !refused))
		goto done;
	if (n_refused && (!(r = calloc(n_refused, sizeof(*r))) || !(rp = calloc(n_refused, sizeof(*rp)))))
		goto done;
	for (size_t i = 0; i < n_refused; i++) {
		dhcc__refusal__init(&r[i]);
		r[i].sequence = refused[i].sequence;
		r[i].uuid = (char *)(refused[i].uuid ? refused[i].uuid : "");
		r[i].reason = (char *)(refused[i].reason ? refused[i].reason : "");
		r[i].permanent = refused[i].permanent != 0;
		rp[i] = &r[i];
	}
	a.spoke_id = (char *)spoke_id;
	a.acked_through = acked_through;
	a.n_refused = n_refused;
	a.refused = rp;
	fr.schema_version = CCWIRE_SCHEMA_VERSION;
	fr.body_case = DHCC__FRAME__BODY_ACK;
	fr.ack = &a;
	rc = pack_frame(&fr, buf, len);
done:
	free(r);
	free(rp);
	return rc;
}

static char *nz(const char *s)
{
	return (char *)(s ? s : ""); /* packing only reads it */
}

int dh_ccwire_encode_ledger_request(const char *spoke_id, uint64_t request_id, const char *study_uid,
				    uint8_t **buf, size_t *len)
{
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__LedgerRequest q = DHCC__LEDGER_REQUEST__INIT;

	*buf = NULL;
	*len = 0;
	if (!spoke_id_valid(spoke_id) || (study_uid && strlen(study_uid) > CCWIRE_MAX_UID))
		return -1;
	q.spoke_id = (char *)spoke_id;
	q.request_id = request_id;
	q.study_uid = nz(study_uid);
	fr.schema_version = CCWIRE_SCHEMA_VERSION;
	fr.body_case = DHCC__FRAME__BODY_LEDGER_REQUEST;
	fr.ledger_request = &q;
	return pack_frame(&fr, buf, len);
}

int dh_ccwire_encode_ledger_chunk(const char *spoke_id, const dh_ccwire_chunk_head *head,
				  const dh_ccwire_ledger_row *rows, size_t n, uint8_t **buf, size_t *len)
{
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__LedgerChunk c = DHCC__LEDGER_CHUNK__INIT;
	Dhcc__LedgerRow *r = NULL, **rp = NULL;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (!spoke_id_valid(spoke_id) || !head || n > DH_CCWIRE_MAX_LEDGER_ROWS || (n && !rows))
		goto done;
	if (n && (!(r = calloc(n, sizeof(*r))) || !(rp = calloc(n, sizeof(*rp)))))
		goto done;
	for (size_t i = 0; i < n; i++) {
		const dh_ccwire_ledger_row *s = &rows[i];
		dhcc__ledger_row__init(&r[i]);
		r[i].sop_uid = nz(s->sop_uid);
		r[i].series_uid = nz(s->series_uid);
		r[i].study_uid = nz(s->study_uid);
		r[i].sop_class_uid = nz(s->sop_class_uid);
		r[i].digest = nz(s->digest);
		r[i].deleted = s->deleted != 0;
		r[i].fwd_state = nz(s->fwd_state);
		r[i].patient_id = nz(s->patient_id);
		r[i].issuer = nz(s->issuer);
		r[i].patient_name = nz(s->patient_name);
		r[i].birth_date = nz(s->birth_date);
		r[i].sex = nz(s->sex);
		r[i].study_id = nz(s->study_id);
		r[i].study_date = nz(s->study_date);
		r[i].study_time = nz(s->study_time);
		r[i].accession = nz(s->accession);
		r[i].referring_physician = nz(s->referring_physician);
		r[i].study_description = nz(s->study_description);
		r[i].modality = nz(s->modality);
		r[i].series_number = nz(s->series_number);
		r[i].series_description = nz(s->series_description);
		r[i].instance_number = nz(s->instance_number);
		r[i].transfer_syntax = nz(s->transfer_syntax);
		rp[i] = &r[i];
	}
	c.spoke_id = (char *)spoke_id;
	c.request_id = head->request_id;
	c.total = head->total;
	c.offset = head->offset;
	c.last = head->last != 0;
	c.error = nz(head->error);
	c.n_rows = n;
	c.rows = rp;
	fr.schema_version = CCWIRE_SCHEMA_VERSION;
	fr.body_case = DHCC__FRAME__BODY_LEDGER_CHUNK;
	fr.ledger_chunk = &c;
	rc = pack_frame(&fr, buf, len);
done:
	free(r);
	free(rp);
	return rc;
}

/* ------------------------------------------------------------------ */
/* decoding */

int dh_ccwire_decode(const uint8_t *buf, size_t len, dh_ccwire_frame **out, char *why, size_t whylen)
{
	static const uint8_t empty[1];
	dh_ccwire_frame *f = NULL;
	const char *spoke = NULL;
	int rc = -1;

	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (len > DH_CCWIRE_MAX_FRAME) {
		fail(why, whylen, "frame of %zu bytes exceeds the limit of %u", len, DH_CCWIRE_MAX_FRAME);
		goto done;
	}
	if (len == 0) {
		fail(why, whylen, "empty frame");
		goto done;
	}
	if (!buf)
		buf = empty;
	if (!(f = calloc(1, sizeof(*f)))) {
		fail(why, whylen, "out of memory");
		goto done;
	}
	f->alloc.alloc = budget_alloc;
	f->alloc.free = budget_free;
	f->alloc.allocator_data = f;
	f->m = (Dhcc__Frame *)protobuf_c_message_unpack(&dhcc__frame__descriptor, &f->alloc, len, buf);
	if (!f->m) {
		fail(why, whylen, "not a valid protobuf Frame (malformed, truncated or over the decoder memory limit)");
		goto done;
	}
	if (f->m->schema_version == 0 || f->m->schema_version > CCWIRE_SCHEMA_VERSION) {
		fail(why, whylen, "unsupported frame schema version %u", f->m->schema_version);
		goto done;
	}
	switch (f->m->body_case) {
	case DHCC__FRAME__BODY_BATCH:
		spoke = f->m->batch->spoke_id;
		if (f->m->batch->n_items > DH_CCWIRE_MAX_ITEMS) {
			fail(why, whylen, "batch of %zu items exceeds the limit of %u", f->m->batch->n_items,
			     DH_CCWIRE_MAX_ITEMS);
			goto done;
		}
		break;
	case DHCC__FRAME__BODY_ACK:
		spoke = f->m->ack->spoke_id;
		if (f->m->ack->n_refused > DH_CCWIRE_MAX_ITEMS) {
			fail(why, whylen, "ack with %zu refusals exceeds the limit of %u", f->m->ack->n_refused,
			     DH_CCWIRE_MAX_ITEMS);
			goto done;
		}
		break;
	case DHCC__FRAME__BODY_LEDGER_REQUEST:
		spoke = f->m->ledger_request->spoke_id;
		if (f->m->ledger_request->study_uid && strlen(f->m->ledger_request->study_uid) > CCWIRE_MAX_UID) {
			fail(why, whylen, "ledger request study UID longer than %u characters", CCWIRE_MAX_UID);
			goto done;
		}
		break;
	case DHCC__FRAME__BODY_LEDGER_CHUNK:
		spoke = f->m->ledger_chunk->spoke_id;
		if (f->m->ledger_chunk->n_rows > DH_CCWIRE_MAX_LEDGER_ROWS) {
			fail(why, whylen, "ledger chunk of %zu rows exceeds the limit of %u", f->m->ledger_chunk->n_rows,
			     DH_CCWIRE_MAX_LEDGER_ROWS);
			goto done;
		}
		if (f->m->ledger_chunk->offset > UINT64_MAX - f->m->ledger_chunk->n_rows ||
		    f->m->ledger_chunk->offset + f->m->ledger_chunk->n_rows > f->m->ledger_chunk->total) {
			fail(why, whylen, "ledger chunk rows %" PRIu64 "+%zu exceed the announced total %" PRIu64,
			     f->m->ledger_chunk->offset, f->m->ledger_chunk->n_rows, f->m->ledger_chunk->total);
			goto done;
		}
		break;
	default:
		fail(why, whylen, "frame has neither a batch, an ack, a ledger request nor a ledger chunk");
		goto done;
	}
	if (!spoke_id_valid(spoke)) {
		fail(why, whylen, "frame spoke_id is not 1-%u characters of A-Z a-z 0-9 . _ : -",
		     CCWIRE_MAX_SPOKE_ID);
		goto done;
	}
	*out = f;
	f = NULL; /* handed to the caller */
	rc = 0;
done:
	dh_ccwire_frame_free(f);
	return rc;
}

dh_ccwire_type dh_ccwire_frame_type(const dh_ccwire_frame *f)
{
	switch (f->m->body_case) {
	case DHCC__FRAME__BODY_ACK: return DH_CCWIRE_ACK;
	case DHCC__FRAME__BODY_LEDGER_REQUEST: return DH_CCWIRE_LEDGER_REQUEST;
	case DHCC__FRAME__BODY_LEDGER_CHUNK: return DH_CCWIRE_LEDGER_CHUNK;
	default: return DH_CCWIRE_BATCH;
	}
}

const char *dh_ccwire_frame_spoke_id(const dh_ccwire_frame *f)
{
	switch (f->m->body_case) {
	case DHCC__FRAME__BODY_ACK: return f->m->ack->spoke_id;
	case DHCC__FRAME__BODY_LEDGER_REQUEST: return f->m->ledger_request->spoke_id;
	case DHCC__FRAME__BODY_LEDGER_CHUNK: return f->m->ledger_chunk->spoke_id;
	default: return f->m->batch->spoke_id;
	}
}

static const char *str(const char *s)
{
	return s ? s : "";
}

uint64_t dh_ccwire_request_id(const dh_ccwire_frame *f)
{
	if (f->m->body_case == DHCC__FRAME__BODY_LEDGER_REQUEST)
		return f->m->ledger_request->request_id;
	if (f->m->body_case == DHCC__FRAME__BODY_LEDGER_CHUNK)
		return f->m->ledger_chunk->request_id;
	return 0;
}

const char *dh_ccwire_request_study(const dh_ccwire_frame *f)
{
	return f->m->body_case == DHCC__FRAME__BODY_LEDGER_REQUEST ? str(f->m->ledger_request->study_uid) : "";
}

dh_ccwire_chunk_head dh_ccwire_chunk_header(const dh_ccwire_frame *f)
{
	dh_ccwire_chunk_head h = { 0, 0, 0, 0, "" };

	if (f->m->body_case == DHCC__FRAME__BODY_LEDGER_CHUNK) {
		const Dhcc__LedgerChunk *c = f->m->ledger_chunk;
		h.request_id = c->request_id;
		h.total = c->total;
		h.offset = c->offset;
		h.last = c->last ? 1 : 0;
		h.error = str(c->error);
	}
	return h;
}

size_t dh_ccwire_chunk_count(const dh_ccwire_frame *f)
{
	return f->m->body_case == DHCC__FRAME__BODY_LEDGER_CHUNK ? f->m->ledger_chunk->n_rows : 0;
}

dh_ccwire_ledger_row dh_ccwire_chunk_row(const dh_ccwire_frame *f, size_t i)
{
	dh_ccwire_ledger_row r;
	const Dhcc__LedgerRow *m;

	if (i >= dh_ccwire_chunk_count(f)) {
		static const dh_ccwire_ledger_row empty = { "", "", "", "", "", 0, "", "", "", "", "", "", "", "",
							    "", "", "", "", "", "", "", "", "" };
		return empty;
	}
	m = f->m->ledger_chunk->rows[i];
	r.sop_uid = str(m->sop_uid);
	r.series_uid = str(m->series_uid);
	r.study_uid = str(m->study_uid);
	r.sop_class_uid = str(m->sop_class_uid);
	r.digest = str(m->digest);
	r.deleted = m->deleted ? 1 : 0;
	r.fwd_state = str(m->fwd_state);
	r.patient_id = str(m->patient_id);
	r.issuer = str(m->issuer);
	r.patient_name = str(m->patient_name);
	r.birth_date = str(m->birth_date);
	r.sex = str(m->sex);
	r.study_id = str(m->study_id);
	r.study_date = str(m->study_date);
	r.study_time = str(m->study_time);
	r.accession = str(m->accession);
	r.referring_physician = str(m->referring_physician);
	r.study_description = str(m->study_description);
	r.modality = str(m->modality);
	r.series_number = str(m->series_number);
	r.series_description = str(m->series_description);
	r.instance_number = str(m->instance_number);
	r.transfer_syntax = str(m->transfer_syntax);
	return r;
}

size_t dh_ccwire_batch_count(const dh_ccwire_frame *f)
{
	return f->m->body_case == DHCC__FRAME__BODY_BATCH ? f->m->batch->n_items : 0;
}

dh_ccwire_item dh_ccwire_batch_item(const dh_ccwire_frame *f, size_t i)
{
	dh_ccwire_item it = { NULL, 0 };

	if (i < dh_ccwire_batch_count(f)) {
		it.data = f->m->batch->items[i].data;
		it.len = f->m->batch->items[i].len;
	}
	return it;
}

uint64_t dh_ccwire_ack_through(const dh_ccwire_frame *f)
{
	return f->m->body_case == DHCC__FRAME__BODY_ACK ? f->m->ack->acked_through : 0;
}

size_t dh_ccwire_ack_refused_count(const dh_ccwire_frame *f)
{
	return f->m->body_case == DHCC__FRAME__BODY_ACK ? f->m->ack->n_refused : 0;
}

dh_ccwire_refusal dh_ccwire_ack_refused(const dh_ccwire_frame *f, size_t i)
{
	dh_ccwire_refusal r = { 0, "", "", 0 };

	if (i < dh_ccwire_ack_refused_count(f)) {
		const Dhcc__Refusal *m = f->m->ack->refused[i];
		r.sequence = m->sequence;
		r.uuid = m->uuid ? m->uuid : "";
		r.reason = m->reason ? m->reason : "";
		r.permanent = m->permanent ? 1 : 0;
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* CURVE keys */

int dh_ccwire_keygen(char public_key[41], char secret_key[41])
{
	if (!zmq_has("curve"))
		return -1;
	return zmq_curve_keypair(public_key, secret_key) == 0 ? 0 : -1;
}

/* The Z85 alphabet (ZeroMQ RFC 32). */
static int z85_char(char c)
{
	return c && strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#",
			   c) != NULL;
}

int dh_ccwire_load_secret(const char *path, char secret_key[41], char public_key[41], char *err,
			  size_t errlen)
{
	char buf[256], pub[41];
	struct stat st;
	ssize_t n;
	size_t a, b;
	int fd = -1, rc = -1;

	if (err && errlen)
		err[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		fail(err, errlen, "cannot open CURVE secret key file %s: %s", path, strerror(errno));
		goto done;
	}
	if (fstat(fd, &st) != 0) {
		fail(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(err, errlen, "CURVE secret key file %s is not a regular file", path);
		goto done;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		fail(err, errlen, "CURVE secret key file %s is accessible by group or others (mode %04o); chmod 600 it",
		     path, (unsigned)(st.st_mode & 07777));
		goto done;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto done;
	}
	buf[n] = '\0';
	for (a = 0; buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'; a++)
		;
	for (b = (size_t)n; b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\n' ||
				     buf[b - 1] == '\r');
	     b--)
		;
	if (b - a != 40) {
		fail(err, errlen, "%s does not hold a Z85 CURVE secret key (40 characters)", path);
		goto done;
	}
	for (size_t i = a; i < b; i++)
		if (!z85_char(buf[i])) {
			fail(err, errlen, "%s does not hold a Z85 CURVE secret key (bad character)", path);
			goto done;
		}
	memcpy(secret_key, buf + a, 40);
	secret_key[40] = '\0';
	if (zmq_curve_public(pub, secret_key) != 0) {
		fail(err, errlen, "cannot derive the public key from %s (libzmq without CURVE?)", path);
		goto done;
	}
	if (public_key)
		memcpy(public_key, pub, 41);
	rc = 0;
done:
	explicit_bzero(buf, sizeof(buf));
	if (rc != 0)
		explicit_bzero(secret_key, 41);
	if (fd >= 0)
		close(fd);
	return rc;
}

int dh_ccwire_save_secret(const char *path, const char secret_key[41], char *err, size_t errlen)
{
	char *tmp = NULL;
	char line[42];
	int fd = -1, rc = -1;

	if (err && errlen)
		err[0] = '\0';
	if (strlen(secret_key) != 40) {
		fail(err, errlen, "not a Z85 CURVE key (40 characters)");
		goto done;
	}
	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		fail(err, errlen, "out of memory");
		goto done;
	}
	unlink(tmp);
	/* created 0600 from the start: the key is never readable by others, whatever the umask */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		fail(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto done;
	}
	if (fchmod(fd, 0600) != 0) {
		fail(err, errlen, "cannot chmod %s: %s", tmp, strerror(errno));
		goto done;
	}
	memcpy(line, secret_key, 40);
	line[40] = '\n';
	if (write(fd, line, 41) != 41) {
		fail(err, errlen, "cannot write %s: %s", tmp, strerror(errno ? errno : EIO));
		goto done;
	}
	if (dh_durable_fsync_fd(fd) != 0 || close(fd) != 0) {
		fd = -1;
		fail(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (dh_durable_rename(tmp, path) != 0) {
		fail(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	explicit_bzero(line, sizeof(line));
	if (fd >= 0)
		close(fd);
	if (rc != 0 && tmp)
		unlink(tmp);
	free(tmp);
	return rc;
}
