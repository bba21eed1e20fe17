-- 002_iocm: IHE IOCM rejection notes received from the spoke PACS
-- (spoke/receive.c, spoke/capture.c).
--
-- A Key Object Selection document titled (DCM) 113001, 113037, 113038 or
-- 113039 rejects the instances it references: their ledger rows get
-- deleted_at in the transaction that records the note, and every
-- reference is remembered here, so an instance that arrives after its
-- rejection is recorded as deleted at once. The note itself is forwarded
-- like any object; the hub applies it the same way (hub/kos.c), so the
-- spoke and the hub hide the same instances whichever arrives first.

CREATE TABLE rejected_instance (
    sop_uid      text NOT NULL,
    study_uid    text NOT NULL,
    note_sop_uid text NOT NULL,               -- the rejection note
    title_code   text NOT NULL,
    rejected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sop_uid, study_uid, note_sop_uid)
);
