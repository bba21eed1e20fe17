/*
 * scp.c - the DICOM listener of hubd: acceptor threads, association
 * negotiation policy and the per-association command loop.
 *
 * NOTES
 * Threads, not a DcmSCPPool: a few acceptor threads read association
 * requests (so one silent peer delays no-one for longer than the ARTIM
 * time-out), and every accepted association gets its own detached thread.
 * The number of live associations is capped by hub.max_associations; over
 * the cap a request is rejected as "local limit exceeded" (transient), so
 * the peer retries instead of hanging.
 *
 * Negotiation (conformance §2.2.1.4, §5.2): the Calling AE must have a
 * [remote.X] section when validate_calling_ae is on; when the Called AE is
 * not ours only Verification is accepted; a configured remote AE gets only
 * the services its [remote.X] services lists, and with require_tls only on
 * the TLS listener. Policy refusals of a context say "user rejection".
 *
 * Two listeners may run side by side, the plain one (hub.port) and the TLS
 * one (tls.port), each with its own acceptor threads; past the handshake an
 * association is served the same way whichever it came through.
 */
#include "external.h"
#include "hub.h"
#include "assoc_rules.h"
#include "move_forward.h"
#include "log.h"
#include "mpps.h"
#include "qr.h"
#include "sopclass.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	hub *h;
	dh_dcm_assoc *a;
	unsigned long id;
} assoc_job;

/* One listening socket and what its acceptor threads need (one hub per process). */
typedef struct {
	hub *h;
	dh_dcm_net *net;
	long port;
	int n_threads; /* acceptors started on it */
} listener;

static listener listeners[2]; /* plain, TLS */

/* Verification and storage commitment: Explicit VR LE preferred over Implicit (Table 2-19). */
static const char *choose_plain_ts(const char *const *ts, int n)
{
	static const char *const pref[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE, NULL };
	for (const char *const *p = pref; *p; p++)
		for (int i = 0; i < n; i++)
			if (strcmp(*p, ts[i]) == 0)
				return ts[i];
	return NULL;
}

/* Accepts what we serve among the proposed contexts; returns the number accepted. */
static int negotiate(hub *h, dh_dcm_assoc *a, int called_ok, const hub_remote_ae *r)
{
	int accepted = 0;
	for (int i = 0; i < dh_dcm_assoc_pc_count(a); i++) {
		int id, n_ts, role;
		const char *as;
		const char *const *ts;
		if (dh_dcm_assoc_pc_get(a, i, &id, &as, &ts, &n_ts, &role) != DH_DCM_OK)
			continue;
		const char *pick = NULL;
		if (!assoc_rules_allows(r, as) || (!called_ok && strcmp(as, DH_UID_VERIFICATION) != 0)) {
			/* §5.2: a service this AE may not use, or a foreign Called AE beyond Verification */
			DH_DEBUG("refused presentation context %d (%s): %s", id, as,
				 called_ok ? "service not allowed for this AE ([remote] services)"
					   : "called AE title not ours");
			dh_dcm_assoc_pc_refuse(a, id);
			continue;
		}
		if (strcmp(as, DH_UID_VERIFICATION) == 0) {
			pick = choose_plain_ts(ts, n_ts);
		} else if (!called_ok) {
			pick = NULL; /* §5.2: foreign Called AE gets Verification only */
		} else if (strcmp(as, DH_UID_STGCMT_PUSH) == 0) {
			pick = choose_plain_ts(ts, n_ts);
			/*
			 * An external archive reporting a commitment result the hub
			 * requested (hub/archive/external.c) proposes the SCP role; DCMTK
			 * states the accepted role from the requester's side.
			 */
			if (pick && (role == 2 || role == 3) &&
			    dh_dcm_assoc_pc_accept(a, id, pick, 2, NULL, 0) == DH_DCM_OK) {
				accepted++;
				continue;
			}
		} else if (strcmp(as, DH_UID_MPPS) == 0) {
			pick = mpps_choose_ts(ts, n_ts);
		} else if (qr_is_model(as)) {
			/* relational queries / relational retrieve (Tables 2-24, 2-31) */
			static const unsigned char relational[1] = { 1 };
			size_t ext_len = 0;
			const unsigned char *ext = dh_dcm_assoc_ext_neg(a, as, &ext_len);
			pick = choose_plain_ts(ts, n_ts);
			if (pick && dh_dcm_assoc_pc_accept(a, id, pick, 0, ext ? relational : NULL,
							   ext ? 1 : 0) == DH_DCM_OK) {
				accepted++;
				continue;
			}
			pick = NULL;
		} else {
			sop_category cat = sop_classify(as, h->cfg.accept_unlisted_sop_classes);
			if (cat != SOP_NONE)
				pick = sop_choose_ts(cat, ts, n_ts);
		}
		if (pick && dh_dcm_assoc_pc_accept(a, id, pick, 0, NULL, 0) == DH_DCM_OK)
			accepted++;
		else
			DH_DEBUG("refused presentation context %d (%s)", id, as);
	}
	return accepted;
}

static void serve(hub *h, dh_dcm_assoc *a)
{
	char err[256] = "";
	for (;;) {
		dh_dcm_cmd cmd;
		int rc = dh_dcm_receive_command(a, (int)h->cfg.dimse_timeout, &cmd, err, sizeof(err));
		if (rc == DH_DCM_RELEASED) {
			DH_DEBUG("released");
			return;
		}
		if (rc == DH_DCM_TIMEOUT) {
			DH_WARN("no message for %ld s (DIMSE time-out): aborting", h->cfg.dimse_timeout);
			dh_dcm_assoc_abort(a);
			return;
		}
		if (rc == DH_DCM_ABORTED) {
			DH_INFO("peer aborted the association");
			return;
		}
		if (rc != DH_DCM_OK) {
			DH_WARN("%s: aborting", err);
			dh_dcm_assoc_abort(a);
			return;
		}
		int ok = 0;
		switch (cmd.type) {
		case DH_DIMSE_C_ECHO_RQ:
			ok = dh_dcm_send_response(a, &cmd, 0x0000, NULL, NULL, NULL) == DH_DCM_OK ? 0 : -1;
			break;
		case DH_DIMSE_C_STORE_RQ:
			if (move_forward_proxy_claims(h, a, &cmd))
				ok = move_forward_proxy_store(h, a, &cmd); /* proxied C-MOVE forward */
			else
				ok = ingest_store(h, a, &cmd);
			break;
		case DH_DIMSE_N_ACTION_RQ:
			ok = stgcmt_action(h, a, &cmd);
			break;
		case DH_DIMSE_N_EVENT_REPORT_RQ:
			ok = external_event_report(h, a, &cmd);
			break;
		case DH_DIMSE_C_FIND_RQ:
			ok = qr_find(h, a, &cmd);
			break;
		case DH_DIMSE_C_MOVE_RQ:
			ok = qr_move(h, a, &cmd);
			break;
		case DH_DIMSE_N_CREATE_RQ:
			ok = mpps_ncreate(h, a, &cmd);
			break;
		case DH_DIMSE_N_SET_RQ:
			ok = mpps_nset(h, a, &cmd);
			break;
		case DH_DIMSE_C_CANCEL_RQ:
			ok = 0; /* nothing of ours is cancellable yet */
			break;
		default:
			/* only reachable on a context we accepted; answer "unrecognized operation" */
			if (cmd.has_dataset)
				dh_dcm_receive_discard(a, (int)h->cfg.dimse_timeout);
			DH_WARN("unsupported command %d on context %d", (int)cmd.type, cmd.pc_id);
			ok = dh_dcm_send_response(a, &cmd, 0x0211, NULL, "unsupported operation", NULL) ==
				DH_DCM_OK ? 0 : -1;
			if (cmd.type == DH_DIMSE_OTHER)
				ok = -1;
			break;
		}
		if (ok < 0) {
			DH_WARN("association broken: aborting");
			dh_dcm_assoc_abort(a);
			return;
		}
	}
}

static void *assoc_main(void *arg)
{
	assoc_job *job = arg;
	hub *h = job->h;
	dh_dcm_assoc *a = job->a;
	char err[256] = "";
	const char *calling = dh_dcm_assoc_calling_ae(a);
	const char *called = dh_dcm_assoc_called_ae(a);

	dh_log_set_context("assoc %lu %s->%s", job->id, calling, called);
	const hub_remote_ae *r = hub_config_remote(&h->cfg, calling);
	char subject[256];
	int tls = dh_dcm_assoc_tls_peer(a, subject, sizeof(subject));
	if (tls)
		DH_DEBUG("TLS from %s, certificate %s", dh_dcm_assoc_peer_host(a), *subject ? subject : "(none)");
	if (h->cfg.validate_calling_ae && !r) {
		DH_WARN("rejected: calling AE title '%s' from %s is not configured", calling,
			dh_dcm_assoc_peer_host(a));
		dh_dcm_assoc_reject(a, 1, 1, 3);
		goto done;
	}
	if (r && r->require_tls && !tls) {
		DH_WARN("rejected: '%s' must use the TLS port (require_tls) but came in plain from %s", calling,
			dh_dcm_assoc_peer_host(a));
		dh_dcm_assoc_reject(a, 1, 1, 1);
		goto done;
	}
	int called_ok = strcmp(called, h->cfg.ae_title) == 0;
	if (!called_ok)
		DH_INFO("called AE title '%s' is not ours: Verification only", called);
	int n = negotiate(h, a, called_ok, r);
	if (n == 0) {
		/* nothing we serve was proposed: say why instead of accepting an empty association */
		DH_WARN("rejected: no acceptable presentation context%s",
			called_ok ? "" : " (called AE title not ours: Verification only)");
		dh_dcm_assoc_reject(a, 1, 1, called_ok ? 1 : 7);
		goto done;
	}
	if (dh_dcm_assoc_acknowledge(a, err, sizeof(err)) != DH_DCM_OK) {
		DH_WARN("%s", err);
		goto done;
	}
	DH_DEBUG("accepted from %s with %d presentation context(s)", dh_dcm_assoc_peer_host(a), n);
	serve(h, a);
done:
	dh_dcm_assoc_free(a);
	atomic_fetch_sub(&h->active, 1);
	free(job);
	dh_log_set_context(NULL);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	listener *l = arg;
	hub *h = l->h;
	char err[256];
	while (!h->stop) {
		dh_dcm_assoc *a = NULL;
		int rc = dh_dcm_net_accept(l->net, 1, (int)h->cfg.max_pdu, &a, err, sizeof(err));
		if (rc == DH_DCM_TIMEOUT)
			continue;
		if (rc != DH_DCM_OK) {
			/* on the TLS port a failed handshake (plain DICOM, untrusted certificate) lands here */
			if (l->net == h->tls_net && !h->stop)
				DH_WARN("TLS port %ld: connection refused: %s", l->port, err);
			else
				DH_DEBUG("%s", err);
			continue;
		}
		if (h->stop) { /* our own wake-up connection, or a late caller */
			dh_dcm_assoc_free(a);
			break;
		}
		unsigned long id = atomic_fetch_add(&h->next_assoc, 1) + 1;
		if (atomic_fetch_add(&h->active, 1) >= h->cfg.max_associations) {
			atomic_fetch_sub(&h->active, 1);
			DH_WARN("association %lu from %s rejected: %ld associations open (limit)", id,
				dh_dcm_assoc_calling_ae(a), h->cfg.max_associations);
			dh_dcm_assoc_reject(a, 2, 3, 2);
			dh_dcm_assoc_free(a);
			continue;
		}
		assoc_job *job = malloc(sizeof(*job));
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 512 * 1024);
		if (!job || (job->h = h, job->a = a, job->id = id,
			     pthread_create(&t, &attr, assoc_main, job) != 0)) {
			DH_ERROR("cannot start a thread for association %lu", id);
			dh_dcm_assoc_reject(a, 2, 3, 2);
			dh_dcm_assoc_free(a);
			atomic_fetch_sub(&h->active, 1);
			free(job);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

int scp_start(hub *h)
{
	int n = (int)h->cfg.acceptor_threads;
	listeners[0] = (listener){ h, h->net, h->cfg.port, 0 };
	listeners[1] = (listener){ h, h->tls_net, h->cfg.tls.port, 0 };
	h->acceptors = calloc((size_t)n * 2, sizeof(*h->acceptors));
	if (!h->acceptors)
		return -1;
	h->n_acceptors = 0;
	for (int k = 0; k < 2; k++) {
		listener *l = &listeners[k];
		for (; l->net && l->n_threads < n; l->n_threads++, h->n_acceptors++)
			if (pthread_create(&h->acceptors[h->n_acceptors], NULL, acceptor_main, l) != 0)
				break;
		if (l->net && l->n_threads == 0)
			return -1;
	}
	return h->n_acceptors > 0 ? 0 : -1;
}

/*
 * Acceptors that lost a race for a connection wait inside accept() (DCMTK's
 * listening socket blocks); one connect-and-close per acceptor wakes them.
 */
static void wake_acceptors(const hub *h)
{
	(void)h; /* the listeners know their ports */
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < listeners[k].n_threads; i++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			if (fd < 0)
				return;
			struct sockaddr_in sa;
			memset(&sa, 0, sizeof(sa));
			sa.sin_family = AF_INET;
			sa.sin_port = htons((uint16_t)listeners[k].port);
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			(void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
			close(fd);
		}
	}
}

void scp_stop(hub *h)
{
	h->stop = 1;
	wake_acceptors(h);
	for (int i = 0; i < h->n_acceptors; i++)
		pthread_join(h->acceptors[i], NULL);
	free(h->acceptors);
	h->acceptors = NULL;
	h->n_acceptors = 0;
	listeners[0].n_threads = listeners[1].n_threads = 0;
	/* give open associations a moment to finish their current message */
	for (int i = 0; i < 100 && atomic_load(&h->active) > 0; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&h->active) > 0)
		DH_WARN("%d association(s) still open at shutdown", atomic_load(&h->active));
}
