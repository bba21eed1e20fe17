/*
 * ledger_export.h - the spoke's ledger as `hubctl verify` reads it.
 *
 * The hub asks (a LedgerRequest over the cc connection, spoke/shipper.c);
 * ledger_export reads every ledger row of one study or of all, deleted ones
 * included, from one consistent snapshot (REPEATABLE READ, READ ONLY) with a
 * cursor, and hands them to a sink in chunks of at most chunk_rows, so a
 * spoke of any size is answered in bounded memory. The header of each
 * chunk carries the total (counted in the same snapshot) and the offset of
 * its first row; the last chunk has last = 1 (a ledger with no rows gives
 * one empty last chunk).
 */
#ifndef SPOKE_LEDGER_EXPORT_H
#define SPOKE_LEDGER_EXPORT_H

#include "ccwire.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Receives one chunk; rows and their strings are borrowed for the call.
 * Returns 0, or -1 to stop the export (it then fails). */
typedef int (*ledger_export_sink)(void *arg, const dh_ccwire_chunk_head *head, const dh_ccwire_ledger_row *rows,
				  size_t n);

/*
 * Exports the ledger of study_uid ("" or NULL: every study) through sink.
 * conn must be idle (no transaction open); it is left idle. Returns 0, or
 * -1 with the reason in err (database error, or the sink stopped).
 */
int ledger_export(PGconn *conn, const char *study_uid, size_t chunk_rows, ledger_export_sink sink, void *arg,
		  char *err, size_t errlen);

#endif
