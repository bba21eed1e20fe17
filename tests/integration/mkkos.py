#!/usr/bin/python3
"""mkkos.py - writes a Key Object Selection Document (KOS, TID 2010) that
references the given DICOM files, for the KOS / IOCM tests.

  mkkos.py OUT REF.dcm... [--title CODE:SCHEME:MEANING] [--author NAME]
           [--study-of REF.dcm] [--break notitle|noevidence|badref|badvt|badtitlevr]

The KOS belongs to the study of the first reference (or --study-of) with a
new series. --break makes the classic non-compliant variants: no document
title, no evidence sequence, a content item referencing an instance the
evidence does not list, a content item with a bogus value type.
"""
import argparse
import sys

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

KOS = "1.2.840.10008.5.1.4.1.1.88.59"


def code(value, scheme, meaning):
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("refs", nargs="+")
    ap.add_argument("--title", default="113000:DCM:Of Interest")
    ap.add_argument("--author", default="Key^Imager")
    ap.add_argument("--study-of")
    ap.add_argument("--break", dest="brk")
    a = ap.parse_args()

    refs = [pydicom.dcmread(p, stop_before_pixels=True) for p in a.refs]
    base = pydicom.dcmread(a.study_of, stop_before_pixels=True) if a.study_of else refs[0]

    ds = Dataset()
    ds.SOPClassUID = KOS
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 100"
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        setattr(ds, kw, getattr(base, kw, ""))
    ds.Modality = "KO"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 99
    ds.InstanceNumber = 1
    ds.Manufacturer = "dcmhub tests"
    ds.ContentDate = "20240102"
    ds.ContentTime = "101500"
    ds.ValueType = "CONTAINER"
    cv, cs, cm = a.title.split(":", 2)
    if a.brk != "notitle":
        ds.ConceptNameCodeSequence = Sequence([code(cv, cs, cm)])
    ds.ContinuityOfContent = "SEPARATE"
    tmpl = Dataset()
    tmpl.MappingResource = "DCMR"
    tmpl.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = Sequence([tmpl])
    ds.ReferencedPerformedProcedureStepSequence = Sequence()

    # evidence: study -> series -> instances
    studies = {}
    for r in refs:
        studies.setdefault(r.StudyInstanceUID, {}).setdefault(r.SeriesInstanceUID, []).append(r)
    ev = []
    for st, series in studies.items():
        it = Dataset()
        it.StudyInstanceUID = st
        ses = []
        for se, objs in series.items():
            s = Dataset()
            s.SeriesInstanceUID = se
            sops = []
            for o in objs:
                x = Dataset()
                x.ReferencedSOPClassUID = o.SOPClassUID
                x.ReferencedSOPInstanceUID = o.SOPInstanceUID
                sops.append(x)
            s.ReferencedSOPSequence = Sequence(sops)
            ses.append(s)
        it.ReferencedSeriesSequence = Sequence(ses)
        ev.append(it)
    if a.brk != "noevidence":
        ds.CurrentRequestedProcedureEvidenceSequence = Sequence(ev)

    content = []
    obs = Dataset()
    obs.RelationshipType = "HAS OBS CONTEXT"
    obs.ValueType = "PNAME"
    obs.ConceptNameCodeSequence = Sequence([code("121008", "DCM", "Person Observer Name")])
    obs.PersonName = a.author
    content.append(obs)
    txt = Dataset()
    txt.RelationshipType = "CONTAINS"
    txt.ValueType = "TEXT"
    txt.ConceptNameCodeSequence = Sequence([code("113012", "DCM", "Key Object Description")])
    txt.TextValue = "made by mkkos.py"
    content.append(txt)
    for i, o in enumerate(refs):
        c = Dataset()
        c.RelationshipType = "CONTAINS"
        c.ValueType = "IMAGE" if "Image" in pydicom.uid.UID(o.SOPClassUID).name else "COMPOSITE"
        if a.brk == "badvt" and i == 0:
            c.ValueType = "PICTURE"
        x = Dataset()
        x.ReferencedSOPClassUID = o.SOPClassUID
        x.ReferencedSOPInstanceUID = o.SOPInstanceUID
        if a.brk == "badref" and i == 0:
            x.ReferencedSOPInstanceUID = generate_uid()
        c.ReferencedSOPSequence = Sequence([x])
        content.append(c)
    ds.ContentSequence = Sequence(content)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = KOS
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(a.out, write_like_original=False)
    print(ds.SOPInstanceUID)


if __name__ == "__main__":
    sys.exit(main())
