/*
 * tls_config.c - from a [tls] section to dh_dcm_tls contexts (see tls_config.h).
 */
#include "tls_config.h"

#include <stdio.h>

int dh_tls_config_open(const dh_tls_config *c, int want_client, dh_dcm_tls **server, dh_dcm_tls **client,
		       char *err, size_t errlen)
{
	char why[900] = "";
	dh_dcm_tls_opts o = { c->certificate, c->private_key, c->ca_file, c->ca_dir, c->verify_peer,
			      c->profile, c->crl_file };

	*server = NULL;
	*client = NULL;
	if (c->port != 0 && dh_dcm_tls_new(server, 1, &o, why, sizeof(why)) != DH_DCM_OK) {
		snprintf(err, errlen, "[tls] (listener on port %ld): %s", c->port, why);
		return -1;
	}
	if (want_client && dh_dcm_tls_new(client, 0, &o, why, sizeof(why)) != DH_DCM_OK) {
		snprintf(err, errlen, "[tls] (for peers configured with tls = true): %s", why);
		dh_dcm_tls_free(*server);
		*server = NULL;
		return -1;
	}
	return 0;
}
