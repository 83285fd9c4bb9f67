"""The impression of a full radiology report: what `cmr train` learns from, cut out of the RIS text.

Reports name the section differently (IMPRESSION, CONCLUSION, SUMMARY, OPINION, ASSESSMENT, with qualifiers
such as "Final", plurals and combinations such as "Opinion / Conclusion"), put the header on its own line or
inline, number the items, wrap long lines, end with a signature and may carry addenda after it. The section
runs from its header to the next section header, signature, addendum or separator line; when several
impression sections exist, the last one of the main report (before any addendum) is taken. An impression that
only says "see above" is replaced by the findings. A report without an impression section gets the
configured fallback: the findings section ("findings"), the last paragraph ("last-paragraph") or nothing
("none"); `Extraction.source` says which was used, for the dataset card.

The text comes back canonical: one line per list item, wrapped continuation lines joined with a space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Fallback = Literal["findings", "last-paragraph", "none"]
FALLBACKS: Final[tuple[str, ...]] = ("findings", "last-paragraph", "none")

_IMPRESSION_WORDS: Final = r"impressions?|conclusions?|summary|opinions?|assessments?"
_OTHER_WORDS: Final = (r"(?:clinical\s+)?history|indications?|reason\s+for\s+(?:the\s+)?(?:exam|study|referral)|"
                       r"techniques?|protocol|procedure|comparison|findings|results|measurements|"
                       r"recommendations?|comments?|clinical\s+information|contrast|sequences")
# A header line: decorations, up to three qualifier words ("final", "overall clinical"), the section word,
# an optional second one ("/ conclusion", "and recommendations"), decorations, then ":" / "-" / end of line.
_HEADER: Final = re.compile(
    r"^[\s*#=_\->]*(?P<qual>(?:[a-z]+\s+){0,3}?)(?P<word>" + _IMPRESSION_WORDS + "|" + _OTHER_WORDS + r")"
    r"(?:\s*(?:/|&|\band\b|\bor\b)\s*(?:[a-z]+\s*){1,2}?)?[\s*#=_]*(?:[:\-\u2013.]\s*|$)(?P<rest>.*)$",
    re.IGNORECASE)
_QUALIFIERS: Final = frozenset({"final", "overall", "clinical", "diagnostic", "radiologist's", "radiologists",
                                "cmr", "mri", "cardiac", "report", "summary", "brief", "main", "key"})
_IMPRESSION_WORD: Final = re.compile(r"^(?:" + _IMPRESSION_WORDS + r")$", re.IGNORECASE)
_FINDINGS_WORD: Final = re.compile(r"^(?:findings|results)$", re.IGNORECASE)
_ADDENDUM: Final = re.compile(r"^[\s*#=_\-]*(?:addendum|addenda|amended report|amendment|corrected report)\b",
                              re.IGNORECASE)
_SIGNATURE: Final = re.compile(
    r"^\s*(?:electronically\s+)?(?:signed|dictated|reported|verified|transcribed|approved|read|reviewed)\b"
    r"(?:\s+and\s+\w+)?(?:\s+(?:by|on|electronically)\b|\s*:)|^\s*(?:electronic\s+signature|signature|"
    r"attending|thank\s+you\s+for|this\s+report\s+(?:was|has\s+been)|i\s+have\s+personally)\b",
    re.IGNORECASE)
_SEPARATOR: Final = re.compile(r"^\s*(?:[-=_*~]\s*){4,}$")
_LIST_ITEM: Final = re.compile(r"^(?:\(?\d{1,2}[.)]|\(\d{1,2}\)|[a-h][.)]|[-\u2022*\u00b7])\s+", re.IGNORECASE)
_SEE_ABOVE: Final = re.compile(
    r"^(?:please\s+)?(?:see|as)\s+(?:(?:detailed|described|noted|discussed)\s+)?(?:above|(?:in\s+)?(?:the\s+)?"
    r"findings(?:\s+above)?)\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class Extraction:
    text: str  # canonical impression; "" when none was found and the fallback is "none"
    source: str  # "impression", "findings (impression says see above)", "findings (no impression section)",
    #              "last paragraph (no impression section)" or "none"
    section: str  # the header as written ("" when none)
    has_addendum: bool

    @property
    def found(self) -> bool:
        return bool(self.text)


@dataclass(frozen=True)
class _Section:
    word: str
    header: str
    lines: list[str]


def _header(line: str) -> re.Match[str] | None:
    m = _HEADER.match(line)
    if m is None:
        return None
    qual = m.group("qual").split()
    if any(q.lower() not in _QUALIFIERS for q in qual):
        return None  # "Assessment of the LV ..." in prose is no header: only known qualifier words may lead
    return m


def canonical(lines: list[str]) -> str:
    """One line per list item; other lines (wrapped text, prose) joined to the line before with a space."""
    out: list[str] = []
    for raw in lines:
        line = " ".join(raw.split())
        if not line:
            continue
        if out and not _LIST_ITEM.match(line):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)


def _split(text: str) -> tuple[list[_Section], list[str], bool]:
    """(sections of the main report, its lines before the first section, whether an addendum follows)."""
    sections: list[_Section] = []
    preamble: list[str] = []
    current: _Section | None = None
    closed = False  # after a signature or separator, lines belong to no section until the next header
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _ADDENDUM.match(line):
            return sections, preamble, True
        if _SIGNATURE.match(line) or _SEPARATOR.match(line):
            current, closed = None, True
            continue
        m = _header(line)
        if m is not None:
            current = _Section(m.group("word"), line.strip(), [m.group("rest")] if m.group("rest").strip() else [])
            sections.append(current)
            closed = False
            continue
        if current is not None:
            current.lines.append(line)
        elif not closed:
            preamble.append(line)
    return sections, preamble, False


def _last_paragraph(sections: list[_Section], preamble: list[str]) -> str:
    lines = sections[-1].lines if sections else preamble
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    filled = [p for p in paragraphs if p]
    return canonical(filled[-1]) if filled else ""


def extract_impression(text: str, fallback: Fallback = "findings") -> Extraction:
    """The impression of a full report (see the module doc)."""
    if fallback not in FALLBACKS:
        raise ValueError(f"impression fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    sections, preamble, addendum = _split(text)
    findings = next((canonical(s.lines) for s in reversed(sections) if _FINDINGS_WORD.match(s.word)), "")
    impressions = [s for s in sections if _IMPRESSION_WORD.match(s.word)]
    for section in reversed(impressions):
        body = canonical(section.lines)
        if not body:
            continue
        if _SEE_ABOVE.match(body):
            if findings:
                return Extraction(findings, "findings (impression says see above)", section.header, addendum)
            continue
        return Extraction(body, "impression", section.header, addendum)
    if fallback == "findings" and findings:
        return Extraction(findings, "findings (no impression section)", "", addendum)
    if fallback == "last-paragraph":
        last = _last_paragraph(sections, preamble)
        if last:
            return Extraction(last, "last paragraph (no impression section)", "", addendum)
    return Extraction("", "none", "", addendum)


def report_sections(text: str) -> list[tuple[str, str]]:
    """(header word in lower case, body as written) of each section of the main report (addenda left out), in
    order; the lines before the first header come first, with the word ""."""
    sections, preamble, _ = _split(text)
    return [("", "\n".join(preamble))] + [(s.word.lower(), "\n".join(s.lines)) for s in sections]


__all__ = ["Extraction", "FALLBACKS", "Fallback", "canonical", "extract_impression", "report_sections"]
