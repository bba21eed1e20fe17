-- 004_cc: change contexts (cc) from spokes (seeds/kb-13876, proto/cc.proto).
--
-- The index stays the current truth: a cc changes rows here (membership,
-- UIDs, indexed attribute columns), records attribute values that differ
-- from the stored files in attr_override (applied when an object leaves the
-- hub, hub/render.c), and moves deleted objects to deleted_instance. Stored
-- files are never rewritten.

-- Ownership: the spoke whose AE title ([spoke.ID] ae_titles) stored the
-- study's first object; '' = not a spoke's (stored by a modality or an
-- archive directly). A cc may only touch studies its spoke owns
-- (cc.enforce_ownership).
ALTER TABLE study ADD COLUMN owner_spoke text NOT NULL DEFAULT '';
-- What the renderer needs to know about the stored file: its Series UID
-- ('' = not recorded, objects stored before this migration: taken to equal
-- the current one) and whether a cc moved the object to another study
-- (then the study's and patient's indexed attributes replace the file's).
ALTER TABLE instance
    ADD COLUMN received_series_uid text NOT NULL DEFAULT '',
    ADD COLUMN moved boolean NOT NULL DEFAULT false;
-- Copies made by a SEGMENT cc share their original's cache file; eviction
-- and the duplicate overwrite remove a file only when no other row names it.
CREATE INDEX instance_file_path_idx ON instance (file_path) WHERE file_path IS NOT NULL;
-- C-MOVE of an old Study UID (after a fix-up or merge) finds the objects
-- that came in under it.
CREATE INDEX instance_received_study_idx ON instance (received_study_uid);

-- Per-spoke stream state: every sequence <= received_through is in cc_log
-- (applied, parked, refused or discarded); the hub acknowledges up to it.
CREATE TABLE cc_stream (
    spoke_id         text PRIMARY KEY,
    received_through bigint NOT NULL DEFAULT 0,
    last_seen_at     timestamptz,
    last_peer        text NOT NULL DEFAULT ''
);

-- Every cc a spoke delivered, exactly once per (spoke_id, sequence).
-- state: applied; parked (waits for objects, or behind a parked cc of the
-- same study; retried automatically); refused (a rule said no: ownership,
-- conflict; operator item); discarded (by an operator).
CREATE TABLE cc_log (
    pk            bigserial PRIMARY KEY,
    spoke_id      text NOT NULL,
    sequence      bigint NOT NULL,
    uuid          uuid NOT NULL,
    kind          text NOT NULL,
    operator_name text NOT NULL DEFAULT '',
    reason        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,            -- when the spoke captured it
    received_at   timestamptz NOT NULL DEFAULT now(),
    body          bytea NOT NULL,                  -- the encoded dhcc.ChangeContext
    studies       text[] NOT NULL,                 -- every Study UID it names, old and new
    state         text NOT NULL CHECK (state IN ('applied', 'parked', 'refused', 'discarded')),
    state_reason  text NOT NULL DEFAULT '',
    attempts      integer NOT NULL DEFAULT 0,
    applied_at    timestamptz,
    operator_item boolean NOT NULL DEFAULT false,  -- needs a person: refused, or parked too long
    UNIQUE (spoke_id, sequence)
);
CREATE INDEX cc_log_parked_idx ON cc_log (spoke_id, sequence) WHERE state = 'parked';
-- only parked rows are looked up by study (a later cc waits behind them);
-- indexing every applied row would cost a GIN insert per cc
CREATE INDEX cc_log_parked_studies_idx ON cc_log USING gin (studies) WHERE state = 'parked';
CREATE INDEX cc_log_operator_idx ON cc_log (received_at) WHERE operator_item;

-- Attribute values that replace the stored files' when an object leaves the
-- hub. level: 1 patient, 2 study, 3 series, 4 instance; target_fk is that
-- row's pk. One value per (level, target, tag); seq orders every write, and
-- the renderer applies an object's overrides in seq order, so the latest
-- change of a tag wins whatever level it was made at.
CREATE SEQUENCE attr_override_seq;
CREATE TABLE attr_override (
    level     smallint NOT NULL CHECK (level BETWEEN 1 AND 4),
    target_fk bigint NOT NULL,
    tag       bigint NOT NULL,                     -- (group << 16) | element
    vr        text NOT NULL,
    value     text NOT NULL,
    seq       bigint NOT NULL DEFAULT nextval('attr_override_seq'),
    cc_fk     bigint REFERENCES cc_log,
    PRIMARY KEY (level, target_fk, tag)
);

-- Objects deleted by a cc (or an operator): gone from the index, kept here
-- for history and verification; their files stay where they were.
CREATE TABLE deleted_instance (
    pk            bigint PRIMARY KEY,              -- the instance's former pk
    sop_uid       text NOT NULL,
    series_uid    text NOT NULL,
    study_uid     text NOT NULL,
    patient_id    text NOT NULL DEFAULT '',
    sop_class_uid text NOT NULL,
    md5           char(32) NOT NULL,
    file_path     text,
    tar_fk        bigint,
    tar_offset    bigint,
    tar_size      bigint,
    source_ae     text NOT NULL DEFAULT '',
    received_at   timestamptz NOT NULL,
    deleted_at    timestamptz NOT NULL DEFAULT now(),
    cc_fk         bigint REFERENCES cc_log,
    reason        text NOT NULL DEFAULT ''
);
CREATE INDEX deleted_instance_study_idx ON deleted_instance (study_uid);
CREATE INDEX deleted_instance_sop_idx ON deleted_instance (sop_uid);

-- Deleting the last object of a series or study removes its row; TARs of
-- such a series stay (series_fk NULL, series_uid remembers it), the
-- C-FIND side tables go with it.
ALTER TABLE tar_file ADD COLUMN series_uid text NOT NULL DEFAULT '';
UPDATE tar_file t SET series_uid = s.series_uid FROM series s WHERE s.pk = t.series_fk;
ALTER TABLE tar_file ALTER COLUMN series_fk DROP NOT NULL,
    DROP CONSTRAINT tar_file_series_fk_fkey,
    ADD CONSTRAINT tar_file_series_fk_fkey FOREIGN KEY (series_fk) REFERENCES series ON DELETE SET NULL;
ALTER TABLE series_request
    DROP CONSTRAINT series_request_series_fk_fkey,
    ADD CONSTRAINT series_request_series_fk_fkey FOREIGN KEY (series_fk) REFERENCES series ON DELETE CASCADE;
ALTER TABLE patient_other_id
    DROP CONSTRAINT patient_other_id_patient_fk_fkey,
    ADD CONSTRAINT patient_other_id_patient_fk_fkey FOREIGN KEY (patient_fk) REFERENCES patient ON DELETE CASCADE;

-- UID reassignments by a cc join the kb-8993 mapping: several old UIDs may
-- map to one new one (merge), and a cc's mappings name the cc.
ALTER TABLE uid_mapping DROP CONSTRAINT uid_mapping_new_uid_key,
    ADD COLUMN cc_fk bigint REFERENCES cc_log;
CREATE INDEX uid_mapping_new_idx ON uid_mapping (new_uid);
