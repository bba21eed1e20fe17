/*
 * wado_query.h - the query string of a WADO-URI request (DICOM PS3.18,
 * conformance §6): parsed strictly, no I/O, so that every refusal can be
 * unit-tested (tests/hub/test_wado.c).
 *
 * Accepted: requestType=WADO, studyUID, seriesUID, objectUID (UIDs as
 * ingest accepts them, common/uid.h), contentType naming
 * application/dicom, optionally transferSyntax; percent-encoding ('+' a
 * space); empty pieces ("&&") ignored. Refused with 400: a missing,
 * repeated, unknown or unsupported parameter, a bad %-escape or a control
 * character, a value over 1023 bytes, a bad UID; with 406: a contentType
 * without application/dicom.
 */
#ifndef HUB_WADO_QUERY_H
#define HUB_WADO_QUERY_H

#include <stddef.h>

/* A parsed request (UIDs validated; transfer_syntax "" when not asked for). */
typedef struct {
	char study[65];
	char series[65];
	char object[65];
	char transfer_syntax[65];
} wado_request;

/*
 * Parses the raw query string (the part after '?', percent-encoded; NULL is
 * an empty one). Returns 0 with rq filled, or the HTTP status to answer
 * (400 or 406) with the reason in why (printable ASCII, truncated to whylen).
 */
int wado_parse_query(const char *query, wado_request *rq, char *why, size_t whylen);

#endif
