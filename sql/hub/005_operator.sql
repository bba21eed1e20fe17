-- 005_operator: what operators did, and objects held back for them.
--
-- Shared by hubctl's queue actions (retry, resolve, discard of cc items),
-- the quarantine of objects that cannot be registered (a malformed Key
-- Object Selection document, seeds kb-119333/kb-119341) and any later
-- operator command: every action names who, when, why and on what.

CREATE TABLE operator_action (
    pk            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    operator_name text NOT NULL,               -- who: --operator, else the OS user running hubctl
    action        text NOT NULL,               -- retry, resolve, discard, release, ...
    target_kind   text NOT NULL,               -- what kind of item: 'cc', 'quarantine', ...
    target_pk     bigint NOT NULL,             -- that item's pk (cc_log.pk, quarantine.pk, ...)
    study_uid     text NOT NULL DEFAULT '',    -- the study it concerns, for hubctl history
    reason        text NOT NULL,               -- why (--reason), never empty
    outcome       text NOT NULL DEFAULT ''     -- what came of it (e.g. 'applied', 'still parked: ...')
);
CREATE INDEX operator_action_target_idx ON operator_action (target_kind, target_pk);
CREATE INDEX operator_action_study_idx ON operator_action (study_uid) WHERE study_uid <> '';

-- Objects the hub keeps but does not show: stored durably (the sender got
-- success, nothing is lost) but not in the index's instance table, so no
-- C-FIND, C-MOVE or count ever sees them. state 'quarantined' is an
-- operator item; 'released' (registered after all) and 'discarded' are
-- settled, with the operator_action that settled them.
CREATE TABLE quarantine (
    pk              bigserial PRIMARY KEY,
    sop_uid         text NOT NULL,
    sop_class_uid   text NOT NULL,
    study_uid       text NOT NULL DEFAULT '',
    series_uid      text NOT NULL DEFAULT '',
    patient_id      text NOT NULL DEFAULT '',
    source_ae       text NOT NULL DEFAULT '',
    transfer_syntax text NOT NULL DEFAULT '',
    file_path       text NOT NULL,             -- in the online cache; never evicted
    file_size       bigint NOT NULL DEFAULT 0,
    md5             char(32) NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    reason          text NOT NULL,             -- why it could not be registered
    state           text NOT NULL DEFAULT 'quarantined'
                    CHECK (state IN ('quarantined', 'released', 'discarded')),
    settled_at      timestamptz
);
CREATE INDEX quarantine_open_idx ON quarantine (received_at) WHERE state = 'quarantined';
CREATE INDEX quarantine_study_idx ON quarantine (study_uid);
CREATE INDEX quarantine_sop_idx ON quarantine (sop_uid);
