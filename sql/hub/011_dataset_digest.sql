-- 011_dataset_digest: the data set's digest is XXH3-128, not MD5.
--
-- `hubctl verify` compares the data set bytes (without File Meta) of an
-- object at the spoke and at the hub. Hashing them with MD5 as well as the
-- file doubled the MD5 work of every stored object (measured: ingest 20 %
-- slower); XXH3-128 (libxxhash) costs next to nothing in the same read.
-- It detects differences; it is not a security measure (the file MD5 stays
-- that). Values computed with MD5 before are cleared: '' means unknown and
-- is not compared.
ALTER TABLE instance RENAME COLUMN dataset_md5 TO dataset_digest;
UPDATE instance SET dataset_digest = '' WHERE dataset_digest <> '';
ALTER TABLE verify_ledger RENAME COLUMN md5 TO digest;
