"""Report text <-> decoder tokens: the WordPiece tokenizer of a local Hugging Face model (MiniLM by default),
restricted to the tokens seen in the training reports, and a detokenizer learnt from those reports.

The decoder's vocabulary is small (a few hundred WordPiece ids instead of 30,522): it can only write tokens
it was trained on, and its tied embedding stays cheap. Indices 0-4 are specials:

    PAD  padding (never predicted)       BOS  start of report
    SEP  end of a sentence               EOR  end of report (the learnt "stop writing" decision)
    UNK  a WordPiece token unseen in training (never generated)

MiniLM's tokenizer is uncased and splits off punctuation, so plain `decode` gives "mildly dilated lv
( lvedvi 110 ml / m2 ), lvef 35 %". The detokenizer restores what the training reports did: the spacing
around each token (how often it followed / preceded a space) and each word's usual casing ("LVEF", "mL/m2"),
then capitalises the sentence.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from cmr.reports.labeller import split_sentences

PAD, BOS, SEP, EOR, UNK = 0, 1, 2, 3, 4
N_SPECIAL = 5
SPECIAL_NAMES = ("[PAD]", "[BOS]", "[SEP]", "[EOR]", "[UNK]")

_NUMBERED = re.compile(r"^\s*(\d+[.)]|[-*\u2022])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def tokenizer_dir(name: str) -> Path:
    from cmr.model.text_encoder import resolve_backbone

    return resolve_backbone(name)


@lru_cache(maxsize=4)
def load_tokenizer(name: str):  # noqa: ANN201 - a transformers PreTrainedTokenizerFast
    """The WordPiece tokenizer of `name` ("minilm" or a local model directory), loaded offline once."""
    from transformers import AutoTokenizer, logging as hf_logging

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir(name))
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"tokenizer {name!r} has no fast (Rust) implementation; offsets are needed")
    return tok


@lru_cache(maxsize=8)
def tokenizer_fingerprint(name: str) -> str:
    from cmr.model.text_encoder import backbone_fingerprint

    return backbone_fingerprint(tokenizer_dir(name))


def impression_sentences(impression: str) -> list[str]:
    """An impression as the decoder learns it: sentences without list numbering."""
    return split_sentences(impression)


def is_numbered(impression: str) -> bool:
    return bool(_NUMBERED.match(impression))


class ReportVocab:
    """Tokenizer + restricted vocabulary + detokenizer. Plain data (`to_dict`) so it travels in checkpoints."""

    def __init__(self, tokenizer: str, wordpiece_ids: Sequence[int], space_before: Sequence[bool],
                 space_after: Sequence[bool], casing: dict[str, str], numbered: bool) -> None:
        if not (len(wordpiece_ids) == len(space_before) == len(space_after)):
            raise ValueError("vocabulary lists differ in length")
        self.tokenizer_name = tokenizer
        self.wordpiece_ids = [int(i) for i in wordpiece_ids]
        self.space_before = [bool(b) for b in space_before]
        self.space_after = [bool(b) for b in space_after]
        self.casing = dict(casing)
        self.numbered = bool(numbered)
        self._index = {wp: N_SPECIAL + k for k, wp in enumerate(self.wordpiece_ids)}
        tok = load_tokenizer(tokenizer)
        self._pieces = tok.convert_ids_to_tokens(self.wordpiece_ids)

    def __len__(self) -> int:
        return N_SPECIAL + len(self.wordpiece_ids)

    @property
    def tokenizer(self):  # noqa: ANN201
        return load_tokenizer(self.tokenizer_name)

    # -- building -------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, tokenizer: str, impressions: Sequence[str]) -> ReportVocab:
        """Vocabulary, spacing and casing of a set of training impressions."""
        tok = load_tokenizer(tokenizer)
        seen: Counter[int] = Counter()
        before: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])  # [with space, occurrences]
        after: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])
        forms: defaultdict[str, Counter[str]] = defaultdict(Counter)
        initial: defaultdict[str, Counter[str]] = defaultdict(Counter)
        numbered = 0
        for imp in impressions:
            numbered += is_numbered(imp)
            for sentence in impression_sentences(imp):
                enc = tok(sentence, add_special_tokens=False, return_offsets_mapping=True)
                ids, offs = enc["input_ids"], enc["offset_mapping"]
                pieces = tok.convert_ids_to_tokens(ids)
                seen.update(ids)
                # A token's own spacing habit, read next to plain words only (so that "dilatation." does not
                # teach "dilatation" to glue to whatever follows it).
                for j in range(len(ids) - 1):
                    if pieces[j + 1].startswith("##"):
                        continue
                    gap = offs[j + 1][0] > offs[j][1]
                    if pieces[j].isalnum() or (pieces[j].startswith("##") and pieces[j][2:].isalnum()):
                        before[ids[j + 1]][0] += gap
                        before[ids[j + 1]][1] += 1
                    if pieces[j + 1].isalnum():
                        after[ids[j]][0] += gap
                        after[ids[j]][1] += 1
                for m in _WORD.finditer(sentence):
                    (initial if m.start() == 0 else forms)[m.group().lower()][m.group()] += 1
        if not seen:
            raise ValueError("no report text to build a vocabulary from")
        ids = sorted(seen)
        casing = {}
        for word in set(forms) | set(initial):
            counts = forms.get(word) or initial[word]
            casing[word] = counts.most_common(1)[0][0]
        casing = {w: c for w, c in casing.items() if c != w}  # only words whose usual form is not lower case
        return cls(tokenizer, ids,
                   [before[i][1] == 0 or before[i][0] * 2 >= before[i][1] for i in ids],
                   [after[i][1] == 0 or after[i][0] * 2 >= after[i][1] for i in ids],
                   casing, numbered * 2 > len(impressions))

    # -- encoding -------------------------------------------------------------------------------------------

    def encode_sentence(self, sentence: str, max_tokens: int | None = None) -> list[int]:
        ids = self.tokenizer(sentence, add_special_tokens=False)["input_ids"]
        out = [self._index.get(i, UNK) for i in ids]
        return out[:max_tokens] if max_tokens is not None else out

    def encode_report(self, impression: str, max_sentences: int, max_tokens: int) -> list[list[int]]:
        """Sentences (at most `max_sentences`, each cut to `max_tokens`) as decoder token lists."""
        out = []
        for s in impression_sentences(impression)[:max_sentences]:
            ids = self.encode_sentence(s, max_tokens)
            if ids:
                out.append(ids)
        return out

    # -- decoding -------------------------------------------------------------------------------------------

    def decode(self, ids: Sequence[int]) -> str:
        """Decoder tokens of one sentence -> readable text (specials are dropped)."""
        parts: list[str] = []
        prev: int | None = None
        for i in ids:
            i = int(i)
            if i < N_SPECIAL or i >= len(self):
                continue
            k = i - N_SPECIAL
            piece = self._pieces[k]
            if piece.startswith("##"):
                parts.append(piece[2:])
            else:
                if prev is not None and self.space_after[prev] and self.space_before[k]:
                    parts.append(" ")
                parts.append(piece)
            prev = k
        text = "".join(parts).strip()
        text = _WORD.sub(lambda m: self.casing.get(m.group(), m.group()), text)
        return text[:1].upper() + text[1:]

    def format_report(self, sentences: Sequence[str], numbered: bool | None = None) -> str:
        """Sentences joined as an impression: "1. ...\\n2. ..." when numbered, else one paragraph."""
        numbered = self.numbered if numbered is None else numbered
        if numbered:
            return "\n".join(f"{k}. {s}" for k, s in enumerate(sentences, 1))
        return " ".join(sentences)

    # -- plain data -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint (the id and spacing lists as tensors: one pickled object, not hundreds)."""
        import torch

        return {"tokenizer": self.tokenizer_name,
                "wordpiece_ids": torch.tensor(self.wordpiece_ids, dtype=torch.int32),
                "space_before": torch.tensor(self.space_before, dtype=torch.bool),
                "space_after": torch.tensor(self.space_after, dtype=torch.bool),
                "casing": dict(self.casing), "numbered": self.numbered}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReportVocab:
        as_list = lambda x: x.tolist() if hasattr(x, "tolist") else list(x)  # noqa: E731 - tensors or lists
        return cls(str(d["tokenizer"]), as_list(d["wordpiece_ids"]), as_list(d["space_before"]),
                   as_list(d["space_after"]), dict(d["casing"]), bool(d["numbered"]))
