/*
 * wado.h - WADO-URI (DICOM PS3.18; IMPAX conformance statement §6): an
 * HTTP listener in hubd (libmicrohttpd) that returns one object per
 * request, in its stored transfer syntax, with the index's current truth
 * applied exactly as C-MOVE applies it (render.h, instance.h).
 *
 *   GET /wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=..
 *            &contentType=application/dicom[&transferSyntax=<stored TS>]
 *
 * Configured by [wado] (hub_config.h); off by default; HTTPS when a
 * certificate and key are configured. GET and HEAD only.
 * Answers: 200 with the object; 400 for a malformed request (reason in the
 * text/plain body); 404 for an unknown path, an unknown or deleted object;
 * 405 for other methods; 406 when the wanted content type or transfer
 * syntax is not the one offered; 409 when an old UID names several
 * objects; 503 when the index is unreachable or the object is only on an
 * offline volume; 500 when the stored bytes cannot be read or verified.
 *
 * Threads: one per HTTP connection (at most wado.max_connections); they
 * borrow pool connections from h->db. wado_stop closes every connection
 * and joins the threads.
 */
#ifndef HUB_WADO_H
#define HUB_WADO_H

#include "hub.h"

#include <stddef.h>

typedef struct wado_server wado_server;

/* Starts the listener when wado.enabled (else does nothing). Returns 0, or -1 (logged) when it cannot listen. */
int wado_start(hub *h);

/* Stops the listener (closing open connections) and frees it. Safe when never started. */
void wado_stop(hub *h);

#endif
