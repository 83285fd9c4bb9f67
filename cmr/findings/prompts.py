"""The prompt ensembles of every finding and disease: what "present" and "absent" sound like in a report."""

from __future__ import annotations

from dataclasses import dataclass

from cmr.eval.report import display_name
from cmr.labels import DISEASES, FINDINGS
from cmr.synth.report import disease_prompts, finding_prompts

# The held-out phrase bank: never used in training impressions, so zero-shot scores are not phrase recall.
DEFAULT_PHRASING = "heldout"


@dataclass(frozen=True)
class PromptSet:
    key: str        # "lv_dysfunction", or "disease:hcm"
    name: str       # the finding or disease name
    kind: str       # "finding" | "disease"
    display: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


def prompt_sets(phrasing: str = DEFAULT_PHRASING) -> list[PromptSet]:
    out = [PromptSet(f, f, "finding", display_name(f), tuple(finding_prompts(f, True, phrasing)),  # type: ignore[arg-type]
                     tuple(finding_prompts(f, False, phrasing))) for f in FINDINGS]  # type: ignore[arg-type]
    out += [PromptSet(f"disease:{d}", d, "disease", display_name(f"disease:{d}"),
                      tuple(disease_prompts(d, True, phrasing)), tuple(disease_prompts(d, False, phrasing)))  # type: ignore[arg-type]
            for d in DISEASES]
    return out
