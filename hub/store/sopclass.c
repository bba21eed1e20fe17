/*
 * sopclass.c - the storage SOP class table and transfer syntax preferences.
 *
 * The table is Table 2-3 of the conformance statement, each class sorted
 * into the presentation context table that governs it: images (2-14),
 * video (2-15), structured reports (2-16) and other composites (2-17).
 */
#include "sopclass.h"

#include <string.h>

typedef struct {
	const char *uid;
	sop_category cat;
} sop_entry;

static const sop_entry table[] = {
	{ "1.2.840.10008.5.1.4.1.1.1", SOP_IMAGE },        /* CR */
	{ "1.2.840.10008.5.1.4.1.1.1.1", SOP_IMAGE },      /* DX presentation */
	{ "1.2.840.10008.5.1.4.1.1.1.1.1", SOP_IMAGE },    /* DX processing */
	{ "1.2.840.10008.5.1.4.1.1.1.2", SOP_IMAGE },      /* MG presentation */
	{ "1.2.840.10008.5.1.4.1.1.1.2.1", SOP_IMAGE },    /* MG processing */
	{ "1.2.840.10008.5.1.4.1.1.1.3", SOP_IMAGE },      /* IO presentation */
	{ "1.2.840.10008.5.1.4.1.1.1.3.1", SOP_IMAGE },    /* IO processing */
	{ "1.2.840.10008.5.1.4.1.1.2", SOP_IMAGE },        /* CT */
	{ "1.2.840.10008.5.1.4.1.1.2.1", SOP_IMAGE },      /* Enhanced CT */
	{ "1.2.840.10008.5.1.4.1.1.3.1", SOP_IMAGE },      /* US multi-frame */
	{ "1.2.840.10008.5.1.4.1.1.4", SOP_IMAGE },        /* MR */
	{ "1.2.840.10008.5.1.4.1.1.4.1", SOP_IMAGE },      /* Enhanced MR */
	{ "1.2.840.10008.5.1.4.1.1.4.2", SOP_OTHER },      /* MR spectroscopy */
	{ "1.2.840.10008.5.1.4.1.1.6.1", SOP_IMAGE },      /* US */
	{ "1.2.840.10008.5.1.4.1.1.7", SOP_IMAGE },        /* SC */
	{ "1.2.840.10008.5.1.4.1.1.7.1", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.7.2", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.7.3", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.7.4", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.9.1.1", SOP_OTHER },    /* waveforms */
	{ "1.2.840.10008.5.1.4.1.1.9.1.2", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.9.1.3", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.9.2.1", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.9.3.1", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.9.4.1", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.11.1", SOP_OTHER },     /* presentation states */
	{ "1.2.840.10008.5.1.4.1.1.11.2", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.11.3", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.11.4", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.12.1", SOP_IMAGE },     /* XA */
	{ "1.2.840.10008.5.1.4.1.1.12.1.1", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.12.2", SOP_IMAGE },     /* XRF */
	{ "1.2.840.10008.5.1.4.1.1.12.2.1", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.20", SOP_IMAGE },       /* NM */
	{ "1.2.840.10008.5.1.4.1.1.66", SOP_OTHER },       /* raw data */
	{ "1.2.840.10008.5.1.4.1.1.66.1", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.66.2", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.66.3", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.66.4", SOP_IMAGE },     /* segmentation */
	{ "1.2.840.10008.5.1.4.1.1.67", SOP_OTHER },       /* RWV mapping */
	{ "1.2.840.10008.5.1.4.1.1.77.1.1", SOP_IMAGE },   /* VL endoscopic */
	{ "1.2.840.10008.5.1.4.1.1.77.1.1.1", SOP_VIDEO },
	{ "1.2.840.10008.5.1.4.1.1.77.1.2", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.77.1.2.1", SOP_VIDEO },
	{ "1.2.840.10008.5.1.4.1.1.77.1.3", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.77.1.4", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.77.1.4.1", SOP_VIDEO },
	{ "1.2.840.10008.5.1.4.1.1.77.1.5.1", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.77.1.5.2", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.77.1.5.3", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.88.11", SOP_SR },
	{ "1.2.840.10008.5.1.4.1.1.88.22", SOP_SR },
	{ "1.2.840.10008.5.1.4.1.1.88.33", SOP_SR },
	{ "1.2.840.10008.5.1.4.1.1.88.40", SOP_SR },
	{ "1.2.840.10008.5.1.4.1.1.88.50", SOP_SR },
	{ "1.2.840.10008.5.1.4.1.1.88.59", SOP_SR },       /* Key Object Selection */
	{ "1.2.840.10008.5.1.4.1.1.88.65", SOP_SR },
	{ "1.2.840.10008.5.1.4.1.1.88.67", SOP_SR },
	{ "1.2.840.10008.5.1.4.1.1.104.1", SOP_OTHER },    /* encapsulated PDF */
	{ "1.2.840.10008.5.1.4.1.1.128", SOP_IMAGE },      /* PET */
	{ "1.2.840.10008.5.1.4.1.1.481.1", SOP_IMAGE },    /* RT image */
	{ "1.2.840.10008.5.1.4.1.1.481.2", SOP_IMAGE },    /* RT dose */
	{ "1.2.840.10008.5.1.4.1.1.481.3", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.481.4", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.481.5", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.481.6", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.481.7", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.481.8", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.481.9", SOP_OTHER },
	{ "1.2.840.10008.5.1.1.29", SOP_IMAGE },           /* retired hardcopy */
	{ "1.2.840.10008.5.1.1.30", SOP_IMAGE },
	{ "1.2.840.10008.5.1.4.1.1.5", SOP_IMAGE },        /* retired NM */
	{ "1.2.840.10008.5.1.4.1.1.6", SOP_IMAGE },        /* retired US */
	{ "1.2.840.10008.5.1.4.1.1.3", SOP_IMAGE },        /* retired US multi-frame */
	{ "1.2.840.10008.5.1.4.1.1.12.3", SOP_IMAGE },     /* retired XA bi-plane */
	{ "1.2.840.10008.5.1.4.1.1.8", SOP_OTHER },        /* retired standalone */
	{ "1.2.840.10008.5.1.4.1.1.9", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.10", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.11", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.129", SOP_OTHER },
	{ "1.2.840.10008.5.1.4.1.1.77.1", SOP_IMAGE },     /* retired VL */
	{ "1.2.840.10008.5.1.4.1.1.77.2", SOP_IMAGE },
	{ "1.2.124.113532.3500.7", SOP_OTHER },            /* Agfa attribute PS */
	{ "1.3.12.2.1107.5.9.1", SOP_OTHER },              /* Siemens CSA non-image */
	{ "1.2.40.0.13.1.5.1.4.1.1.104.1", SOP_OTHER },    /* dcm4che encapsulated doc */
};

#define N_TABLE ((int)(sizeof(table) / sizeof(table[0])))

int sop_table_size(void)
{
	return N_TABLE;
}

sop_category sop_classify(const char *uid, int accept_unlisted)
{
	for (int i = 0; i < N_TABLE; i++)
		if (strcmp(table[i].uid, uid) == 0)
			return table[i].cat;
	if (accept_unlisted && strncmp(uid, "1.2.840.10008.5.1.4.1.1.", 24) == 0)
		return SOP_IMAGE;
	return SOP_NONE;
}

/* Preference order per category, best first (§2.2.1.6.1.5). JPEG-LS goes
 * beyond the statement's tables: lossless, and widely sent by modalities. */
static const char *const image_ts[] = {
	"1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.90",
	"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5",
	"1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.51",
	"1.2.840.10008.1.2.4.50",
	"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2", NULL
};
static const char *const video_ts[] = {
	"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102",
	"1.2.840.10008.1.2.4.103", NULL
};
static const char *const sr_ts[] = {
	"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2", NULL
};
static const char *const other_ts[] = {
	"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2", NULL
};

const char *sop_choose_ts(sop_category cat, const char *const *proposed, int n)
{
	const char *const *pref = cat == SOP_IMAGE ? image_ts : cat == SOP_VIDEO ? video_ts
		: cat == SOP_SR ? sr_ts : cat == SOP_OTHER ? other_ts : NULL;
	if (!pref)
		return NULL;
	for (; *pref; pref++)
		for (int i = 0; i < n; i++)
			if (strcmp(*pref, proposed[i]) == 0)
				return proposed[i];
	return NULL;
}
