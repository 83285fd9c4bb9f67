"""Retrieval drafting: the nearest impression, and the k-nearest consensus that keeps only agreed findings."""

from __future__ import annotations

import pytest

from cmr.reports import label_report
from generator_svc.retrieval import Neighbour, consensus_draft, nearest_draft, numbered

LGE_HCM = ("1. Hypertrophic cardiomyopathy with asymmetric septal hypertrophy.\n"
           "2. Patchy midwall LGE in the hypertrophied septum.\n3. Non-dilated left ventricle with preserved systolic "
           "function.\n4. Normal calibre aortic root.")
LGE_ONLY = "1. Patchy midwall LGE in the septum.\n2. Normal left ventricular size and systolic function."
DCM = ("1. Dilated cardiomyopathy.\n2. Severely dilated left ventricle with severely impaired systolic function.\n"
       "3. No LGE.")
NORMAL = "1. Normal study.\n2. Non-dilated left ventricle with preserved systolic function.\n3. No LGE."


def test_nearest_draft_is_the_nearest_impression() -> None:
    draft = nearest_draft([Neighbour("b" * 32, DCM, 0.5), Neighbour("a" * 32, LGE_HCM, 0.9)])
    assert [s.text for s in draft][0] == "Hypertrophic cardiomyopathy with asymmetric septal hypertrophy."
    assert all(s.sources == ("a" * 32,) for s in draft) and "lge" in draft[1].findings
    assert numbered(draft)[0].startswith("1. Hypertrophic")
    with pytest.raises(ValueError):
        nearest_draft([])


def test_consensus_keeps_agreed_findings_and_drops_disputed_ones() -> None:
    neighbours = [Neighbour("1" * 32, LGE_HCM, 0.9), Neighbour("2" * 32, LGE_ONLY, 0.8),
                  Neighbour("3" * 32, LGE_HCM, 0.7), Neighbour("4" * 32, DCM, 0.6), Neighbour("5" * 32, NORMAL, 0.5)]
    draft = consensus_draft(neighbours)
    labels = label_report("\n".join(numbered(draft)))
    assert labels.present("lge")                       # 3 of 5 state LGE
    assert labels.state("lv_dilation") == "absent"     # 4 of 5 say not dilated (HCM x2, LGE_ONLY, NORMAL)
    assert labels.disease is None                      # HCM 2 of 5, DCM 1, normal 1: no majority, none asserted
    assert not labels.present("lv_dysfunction")        # only the DCM neighbour says so
    assert all(s.sources and len(s.sources) == 1 for s in draft)


def test_consensus_states_an_agreed_disease_once() -> None:
    neighbours = [Neighbour(str(i) * 32, LGE_HCM, 1 - i / 10) for i in range(1, 4)] + [Neighbour("9" * 32, DCM, 0.1)]
    draft = consensus_draft(neighbours)
    text = "\n".join(s.text for s in draft)
    assert text.count("Hypertrophic cardiomyopathy") == 1 and label_report(text).disease == "hcm"


def test_consensus_without_agreement_says_so() -> None:
    draft = consensus_draft([Neighbour("1" * 32, DCM, 0.9), Neighbour("2" * 32, LGE_ONLY, 0.8)], min_agreement=0.99)
    assert len(draft) == 1 and "No consistent findings" in draft[0].text and len(draft[0].sources) == 2
    with pytest.raises(ValueError):
        consensus_draft([Neighbour("1" * 32, DCM, 0.9)], min_agreement=1.0)
