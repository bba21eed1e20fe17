/*
 * qr_query.h - turns a C-FIND identifier into one SQL statement.
 *
 * Pure translation, no I/O: qr_find.c extracts the keys from the received
 * identifier into a qr_ident and hands it here; the result is SQL text whose
 * values are all $n parameters (never interpolated) plus the parameter
 * strings, and the list of return keys the result columns carry, in order.
 * Keeping it pure lets the unit tests check escaping, ranges and the A900
 * cases without a database or a network.
 *
 * Matching follows conformance §2.2.1.6.3.3: wild card (* ?), single value,
 * UID lists, date/time ranges with Study Date + Study Time combined
 * (footnote 6), case-insensitive PN, Study Description, Institution Name
 * and Institutional Department Name, sequence matching for Other Patient
 * IDs, Request Attribute and Concept Name Code Sequences. Relational
 * queries: keys of any level of the model restrict the matches.
 *
 * Other Patient IDs Sequence choice: when it has items with values, every
 * item and the root Patient ID and Issuer must be present, non-empty and
 * without wild cards, or the request is refused with A900 (the SCU asked
 * for something we would answer wrongly otherwise). A present but empty
 * sequence is a return key only. A patient matches when any of the
 * (ID, issuer) pairs - root or items - is its own or one of its other IDs.
 */
#ifndef HUB_QR_QUERY_H
#define HUB_QR_QUERY_H

#include <stddef.h>
#include <stdint.h>

typedef enum { QR_LEVEL_PATIENT = 0, QR_LEVEL_STUDY, QR_LEVEL_SERIES, QR_LEVEL_IMAGE } qr_level;
typedef enum { QR_MODEL_PATIENT_ROOT = 0, QR_MODEL_STUDY_ROOT, QR_MODEL_PSONLY } qr_model_kind;

#define QR_MAX_KEYS 64
#define QR_MAX_ITEMS 32

/* return codes of qr_query_build besides 0 */
#define QR_A900 1 /* identifier does not match the SOP class (message in err) */

typedef struct {
	uint32_t tag;
	const char *value; /* "" for a return-only (empty) key */
} qr_kv;

/*
 * The identifier as qr_find.c extracted it. Strings are borrowed (must live
 * until qr_query_build returns). NULL means "attribute absent".
 */
typedef struct {
	qr_model_kind model;
	const char *level;         /* (0008,0052), NULL when absent */
	qr_kv key[QR_MAX_KEYS];    /* top-level non-sequence keys present */
	int n_keys;

	int other_ids;             /* (0010,1002) present */
	int n_other;
	const char *other_pid[QR_MAX_ITEMS];    /* per item (0010,0020), NULL absent */
	const char *other_issuer[QR_MAX_ITEMS]; /* per item (0010,0021), NULL absent */

	int request_attrs;         /* (0040,0275) present */
	const char *req_proc_id;   /* first item (0040,1001), NULL absent */
	const char *sps_id;        /* first item (0040,0009), NULL absent */

	int concept_name;          /* (0040,A043) present */
	const char *code_value;    /* first item (0008,0100), NULL absent */
	const char *code_scheme;   /* first item (0008,0102), NULL absent */
} qr_ident;

/* A result column: the return key it carries. seq != 0: a sequence whose
 * column holds "path\x1fvalue" records separated by \x1e, DCMTK paths from
 * the top of the response data set. */
typedef struct {
	uint32_t tag;
	int seq;
} qr_col;

typedef struct {
	char *sql;          /* owned */
	char **params;      /* owned, n_params strings */
	int n_params;
	qr_level level;
	qr_col col[QR_MAX_KEYS + 4];
	int n_cols;
} qr_sql;

/*
 * Builds the statement for id. Returns 0 (out filled; free with
 * qr_sql_free), QR_A900 (err says why), or -1 (allocation failure).
 */
int qr_query_build(const qr_ident *id, qr_sql *out, char *err, size_t errlen);

void qr_sql_free(qr_sql *q);

/*
 * The top-level non-sequence attributes the translation knows (matching or
 * return keys), so qr_find.c knows which ones to extract: tag number i
 * (0 <= i < qr_query_known_count()).
 */
int qr_query_known_count(void);
uint32_t qr_query_known_tag(int i);

/* Level of a known key's attribute, or -1 when unknown. */
int qr_query_tag_level(uint32_t tag);

#endif
