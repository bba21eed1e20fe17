/*
 * kosdoc.h - reading and checking a Key Object Selection Document (KOS,
 * "Key Image Note", SOP class 1.2.840.10008.5.1.4.1.1.88.59; PS3.3 A.35.4,
 * TID 2010) well enough to register it: its title, the instances it
 * references, its author and date, and whether it is an IHE IOCM rejection
 * note.
 *
 * Shared by the hub (registration at ingest, hub/store/kos.c) and the spoke
 * (rejection notes from the PACS, spoke/receive.c). Pure: reads a data set,
 * touches no database.
 *
 * "Registrable" means: exactly one Concept Name Code Sequence item with a
 * code value and a coding scheme; root Value Type CONTAINER; a Current
 * Requested Procedure Evidence Sequence whose every item names a study,
 * at least one series, and per series at least one SOP instance, all with
 * valid UIDs; every content item with a known SR value type, every IMAGE /
 * COMPOSITE / WAVEFORM item referencing an instance listed in the evidence
 * (PS3.3 C.17.6.2.1: the evidence lists every referenced instance).
 */
#ifndef DH_KOSDOC_H
#define DH_KOSDOC_H

#include "dcm.h"

#include <stddef.h>

#define DH_KOS_SOP_CLASS "1.2.840.10008.5.1.4.1.1.88.59"

/*
 * A document with more evidence references than this (or more than twice
 * as many content items) is refused (not registrable, so quarantined):
 * DCMTK reads sequence items by path in time linear in the item's
 * position, so parsing is quadratic (measured: 2.4 s at this limit with as
 * many content items, 0.1 s for 5,000 + 5,000, 0.01 s for 1,000 + 1,000).
 */
#define DH_KOS_MAX_REFS 20000

enum { DH_KOS_EVIDENCE = 0, DH_KOS_CONTENT = 1 };

typedef struct {
	char study_uid[65], series_uid[65], sop_uid[65], sop_class[65];
	int origin; /* DH_KOS_EVIDENCE or DH_KOS_CONTENT */
} dh_kos_ref;

typedef struct {
	char title_code[65], title_scheme[65], title_meaning[257];
	char author[257];                  /* "" when the document names none */
	char content_date[17], content_time[33];
	int rejection;                     /* IOCM rejection title (DCM 113001/113037/113038/113039) */
	dh_kos_ref *refs;                  /* evidence first, then content references */
	size_t n_refs;
} dh_kos;

/* 1 when sop_class is the KOS SOP class. */
int dh_kos_is_kos(const char *sop_class);

/* 1 when (code, scheme) is an IOCM rejection title. */
int dh_kos_is_rejection_title(const char *code, const char *scheme);

/*
 * Reads and checks ds. Returns 0 and *out (the caller's; dh_kos_free), 1
 * when the document is not registrable (why gets a sentence, *out NULL),
 * or -1 when memory ran out.
 */
int dh_kos_parse(const dh_dcm_ds *ds, dh_kos **out, char *why, size_t whylen);

/* NULL is fine. */
void dh_kos_free(dh_kos *k);

#endif
