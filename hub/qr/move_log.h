/*
 * move_log.h - the record of recalls: one move_log row per C-MOVE request
 * the hub answers (sql/hub/006_ops.sql), read by `hubctl history`.
 */
#ifndef HUB_MOVE_LOG_H
#define HUB_MOVE_LOG_H

#include "hub.h"

/*
 * Records one C-MOVE: who asked (calling_ae), where the objects went
 * (dest_ae), the identifier's level (0 PATIENT .. 3 IMAGE, qr_move.c's
 * order; ignored for status A900) and unique keys (backslash lists, ""
 * when absent), how many objects matched, counts as in the response
 * (remaining, completed, failed, warning) and the final status. The study
 * UIDs recorded are the identifier's and those its patient, series and
 * SOP keys belong to now. Never fails the C-MOVE: a database error is
 * logged. Strings are borrowed.
 */
void move_log_record(hub *h, const char *calling_ae, const char *dest_ae, int level, const char *patient_id,
		     const char *study_uids, const char *series_uids, const char *sop_uids, int matched,
		     const int counts[4], unsigned int status);

#endif
