-- 006_ops: operator queue states and the record of recalls (issue 6).
--
-- cc_log.state, as operators see it (docs/hubctl.md):
--   applied    done;
--   parked     waits for objects not received yet, or behind an earlier
--              parked/failed cc of the same spoke and study; retried
--              automatically (cc.retry_interval, and when objects arrive);
--   conflict   a rule said no (ownership, a change that contradicts the
--              index); operator item; later cc do not wait behind it;
--   failed     parked longer than cc.park_timeout (objects that never came)
--              or could not be applied (the database refused it, the stored
--              cc does not decode); operator item, no longer retried
--              automatically; later cc of its studies wait behind it;
--   resolved   an operator settled it by other means: never applied;
--   discarded  an operator decided it must never be applied.
-- operator_item stays true exactly for conflict and failed.
-- Rows of 004's 'refused' were refusals by a rule or by the database: they
-- become conflict; parked rows already marked as operator items (parked
-- longer than the timeout) become failed.
ALTER TABLE cc_log DROP CONSTRAINT cc_log_state_check;
UPDATE cc_log SET state = 'conflict' WHERE state = 'refused';
UPDATE cc_log SET state = 'failed' WHERE state = 'parked' AND operator_item;
ALTER TABLE cc_log ADD CONSTRAINT cc_log_state_check
    CHECK (state IN ('applied', 'parked', 'conflict', 'failed', 'resolved', 'discarded'));
ALTER TABLE cc_log ADD COLUMN settled_at timestamptz;   -- resolved or discarded by an operator

-- A later cc waits behind parked and failed cc of the same study: the
-- lookup's partial GIN index covers both (004's covered parked only).
DROP INDEX cc_log_parked_studies_idx;
CREATE INDEX cc_log_waiting_studies_idx ON cc_log USING gin (studies) WHERE state IN ('parked', 'failed');
CREATE INDEX cc_log_open_idx ON cc_log (spoke_id, sequence) WHERE state IN ('parked', 'conflict', 'failed');
-- hubctl status: the last applied sequence per spoke
CREATE INDEX cc_log_applied_idx ON cc_log (spoke_id, sequence) WHERE state = 'applied';

-- One row per C-MOVE request the hub answered (hub/move_log.c): who asked,
-- where the objects went, what came of it. study_uids: the Study UIDs the
-- identifier named or that its patient, series or SOP keys resolve to
-- when the request was answered, so hubctl history finds recalls by study.
CREATE TABLE move_log (
    pk             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    calling_ae     text NOT NULL,
    destination_ae text NOT NULL,
    level          text NOT NULL DEFAULT '',      -- PATIENT, STUDY, SERIES, IMAGE ('' unparsed)
    study_uids     text[] NOT NULL DEFAULT '{}',
    matched        integer NOT NULL DEFAULT 0,
    completed      integer NOT NULL DEFAULT 0,
    failed         integer NOT NULL DEFAULT 0,
    warning        integer NOT NULL DEFAULT 0,
    status         integer NOT NULL                -- the final DIMSE status
);
CREATE INDEX move_log_studies_idx ON move_log USING gin (study_uids);

-- tar_file.series_uid (004) remembers a TAR's series once the series row
-- is gone (its last object deleted), but nothing filled it for TARs
-- written since: fill it when a TAR is recorded, and for those already
-- there, so hubctl history finds the TARs of deleted series.
UPDATE tar_file t SET series_uid = s.series_uid FROM series s WHERE s.pk = t.series_fk AND t.series_uid = '';
CREATE FUNCTION tar_file_fill_series_uid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.series_uid = '' AND NEW.series_fk IS NOT NULL THEN
        NEW.series_uid := COALESCE((SELECT series_uid FROM series WHERE pk = NEW.series_fk), '');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tar_file_fill_series_uid BEFORE INSERT ON tar_file
    FOR EACH ROW EXECUTE FUNCTION tar_file_fill_series_uid();
