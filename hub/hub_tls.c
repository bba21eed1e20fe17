/*
 * hub_tls.c - the hub's TLS contexts and the one way it opens associations
 * (hub_connect), so that [remote.X] tls applies to C-MOVE destinations,
 * storage commitment results and whatever else the hub calls.
 */
#include "hub.h"

#include "log.h"

int hub_tls_open(hub *h, char *err, size_t errlen)
{
	int want_client = 0;
	for (int i = 0; i < h->cfg.n_remotes; i++)
		want_client |= h->cfg.remotes[i].tls;
	if (dh_tls_config_open(&h->cfg.tls, want_client, &h->tls_server, &h->tls_client, err, errlen) < 0)
		return -1;
	if (h->tls_server)
		DH_INFO("TLS listener on port %ld: peer certificates %s", h->cfg.tls.port,
			h->cfg.tls.verify_peer == DH_TLS_VERIFY_REQUIRE ? "required (mutual authentication)"
			: h->cfg.tls.verify_peer == DH_TLS_VERIFY_CHECK ? "verified when sent"
									: "not asked for");
	return 0;
}

void hub_tls_close(hub *h)
{
	dh_dcm_tls_free(h->tls_server);
	dh_dcm_tls_free(h->tls_client);
	h->tls_server = NULL;
	h->tls_client = NULL;
}

int hub_connect(hub *h, dh_dcm_assoc **out, const hub_remote_ae *r, int timeout_s, const dh_dcm_pc_req *pcs,
		int n_pcs, char *err, size_t errlen)
{
	dh_dcm_tls *tls = r->tls ? h->tls_client : NULL;
	if (r->tls && !tls) { /* hub_tls_open makes one whenever a remote wants it */
		snprintf(err, errlen, "[remote.%s] wants TLS but no TLS client context is loaded", r->ae_title);
		*out = NULL;
		return DH_DCM_ERROR;
	}
	return dh_dcm_assoc_request_tls(out, h->cfg.ae_title, r->ae_title, r->host, (int)r->port,
					(int)h->cfg.max_pdu, timeout_s, pcs, n_pcs, tls, err, errlen);
}
