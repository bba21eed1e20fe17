/* cc_recv.c - see ccsync.h. (being written) */
#include "ccsync.h"
#include "hub.h"

int cc_recv_start(struct hub *h) { (void)h; return 0; }
void cc_recv_stop(struct hub *h) { (void)h; }
