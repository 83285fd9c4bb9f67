"""De-identification of a study before anything else reads it: DICOM PS3.15 Annex E basic profile.

The maintained implementation is dicognito (names, IDs, UIDs, addresses, institutions, dates). This module
adds what the basic profile requires and dicognito leaves alone, and checks the result:
- removes the free-text and patient-characteristic attributes the profile marks X (comments, history,
  birth date, other names, ...), private tags and overlays/curves (they may carry burned-in text);
- refuses a study that declares BurnedInAnnotation YES (pixel-level cleaning is out of scope);
- Clean Descriptors option: study/series/protocol descriptions are kept (the series classifier reads them) but
  any identifier of the patient found in them, or in any other text element, is removed - this is also the
  safety net behind dicognito: after de-identification no text element may contain the patient's name, IDs or
  birth date;
- Retain Longitudinal Temporal Information with Full Dates option (settings.ingest_keep_dates): study, series,
  acquisition and content dates/times are kept because the index filters on them; otherwise they are shifted
  by a per-study offset.
The same study always gets the same pseudonymous UIDs and offsets (dicognito seeded with a keyed hash of the
StudyInstanceUID), so re-ingesting it is idempotent.

`scrub_text` applies the same identifier removal to the report text that travels with the study.

In the core because two paths use it: the ingest worker (ingest_svc.deid turns a refusal into an
IngestFailure) and the archive import (cmr.archive).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from dicognito.anonymizer import Anonymizer
from dicognito.element_anonymizer import ElementAnonymizer
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset


# Basic profile "X" (remove) attributes that dicognito keeps: free text and patient characteristics.
REMOVE_KEYWORDS: tuple[str, ...] = (
    "PatientBirthDate", "PatientBirthTime", "PatientAge", "PatientSize", "PatientWeight", "PatientComments",
    "AdditionalPatientHistory", "PatientState", "PregnancyStatus", "SmokingStatus", "EthnicGroup", "Allergies",
    "MedicalAlerts", "OtherPatientNames", "OtherPatientIDsSequence", "PatientBirthName", "PatientMotherBirthName",
    "PatientSexNeutered", "ImageComments", "StudyComments", "RequestedProcedureComments",
    "ImagingServiceRequestComments", "InterpretationText", "ReasonForStudy", "ReasonForTheRequestedProcedure",
    "AcquisitionComments", "FrameComments", "PerformedProcedureStepDescription", "ContentSequence",
    "RequestAttributesSequence", "DeviceSerialNumber", "PlateID", "CassetteID", "GantryID",
    "ReferencedPatientSequence", "ReferencedStudySequence", "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence", "DischargeDiagnosisDescription", "PatientAddress", "PatientTelephoneNumbers",
    "CountryOfResidence", "RegionOfResidence", "MilitaryRank", "BranchOfService", "Occupation",
    "InstitutionAddress", "PersonAddress", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "TextComments", "TextString", "ScheduledProcedureStepDescription", "DerivationDescription",
    "IdentifyingComments",
)
# Kept as they are under the full-dates option.
KEEP_DATE_KEYWORDS: tuple[str, ...] = (
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime",
    "ContentTime", "AcquisitionDateTime",
)
# VRs that can carry a name, an ID or a birth date. Numbers and codes (DS, IS, CS) are left alone: a short
# numeric patient ID must not blank a slice thickness that happens to be equal.
_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "DA", "DT"})
_REDACTED = "[removed]"
_REMOVE_TAGS = frozenset(tag_for_keyword(k) for k in REMOVE_KEYWORDS) - {None}
# Recorded in each file (PS3.15 E.1.1): the profile and options applied, by the implementation that did it.
_METHOD = ["DICOGNITO", "PS3.15 BASIC PROFILE", "CLEAN DESCRIPTORS"]
_METHOD_FULL_DATES = [*_METHOD, "RETAIN FULL DATES"]


class DeidentificationError(ValueError):
    """A study that cannot be de-identified (refused, never passed on raw); `error_type` names why."""

    def __init__(self, reason: str, error_type: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


@dataclass(frozen=True)
class Identifiers:
    """What identifies the patient in the source headers: removed wherever it shows up in text."""

    terms: tuple[str, ...]  # lower-case, longest first

    @classmethod
    def collect(cls, datasets: Iterable[Dataset]) -> Identifiers:
        terms: set[str] = set()
        for ds in datasets:
            for kw in ("PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName"):
                for value in _values(ds.get(kw)):
                    text = str(value).strip().lower()
                    parts = [p for p in re.split(r"[\^= ,]+", text) if p]
                    terms.update(p for p in parts if len(p) >= 2)
                    if len(parts) > 1:
                        terms.add(" ".join(parts))
                        terms.add(" ".join(reversed(parts)))
            for kw in ("PatientID", "OtherPatientIDs", "AccessionNumber", "MedicalRecordLocator"):
                terms.update(str(v).strip().lower() for v in _values(ds.get(kw)) if len(str(v).strip()) >= 2)
            birth = str(ds.get("PatientBirthDate", "") or "").strip()
            if len(birth) == 8 and birth.isdigit():
                terms.update({birth, f"{birth[:4]}-{birth[4:6]}-{birth[6:]}", f"{birth[6:]}/{birth[4:6]}/{birth[:4]}",
                              f"{birth[4:6]}/{birth[6:]}/{birth[:4]}"})
        return cls(tuple(sorted(terms, key=lambda t: (-len(t), t))))

    def pattern(self) -> re.Pattern[str] | None:
        if not self.terms:
            return None
        # Word boundaries so that a short surname does not eat parts of clinical words ("LI" in "dilated").
        return re.compile(r"(?<![0-9a-z])(?:" + "|".join(re.escape(t) for t in self.terms) + r")(?![0-9a-z])",
                          re.IGNORECASE)


def _values(elem: DataElement | object | None) -> list[object]:
    if elem is None:
        return []
    value = elem.value if isinstance(elem, DataElement) else elem
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [v for v in value if v not in (None, "")]  # type: ignore[union-attr]
    return [value]


def scrub_text(text: str, identifiers: Identifiers) -> str:
    """Remove the patient's identifiers from free text (report impressions, descriptions)."""
    pattern = identifiers.pattern()
    return text if pattern is None or not text else pattern.sub(_REDACTED, text)


def _seed(secret: str, study_uid: str) -> str:
    return hmac.new(secret.encode(), f"deid|{study_uid}".encode(), hashlib.sha256).hexdigest()


def _nested(ds: Dataset) -> list[Dataset]:
    """Items of the sequences of `ds`. Raw elements are inspected without conversion: converting every value
    of every file (what Dataset.walk does) costs more than the rest of de-identification."""
    items: list[Dataset] = []
    for elem in ds.elements():
        if elem.VR == "SQ" or (elem.VR is None and ds[elem.tag].VR == "SQ"):
            items.extend(ds[elem.tag].value or [])
    return items


def _strip(ds: Dataset) -> None:
    """Remove the profile's X attributes, private tags and overlay (60xx) / curve (50xx) groups, recursively."""
    doomed = [t for t in ds.keys() if t in _REMOVE_TAGS or t.is_private or (t.group & 0xFF00) in (0x5000, 0x6000)]
    for tag in doomed:
        del ds[tag]
    for item in _nested(ds):
        _strip(item)


def _clean_text(ds: Dataset, pattern: re.Pattern[str]) -> int:
    """Remove identifier terms from every text element (recursively); returns how many were changed."""
    changed = 0
    for raw in list(ds.elements()):
        vr = raw.VR if raw.VR is not None else ds[raw.tag].VR
        if vr == "SQ":
            for item in ds[raw.tag].value or []:
                changed += _clean_text(item, pattern)
            continue
        if vr not in _TEXT_VRS:
            continue
        elem = ds[raw.tag]
        values = _values(elem)
        if not values or not any(pattern.search(str(v)) for v in values):
            continue
        changed += 1
        if vr in ("DA", "DT"):
            elem.value = ""  # a date equal to the birth date: blank it
        else:
            cleaned = [pattern.sub(_REDACTED, str(v)) for v in values]
            elem.value = cleaned if len(cleaned) > 1 else cleaned[0]
    return changed


def _mark(ds: Dataset, keep_dates: bool) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = _METHOD_FULL_DATES if keep_dates else _METHOD


@dataclass(frozen=True)
class DeidResult:
    datasets: list[Dataset]
    study_instance_uid: str  # the source UID: only for the keyed study key, never stored or logged
    identifiers: Identifiers
    text_elements_cleaned: int


# VRs no dicognito handler acts on (its handlers key on PN, UI, DA/DT and named LO/SH/ST/UT/SQ attributes;
# IS is kept because dicognito fixes IDs mis-read as IS). Skipping them spares converting every number, code
# and the pixel data of every file: de-identification was the costliest ingest stage. A unit test checks that
# the result equals dicognito's own Anonymizer.anonymize.
_UNTOUCHED_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "OF", "OD", "OL", "OV", "UV", "SV", "AT",
                            "DS", "CS", "AS"})


def _anonymize_fast(anonymizer: Anonymizer, ds: Dataset) -> None:
    """Anonymizer.anonymize(ds), visiting only the elements a dicognito handler can change."""
    handle = anonymizer._anonymize_element  # noqa: SLF001 - dicognito's per-element dispatch (pinned 0.19.0)

    def visit(dataset: Dataset) -> None:
        for raw in list(dataset.elements()):
            vr = raw.VR if raw.VR is not None else dataset[raw.tag].VR
            if vr in _UNTOUCHED_VRS:
                continue
            if raw.tag not in dataset:
                continue  # removed by a handler while visiting an earlier element
            elem = dataset[raw.tag]
            if vr == "SQ":
                if not handle(dataset, elem):  # a handler may drop the whole sequence
                    for item in elem.value or []:
                        visit(item)
                continue
            handle(dataset, elem)

    ds.file_meta.walk(handle)
    visit(ds)
    for updater in anonymizer._dataset_updaters:  # noqa: SLF001
        updater(ds)


class _KeepTags(ElementAnonymizer):
    """dicognito handler that keeps a set of elements as they are (one set lookup per element, where one
    dicognito ValueKeeper per tag would compare every element with each tag)."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self._tags = frozenset(tag_for_keyword(k) for k in keywords) - {None}

    def __call__(self, dataset: Dataset, data_element: DataElement) -> bool:
        return data_element.tag in self._tags

    def describe_actions(self) -> Iterator[str]:
        yield from (f"Keep {keyword_for_tag(t)}" for t in sorted(self._tags))


class Deidentifier:
    """Per-study de-identification with stable pseudonyms (see the module doc)."""

    def __init__(self, secret: str, keep_dates: bool = True) -> None:
        if not secret:
            raise ValueError("a non-empty secret is needed to seed stable pseudonyms")
        self._secret = secret
        self.keep_dates = keep_dates

    def _anonymizer(self, study_uid: str) -> Anonymizer:
        anonymizer = Anonymizer(seed=_seed(self._secret, study_uid))
        if self.keep_dates:
            anonymizer.add_element_handler(_KeepTags(KEEP_DATE_KEYWORDS))
        return anonymizer

    def deidentify(self, datasets: Sequence[Dataset]) -> DeidResult:
        """De-identify the datasets of one study in place. Raises DeidentificationError."""
        if not datasets:
            raise DeidentificationError("no DICOM datasets to de-identify", error_type="EmptyStudy")
        uids = {str(ds.get("StudyInstanceUID", "") or "").strip() for ds in datasets}
        uids.discard("")
        if len(uids) != 1:
            what = "no StudyInstanceUID" if not uids else f"{len(uids)} different StudyInstanceUIDs"
            raise DeidentificationError(f"the files carry {what}: one study per message",
                                error_type="MixedStudiesError" if uids else "MissingStudyUID")
        (uid,) = uids
        if any(str(ds.get("BurnedInAnnotation", "")).upper() == "YES" for ds in datasets):
            raise DeidentificationError("images declare BurnedInAnnotation YES: text in the pixels cannot be "
                                        "removed by header de-identification", error_type="BurnedInAnnotation")
        identifiers = Identifiers.collect(datasets)
        pattern = identifiers.pattern()
        anonymizer = self._anonymizer(uid)
        cleaned = 0
        try:
            for ds in datasets:
                _strip(ds)
                _anonymize_fast(anonymizer, ds)
                _mark(ds, self.keep_dates)
                if pattern is not None:
                    cleaned += _clean_text(ds, pattern)
        except Exception as exc:  # a header dicognito cannot handle: the study is refused, never passed on raw
            raise DeidentificationError(f"de-identification failed ({type(exc).__name__})",
                                        error_type=type(exc).__name__) from exc
        return DeidResult(list(datasets), uid, identifiers, cleaned)


def leaked_terms(ds: Dataset, identifiers: Identifiers) -> list[str]:
    """Identifier terms still present in any text element (used by the tests; empty after deidentify)."""
    pattern = identifiers.pattern()
    found: list[str] = []
    if pattern is None:
        return found

    def visit(dataset: Dataset, elem: DataElement) -> None:
        if elem.VR in _TEXT_VRS:
            for v in _values(elem):
                found.extend(m.group(0) for m in pattern.finditer(str(v)))

    ds.walk(visit)
    return found


__all__ = ["DeidResult", "DeidentificationError", "Deidentifier", "Identifiers", "REMOVE_KEYWORDS", "leaked_terms", "scrub_text"]
