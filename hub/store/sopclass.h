/*
 * sopclass.h - which storage SOP classes the hub accepts and in which
 * transfer syntax (conformance statement §2.2.1.3, Tables 2-14..2-17 and
 * §2.2.1.6.1.5).
 */
#ifndef HUB_SOPCLASS_H
#define HUB_SOPCLASS_H

typedef enum {
	SOP_NONE = 0,  /* not a storage SOP class we accept */
	SOP_IMAGE,     /* Table 2-14 transfer syntaxes */
	SOP_VIDEO,     /* Table 2-15 */
	SOP_SR,        /* Table 2-16 */
	SOP_OTHER      /* Table 2-17 */
} sop_category;

/*
 * Category of a storage SOP class. With accept_unlisted, a standard storage
 * class (1.2.840.10008.5.1.4.1.1.*) missing from the table counts as an image.
 */
sop_category sop_classify(const char *sop_class_uid, int accept_unlisted);

/*
 * Picks the transfer syntax to accept among the proposed ones, by the
 * statement's preference: compressed over uncompressed, lossless over lossy,
 * explicit over implicit VR. Returns one of the proposed pointers, or NULL
 * when none is acceptable for the category.
 */
const char *sop_choose_ts(sop_category cat, const char *const *proposed, int n);

/* Number of storage SOP classes in the table (for tests and docs). */
int sop_table_size(void);

#endif
