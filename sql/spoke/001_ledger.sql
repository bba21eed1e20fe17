-- 001_ledger: the spoke agent's database (spoked, spokectl).
--
-- The ledger is the spoke's view of every object its PACS gave spoked, as
-- the spoke holds it *now* (after splits, merges, corrections, deletions):
-- the hub must end up equal to it. Every change is recorded as a cc in
-- cc_history and queued in outbox in the same transaction as the ledger
-- update (spoke/capture.c); the shipper (spoke/shipper.c) sends the outbox
-- to the hub and deletes a row only once the hub acknowledged it.
-- Empty string, not NULL, means "empty or absent".

-- One row: the sequence counter of this spoke's cc stream.
CREATE TABLE spoke_state (
    id             integer PRIMARY KEY CHECK (id = 1),
    last_sequence  bigint NOT NULL DEFAULT 0,      -- highest sequence assigned
    acked_through  bigint NOT NULL DEFAULT 0,      -- hub acknowledged every sequence <= this
    last_ack_at    timestamptz
);
INSERT INTO spoke_state (id) VALUES (1);

CREATE TABLE ledger_instance (
    pk                  bigserial PRIMARY KEY,
    -- current identity (what the spoke says now)
    sop_uid             text NOT NULL,
    series_uid          text NOT NULL,
    study_uid           text NOT NULL,
    sop_class_uid       text NOT NULL,
    -- identity in the stored file (what was, or will be, forwarded)
    received_sop_uid    text NOT NULL,
    received_series_uid text NOT NULL,
    received_study_uid  text NOT NULL,
    -- current values of the tracked attributes (spoke/capture.c lists them)
    patient_id          text NOT NULL DEFAULT '',
    issuer              text NOT NULL DEFAULT '',
    patient_name        text NOT NULL DEFAULT '',
    birth_date          text NOT NULL DEFAULT '',
    sex                 text NOT NULL DEFAULT '',
    study_id            text NOT NULL DEFAULT '',
    study_date          text NOT NULL DEFAULT '',
    study_time          text NOT NULL DEFAULT '',
    accession           text NOT NULL DEFAULT '',
    referring_physician text NOT NULL DEFAULT '',
    study_description   text NOT NULL DEFAULT '',
    modality            text NOT NULL DEFAULT '',
    series_number       text NOT NULL DEFAULT '',
    series_description  text NOT NULL DEFAULT '',
    instance_number     text NOT NULL DEFAULT '',
    -- the stored file
    file_path           text NOT NULL,             -- relative to spoke.store_dir
    file_size           bigint NOT NULL,
    md5                 char(32) NOT NULL,
    transfer_syntax     text NOT NULL,
    source_ae           text NOT NULL DEFAULT '',
    received_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,               -- deleted at the spoke (cc DELETE)
    -- forwarding to the hub: pending -> sent (C-STORE ok) -> committed
    -- (storage commitment ok); failed after too many attempts; cc: a copy
    -- made by a cc (segment), which the hub makes from the cc itself:
    -- never forwarded
    fwd_state           text NOT NULL DEFAULT 'pending'
                        CHECK (fwd_state IN ('pending', 'sent', 'committed', 'failed', 'cc')),
    fwd_attempts        integer NOT NULL DEFAULT 0,
    fwd_next_at         timestamptz NOT NULL DEFAULT now(),
    fwd_error           text NOT NULL DEFAULT '',
    fwd_txn_uid         text,                      -- storage commitment transaction
    fwd_at              timestamptz
);
-- one live object per SOP Instance UID and study (deleted ones may come
-- back); the same SOP UID in two studies only under spoke.sop_conflict =
-- forward (kb-8993: the hub then stores the second under a new SOP UID)
CREATE UNIQUE INDEX ledger_instance_sop_idx ON ledger_instance (sop_uid, study_uid) WHERE deleted_at IS NULL;
CREATE INDEX ledger_instance_study_idx ON ledger_instance (study_uid);
CREATE INDEX ledger_instance_series_idx ON ledger_instance (series_uid);
CREATE INDEX ledger_instance_received_sop_idx ON ledger_instance (received_sop_uid);
CREATE INDEX ledger_instance_fwd_idx ON ledger_instance (fwd_next_at) WHERE fwd_state = 'pending';
CREATE INDEX ledger_instance_txn_idx ON ledger_instance (fwd_txn_uid) WHERE fwd_state = 'sent';

-- Every cc this spoke made, kept (the spoke's change history).
-- state: queued (in the outbox), acked (the hub has it), refused (the hub
-- will not apply it; refusal says why).
CREATE TABLE cc_history (
    sequence      bigint PRIMARY KEY,
    uuid          uuid NOT NULL UNIQUE,
    kind          text NOT NULL,
    operator_name text NOT NULL DEFAULT '',
    reason        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    body          bytea NOT NULL,                  -- the encoded dhcc.ChangeContext
    studies       text[] NOT NULL,
    state         text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'acked', 'refused')),
    refusal       text NOT NULL DEFAULT '',
    acked_at      timestamptz
);
CREATE INDEX cc_history_studies_idx ON cc_history USING gin (studies);
-- the shipper marks what the hub acknowledged: only the queued few, not the history
CREATE INDEX cc_history_queued_idx ON cc_history (sequence) WHERE state = 'queued';

-- What still has to reach the hub, in sequence order.
CREATE TABLE outbox (
    sequence  bigint PRIMARY KEY REFERENCES cc_history,
    body      bytea NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);
