/* shipper.c - see spoke.h. (being written) */
#include "spoke.h"

int shipper_start(spoke *s) { (void)s; return 0; }
void shipper_stop(spoke *s) { (void)s; }
