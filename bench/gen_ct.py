#!/usr/bin/python3
"""gen_ct.py - generate a deterministic set of CT Image Storage instances for benchmarks.

The ingest benchmark (bench/ingest.sh) pushes the same data set into hubd and
into reference archives, so the data set must be identical from run to run and
machine to machine: every UID, attribute and pixel comes from a seeded random
generator, never from the clock or the host.

Each instance is a 512x512 16-bit signed CT slice (~512 KiB of pixel data) in
Explicit VR Little Endian with File Meta Information, the size and encoding a
modality really sends. The N instances are spread over S studies with 4 series
each; two consecutive studies belong to one patient (a current study and its
prior), as in a real archive.

Speed matters more than beauty here (5,000 files are 2.5 GiB): the pixel
buffer is rendered once, pydicom encodes only the small header of each file,
and the Pixel Data element is appended as raw bytes with a few bytes changed
per instance, so that no two files share an MD5 (an archive that deduplicates
by content must not get an easy ride).

Usage: gen_ct.py --count N --studies S --out DIR [--seed K]
Writes DIR/ct_<study>_<series>_<instance>.dcm (names sort in study, series,
instance order) and prints a one-line summary. Needs /usr/bin/python3 with
pydicom 2.x (Debian package python3-pydicom).
"""

import argparse
import datetime
import io
import os
import random
import struct
import sys
import uuid

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ROWS = 512
COLS = 512
SERIES_PER_STUDY = 4

# Series of a typical contrast CT of chest/abdomen/pelvis: (description, slice thickness mm, kVp).
SERIES = [
    ("Topogram 0.6 T20f", "0.6", "120"),
    ("Thorax 5.0 B31f", "5.0", "120"),
    ("Abdomen 3.0 B30f", "3.0", "120"),
    ("Abdomen 1.0 B20f", "1.0", "100"),
]
STUDY_DESCRIPTIONS = [
    "CT CHEST ABDOMEN PELVIS W CONTRAST",
    "CT THORAX W/O CONTRAST",
    "CT ABDOMEN PELVIS W CONTRAST",
    "CT ANGIO CHEST",
]
FAMILY = ["MUELLER", "SMITH", "DUBOIS", "ROSSI", "JANSSEN", "NOVAK", "GARCIA", "NIELSEN",
          "KOWALSKI", "MARTIN", "BAUER", "PETERS", "SILVA", "OLSEN", "HORVAT", "MOREAU"]
GIVEN_M = ["JOHN", "PETER", "LUCA", "JAN", "TOMAS", "MARC", "HANS", "PEDRO"]
GIVEN_F = ["ANNA", "MARIE", "SOFIA", "EVA", "CLARA", "JULIA", "LENA", "INES"]


def uid(rng):
    """A 2.25 UID from a UUID drawn from the seeded generator (deterministic, unique in practice)."""
    return "2.25.%d" % uuid.UUID(int=rng.getrandbits(128), version=4).int


def render_pixels(rng):
    """One CT-like slice as little-endian int16 stored values (HU + 1024).

    A body ellipse of soft tissue with lungs, a spine and a little noise: real
    enough that viewers show something sensible, rendered once per run.
    """
    row = []
    buf = bytearray(ROWS * COLS * 2)
    noise = [rng.randint(-12, 12) for _ in range(4096)]
    k = 0
    for y in range(ROWS):
        row.clear()
        dy = (y - 256) / 190.0
        for x in range(COLS):
            dx = (x - 256) / 235.0
            hu = -1000
            if dx * dx + dy * dy <= 1.0:
                hu = 40
                lx = (x - 170) / 70.0
                rx = (x - 342) / 70.0
                ly = (y - 230) / 110.0
                if lx * lx + ly * ly <= 1.0 or rx * rx + ly * ly <= 1.0:
                    hu = -850
                sx = (x - 256) / 28.0
                sy = (y - 370) / 28.0
                if sx * sx + sy * sy <= 1.0:
                    hu = 700
                hu += noise[k & 4095]
                k += 7
            row.append(hu + 1024)
        struct.pack_into("<%dh" % COLS, buf, y * COLS * 2, *row)
    return buf


def pixel_element_prefix(length):
    """Explicit VR LE header of (7FE0,0010) OW with a defined length."""
    return struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length)


def make_patient(rng, index):
    female = rng.random() < 0.5
    given = rng.choice(GIVEN_F if female else GIVEN_M)
    birth = datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 75))
    return {
        "PatientName": "%s^%s" % (rng.choice(FAMILY), given),
        "PatientID": "BENCH%07d" % (index + 1),
        "IssuerOfPatientID": "DCMHUB-BENCH",
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "PatientSex": "F" if female else "M",
        "birth": birth,
        "PatientWeight": "%d" % rng.randint(48, 110),
    }


def make_study(rng, index, patient):
    when = datetime.datetime(2021, 1, 4, 7, 0) + datetime.timedelta(
        days=rng.randint(0, 900), minutes=rng.randint(0, 11 * 60))
    age = (when.date() - patient["birth"]).days // 365
    return {
        "StudyInstanceUID": uid(rng),
        "FrameOfReferenceUID": uid(rng),
        "StudyDate": when.strftime("%Y%m%d"),
        "StudyTime": when.strftime("%H%M%S"),
        "when": when,
        "AccessionNumber": "A%08d" % rng.randint(10000000, 99999999),
        "StudyID": "%d" % (index + 1),
        "StudyDescription": rng.choice(STUDY_DESCRIPTIONS),
        "PatientAge": "%03dY" % age,
        "series_uids": [uid(rng) for _ in range(SERIES_PER_STUDY)],
    }


def header_bytes(ds, meta):
    """File preamble, meta group and data set (all but Pixel Data) as bytes."""
    out = io.BytesIO()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    pydicom.dcmwrite(out, ds, write_like_original=False)
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser(description="Generate deterministic CT Image Storage instances.")
    ap.add_argument("--count", type=int, required=True, help="number of instances (N)")
    ap.add_argument("--studies", type=int, required=True, help="number of studies (S), 4 series each")
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--seed", type=int, default=20240501, help="random seed (default %(default)s)")
    args = ap.parse_args()
    if args.count < 1 or args.studies < 1 or args.studies > args.count:
        ap.error("need 1 <= studies <= count")

    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    pixels = render_pixels(rng)
    prefix = pixel_element_prefix(len(pixels))

    # Distribute N over S studies as evenly as possible, then each study's
    # instances over its 4 series in contiguous blocks.
    per_study = [args.count // args.studies + (1 if i < args.count % args.studies else 0)
                 for i in range(args.studies)]
    patients = []
    total_bytes = 0
    serial = 0
    for st in range(args.studies):
        if st % 2 == 0:
            patients.append(make_patient(rng, st // 2))
        patient = patients[st // 2]
        study = make_study(rng, st, patient)
        n_study = per_study[st]
        per_series = [n_study // SERIES_PER_STUDY + (1 if i < n_study % SERIES_PER_STUDY else 0)
                      for i in range(SERIES_PER_STUDY)]
        for se in range(SERIES_PER_STUDY):
            desc, thickness, kvp = SERIES[se]
            series_time = study["when"] + datetime.timedelta(minutes=2 + 3 * se)
            n_series = per_series[se]
            for inst in range(n_series):
                serial += 1
                sop_uid = uid(rng)
                z = -100.0 - inst * float(thickness)

                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
                meta.MediaStorageSOPInstanceUID = sop_uid
                meta.TransferSyntaxUID = ExplicitVRLittleEndian
                meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
                meta.ImplementationVersionName = "DCMHUB_BENCH"

                ds = Dataset()
                ds.SpecificCharacterSet = "ISO_IR 100"
                ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER" if se == 0 else "AXIAL"]
                ds.InstanceCreationDate = study["StudyDate"]
                ds.InstanceCreationTime = series_time.strftime("%H%M%S")
                ds.SOPClassUID = CT_IMAGE_STORAGE
                ds.SOPInstanceUID = sop_uid
                ds.StudyDate = study["StudyDate"]
                ds.SeriesDate = study["StudyDate"]
                ds.AcquisitionDate = study["StudyDate"]
                ds.ContentDate = study["StudyDate"]
                ds.StudyTime = study["StudyTime"]
                ds.SeriesTime = series_time.strftime("%H%M%S")
                ds.AcquisitionTime = series_time.strftime("%H%M%S")
                ds.ContentTime = series_time.strftime("%H%M%S")
                ds.AccessionNumber = study["AccessionNumber"]
                ds.Modality = "CT"
                ds.Manufacturer = "DCMHUB BENCH"
                ds.InstitutionName = "General Hospital"
                ds.ReferringPhysicianName = "WELBY^MARCUS"
                ds.StationName = "CT01"
                ds.StudyDescription = study["StudyDescription"]
                ds.SeriesDescription = desc
                ds.ManufacturerModelName = "SyntheticCT"
                ds.PatientName = patient["PatientName"]
                ds.PatientID = patient["PatientID"]
                ds.IssuerOfPatientID = patient["IssuerOfPatientID"]
                ds.PatientBirthDate = patient["PatientBirthDate"]
                ds.PatientSex = patient["PatientSex"]
                ds.PatientAge = study["PatientAge"]
                ds.PatientWeight = patient["PatientWeight"]
                ds.BodyPartExamined = "CHEST" if se < 2 else "ABDOMEN"
                ds.SliceThickness = thickness
                ds.KVP = kvp
                ds.SoftwareVersions = "1.0"
                ds.ProtocolName = study["StudyDescription"]
                ds.PatientPosition = "FFS"
                ds.StudyInstanceUID = study["StudyInstanceUID"]
                ds.SeriesInstanceUID = study["series_uids"][se]
                ds.StudyID = study["StudyID"]
                ds.SeriesNumber = se + 1
                ds.AcquisitionNumber = 1
                ds.InstanceNumber = inst + 1
                ds.ImagePositionPatient = ["-250.0", "-250.0", "%.1f" % z]
                ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
                ds.FrameOfReferenceUID = study["FrameOfReferenceUID"]
                ds.PositionReferenceIndicator = ""
                ds.SliceLocation = "%.1f" % z
                ds.SamplesPerPixel = 1
                ds.PhotometricInterpretation = "MONOCHROME2"
                ds.Rows = ROWS
                ds.Columns = COLS
                ds.PixelSpacing = ["0.976562", "0.976562"]
                ds.BitsAllocated = 16
                ds.BitsStored = 16
                ds.HighBit = 15
                ds.PixelRepresentation = 1
                ds.WindowCenter = "40"
                ds.WindowWidth = "400"
                ds.RescaleIntercept = "-1024"
                ds.RescaleSlope = "1"
                if se != 0:  # dciodvfy warns about HU on ORIGINAL LOCALIZER images
                    ds.RescaleType = "HU"

                # Make the pixel data of every instance distinct: the serial
                # number goes into the first pixels (air, outside the body).
                struct.pack_into("<II", pixels, 0, serial, args.seed & 0xFFFFFFFF)
                path = os.path.join(args.out, "ct_%05d_%d_%05d.dcm" % (st + 1, se + 1, inst + 1))
                head = header_bytes(ds, meta)
                with open(path + ".tmp", "wb") as f:
                    f.write(head)
                    f.write(prefix)
                    f.write(pixels)
                os.rename(path + ".tmp", path)
                total_bytes += len(head) + len(prefix) + len(pixels)

    print("gen_ct: %d instances, %d studies, %d patients, %.1f MB in %s"
          % (serial, args.studies, len(patients), total_bytes / 1e6, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
