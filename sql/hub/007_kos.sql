-- 007_kos: Key Object Selection documents (KOS, Key Image Notes) and IHE
-- IOCM rejection notes (seeds kb-119333, kb-119341; hub/kos.c).
--
-- Registration happens in the ingest transaction of the KOS itself: the
-- document's instance row and its rows here commit together or not at all.
-- A KOS that cannot be registered never gets an instance row: it goes to
-- quarantine (005) instead, so no half-visible state exists.
-- Rows stay when the KOS instance is later deleted (history); instance_pk
-- then names a deleted_instance row.

CREATE TABLE kos_document (
    pk             bigserial PRIMARY KEY,
    instance_pk    bigint NOT NULL,            -- instance.pk (or deleted_instance.pk once deleted)
    sop_uid        text NOT NULL,              -- the hub's SOP Instance UID of the KOS
    study_uid      text NOT NULL,              -- as received; the instance row has the current one
    series_uid     text NOT NULL,
    title_code     text NOT NULL,              -- Concept Name Code Sequence (0040,A043)
    title_scheme   text NOT NULL,
    title_meaning  text NOT NULL DEFAULT '',
    author         text NOT NULL DEFAULT '',   -- observer / verifying observer / content creator
    content_date   text NOT NULL DEFAULT '',
    content_time   text NOT NULL DEFAULT '',
    -- IOCM: the title is one of DCM 113001, 113037, 113038, 113039: its
    -- references were hidden as by a DELETE (deleted_instance.reason names it)
    rejection      boolean NOT NULL DEFAULT false,
    hidden         integer NOT NULL DEFAULT 0, -- instances this note hid when it arrived
    source_ae      text NOT NULL DEFAULT '',
    registered_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (instance_pk)
);
CREATE INDEX kos_document_study_idx ON kos_document (study_uid);

-- Every instance a document references: the Current Requested Procedure
-- Evidence Sequence (origin 'evidence') and the content tree's IMAGE and
-- COMPOSITE items (origin 'content'), one row per distinct SOP UID.
CREATE TABLE kos_reference (
    kos_fk        bigint NOT NULL REFERENCES kos_document ON DELETE CASCADE,
    seq           integer NOT NULL,
    study_uid     text NOT NULL DEFAULT '',
    series_uid    text NOT NULL DEFAULT '',
    sop_uid       text NOT NULL,
    sop_class_uid text NOT NULL DEFAULT '',
    origin        text NOT NULL CHECK (origin IN ('evidence', 'content')),
    PRIMARY KEY (kos_fk, seq)
);
-- an arriving object is looked up here: was it rejected before it came?
CREATE INDEX kos_reference_sop_idx ON kos_reference (sop_uid);
