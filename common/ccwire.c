/*
 * ccwire.c - see ccwire.h. (being written)
 */
#include "ccwire.h"
