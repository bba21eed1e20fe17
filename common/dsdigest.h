/*
 * dsdigest.h - the digest of a DICOM file's data set, without its File Meta
 * Information.
 *
 * The hub and a spoke each build the File Meta Information of a received
 * object from their own C-STORE command (Source AE Title differs: the
 * spoke's PACS at the spoke, the spoke at the hub), so their file MD5s never
 * match even when the objects do. The data set bytes after the meta are
 * kept exactly as received on both sides, so their digest is what `hubctl
 * verify` compares (ledger_instance.dataset_digest, instance.dataset_digest):
 * XXH3-128 (libxxhash) in hex, DH_DSDIGEST_HEX_LEN characters, computed by
 * dh_durable_md5_sync in the same read as the file's MD5 (a second MD5 there
 * cost a fifth of the ingest rate; the file MD5 remains the integrity check).
 */
#ifndef DH_DSDIGEST_H
#define DH_DSDIGEST_H

#define DH_DSDIGEST_HEX_LEN 32

/*
 * Where the data set of the DICOM file at path starts (after its File Meta
 * Information), for dh_durable_md5_sync's data set digest: read from the
 * meta's group length (0002,0000) when the file has one where Part 10
 * puts it, else found by the DCMTK adapter. Returns -1 when the file is
 * unreadable or not a DICOM Part 10 file.
 */
long dh_dsdigest_offset(const char *path);

#endif
