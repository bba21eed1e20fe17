/* cc_apply.c - see ccsync.h. (being written) */
#include "ccsync.h"
#include "hub.h"

int cc_apply_batch(struct hub *h, const char *spoke_id, const char *peer, dh_cc *const *ccs,
		   const dh_ccwire_item *bodies, size_t n, uint64_t *acked_through, cc_refusal **refused,
		   size_t *n_refused, char *err, size_t errlen)
{
	(void)h; (void)spoke_id; (void)peer; (void)ccs; (void)bodies; (void)n; (void)acked_through;
	(void)refused; (void)n_refused; (void)err; (void)errlen;
	return -1;
}
int cc_apply_received_through(struct hub *h, const char *spoke_id, uint64_t *out, char *err, size_t errlen)
{
	(void)h; (void)spoke_id; (void)out; (void)err; (void)errlen;
	return -1;
}
int cc_apply_start(struct hub *h) { (void)h; return 0; }
void cc_apply_stop(struct hub *h) { (void)h; }
void cc_apply_wake(struct hub *h) { (void)h; }
