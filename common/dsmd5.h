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

/*
 * Where the data set of the DICOM file at path starts (after its File Meta
 * Information), for dh_durable_md5_sync's second digest: read from the
 * meta's group length (0002,0000) when the file has one where Part 10
 * puts it, else found by the DCMTK adapter. Returns -1 when the file is
 * unreadable or not a DICOM Part 10 file.
 */
long dh_dsmd5_offset(const char *path);

#endif
