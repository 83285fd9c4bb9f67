"""The restricted WordPiece vocabulary and the detokenizer learnt from the training reports."""

from __future__ import annotations

from cmr.generator.vocab import N_SPECIAL, UNK, ReportVocab, impression_sentences, is_numbered
from target_helpers import IMPRESSIONS


def test_training_sentences_come_back_as_written(vocab: ReportVocab) -> None:
    sentences = [s for imp in IMPRESSIONS for s in impression_sentences(imp)]
    assert "Mildly dilated LV (LVEDVi 110 mL/m2) with moderately impaired systolic function (LVEF 38%)." in sentences
    for s in sentences:
        ids = vocab.encode_sentence(s)
        assert UNK not in ids and min(ids) >= N_SPECIAL
        assert vocab.decode(ids) == s


def test_vocabulary_is_restricted_to_training_tokens(vocab: ReportVocab) -> None:
    assert N_SPECIAL < len(vocab) < 200
    assert UNK in vocab.encode_sentence("Amyloidosis with zebra stripes.")
    full = vocab.encode_sentence("No pericardial effusion.")
    assert vocab.encode_sentence("No pericardial effusion.", max_tokens=2) == full[:2] and len(full) > 2


def test_report_encoding_limits() -> None:
    v = ReportVocab.build("minilm", IMPRESSIONS)
    report = v.encode_report(IMPRESSIONS[0], max_sentences=2, max_tokens=5)
    assert len(report) == 2 and all(len(s) == 5 for s in report)


def test_numbering_and_plain_data_round_trip(vocab: ReportVocab) -> None:
    assert is_numbered(IMPRESSIONS[0]) and not is_numbered(IMPRESSIONS[2])
    assert vocab.numbered  # three of the four impressions are numbered
    assert vocab.format_report(["A.", "B."]) == "1. A.\n2. B."
    assert vocab.format_report(["A.", "B."], numbered=False) == "A. B."
    again = ReportVocab.from_dict(vocab.to_dict())
    ids = vocab.encode_sentence("Normal cardiac MRI study.")
    assert again.encode_sentence("Normal cardiac MRI study.") == ids and again.decode(ids) == vocab.decode(ids)
