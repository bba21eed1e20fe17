-- 010_verify: `hubctl verify --spoke S [--study UID]` (issue 6).
--
-- hubctl inserts a verify_request and waits; the hubd that holds the
-- spoke's cc connection (hub/cc_recv.c) claims it, sends the spoke a
-- LedgerRequest and stores the LedgerChunks of the answer in
-- verify_ledger; hubctl then compares that snapshot with the index in SQL
-- (hub/hubctl_verify.c). Snapshots are scratch data, re-fetched for every
-- verify: the table is UNLOGGED (fast to fill, emptied by a crash) and a
-- request's rows go when the request is deleted (hubctl keeps the last few).

-- The MD5 of each object's data set without its File Meta Information
-- (common/dsmd5.h), as the spoke records it too (its file MD5 differs: each
-- side writes its own meta, naming its own sender). '' = not recorded
-- (objects stored before this migration): not compared.
ALTER TABLE instance ADD COLUMN dataset_md5 text NOT NULL DEFAULT '';

CREATE TABLE verify_request (
    pk           bigserial PRIMARY KEY,
    spoke_id     text NOT NULL,
    study_uid    text NOT NULL DEFAULT '',          -- '' = every study of the spoke
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by text NOT NULL DEFAULT '',
    -- pending: waits for the hubd holding the spoke's connection; sent:
    -- LedgerRequest sent; receiving: chunks arriving; done; failed (error)
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'sent', 'receiving', 'done', 'failed')),
    error        text NOT NULL DEFAULT '',
    total        bigint,                            -- rows the spoke announced
    received     bigint NOT NULL DEFAULT 0,         -- rows stored so far
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verify_request_pending_idx ON verify_request (spoke_id) WHERE state = 'pending';

-- The spoke's ledger as it answered (proto/cc.proto LedgerRow).
CREATE UNLOGGED TABLE verify_ledger (
    request_fk          bigint NOT NULL REFERENCES verify_request ON DELETE CASCADE,
    sop_uid             text NOT NULL,
    series_uid          text NOT NULL,
    study_uid           text NOT NULL,
    sop_class_uid       text NOT NULL,
    md5                 text NOT NULL,           -- the data set's (dataset_md5 at the spoke)
    transfer_syntax     text NOT NULL,
    deleted             boolean NOT NULL,
    fwd_state           text NOT NULL,
    patient_id          text NOT NULL,
    issuer              text NOT NULL,
    patient_name        text NOT NULL,
    birth_date          text NOT NULL,
    sex                 text NOT NULL,
    study_id            text NOT NULL,
    study_date          text NOT NULL,
    study_time          text NOT NULL,
    accession           text NOT NULL,
    referring_physician text NOT NULL,
    study_description   text NOT NULL,
    modality            text NOT NULL,
    series_number       text NOT NULL,
    series_description  text NOT NULL,
    instance_number     text NOT NULL
);
CREATE INDEX verify_ledger_request_idx ON verify_ledger (request_fk, sop_uid);
