-- 012_file_digest: XXH3-128 of each cached object file, next to its MD5.
--
-- The file MD5 stays the object's identity (storage commitment, TAR
-- manifests, duplicates). The archiver and the nearline read path also
-- need to check, at GB/s, that the bytes they copy or read are the bytes
-- received: XXH3-128 (libxxhash), computed at ingest in the same read as
-- the MD5, costs next to nothing. '' means unknown (objects stored before
-- this migration): those are checked against their MD5 instead.
ALTER TABLE instance ADD COLUMN file_digest text NOT NULL DEFAULT '';
