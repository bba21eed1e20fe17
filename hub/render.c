/* render.c - see render.h. (being written) */
#include "render.h"
