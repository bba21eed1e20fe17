/*
 * wado.c - WADO-URI listener (see wado.h).
 *
 * NOTES
 * The query string is parsed by wado_query.c from the raw request target
 * that libmicrohttpd hands to the URI log callback, not from its own
 * argument table: that table decodes leniently (a bad %-escape passes
 * through) and keeps one value per name, so neither malformed escapes nor
 * repeated parameters could be refused.
 *
 * One request: the UIDs are looked up as current UIDs (three unique-index
 * probes); when that finds nothing they are resolved the way C-MOVE
 * resolves them (instance.h: old Study, Series and SOP Instance UIDs lead
 * to what they became). Then render_load reads, on the same connection,
 * what the index says differs from the stored file, and the connection
 * goes back to the pool before any byte is read. An object with nothing to change is sent
 * as stored: the cache file straight from its descriptor, or the TAR
 * member as read and checked (instance_open, archive.read_verify). One with changes is
 * parsed, changed and re-encoded in its stored transfer syntax
 * (dh_dcm_render), as C-MOVE does when the destination took that syntax.
 * Deleted objects are not in the instance table and cannot be found.
 */
#include "wado.h"

#include "instance.h"
#include "log.h"
#include "render.h"
#include "wado_query.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGET 4096 /* longest request target we look at */

#define MAX_PEM (1 << 20)

struct wado_server {
	struct MHD_Daemon *d;
	atomic_int running; /* set once listening: libmicrohttpd's messages are then mostly about clients */
	char *tls_cert;     /* PEM text when HTTPS is on, kept while the daemon lives */
	char *tls_key;
};

/* Per request: the raw target, kept from the URI log callback to completion. */
typedef struct {
	char *target;
	int answered;
} wado_ctx;

/* ---- answering ------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The client's address as text, for the log. */
static void peer_of(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(buf, len, "?");
	if (!ci || !ci->client_addr)
		return;
	socklen_t sl = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							     : sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, sl, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(buf, len, "?");
}

/* Queues a text/plain error answer "<status> <reason>\n". */
static enum MHD_Result answer_error(struct MHD_Connection *conn, unsigned int status, const char *why)
{
	char *body = NULL;
	int n = asprintf(&body, "%u %s\n", status, why);
	if (n < 0)
		return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE && strstr(why, "database"))
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "10");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* What the index says about the requested object (filled by lookup). */
typedef struct {
	char pk[24];
	char sop_uid[65];
	char ts[65];
	char *cache_path;   /* absolute, or NULL when evicted */
	render_set *rs;
	int deleted;        /* not found, but in deleted_instance */
} wado_obj;

/*
 * Finds the object (old UIDs resolved as C-MOVE resolves them) and what to
 * change in it. Returns 0 found, 404 none, 409 several, 503 database.
 */
static unsigned int lookup(hub *h, const wado_request *rq, wado_obj *o, char *why, size_t whylen)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	PGresult *r = NULL;
	unsigned int status = MHD_HTTP_SERVICE_UNAVAILABLE;
	int broken = 0;
	if (!c) {
		DH_ERROR("WADO: index database unavailable: %s", err.msg);
		snprintf(why, whylen, "index database unavailable");
		return status;
	}
	char sql[4096];
	const char *params[3] = { rq->study, rq->series, rq->object };
	/*
	 * Current UIDs first: three unique-index probes. A current UID means what
	 * has it now, so when they match, resolving could find nothing else.
	 */
	r = dh_db_query(c, "SELECT i.pk, i.sop_uid, i.transfer_syntax, i.file_path FROM instance i "
			"JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
			"WHERE i.sop_uid = $3 AND se.series_uid = $2 AND st.study_uid = $1", 3, params, &err);
	if (!r)
		goto db_error;
	if (PQntuples(r) == 1)
		goto found;
	PQclear(r);
	size_t off = (size_t)snprintf(sql, sizeof(sql), "WITH RECURSIVE ");
	off = instance_resolve_ctes(sql, sizeof(sql), off, 1, "study", "study", "study_uid");
	off = instance_resolve_ctes(sql, sizeof(sql), off, 2, "series", "series", "series_uid");
	off = instance_resolve_ctes(sql, sizeof(sql), off, 3, "sop", "instance", "sop_uid");
	off += (size_t)snprintf(sql + off, sizeof(sql) - off,
		" SELECT i.pk, i.sop_uid, i.transfer_syntax, i.file_path FROM instance i "
		"JOIN series se ON se.pk = i.series_fk WHERE se.series_uid IN (SELECT u FROM c2) "
		"AND i.sop_uid IN (SELECT u FROM c3)");
	off = instance_study_clause(sql, sizeof(sql), off, 1);
	snprintf(sql + off, sizeof(sql) - off, " ORDER BY i.pk LIMIT 2");
	if (!(r = dh_db_query(c, sql, 3, params, &err)))
		goto db_error;
	if (PQntuples(r) == 0) {
		PQclear(r);
		const char *p1[1] = { rq->object };
		r = dh_db_query(c, "SELECT 1 FROM deleted_instance WHERE sop_uid = $1 LIMIT 1", 1, p1, &err);
		if (!r)
			goto db_error;
		o->deleted = PQntuples(r) > 0;
		snprintf(why, whylen, o->deleted ? "object deleted" : "no such object in this series and study");
		status = MHD_HTTP_NOT_FOUND;
		goto done;
	}
	if (PQntuples(r) > 1) {
		snprintf(why, whylen, "objectUID names several objects (it was reassigned); ask by the current UID");
		status = MHD_HTTP_CONFLICT;
		goto done;
	}
found:
	snprintf(o->pk, sizeof(o->pk), "%s", PQgetvalue(r, 0, 0));
	snprintf(o->sop_uid, sizeof(o->sop_uid), "%s", PQgetvalue(r, 0, 1));
	snprintf(o->ts, sizeof(o->ts), "%s", PQgetvalue(r, 0, 2));
	if (!PQgetisnull(r, 0, 3) && asprintf(&o->cache_path, "%s/%s", h->cfg.cache_dir, PQgetvalue(r, 0, 3)) < 0) {
		o->cache_path = NULL;
		snprintf(why, whylen, "out of memory");
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		goto done;
	}
	const char *pks[1] = { o->pk };
	if (render_load(c, pks, 1, &o->rs, &err) < 0)
		goto db_error;
	status = 0;
	goto done;
db_error:
	DH_ERROR("WADO: query failed: [%s] %s", err.sqlstate, err.msg);
	snprintf(why, whylen, "index database unavailable");
	status = MHD_HTTP_SERVICE_UNAVAILABLE;
	broken = dh_db_conn_lost(c, &err);
done:
	PQclear(r);
	dh_db_put(h->db, c, broken);
	return status;
}

/* The response carrying the object; *status/why on failure (NULL returned). */
static struct MHD_Response *object_response(hub *h, wado_obj *o, unsigned int *status, char *why, size_t whylen)
{
	const dh_dcm_override *ov = NULL;
	int n_ov = 0;
	instance_src src = { NULL, NULL, 0, "" };
	struct MHD_Response *resp = NULL;
	char err[300] = "";
	int fd = -1;

	render_get(o->rs, o->pk, &ov, &n_ov);
	if (o->cache_path && n_ov == 0) {
		/* as stored: straight from the file (a concurrent eviction makes us look again) */
		fd = open(o->cache_path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0) {
			resp = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
			if (!resp)
				close(fd);
			else
				return resp;
			*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			snprintf(why, whylen, "out of memory");
			return NULL;
		}
		if (fd >= 0)
			close(fd);
		if (errno != ENOENT) {
			DH_ERROR("WADO: cannot open %s: %s", o->cache_path, strerror(errno));
			*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			snprintf(why, whylen, "cannot read the stored object");
			return NULL;
		}
		free(o->cache_path);
		o->cache_path = NULL;
	}
	int rc = instance_open(h, o->pk, o->cache_path, &src, err, sizeof(err));
	switch (rc) {
	case INSTANCE_OK: break;
	case INSTANCE_OFFLINE:
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		snprintf(why, whylen, "object is on nearline volume %s, which is offline", src.volume);
		goto out;
	case INSTANCE_DB:
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		snprintf(why, whylen, "index database unavailable");
		goto out;
	case INSTANCE_GONE:
		*status = MHD_HTTP_NOT_FOUND;
		snprintf(why, whylen, "object deleted");
		goto out;
	default:
		DH_ERROR("WADO: cannot read %s: %s", o->sop_uid, err);
		*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		snprintf(why, whylen, "cannot read the stored object");
		goto out;
	}
	unsigned char *bytes = NULL;
	size_t len = 0;
	if (n_ov == 0 && src.buf) {
		bytes = src.buf; /* the TAR member, verified: as stored */
		len = src.len;
		src.buf = NULL;
	} else if (dh_dcm_render(src.path, src.buf, src.len, ov, n_ov, &bytes, &len, err, sizeof(err)) != DH_DCM_OK) {
		DH_ERROR("WADO: cannot render %s: %s", o->sop_uid, err);
		*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		snprintf(why, whylen, "cannot render the stored object");
		goto out;
	}
	resp = MHD_create_response_from_buffer(len, bytes, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(bytes);
		*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		snprintf(why, whylen, "out of memory");
	}
out:
	instance_src_free(&src);
	return resp;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
	hub *h = cls;
	wado_ctx *ctx = *req_cls;
	wado_request rq;
	wado_obj o;
	char why[256] = "", peer[64];
	unsigned int status = MHD_HTTP_OK;
	struct MHD_Response *resp = NULL;
	enum MHD_Result rc;
	double t0 = now_s();
	(void)url;
	(void)version;
	(void)upload_data;

	if (ctx && ctx->answered) { /* a body we do not read: drop it */
		*upload_size = 0;
		return MHD_YES;
	}
	memset(&o, 0, sizeof(o));
	if (!ctx || !ctx->target) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		snprintf(why, sizeof(why), "out of memory");
		goto answer;
	}
	ctx->answered = 1;
	const char *target = ctx->target;
	if (strlen(target) > MAX_TARGET) {
		status = MHD_HTTP_URI_TOO_LONG;
		snprintf(why, sizeof(why), "request target longer than %d bytes", MAX_TARGET);
		goto answer;
	}
	/* absolute-form ("http://host:port/wado?..."), which HTTP/1.1 servers must accept */
	if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
		const char *path = strchr(strstr(target, "//") + 2, '/');
		target = path ? path : "/";
	}
	size_t plen = strcspn(target, "?");
	if (plen != 5 || strncmp(target, "/wado", 5) != 0) {
		status = MHD_HTTP_NOT_FOUND;
		snprintf(why, sizeof(why), "no such resource: WADO is at /wado");
		goto answer;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		snprintf(why, sizeof(why), "method not allowed: GET or HEAD");
		goto answer;
	}
	if (!target[plen] || !target[plen + 1]) {
		status = MHD_HTTP_BAD_REQUEST;
		snprintf(why, sizeof(why), "no query: /wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=.."
			 "&contentType=application/dicom");
		goto answer;
	}
	if (strchr(target, '#')) {
		status = MHD_HTTP_BAD_REQUEST;
		snprintf(why, sizeof(why), "'#' in the request target");
		goto answer;
	}
	int pst = wado_parse_query(target + plen + 1, &rq, why, sizeof(why));
	if (pst) {
		status = (unsigned int)pst;
		goto answer;
	}
	if ((status = lookup(h, &rq, &o, why, sizeof(why))) != 0)
		goto answer;
	if (rq.transfer_syntax[0] && strcmp(rq.transfer_syntax, o.ts) != 0) {
		status = MHD_HTTP_NOT_ACCEPTABLE;
		snprintf(why, sizeof(why), "transferSyntax %s not offered: the object is stored in %s", rq.transfer_syntax,
			 o.ts);
		goto answer;
	}
	status = MHD_HTTP_OK;
	if (!(resp = object_response(h, &o, &status, why, sizeof(why))))
		goto answer;
	char disp[128];
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s.dcm\"", o.sop_uid);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/dicom");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
	/* the index's truth can change (change contexts): never serve a stale copy unchecked */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	peer_of(conn, peer, sizeof(peer));
	DH_INFO("WADO %s %s from %s: 200 (%.3f s)", method, o.sop_uid, peer, now_s() - t0);
	goto done;
answer:
	peer_of(conn, peer, sizeof(peer));
	if (status >= 500)
		DH_WARN("WADO %s from %s: %u %s", method, peer, status, why);
	else
		DH_DEBUG("WADO %s from %s: %u %s", method, peer, status, why);
	rc = answer_error(conn, status, why);
done:
	free(o.cache_path);
	render_free(o.rs);
	return rc;
}

/* ---- the listener ------------------------------------------------------------ */

/* Keeps the raw request target for on_request (called once per request, before parsing). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	(void)conn;
	wado_ctx *ctx = calloc(1, sizeof(*ctx));
	if (ctx && uri)
		ctx->target = strndup(uri, MAX_TARGET + 1);
	return ctx;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	wado_ctx *ctx = *req_cls;
	if (ctx) {
		free(ctx->target);
		free(ctx);
	}
	*req_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	wado_server *w = cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/*
	 * Once listening, most messages are about one client's broken or closed
	 * connection (a flood of them must not fill the log); limits and
	 * resource failures stay warnings.
	 */
	if (atomic_load(&w->running) && !strstr(msg, "limit") && !strstr(msg, "thread") && !strstr(msg, "memory"))
		DH_DEBUG("WADO: %s", msg);
	else
		DH_WARN("WADO: %s", msg);
}

/*
 * Reads a PEM file (at most 1 MiB) into a NUL-terminated string. A private
 * key must not be readable by group or others. Returns NULL (logged) on failure.
 */
static char *read_pem(const char *path, const char *what, int secret)
{
	char *buf = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		DH_ERROR("WADO: cannot open %s %s: %s", what, path, strerror(errno));
		goto fail;
	}
	if (secret && (st.st_mode & 077)) {
		DH_ERROR("WADO: %s %s is readable by group or others (chmod 600 it)", what, path);
		goto fail;
	}
	if (st.st_size <= 0 || st.st_size > MAX_PEM) {
		DH_ERROR("WADO: %s %s: not a PEM file of at most 1 MiB", what, path);
		goto fail;
	}
	if (!(buf = calloc(1, (size_t)st.st_size + 1)))
		goto fail;
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			DH_ERROR("WADO: cannot read %s %s", what, path);
			goto fail;
		}
		done += (size_t)n;
	}
	close(fd);
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static void server_free(wado_server *w)
{
	if (!w)
		return;
	if (w->tls_key)
		explicit_bzero(w->tls_key, strlen(w->tls_key));
	free(w->tls_key);
	free(w->tls_cert);
	free(w);
}

int wado_start(hub *h)
{
	struct addrinfo hints, *ai = NULL;
	char port[16];
	int rc = -1;
	if (!h->cfg.wado_enabled)
		return 0;
	wado_server *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(port, sizeof(port), "%ld", h->cfg.wado_port);
	int gai = getaddrinfo(h->cfg.wado_bind_address, port, &hints, &ai);
	if (gai != 0) {
		DH_ERROR("wado.bind_address '%s': %s (an IPv4 or IPv6 address)", h->cfg.wado_bind_address,
			 gai_strerror(gai));
		goto out;
	}
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			     MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* HTTPS (GnuTLS inside libmicrohttpd): TLS 1.2 and 1.3 only */
	struct MHD_OptionItem tls[] = { { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
					{ MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL } };
	const int https = h->cfg.wado_tls_cert_file[0] != '\0';
	if (https) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			DH_ERROR("WADO: this libmicrohttpd has no TLS support (wado.tls_cert_file is set)");
			goto out;
		}
		if (!(w->tls_cert = read_pem(h->cfg.wado_tls_cert_file, "wado.tls_cert_file", 0)) ||
		    !(w->tls_key = read_pem(h->cfg.wado_tls_key_file, "wado.tls_key_file", 1)))
			goto out;
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, w->tls_cert };
		tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, w->tls_key };
		tls[2] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
						  (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" };
	}
	w->d = MHD_start_daemon(flags, (uint16_t)h->cfg.wado_port, NULL, NULL, on_request, h,
				MHD_OPTION_EXTERNAL_LOGGER, on_log, w, /* first: it must see every message */
				MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned int)h->cfg.wado_max_connections,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)h->cfg.wado_timeout,
				MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				MHD_OPTION_ARRAY, tls,
				MHD_OPTION_END);
	if (!w->d) {
		DH_ERROR("WADO: cannot listen on %s port %ld", h->cfg.wado_bind_address, h->cfg.wado_port);
		goto out;
	}
	atomic_store(&w->running, 1);
	DH_INFO("WADO-URI listening on %s://%s%s%s:%ld/wado", https ? "https" : "http",
		ai->ai_family == AF_INET6 ? "[" : "", h->cfg.wado_bind_address, ai->ai_family == AF_INET6 ? "]" : "",
		h->cfg.wado_port);
	h->wado = w;
	w = NULL;
	rc = 0;
out:
	if (ai)
		freeaddrinfo(ai);
	server_free(w);
	return rc;
}

void wado_stop(hub *h)
{
	if (!h->wado)
		return;
	MHD_stop_daemon(h->wado->d);
	server_free(h->wado);
	h->wado = NULL;
	DH_INFO("WADO-URI stopped");
}
