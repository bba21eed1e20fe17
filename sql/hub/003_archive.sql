-- 003_archive: the nearline archive (hub/archive.c, seeds/kb-13876).
--
-- Series are packed from the online cache into TAR files on nearline
-- volumes. A TAR is never rewritten: objects that reach an archived series
-- later go into a new TAR of that series. A TAR row exists only for a file
-- that was completely written, fsync'ed, renamed into place and verified
-- member by member against the index, so every tar_file row is a safe copy
-- and an instance with tar_fk set may leave the cache (file_path NULL).

-- One row per [volume.NAME] ever configured; the state survives restarts
-- (hubctl volume offline|online NAME). closed: full, takes no new TARs.
CREATE TABLE volume (
    pk          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    path        text NOT NULL DEFAULT '',
    state       text NOT NULL DEFAULT 'online' CHECK (state IN ('online', 'offline')),
    closed      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tar_file (
    pk          bigserial PRIMARY KEY,
    volume_fk   bigint NOT NULL REFERENCES volume,
    series_fk   bigint NOT NULL REFERENCES series,
    path        text NOT NULL,                 -- relative to the volume's path
    size        bigint NOT NULL,
    md5         char(32) NOT NULL,             -- of the whole TAR file
    members     integer NOT NULL,              -- objects, without the manifest
    verified_at timestamptz,                   -- last successful verification
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (volume_fk, path)
);
CREATE INDEX tar_file_series_idx ON tar_file (series_fk);

-- Evicted objects have no cache file; their bytes are at tar_offset (the
-- member's data, not its header) in their TAR.
ALTER TABLE instance
    ALTER COLUMN file_path DROP NOT NULL,
    ADD COLUMN tar_fk     bigint REFERENCES tar_file,
    ADD COLUMN tar_offset bigint,
    ADD COLUMN tar_size   bigint;
CREATE INDEX instance_tar_idx ON instance (tar_fk);
-- the archiver's backlog and the eviction candidates stay small and cheap
CREATE INDEX instance_unarchived_idx ON instance (series_fk) WHERE tar_fk IS NULL;
CREATE INDEX instance_evictable_idx ON instance (received_at)
    WHERE tar_fk IS NOT NULL AND file_path IS NOT NULL;
