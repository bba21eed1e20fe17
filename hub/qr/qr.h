/*
 * qr.h - Query/Retrieve SCP (conformance §2.2.1.6.3 Find, §2.2.1.6.4 Move).
 *
 * Both handlers own one request from its command to its final response:
 * they receive the identifier, answer pending/final responses, watch for
 * C-CANCEL, and return 0 when the association can go on or -1 when it is
 * broken (the caller aborts it).
 */
#ifndef HUB_QR_H
#define HUB_QR_H

#include "hub.h"

/* Q/R information model SOP classes */
#define QR_PATIENT_FIND "1.2.840.10008.5.1.4.1.2.1.1"
#define QR_PATIENT_MOVE "1.2.840.10008.5.1.4.1.2.1.2"
#define QR_STUDY_FIND "1.2.840.10008.5.1.4.1.2.2.1"
#define QR_STUDY_MOVE "1.2.840.10008.5.1.4.1.2.2.2"
#define QR_PSONLY_FIND "1.2.840.10008.5.1.4.1.2.3.1"
#define QR_PSONLY_MOVE "1.2.840.10008.5.1.4.1.2.3.2"

/* 1 when uid is one of the six models above. */
int qr_is_model(const char *uid);

/* C-FIND-RQ on an accepted FIND context (hub/qr/qr_find.c). */
int qr_find(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

/* C-MOVE-RQ on an accepted MOVE context (hub/qr/qr_move.c). */
int qr_move(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

#endif
