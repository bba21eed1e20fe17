-- 008_mpps: Modality Performed Procedure Steps received (N-CREATE / N-SET,
-- conformance §2.2.1.6.6) and their forwarding to MPPS destinations.
--
-- mpps holds one row per Performed Procedure Step: its status, the key
-- attributes of Tables 2.2-35/2.2-37 for queries and operators, and the
-- current data set (the N-CREATE with every N-SET applied). mpps_message
-- keeps every accepted request exactly as received (data set bytes in the
-- transfer syntax of the context, Implicit VR Little Endian), so it can be
-- forwarded as is. mpps_forward is the durable queue: one row per message
-- and destination, sent in message order per step and destination.

CREATE TABLE mpps (
    sop_instance_uid   text PRIMARY KEY,
    status             text NOT NULL,               -- IN PROGRESS, COMPLETED, DISCONTINUED
    patient_id         text NOT NULL DEFAULT '',
    patient_name       text NOT NULL DEFAULT '',
    patient_birth_date text NOT NULL DEFAULT '',
    patient_sex        text NOT NULL DEFAULT '',
    accession_number   text NOT NULL DEFAULT '',    -- first Scheduled Step Attribute item
    study_uid          text NOT NULL DEFAULT '',    -- first Scheduled Step Attribute item
    pps_id             text NOT NULL DEFAULT '',
    station_ae         text NOT NULL DEFAULT '',
    station_name       text NOT NULL DEFAULT '',
    modality           text NOT NULL DEFAULT '',
    start_date         text NOT NULL DEFAULT '',
    start_time         text NOT NULL DEFAULT '',
    end_date           text NOT NULL DEFAULT '',
    end_time           text NOT NULL DEFAULT '',
    description        text NOT NULL DEFAULT '',
    series_count       integer NOT NULL DEFAULT 0,  -- items of Performed Series Sequence
    source_ae          text NOT NULL,               -- Calling AE of the N-CREATE
    dataset            bytea NOT NULL,              -- current data set, Implicit VR LE
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mpps_study_idx ON mpps (study_uid);
CREATE INDEX mpps_patient_idx ON mpps (patient_id);

CREATE TABLE mpps_message (
    pk               bigserial PRIMARY KEY,         -- arrival order
    sop_instance_uid text NOT NULL REFERENCES mpps (sop_instance_uid),
    kind             text NOT NULL CHECK (kind IN ('N-CREATE', 'N-SET')),
    calling_ae       text NOT NULL,
    transfer_syntax  text NOT NULL,
    dataset          bytea NOT NULL,                -- as received
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mpps_message_uid_idx ON mpps_message (sop_instance_uid, pk);

-- state: pending (to send; retried with back-off while the destination is
-- unreachable), sent (the destination answered success or warning),
-- refused (it answered a failure status: final, visible to operators).
CREATE TABLE mpps_forward (
    message_pk       bigint NOT NULL REFERENCES mpps_message (pk),
    destination      text NOT NULL,                 -- remote AE title ([remote.AE] gives the address)
    sop_instance_uid text NOT NULL,                 -- copied from the message: the per-step order key
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'refused')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text NOT NULL DEFAULT '',
    response_status  integer,                        -- DIMSE status of the destination's answer
    sent_at          timestamptz,
    PRIMARY KEY (message_pk, destination)
);
CREATE INDEX mpps_forward_pending_idx ON mpps_forward (next_attempt_at) WHERE state = 'pending';
CREATE INDEX mpps_forward_order_idx ON mpps_forward (destination, sop_instance_uid, message_pk);

-- The forward backlog per destination, for `hubctl status` and monitoring:
-- messages not yet delivered, those refused, and the age of the oldest
-- undelivered one.
CREATE VIEW mpps_forward_backlog AS
SELECT destination,
       count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'refused') AS refused,
       min(m.received_at) FILTER (WHERE state = 'pending') AS oldest_pending,
       max(f.attempts) FILTER (WHERE state = 'pending') AS max_attempts,
       (array_agg(f.last_error ORDER BY f.message_pk DESC) FILTER (WHERE state = 'pending' AND f.last_error <> ''))[1]
           AS last_error
FROM mpps_forward f JOIN mpps_message m ON m.pk = f.message_pk
GROUP BY destination;

-- One line for `hubctl status`'s service backlogs: messages waiting for a
-- destination, the age in seconds of the oldest, and whether an operator
-- should look (a message undelivered for more than 10 minutes: a
-- destination is down or misconfigured).
CREATE FUNCTION mpps_forward_status(OUT items bigint, OUT oldest_s bigint, OUT attention boolean)
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(sum(pending), 0)::bigint,
           COALESCE(extract(epoch FROM now() - min(oldest_pending))::bigint, 0),
           COALESCE(min(oldest_pending) < now() - interval '10 minutes', false)
    FROM mpps_forward_backlog
$$;
