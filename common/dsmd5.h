/*
 * dsmd5.h - MD5 of a DICOM file's data set, without its File Meta
 * Information.
 *
 * The hub and a spoke each build the File Meta Information of a received
 * object from their own C-STORE command (Source AE Title differs: the
 * spoke's PACS at the spoke, the spoke at the hub), so their file MD5s never
 * match even when the objects do. The data set bytes after the meta are
 * kept exactly as received on both sides, so their MD5 is what `hubctl
 * verify` compares (ledger_instance.dataset_md5, instance.dataset_md5).
 */
#ifndef DH_DSMD5_H
#define DH_DSMD5_H

#include "hash.h"

/* out must hold DH_MD5_HEX_LEN + 1 bytes. Returns 0, or -1 (unreadable, or not a DICOM file). */
int dh_dsmd5_file(const char *path, char out[DH_MD5_HEX_LEN + 1]);

#endif
