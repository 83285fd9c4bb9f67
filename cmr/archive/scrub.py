"""De-identification of report text: the patient's known identifiers, then patterns for what nobody listed.

Known identifiers come from two places: the DICOM headers of the study (cmr.deid.Identifiers: names, IDs,
accession, birth date) and the RIS record of the report (name, MRN, birth date, phone, address, referring and
reporting physicians). Each is expanded into the forms a report writes it in ("Smith^Raj" -> "Smith", "Raj",
"Raj Smith", "Smith, Raj"; 19591121 -> 11/21/1959, 1959-11-21, 21 November 1959, ...). Patterns then remove
what no record names: any date, phone number, e-mail, ID-like token (letters + 6 or more digits), street
address and postal code, a titled name ("Dr. Novak", "Mrs Rossi") and the name after "signed by".

Clinical text has numbers too: the patterns leave measurements alone (no date form matches "49 mL/m2",
"2.9 cm" or "LVEF 20 %"); a test checks every synthetic impression comes through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Final

from cmr.deid import Identifiers

REDACTED: Final = "[removed]"
_MIN_TERM: Final = 3  # shorter parts ("MR", "SC") are codes, not identifiers, and would hit clinical words

_MONTHS: Final = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
                  r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_NAME: Final = r"[A-Z][a-zA-Z'\-]+"
_STREET_SUFFIX: Final = (r"(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|way|place|pl|"
                         r"terrace|close|crescent|square|sq|parkway|pkwy|highway|hwy)")
_PATTERNS: Final[tuple[re.Pattern[str], ...]] = (
    # dates: 11/21/1959, 21.11.1959, 1959-11-21, 19591121, 21 November 1959, Nov 21, 1959, November 1959
    re.compile(r"(?<![\d.])\d{1,2}[/.\-]\d{1,2}[/.\-](?:19|20)?\d{2}(?![\d/.\-]?\d)"),
    re.compile(r"(?<!\d)(?:19|20)\d{2}[/.\-]\d{1,2}[/.\-]\d{1,2}(?!\d)"),
    re.compile(r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(r"(?<!\w)\d{1,2}(?:st|nd|rd|th)?\s+" + _MONTHS + r"\.?,?\s+(?:19|20)\d{2}(?!\d)", re.IGNORECASE),
    re.compile(r"(?<!\w)" + _MONTHS + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{2}(?!\d)", re.IGNORECASE),
    re.compile(r"(?<!\w)" + _MONTHS + r"\.?,?\s+(?:19|20)\d{2}(?!\d)", re.IGNORECASE),
    # phone numbers: (555) 906-6479, 555-906-6479, +44 20 7946 0958
    re.compile(r"(?:\+\d{1,3}[\s.\-]?)?\(?\d{3}\)?[\s.\-]?\d{3}[\s.\-]\d{4}(?!\d)"),
    re.compile(r"\+\d{1,3}(?:[\s.\-]?\d{2,4}){3,5}(?!\d)"),
    re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+"),  # e-mail
    # ID-like tokens (MRNs, accession numbers): up to 4 letters and 6+ digits, or a labelled ID
    re.compile(r"(?<![\w.])[A-Za-z]{0,4}[\-#]?\d{6,}(?![\w.])"),
    re.compile(r"\b(?:MRN|MR#|MR\s+No\.?|Acc(?:ession)?(?:\s+(?:No\.?|number|#))?|Patient\s+ID)\b\s*[:#]?\s*"
               r"[A-Za-z\-]*\d[A-Za-z0-9\-]{2,}", re.IGNORECASE),
    # street addresses and US/UK postal codes
    # (with the town and state/postal code that follow: "236 Orchard Lane, Greenville, SC 29601")
    re.compile(r"(?<!\w)\d{1,5}\s+(?:" + _NAME + r"\s+){1,3}" + _STREET_SUFFIX + r"\b\.?"
               r"(?:,\s*(?:[A-Z][a-zA-Z]+\s?){1,3})?(?:,?\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?", re.IGNORECASE),
    re.compile(r"\b[A-Z]{2}\s+\d{5}(?:-\d{4})?\b"),
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b"),
    # titled names and signatures: "Dr. Anna Novak", "Mrs Rossi", "signed by Maria Okonkwo"
    re.compile(r"\b(?:Dr|Doctor|Mr|Mrs|Ms|Miss|Prof|Professor)\.?\s+" + _NAME + r"(?:\s+" + _NAME + r"){0,2}"),
    re.compile(r"(?<=\bby)(?::)?\s+(?:" + _NAME + r"\s+){0,2}" + _NAME + r"(?=,?\s*(?:MD|M\.D\.|DO|MBBS|FRCR|PhD)\b)"),
    re.compile(r"\b(?:signed|dictated|reported|verified|read)\s+by:?\s+(?:" + _NAME + r"\s*){1,3}", re.IGNORECASE),
)


def _date_terms(value: str) -> set[str]:
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y"):
        try:
            d = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        return _date_forms(d)
    return set()


def _date_forms(d: date) -> set[str]:
    return {d.strftime(f) for f in ("%Y%m%d", "%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%d %B %Y",
                                    "%B %d, %Y", "%b %d, %Y", "%d %b %Y")} | {f"{d.month}/{d.day}/{d.year}"}


def identifier_terms(values: Iterable[str]) -> set[str]:
    """The forms a text may write each identifier value in (lower case)."""
    terms: set[str] = set()
    for raw in values:
        value = " ".join(str(raw).split())
        if not value:
            continue
        dates = _date_terms(value)
        if dates:
            terms |= dates
            continue
        if "^" in value:  # an HL7/DICOM person or address: components, each whole and word by word
            comps = [c.strip() for c in re.split(r"[\^=~]", value) if c.strip()]
            words = [w for c in comps for w in re.split(r"[\s,]+", c) if w]
            terms.update(comps)
            terms.update(words)
            if len(comps) >= 2:  # family^given: "given family", "family, given", "family given"
                terms.update({f"{comps[1]} {comps[0]}", f"{comps[0]}, {comps[1]}", f"{comps[0]} {comps[1]}"})
            continue
        terms.add(value)
        if "," in value:  # an address or "Family, Given": each part
            terms.update(p.strip() for p in value.split(","))
        digits = re.sub(r"\D", "", value)
        if len(digits) >= 7 and len(digits) >= len(value) // 2:  # phone-like: digits alone, last seven
            terms.update({digits, f"{digits[-7:-4]}-{digits[-4:]}"})
    return {t.lower() for t in terms if len(t) >= _MIN_TERM}


def merge_identifiers(dicom: Identifiers, record_values: Iterable[str]) -> Identifiers:
    terms = set(dicom.terms) | identifier_terms(record_values)
    terms = {t for t in terms if len(t) >= _MIN_TERM}
    return Identifiers(tuple(sorted(terms, key=lambda t: (-len(t), t))))


def scrub_report(text: str, identifiers: Identifiers) -> str:
    """`text` without the known identifiers and without anything the patterns recognise."""
    pattern = identifiers.pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for p in _PATTERNS:
        text = p.sub(REDACTED, text)
    return text


__all__ = ["REDACTED", "identifier_terms", "merge_identifiers", "scrub_report"]
