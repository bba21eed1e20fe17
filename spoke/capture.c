/* capture.c - see capture.h. (being written) */
#include "capture.h"

#include <stdio.h>

int capture_object(PGconn *c, const spoke_config *cfg, const capture_object_info *o, capture_verdict *v,
		   char *why, size_t whylen, char *err, size_t errlen)
{
	(void)c; (void)cfg; (void)o; (void)v; (void)why; (void)whylen;
	snprintf(err, errlen, "not implemented");
	return -1;
}
