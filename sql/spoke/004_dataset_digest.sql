-- 004_dataset_digest: the data set's digest is XXH3-128, not MD5 (see the
-- hub's 011_dataset_digest.sql). Values computed with MD5 before are
-- cleared: '' means unknown and is not compared by `hubctl verify`.
ALTER TABLE ledger_instance RENAME COLUMN dataset_md5 TO dataset_digest;
UPDATE ledger_instance SET dataset_digest = '' WHERE dataset_digest <> '';
