-- 002_query: what C-FIND matching needs beyond the core index
-- (conformance Tables 2-25..2-28).
--
-- Ingest writes these inside its per-object transaction (hub/qr_index.c).
-- Nothing here is a per-study counter: concurrent associations storing into
-- one study would otherwise queue on that study row's lock. Counts and
-- Modalities in Study are computed at query time from indexed subqueries
-- over series_study_idx / instance_series_idx, which cost per returned row,
-- not per stored row.
--
-- Matching SQL (hub/qr_query.c) compares with lower(col) LIKE/= for the
-- case-insensitive attributes and col LIKE/= or the byte-wise ~>=~ / ~<=~
-- operators otherwise; the text_pattern_ops indexes below serve exactly
-- those forms whatever the database collation is.

-- Other Patient IDs Sequence (0010,1002) items.
CREATE TABLE patient_other_id (
    pk         bigserial PRIMARY KEY,
    patient_fk bigint NOT NULL REFERENCES patient,
    patient_id text NOT NULL,
    issuer     text NOT NULL DEFAULT '',
    UNIQUE (patient_fk, patient_id, issuer)
);
CREATE INDEX patient_other_id_idx ON patient_other_id (patient_id, issuer);

-- Request Attribute Sequence (0040,0275) items of a series. The two
-- matching keys are columns; attrs holds every returned attribute of the
-- item as {"DCMTK path relative to the item": "value"}, e.g.
-- {"(0040,1001)": "RP1", "(0040,100A)[0].(0008,0100)": "R-1"}.
CREATE TABLE series_request (
    pk                     bigserial PRIMARY KEY,
    series_fk              bigint NOT NULL REFERENCES series,
    requested_procedure_id text NOT NULL DEFAULT '',
    sps_id                 text NOT NULL DEFAULT '',
    attrs                  jsonb NOT NULL DEFAULT '{}',
    UNIQUE (series_fk, requested_procedure_id, sps_id)
);
CREATE INDEX series_request_rp_idx ON series_request (requested_procedure_id text_pattern_ops);
CREATE INDEX series_request_sps_idx ON series_request (sps_id text_pattern_ops);

-- Instance-level keys (SR documents, key objects). Constant defaults: adding
-- them does not rewrite the table.
ALTER TABLE instance
    ADD COLUMN completion_flag     text NOT NULL DEFAULT '',
    ADD COLUMN verification_flag   text NOT NULL DEFAULT '',
    ADD COLUMN concept_code_value  text NOT NULL DEFAULT '',
    ADD COLUMN concept_scheme      text NOT NULL DEFAULT '',
    ADD COLUMN concept_version     text NOT NULL DEFAULT '',
    ADD COLUMN concept_meaning     text NOT NULL DEFAULT '';
CREATE INDEX instance_concept_idx ON instance (concept_code_value, concept_scheme)
    WHERE concept_code_value <> '';
CREATE INDEX instance_sop_class_idx ON instance (sop_class_uid);

-- Patient level
CREATE INDEX patient_name_ci_idx ON patient (lower(patient_name) text_pattern_ops);
CREATE INDEX patient_id_pat_idx ON patient (patient_id text_pattern_ops);
CREATE INDEX patient_birth_idx ON patient (birth_date text_pattern_ops);

-- Study level
CREATE INDEX study_date_idx ON study (study_date text_pattern_ops);
CREATE INDEX study_accession_pat_idx ON study (accession text_pattern_ops);
CREATE INDEX study_id_pat_idx ON study (study_id text_pattern_ops);
CREATE INDEX study_referring_ci_idx ON study (lower(referring_physician) text_pattern_ops);
CREATE INDEX study_description_ci_idx ON study (lower(description) text_pattern_ops);

-- Series level
CREATE INDEX series_study_modality_idx ON series (study_fk, modality);
CREATE INDEX series_modality_idx ON series (modality);
CREATE INDEX series_institution_ci_idx ON series (lower(institution) text_pattern_ops);
CREATE INDEX series_department_ci_idx ON series (lower(department) text_pattern_ops);
