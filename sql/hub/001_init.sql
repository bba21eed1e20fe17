-- 001_init: the hub index.
--
-- The index is the current truth about every object the hub holds: which
-- patient, study and series it belongs to, where its bytes are, their MD5.
-- Stored files are never rewritten; what changes lives here.
-- Text columns hold values as received (converted to UTF-8); empty string,
-- not NULL, means "empty or absent", which is what DICOM matching needs.

CREATE TABLE patient (
    pk           bigserial PRIMARY KEY,
    patient_id   text NOT NULL DEFAULT '',
    issuer       text NOT NULL DEFAULT '',
    patient_name text NOT NULL DEFAULT '',
    birth_date   text NOT NULL DEFAULT '',
    sex          text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (patient_id, issuer)
);

CREATE TABLE study (
    pk                  bigserial PRIMARY KEY,
    patient_fk          bigint NOT NULL REFERENCES patient,
    study_uid           text NOT NULL UNIQUE,
    study_id            text NOT NULL DEFAULT '',
    study_date          text NOT NULL DEFAULT '',
    study_time          text NOT NULL DEFAULT '',
    accession           text NOT NULL DEFAULT '',
    referring_physician text NOT NULL DEFAULT '',
    description         text NOT NULL DEFAULT '',
    status_id           text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX study_patient_idx ON study (patient_fk);
CREATE INDEX study_accession_idx ON study (accession);

CREATE TABLE series (
    pk             bigserial PRIMARY KEY,
    study_fk       bigint NOT NULL REFERENCES study,
    series_uid     text NOT NULL UNIQUE,
    modality       text NOT NULL DEFAULT '',
    series_number  text NOT NULL DEFAULT '',
    description    text NOT NULL DEFAULT '',
    institution    text NOT NULL DEFAULT '',
    department     text NOT NULL DEFAULT '',
    pps_start_date text NOT NULL DEFAULT '',
    pps_start_time text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX series_study_idx ON series (study_fk);

-- sop_uid is the hub's identity of the object (a newly generated UID when
-- the duplicate policy reassigned it); received_sop_uid is what the file says.
CREATE TABLE instance (
    pk                 bigserial PRIMARY KEY,
    series_fk          bigint NOT NULL REFERENCES series,
    sop_uid            text NOT NULL UNIQUE,
    received_sop_uid   text NOT NULL,
    received_study_uid text NOT NULL,
    received_accession text NOT NULL DEFAULT '',
    sop_class_uid      text NOT NULL,
    instance_number    text NOT NULL DEFAULT '',
    content_date       text NOT NULL DEFAULT '',
    content_time       text NOT NULL DEFAULT '',
    transfer_syntax    text NOT NULL,
    file_path          text NOT NULL,          -- relative to storage.cache_dir
    file_size          bigint NOT NULL,
    md5                char(32) NOT NULL,
    source_ae          text NOT NULL DEFAULT '',
    received_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_series_idx ON instance (series_fk);
CREATE INDEX instance_received_sop_idx ON instance (received_sop_uid);

-- The dosr_uid_mapping equivalent (seeds/kb-8993): every UID the hub
-- assigned instead of the received one, queryable by study (study_uid is
-- the study the new object belongs to, the "study_ref").
CREATE TABLE uid_mapping (
    pk         bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('sop', 'series', 'study')),
    study_uid  text NOT NULL,
    accession  text NOT NULL DEFAULT '',
    old_uid    text NOT NULL,
    new_uid    text NOT NULL UNIQUE,
    source_ae  text NOT NULL DEFAULT '',
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uid_mapping_study_idx ON uid_mapping (study_uid);
CREATE INDEX uid_mapping_old_idx ON uid_mapping (old_uid);

-- Storage commitment transactions are kept indefinitely (§2.2.1.5.2.3).
CREATE TABLE stgcmt_txn (
    transaction_uid text PRIMARY KEY,
    requester_ae    text NOT NULL,
    called_ae       text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'reported', 'failed')),
    event_type      smallint,                  -- 1 all committed, 2 failures exist
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL DEFAULT now(),
    reported_at     timestamptz
);
CREATE INDEX stgcmt_txn_pending_idx ON stgcmt_txn (next_attempt_at) WHERE state = 'pending';

CREATE TABLE stgcmt_item (
    transaction_uid text NOT NULL REFERENCES stgcmt_txn ON DELETE CASCADE,
    seq             integer NOT NULL,
    sop_class_uid   text NOT NULL,
    sop_uid         text NOT NULL,
    committed       boolean,
    failure_reason  integer,                   -- (0008,1197) when not committed
    PRIMARY KEY (transaction_uid, seq)
);
