/*
 * wado_query.c - see wado_query.h.
 */
#include "wado_query.h"

#include "uid.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_VALUE 1024 /* longest parameter value accepted (contentType lists) */
#define MAX_NAME 32

enum { P_REQUEST_TYPE, P_STUDY, P_SERIES, P_OBJECT, P_CONTENT_TYPE, P_TRANSFER_SYNTAX, N_PARAMS };
static const char *const param_names[N_PARAMS] = { "requestType", "studyUID", "seriesUID",
						   "objectUID", "contentType", "transferSyntax" };

/* PS3.18 WADO-URI parameters this server does not offer (conformance §6 lists none of them). */
static const char *const unsupported[] = { "charset", "anonymize", "annotation", "rows", "columns",
					   "region", "windowCenter", "windowWidth", "frameNumber",
					   "imageQuality", "presentationUID", "presentationSeriesUID", NULL };

/* Copies s[0..n) into out (outlen >= 4) for a message: printable ASCII, others as '?', "..." when cut. */
static void printable(char *out, size_t outlen, const char *s, size_t n)
{
	size_t o = 0;
	for (; o < n && o + 1 < outlen; o++) {
		unsigned char c = (unsigned char)s[o];
		out[o] = c >= 0x20 && c < 0x7F ? (char)c : '?';
	}
	out[o] = '\0';
	if (o < n)
		memcpy(out + o - 3, "...", 3);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes s[0..n) (percent-encoding, '+' as a space) into out (size outlen).
 * Returns the length, -1 for a bad escape or a control character (NUL
 * included), -2 when it does not fit.
 */
static long decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int hi = hexval(s[i + 1]);
			int lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (c < 0x20 || c == 0x7F)
			return -1;
		if (o + 1 >= outlen)
			return -2;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

/* 1 when the comma-separated media type list names application/dicom (parameters after ';' ignored). */
static int wants_dicom(const char *list)
{
	const char *p = list;
	while (*p) {
		size_t k = strcspn(p, ",");
		size_t b = 0, e = strcspn(p, ",;");
		if (e > k)
			e = k;
		while (b < e && (p[b] == ' ' || p[b] == '\t'))
			b++;
		while (e > b && (p[e - 1] == ' ' || p[e - 1] == '\t'))
			e--;
		if (e - b == 17 && strncasecmp(p + b, "application/dicom", 17) == 0)
			return 1;
		p += k;
		if (*p == ',')
			p++;
	}
	return 0;
}

int wado_parse_query(const char *query, wado_request *rq, char *why, size_t whylen)
{
	char vals[N_PARAMS][MAX_VALUE];
	int seen[N_PARAMS] = { 0 };
	char name[MAX_NAME + 1], shown[80];
	const char *p = query ? query : "";

	memset(rq, 0, sizeof(*rq));
	while (*p) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		if (len == 0) { /* "a=1&&b=2", a trailing '&': nothing there */
			p++;
			continue;
		}
		size_t nlen = eq ? (size_t)(eq - p) : len;
		long dn = decode(p, nlen, name, sizeof(name));
		if (dn == -1) {
			snprintf(why, whylen, "bad percent-encoding in a parameter name");
			return 400;
		}
		if (dn == -2 || dn == 0) {
			printable(shown, sizeof(shown), p, nlen);
			snprintf(why, whylen, "unknown parameter '%s'", shown);
			return 400;
		}
		int idx = -1;
		for (int i = 0; i < N_PARAMS && idx < 0; i++)
			if (strcmp(name, param_names[i]) == 0)
				idx = i;
		if (idx < 0) {
			printable(shown, sizeof(shown), name, strlen(name));
			for (const char *const *u = unsupported; *u; u++) {
				if (strcmp(name, *u) == 0) {
					snprintf(why, whylen, "parameter '%s' is not supported: this server returns "
						 "the object as stored (contentType=application/dicom)", shown);
					return 400;
				}
			}
			snprintf(why, whylen, "unknown parameter '%s'", shown);
			return 400;
		}
		if (!eq) {
			snprintf(why, whylen, "parameter '%s' has no value", param_names[idx]);
			return 400;
		}
		if (seen[idx]) {
			snprintf(why, whylen, "parameter '%s' given more than once", param_names[idx]);
			return 400;
		}
		seen[idx] = 1;
		long dv = decode(eq + 1, len - nlen - 1, vals[idx], sizeof(vals[idx]));
		if (dv == -1) {
			snprintf(why, whylen, "bad percent-encoding in the value of '%s'", param_names[idx]);
			return 400;
		}
		if (dv == -2) {
			snprintf(why, whylen, "value of '%s' too long", param_names[idx]);
			return 400;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	if (!seen[P_REQUEST_TYPE]) {
		snprintf(why, whylen, "requestType missing (requestType=WADO)");
		return 400;
	}
	if (strcmp(vals[P_REQUEST_TYPE], "WADO") != 0) {
		printable(shown, sizeof(shown), vals[P_REQUEST_TYPE], strlen(vals[P_REQUEST_TYPE]));
		snprintf(why, whylen, "requestType must be WADO, not '%s'", shown);
		return 400;
	}
	static const int uids[] = { P_STUDY, P_SERIES, P_OBJECT };
	char *dst[] = { rq->study, rq->series, rq->object };
	for (int i = 0; i < 3; i++) {
		int k = uids[i];
		if (!seen[k]) {
			snprintf(why, whylen, "%s missing", param_names[k]);
			return 400;
		}
		if (!dh_uid_valid(vals[k])) {
			snprintf(why, whylen, "%s is not a UID (digits and dots, at most 64 characters, no leading zeros)",
				 param_names[k]);
			return 400;
		}
		memcpy(dst[i], vals[k], strlen(vals[k]) + 1);
	}
	if (seen[P_TRANSFER_SYNTAX]) {
		if (!dh_uid_valid(vals[P_TRANSFER_SYNTAX])) {
			snprintf(why, whylen, "transferSyntax is not a UID");
			return 400;
		}
		memcpy(rq->transfer_syntax, vals[P_TRANSFER_SYNTAX], strlen(vals[P_TRANSFER_SYNTAX]) + 1);
	}
	if (!seen[P_CONTENT_TYPE]) {
		snprintf(why, whylen, "contentType missing (this server offers contentType=application/dicom)");
		return 400;
	}
	if (!wants_dicom(vals[P_CONTENT_TYPE])) {
		printable(shown, sizeof(shown), vals[P_CONTENT_TYPE], strlen(vals[P_CONTENT_TYPE]));
		snprintf(why, whylen, "contentType '%s' not offered: only application/dicom", shown);
		return 406;
	}
	return 0;
}
