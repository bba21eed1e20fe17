-- 013_tar_digest: a TAR's own checksum becomes XXH3-128, computed while the
-- TAR is written (no second pass over the file), and "indexed" is no longer
-- "verified".
--
-- tar_file.digest: XXH3-128 (libxxhash, hex: high 64 bits then low 64 bits)
-- of the whole TAR file as written. tar_file.md5 (the whole-file MD5 of TARs
-- written before this migration) stays for those rows and is NULL for new
-- ones; hubctl verify checks whichever the row has. The manifest member and
-- the instances' MD5s are unchanged.
--
-- tar_file.verified_at: NULL while the archiver has not yet read the TAR
-- back from the volume and checked every member. Such a TAR is a complete,
-- fsync'ed, indexed copy, but cache eviction only takes objects whose TAR is
-- verified (hub/archive/nearline.c), so an unverified TAR is never the last
-- copy. Every row written before this migration was verified before it was
-- inserted (003), so nothing needs to be filled in.
ALTER TABLE tar_file
    ADD COLUMN digest text NOT NULL DEFAULT '',
    ALTER COLUMN md5 DROP NOT NULL;
-- the archiver's verification backlog
CREATE INDEX tar_file_unverified_idx ON tar_file (pk) WHERE verified_at IS NULL;
