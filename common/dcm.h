/*
 * dcm.h - the C face of DCMTK: associations, DIMSE messages and data sets.
 *
 * This is the only place DCMTK is used (the implementation, dcm.cc, is the
 * project's single C++ file). It stays thin: it moves bytes and messages and
 * answers questions about data sets; every policy (which AE may talk, which
 * transfer syntax to accept, what a status means) is decided in C by the
 * caller.
 *
 * Threads: an association and a data set belong to one thread at a time.
 * dh_dcm_global_init() must run once before threads start (it registers
 * codecs, configures DCMTK's logger and turns Nagle off for every socket
 * DCMTK opens).
 *
 * Errors: functions return 0 on success and a negative dh_dcm_rc otherwise;
 * a message goes to err when the caller passes a buffer. Tags are written
 * as uint32_t (group << 16 | element), e.g. DH_TAG(0x0008, 0x0018).
 * Paths (dh_dcm_ds_get/put/count) use DCMTK's path syntax:
 * "(0008,1199)[0].(0008,1155)" (item numbers start at 0).
 */
#ifndef DH_DCM_H
#define DH_DCM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DH_TAG(g, e) ((uint32_t)(((uint32_t)(g) << 16) | (uint32_t)(e)))

typedef enum {
	DH_DCM_OK = 0,
	DH_DCM_ERROR = -1,     /* anything else (message in err) */
	DH_DCM_TIMEOUT = -2,   /* nothing arrived within the time-out */
	DH_DCM_RELEASED = -3,  /* the peer released the association (already acknowledged) */
	DH_DCM_ABORTED = -4,   /* the peer aborted or the connection closed */
	DH_DCM_NOSPACE = -5,   /* writing a file failed for lack of space */
	DH_DCM_ABSENT = -6,    /* data set: attribute not present */
	DH_DCM_REJECTED = -7   /* association request rejected by the peer */
} dh_dcm_rc;

typedef struct dh_dcm_net dh_dcm_net;     /* a listening socket */
typedef struct dh_dcm_assoc dh_dcm_assoc; /* one association, either side */
typedef struct dh_dcm_ds dh_dcm_ds;       /* a data set (and its file meta, if any) */

/* ---- process set-up ---------------------------------------------------- */

/*
 * Registers the JPEG, JPEG-LS and RLE codecs, sets TCP_NODELAY=1 in the
 * environment (DCMTK reads it per socket) and DCMTK's log level
 * (0 quiet .. 4 trace, matching dh_log_level). Call once, before threads.
 */
void dh_dcm_global_init(int log_level);

/* ---- acceptor ---------------------------------------------------------- */

/*
 * Listens on port (all IPv4 addresses: DCMTK 3.6.7 has no bind option).
 * acse_timeout bounds reading the A-ASSOCIATE-RQ of a new connection (ARTIM).
 */
int dh_dcm_net_listen(dh_dcm_net **out, int port, int acse_timeout, char *err, size_t errlen);
void dh_dcm_net_free(dh_dcm_net *net);

/*
 * Waits up to timeout_s for a connection and reads its association request.
 * Several threads may call this on one net at once. Returns 0 with *out set
 * (the caller owns it and must acknowledge or reject it), DH_DCM_TIMEOUT, or
 * an error (a broken request; *out is NULL).
 */
int dh_dcm_net_accept(dh_dcm_net *net, int timeout_s, int max_pdu, dh_dcm_assoc **out,
		      char *err, size_t errlen);

/* ---- a received association request -------------------------------------- */

const char *dh_dcm_assoc_calling_ae(const dh_dcm_assoc *a);
const char *dh_dcm_assoc_called_ae(const dh_dcm_assoc *a);
const char *dh_dcm_assoc_peer_host(const dh_dcm_assoc *a);

/* Number of presentation contexts proposed. */
int dh_dcm_assoc_pc_count(const dh_dcm_assoc *a);

/*
 * Describes proposed context i: its id, abstract syntax and the proposed
 * transfer syntaxes (pointers valid while a lives), and the SCU/SCP role
 * the requester proposed (0 default, 1 SCU, 2 SCP, 3 both).
 */
int dh_dcm_assoc_pc_get(const dh_dcm_assoc *a, int i, int *id, const char **abstract_syntax,
			const char *const **ts, int *n_ts, int *role);

/*
 * Accepts context id with transfer syntax ts (role: 0 default, or the role
 * we take, 1 SCU / 2 SCP, for SCP/SCU role selection); ext_neg non-NULL sets
 * the extended negotiation reply bytes. Contexts never accepted are refused
 * ("abstract syntax not supported") by dh_dcm_assoc_acknowledge.
 */
int dh_dcm_assoc_pc_accept(dh_dcm_assoc *a, int id, const char *ts, int role,
			   const unsigned char *ext_neg, size_t ext_len);

/*
 * Refuses context id with result "user rejection" (a policy refusal: §5.2,
 * per-AE rules), where leaving it unaccepted would say "abstract syntax
 * not supported".
 */
int dh_dcm_assoc_pc_refuse(dh_dcm_assoc *a, int id);

/* The SOP class extended negotiation bytes the requester proposed for an abstract syntax, or NULL. */
const unsigned char *dh_dcm_assoc_ext_neg(const dh_dcm_assoc *a, const char *abstract_syntax,
					  size_t *len);

/* Sends A-ASSOCIATE-AC (with our AE title echoed as called title). */
int dh_dcm_assoc_acknowledge(dh_dcm_assoc *a, char *err, size_t errlen);

/*
 * Sends A-ASSOCIATE-RJ. result: 1 permanent, 2 transient. source: 1 user,
 * 2 ACSE provider, 3 presentation provider. reason as in PS3.8 Table 9-21
 * (e.g. source 1: 3 calling AE not recognised, 7 called AE not recognised;
 * source 3: 2 local limit exceeded).
 */
int dh_dcm_assoc_reject(dh_dcm_assoc *a, int result, int source, int reason);

/* ---- requesting an association ----------------------------------------- */

typedef struct {
	const char *abstract_syntax;
	const char *const *ts; /* proposed transfer syntaxes, first preferred */
	int n_ts;
	int role;              /* 0 default, 1 SCU, 2 SCP, 3 both (role selection) */
} dh_dcm_pc_req;

/*
 * Opens an association to host:port. Each request gets its own context id
 * (1, 3, 5, ... in order). Returns 0, DH_DCM_REJECTED, or an error.
 * timeout_s bounds the connect and the wait for the A-ASSOCIATE-AC.
 */
int dh_dcm_assoc_request(dh_dcm_assoc **out, const char *calling_ae, const char *called_ae,
			 const char *host, int port, int max_pdu, int timeout_s,
			 const dh_dcm_pc_req *pcs, int n_pcs, char *err, size_t errlen);

/*
 * The id and transfer syntax of an accepted context for abstract_syntax
 * (and, when ts is non-NULL, that transfer syntax). Returns 0 or DH_DCM_ABSENT.
 */
int dh_dcm_assoc_find_pc(const dh_dcm_assoc *a, const char *abstract_syntax, const char *ts,
			 int *id, const char **accepted_ts);

/*
 * The acceptor's answer for context id of an association we requested:
 * 0 acceptance, 1 user rejection, 2 no reason, 3 abstract syntax not
 * supported, 4 transfer syntaxes not supported; -1 when id is unknown.
 */
int dh_dcm_assoc_pc_result(const dh_dcm_assoc *a, int id);

/* Releases (A-RELEASE) an association we requested. The handle stays valid until freed. */
int dh_dcm_assoc_release(dh_dcm_assoc *a);

/* Aborts (A-ABORT) the association. */
void dh_dcm_assoc_abort(dh_dcm_assoc *a);

/* Closes the connection and frees everything. NULL is fine. */
void dh_dcm_assoc_free(dh_dcm_assoc *a);

/* Transfer syntax accepted for context id, or NULL. */
const char *dh_dcm_assoc_pc_ts(const dh_dcm_assoc *a, int id);

/* ---- DIMSE ------------------------------------------------------------- */

typedef enum {
	DH_DIMSE_OTHER = 0,
	DH_DIMSE_C_ECHO_RQ,
	DH_DIMSE_C_STORE_RQ,
	DH_DIMSE_C_FIND_RQ,
	DH_DIMSE_C_MOVE_RQ,
	DH_DIMSE_C_GET_RQ,
	DH_DIMSE_C_CANCEL_RQ,
	DH_DIMSE_N_ACTION_RQ,
	DH_DIMSE_N_EVENT_REPORT_RQ,
	DH_DIMSE_N_CREATE_RQ,
	DH_DIMSE_N_SET_RQ
} dh_dimse_type;

typedef struct {
	dh_dimse_type type;
	int pc_id;
	unsigned int msg_id;
	char sop_class[65];    /* affected or requested SOP class UID */
	char sop_instance[65]; /* affected or requested SOP instance UID */
	char move_dest[17];    /* C-MOVE destination */
	char move_orig_ae[17]; /* C-STORE move originator AE title, if any */
	unsigned int move_orig_msg_id;
	int priority;
	int type_id;           /* N-ACTION action type / N-EVENT-REPORT event type */
	int has_dataset;
} dh_dcm_cmd;

/*
 * Waits up to timeout_s for the next command. Returns 0 with cmd filled,
 * DH_DCM_TIMEOUT, DH_DCM_RELEASED (release acknowledged: the association
 * is over), DH_DCM_ABORTED, or an error.
 */
int dh_dcm_receive_command(dh_dcm_assoc *a, int timeout_s, dh_dcm_cmd *cmd, char *err, size_t errlen);

/*
 * Receives the data set of a C-STORE into path (created; File Meta
 * Information is built from the command and the context's transfer syntax,
 * the data set bytes are written exactly as received). Returns 0,
 * DH_DCM_NOSPACE (the rest of the data set was read and dropped), or an
 * error (the file is removed).
 */
int dh_dcm_receive_store_file(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, const char *path,
			      int timeout_s, char *err, size_t errlen);

/* What dh_dcm_receive_store_hashed learnt while the bytes went by (hex digests, NUL-terminated). */
typedef struct {
	char md5[33];            /* MD5 of the whole file */
	char file_digest[33];    /* XXH3-128 of the whole file */
	char dataset_digest[33]; /* XXH3-128 of the data set: the bytes after File Meta Information */
	long long size;          /* bytes in the file */
} dh_dcm_received;

/*
 * dh_dcm_receive_store_file that also hashes the file while it is written
 * (the File Meta Information once, then every received byte), so the
 * caller need not read it back: it only fsyncs it. The digests are those
 * dh_durable_md5_sync computes over the finished file, with the data set
 * starting where dh_dsdigest_offset says. Nothing is fsync'ed here.
 */
int dh_dcm_receive_store_hashed(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, const char *path, int timeout_s,
				dh_dcm_received *out, char *err, size_t errlen);

/* Reads and drops the data set that follows cmd (when a request is refused before it is read). */
int dh_dcm_receive_discard(dh_dcm_assoc *a, int timeout_s);

/* Receives the data set that follows cmd into memory; the caller owns *out. */
int dh_dcm_receive_dataset(dh_dcm_assoc *a, int timeout_s, dh_dcm_ds **out, char *err, size_t errlen);

/*
 * Sends the response to cmd with status. ds (may be NULL) is the response's
 * data set (C-FIND identifiers, N-ACTION reply, ...). error_comment (may be
 * NULL) goes to (0000,0902). For C-MOVE/C-GET the four sub-operation
 * counters are sent when counts is non-NULL (remaining, completed, failed,
 * warning).
 */
int dh_dcm_send_response(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, unsigned int status,
			 const dh_dcm_ds *ds, const char *error_comment, const int counts[4]);

/*
 * Responses with a data set to cmd that go out in bulk: a C-FIND SCP's
 * pending responses. DIMSE writes each message as two PDUs of two write()
 * calls each, which for a query with hundreds of matches costs more than
 * the query itself (a system call and a wake-up of the peer per call).
 * A queue encodes every response to the same bytes DIMSE would send (same
 * command set, transfer syntax and PDU fragmentation) and writes them in
 * growing chunks: the first response alone (the peer starts on it at
 * once), then each write up to twice the previous one, at most 64 KiB.
 * What waits in the queue reaches the peer only with a later write: flush
 * when the queue has waited long enough (dh_dcm_rspq_age_ms) and before
 * the final response, which goes through dh_dcm_send_response as before.
 * A queue belongs to one command of one association and one thread.
 */
typedef struct dh_dcm_rspq dh_dcm_rspq;

/* A queue of responses to cmd with status (e.g. 0xFF00). *out is the caller's. */
int dh_dcm_rspq_new(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, unsigned int status, dh_dcm_rspq **out);

/* Encodes one response carrying ds; writes the queue when it is due (see above). */
int dh_dcm_rspq_add(dh_dcm_rspq *q, const dh_dcm_ds *ds);

/* Writes everything queued. DH_DCM_ERROR once a write failed (the association is gone). */
int dh_dcm_rspq_flush(dh_dcm_rspq *q);

/* How long (ms) the oldest response not yet written has waited; 0 when none waits. */
double dh_dcm_rspq_age_ms(const dh_dcm_rspq *q);

/* Frees q; what was not flushed is dropped. NULL is fine. */
void dh_dcm_rspq_free(dh_dcm_rspq *q);

/* C-ECHO as SCU on an accepted Verification context. *status gets the DIMSE status. */
int dh_dcm_echo(dh_dcm_assoc *a, int timeout_s, unsigned int *status);

/*
 * N-ACTION / N-EVENT-REPORT as the requester on context pc_id. ds is the
 * action/event information (may be NULL). *status gets the response status.
 */
int dh_dcm_n_action(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *sop_instance,
		    int action_type, const dh_dcm_ds *ds, int timeout_s, unsigned int *status,
		    char *err, size_t errlen);
int dh_dcm_n_event_report(dh_dcm_assoc *a, int pc_id, const char *sop_class,
			  const char *sop_instance, int event_type, const dh_dcm_ds *ds,
			  int timeout_s, unsigned int *status, char *err, size_t errlen);

/*
 * C-STORE of a file's data set on context pc_id as SCU. With raw != 0 the
 * data set bytes after the File Meta Information are sent as they are,
 * without parsing (the file must be in the context's transfer syntax; tests
 * use it to send damaged data); otherwise the file is parsed and re-encoded
 * in the context's transfer syntax. *status gets the response status.
 */
int dh_dcm_store_file(dh_dcm_assoc *a, int pc_id, const char *path, int raw,
		      const char *sop_class, const char *sop_instance, int timeout_s,
		      unsigned int *status, char *err, size_t errlen);

/*
 * An attribute value to set when an object leaves the hub (the index's
 * truth). value is UTF-8 text as DICOM writes it (multiple values
 * backslash-separated); "" (or NULL) sets the attribute present with zero
 * length. vr NULL or "" takes the dictionary's VR; give it for private or
 * unknown tags (a tag whose VR stays unknown is written as UN holding the
 * value's bytes). An SQ can only be set empty. Top-level attributes only;
 * group 0000 and 0002 and Specific Character Set are ignored (the File
 * Meta Information follows the data set; the character set follows the
 * values).
 */
typedef struct {
	uint32_t tag;
	const char *value;
	const char *vr;
} dh_dcm_override;

/*
 * Same as dh_dcm_store_file, as a C-MOVE sub-operation: move_orig_ae
 * (NULL: none) and move_orig_msg_id go into the C-STORE request. With
 * n_ov > 0 the data set is parsed, the overrides applied in order (a later
 * one of the same tag wins) and re-encoded, whatever raw says. When any
 * value is not pure ASCII the data set is first converted to UTF-8
 * (Specific Character Set ISO_IR 192; undeclared 8-bit text is read as
 * Latin-1), so values are never mixed with another character set. The
 * File Meta Information follows: Media Storage SOP Instance UID becomes
 * the SOP Instance UID sent.
 */
int dh_dcm_store_file_ex(dh_dcm_assoc *a, int pc_id, const char *path, int raw,
			 const char *sop_class, const char *sop_instance,
			 const char *move_orig_ae, unsigned int move_orig_msg_id,
			 const dh_dcm_override *ov, int n_ov, int timeout_s,
			 unsigned int *status, char *err, size_t errlen);

/*
 * Same as dh_dcm_store_file_ex for an object held in memory (a complete
 * DICOM file: preamble, meta, data set), e.g. read from a TAR member.
 */
int dh_dcm_store_buffer(dh_dcm_assoc *a, int pc_id, const unsigned char *buf, size_t len, int raw,
			const char *sop_class, const char *sop_instance, const char *move_orig_ae,
			unsigned int move_orig_msg_id, const dh_dcm_override *ov, int n_ov, int timeout_s,
			unsigned int *status, char *err, size_t errlen);

/*
 * Non-blocking look for a C-CANCEL-RQ for msg_id (on the context of the
 * last command received, where it must arrive). Returns 1 when one
 * arrived, 0 when none is waiting, DH_DCM_ABORTED/DH_DCM_ERROR when the
 * association broke.
 */
int dh_dcm_check_cancel(dh_dcm_assoc *a, unsigned int msg_id);

/* Called for each pending C-MOVE response (counts: remaining, completed, failed, warning). */
typedef void (*dh_dcm_move_progress)(void *user, unsigned int status, const int counts[4]);

/*
 * C-MOVE as SCU on context pc_id (sop_class: the Q/R MOVE model) with
 * identifier ident to destination dest. progress (may be NULL) sees every
 * pending response; *status and counts get the final response's.
 */
int dh_dcm_move(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *dest,
		const dh_dcm_ds *ident, int timeout_s, dh_dcm_move_progress progress, void *user,
		unsigned int *status, int counts[4], char *err, size_t errlen);

/*
 * Same as dh_dcm_move, and: when cancel (may be NULL) points at a non-zero
 * value after a pending response (progress may set it), a C-CANCEL-RQ is
 * sent (once) and the SCP's final response ends the call; failed_uids (may
 * be NULL) gets the Failed SOP Instance UID List (0008,0058) of the final
 * response, backslash-separated, malloc'ed (the caller frees it), or NULL
 * when the response has none.
 */
int dh_dcm_move_ex(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *dest,
		   const dh_dcm_ds *ident, int timeout_s, dh_dcm_move_progress progress, void *user,
		   const int *cancel, unsigned int *status, int counts[4], char **failed_uids, char *err,
		   size_t errlen);

/* ---- data sets --------------------------------------------------------- */

/*
 * Loads a DICOM file (with or without File Meta Information). Values longer
 * than 4 KiB (pixel data) stay on disk and are read only when needed.
 * Returns 0 or an error naming what is wrong (truncated, not DICOM, ...).
 * Character data is converted to UTF-8 when the data set declares a
 * Specific Character Set DCMTK can convert.
 */
int dh_dcm_ds_load(const char *path, dh_dcm_ds **out, char *err, size_t errlen);

/* Loads only the File Meta Information of a file (for tools that send damaged data sets). */
int dh_dcm_ds_load_meta(const char *path, dh_dcm_ds **out, char *err, size_t errlen);

/* A new empty data set. */
int dh_dcm_ds_new(dh_dcm_ds **out);
void dh_dcm_ds_free(dh_dcm_ds *ds);

/*
 * Copies the value of tag (all values, backslash-separated, trailing
 * padding removed) into buf. Returns 0 (empty values give ""),
 * DH_DCM_ABSENT, or DH_DCM_ERROR when buf is too small.
 */
int dh_dcm_ds_get(const dh_dcm_ds *ds, uint32_t tag, char *buf, size_t len);

/* Same, for a File Meta Information element. */
int dh_dcm_ds_get_meta(const dh_dcm_ds *ds, uint32_t tag, char *buf, size_t len);

/* Same, for a path into sequences. */
int dh_dcm_ds_get_path(const dh_dcm_ds *ds, const char *path, char *buf, size_t len);

/* Number of items of the sequence at path (0 when absent). */
int dh_dcm_ds_count(const dh_dcm_ds *ds, const char *path);

/* 1 when the top-level tag is present (even empty), else 0. */
int dh_dcm_ds_has(const dh_dcm_ds *ds, uint32_t tag);

/* Sets tag (or a path, creating items) to value, in the VR the dictionary gives. */
int dh_dcm_ds_put(dh_dcm_ds *ds, uint32_t tag, const char *value);
int dh_dcm_ds_put_path(dh_dcm_ds *ds, const char *path, const char *value);

/*
 * Applies overrides to a data set the way dh_dcm_store_file_ex does before
 * sending (UTF-8 conversion when a value is not ASCII, File Meta
 * Information following), e.g. for WADO or a tool that writes files.
 */
int dh_dcm_ds_apply_overrides(dh_dcm_ds *ds, const dh_dcm_override *ov, int n_ov, char *err, size_t errlen);

/* Writes the data set with File Meta Information in transfer syntax ts (tests, tools). */
int dh_dcm_ds_save(dh_dcm_ds *ds, const char *path, const char *ts, char *err, size_t errlen);

/*
 * An object as it leaves the hub over HTTP (WADO): the file at path (path
 * NULL: the complete DICOM file held in buf/len, e.g. a TAR member) with
 * the overrides applied as dh_dcm_store_file_ex applies them, written as
 * a DICOM file (preamble, File Meta Information, data set) in the
 * object's own transfer syntax. *out is malloc'ed (the caller frees it).
 * Returns 0 or an error.
 */
int dh_dcm_render(const char *path, const unsigned char *buf, size_t len, const dh_dcm_override *ov, int n_ov,
		  unsigned char **out, size_t *out_len, char *err, size_t errlen);

/* Byte offset of the data set in a DICOM file (after preamble and meta), or -1. */
long dh_dcm_file_dataset_offset(const char *path);

/* ---- DICOM over TLS ------------------------------------------------------ */

/*
 * TLS for associations (PS3.15 Annex B: the BCP 195 TLS Secure Transport
 * Connection Profiles, over OpenSSL through DCMTK's dcmtls). A dh_dcm_tls
 * holds our certificate, private key, the trusted CA certificates, the
 * peer verification mode and the cipher suite profile, loaded and checked
 * once; it is read-only afterwards, so any number of threads and
 * associations may share it. One is made for each role: a server one for
 * listeners, a client one for associations we request.
 */
typedef struct dh_dcm_tls dh_dcm_tls;

enum {
	DH_TLS_VERIFY_REQUIRE = 0, /* the peer must present a certificate a trusted CA signed */
	DH_TLS_VERIFY_CHECK = 1,   /* verified when presented; none is accepted (server only) */
	DH_TLS_VERIFY_IGNORE = 2   /* not asked for (server only) */
};

enum {
	DH_TLS_PROFILE_BCP195_ND = 0, /* Non-downgrading BCP 195: TLS 1.2 or newer only */
	DH_TLS_PROFILE_BCP195 = 1,    /* BCP 195: prefers TLS 1.2, may fall back to 1.0/1.1 */
	DH_TLS_PROFILE_BCP195_EXT = 2 /* Extended BCP 195: TLS 1.2 only, stronger key sizes */
};

typedef struct {
	const char *certificate; /* PEM: our certificate, optionally followed by its chain */
	const char *private_key; /* PEM, not encrypted (protect it with file permissions) */
	const char *ca_file;     /* PEM bundle of trusted CA certificates ("" or NULL: none) */
	const char *ca_dir;      /* OpenSSL hashed directory of CA certificates ("" or NULL: none) */
	int verify;              /* DH_TLS_VERIFY_*; a client always requires and verifies */
	int profile;             /* DH_TLS_PROFILE_* */
	const char *crl_file;    /* PEM CRLs of the trusted CAs: a revoked peer certificate is
				  * refused, and every verified peer's CA must have its CRL here
				  * ("" or NULL: no revocation check) */
} dh_dcm_tls_opts;

/*
 * Loads and checks the settings for one role (server != 0: listener).
 * Fails, with a message naming the file and the reason, when a file is
 * missing or unreadable, the key is encrypted or does not match the
 * certificate, or no CA is given although peers must be verified.
 * Requires dh_dcm_global_init. The caller owns *out.
 */
int dh_dcm_tls_new(dh_dcm_tls **out, int server, const dh_dcm_tls_opts *o, char *err, size_t errlen);
void dh_dcm_tls_free(dh_dcm_tls *tls);

/*
 * Same as dh_dcm_net_listen, every connection a TLS one (server-role tls,
 * borrowed: it must outlive the net). The TLS handshake runs inside
 * dh_dcm_net_accept; a failed one (plain DICOM, an untrusted or missing
 * client certificate) returns an error there and closes the connection.
 * The handshake is bounded by acse_timeout like the A-ASSOCIATE-RQ, so a
 * silent peer holds an accepting thread no longer on this port than on a
 * plain one.
 */
int dh_dcm_net_listen_tls(dh_dcm_net **out, int port, int acse_timeout, dh_dcm_tls *tls, char *err,
			  size_t errlen);

/*
 * Same as dh_dcm_assoc_request, over TLS when tls (client-role, borrowed for
 * the call) is non-NULL: the server's certificate must verify against the
 * trusted CAs (its host name is not compared: DCMTK 3.6.7 has no check).
 * timeout_s bounds the TLS handshake too.
 */
int dh_dcm_assoc_request_tls(dh_dcm_assoc **out, const char *calling_ae, const char *called_ae,
			     const char *host, int port, int max_pdu, int timeout_s,
			     const dh_dcm_pc_req *pcs, int n_pcs, dh_dcm_tls *tls, char *err,
			     size_t errlen);

/*
 * 1 when the association runs over TLS, else 0. When subject is non-NULL
 * it gets the peer certificate's subject ("" when the peer sent none, or
 * for a plain association).
 */
int dh_dcm_assoc_tls_peer(const dh_dcm_assoc *a, char *subject, size_t len);
/* ---- N-CREATE / N-SET (MPPS) ------------------------------------------- */

/*
 * Receives the data set that follows cmd as its bytes exactly as they came
 * (in the context's transfer syntax, nothing re-encoded) and parses them.
 * Returns 0 with *bytes (malloc'ed, *len bytes) and *out the caller's, or
 * 0 with both NULL and the reason in err when the data set was read but
 * does not parse (answer it; the association can go on), or an error as
 * dh_dcm_receive_command.
 */
int dh_dcm_receive_dataset_raw(dh_dcm_assoc *a, int timeout_s, unsigned char **bytes, size_t *len,
			       dh_dcm_ds **out, char *err, size_t errlen);

/* Parses data set bytes (no File Meta Information) encoded in ts (NULL: Implicit VR LE). *out is the caller's. */
int dh_dcm_ds_parse(const unsigned char *buf, size_t len, const char *ts, dh_dcm_ds **out, char *err,
		    size_t errlen);

/* Encodes the data set (no File Meta Information) in ts (NULL: Implicit VR LE); *buf (malloc'ed) is the caller's. */
int dh_dcm_ds_encode(const dh_dcm_ds *ds, const char *ts, unsigned char **buf, size_t *len, char *err,
		     size_t errlen);

/*
 * Converts the data set's text to UTF-8 per its Specific Character Set, as
 * dh_dcm_ds_load does (nothing to do without one). Returns 0, or
 * DH_DCM_ERROR for a character set DCMTK cannot convert (values then come
 * out as dh_dcm_ds_get's Latin-1 reading of their bytes).
 */
int dh_dcm_ds_to_utf8(dh_dcm_ds *ds);

/* N-SET semantics: every top-level attribute of src replaces (or adds) the same attribute in dst. */
int dh_dcm_ds_merge(dh_dcm_ds *dst, const dh_dcm_ds *src);

/* The top-level tags of ds in order: fills at most max, returns how many there are. */
int dh_dcm_ds_tags(const dh_dcm_ds *ds, uint32_t *tags, int max);

/*
 * N-CREATE / N-SET as the requester on context pc_id, the data set given as
 * bytes already encoded in the context's transfer syntax and sent as they
 * are. N-CREATE: sop_instance NULL or "" leaves the Affected SOP Instance
 * UID out (the SCP assigns one); affected_out (65 bytes, may be NULL) gets
 * the response's Affected SOP Instance UID ("" when absent). *status gets
 * the response status.
 */
int dh_dcm_n_create(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *sop_instance,
		    const unsigned char *data, size_t len, int timeout_s, unsigned int *status,
		    char affected_out[65], char *err, size_t errlen);
int dh_dcm_n_set(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *sop_instance,
		 const unsigned char *data, size_t len, int timeout_s, unsigned int *status, char *err,
		 size_t errlen);

/* ---- well-known UIDs --------------------------------------------------- */

#define DH_UID_VERIFICATION "1.2.840.10008.1.1"
#define DH_UID_STGCMT_PUSH "1.2.840.10008.1.20.1"
#define DH_UID_STGCMT_PUSH_INSTANCE "1.2.840.10008.1.20.1.1"
#define DH_UID_MPPS "1.2.840.10008.3.1.2.3.3"
#define DH_TS_IMPLICIT_LE "1.2.840.10008.1.2"
#define DH_TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define DH_TS_EXPLICIT_BE "1.2.840.10008.1.2.2"
#define DH_TS_DEFLATE "1.2.840.10008.1.2.1.99"

#ifdef __cplusplus
}
#endif

#endif
