/*
 * uid.h - DICOM UID generation and syntax checks.
 *
 * New UIDs use the "2.25." root (ISO/IEC 9834-8 / ITU-T X.667): the decimal
 * form of a random (version 4) UUID, so no registered root is needed and two
 * hubs never collide. Random bytes come from getrandom(2).
 */
#ifndef DH_UID_H
#define DH_UID_H

#include <stddef.h>

#define DH_UID_MAX 64

/* Writes a fresh UID ("2.25.<decimal>") to out (DH_UID_MAX + 1 bytes). Returns 0 or -1. */
int dh_uid_generate(char out[DH_UID_MAX + 1]);

/* Writes a random UUID in canonical text form (37 bytes incl. NUL). Returns 0 or -1. */
int dh_uuid_generate(char out[37]);

/*
 * 1 when s is a syntactically valid UID: 1..64 chars, digits and dots,
 * components non-empty, no leading zero in a multi-digit component. 0 otherwise.
 */
int dh_uid_valid(const char *s);

#endif
