-- 009_external: export to external archives with Storage Commitment SCU
-- (conformance §2.2.1.5.2) and the record C-MOVE forwarding reads
-- (§2.2.1.6.5): which external archive holds which object.
--
-- external_object is the durable export queue and, once an object is there,
-- the proof that it is: one row per (instance, archive AE). States:
--   queued     waiting to be sent (again); attempts/next_attempt_at/last_error
--              say how the last try went
--   sent       C-STORE succeeded; commitment requested (transaction_uid) or
--              still to be requested
--   committed  the archive reported it committed (or, for an archive
--              configured with commit = false, the C-STORE succeeded)
--   failed     the archive refused the C-STORE or reported the commitment
--              failed (failure_reason, last_error); an operator retries it
-- The UIDs are those the object was sent with (the index's truth at export
-- time): a forwarded C-MOVE has to ask the archive by them. instance_fk
-- becomes NULL when the hub deletes the object (the row stays: the archive
-- still holds it).

CREATE TABLE external_object (
    pk              bigserial PRIMARY KEY,
    instance_fk     bigint REFERENCES instance ON DELETE SET NULL,
    archive_ae      text NOT NULL,
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sent', 'committed', 'failed')),
    sop_class_uid   text NOT NULL DEFAULT '',
    sop_uid         text NOT NULL DEFAULT '',
    series_uid      text NOT NULL DEFAULT '',
    study_uid       text NOT NULL DEFAULT '',
    transaction_uid text,
    failure_reason  integer,               -- (0008,1197) from the archive
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    queued_at       timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    committed_at    timestamptz,
    released_at     timestamptz,           -- local copy removed (hubctl external release)
    UNIQUE (instance_fk, archive_ae)
);
CREATE INDEX external_object_due_idx ON external_object (archive_ae, next_attempt_at)
    WHERE state = 'queued';
CREATE INDEX external_object_txn_idx ON external_object (transaction_uid);
CREATE INDEX external_object_sop_idx ON external_object (sop_uid);

-- Every Storage Commitment request the hub sent, kept indefinitely
-- (§2.2.1.5.2.3). requested: N-ACTION answered 0000, waiting for the
-- N-EVENT-REPORT; reported: the result arrived (n_committed/n_failed);
-- expired: no result within commit_timeout, its objects requested again
-- under a new transaction.
CREATE TABLE external_txn (
    transaction_uid text PRIMARY KEY,
    archive_ae      text NOT NULL,
    state           text NOT NULL DEFAULT 'requested'
                    CHECK (state IN ('requested', 'reported', 'expired')),
    n_objects       integer NOT NULL,
    n_committed     integer NOT NULL DEFAULT 0,
    n_failed        integer NOT NULL DEFAULT 0,
    event_type      smallint,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    reported_at     timestamptz
);
CREATE INDEX external_txn_open_idx ON external_txn (requested_at) WHERE state = 'requested';
