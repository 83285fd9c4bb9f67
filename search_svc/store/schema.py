"""What the search index stores about an exam, and how a query narrows it down.

Only de-identified fields are stored. The StudyInstanceUID never reaches the index: it becomes a keyed hash
(`study_key`, HMAC-SHA256 with a server secret), and the point id is a UUID derived from that key, so
ingesting the same study again overwrites its point instead of adding a second one (both from cmr.rpc.keys,
the one definition every service names studies by). `ExamPayload` refuses
keys it does not know, so a new field is a deliberate schema change, not an accident.

Measurements (`ExamMeasurements`, from cmr.quant at ingestion) are stored nested under "measurements": the
numeric fields at `measurements.<field>` (float payload indexes, range filters), with the quality flag, its
reasons, why a value is absent and the segmenter version beside them. A value that could not be measured is
left out, so a range on it never matches; points written before measurements existed have none at all.

An attention-pooling model's exam vector is an exact sum of per-part vectors (one per exam slot, one per
measurement token, one for the CLS fallback: cmr.model.explain). `StoredParts` keeps them with the exam point
under "parts" (names, kinds and a float16 [G, D] matrix in base64, ~10 KB at G=15, D=256), so a text search
can say why each exam matched. They are checked to sum to the point's unit vector (`check_sums_to`), never
indexed, stored on the exam point only (not on its report point) and left out of every read that does not
ask for them (store.base: `with_parts`). Points written before, or by a CLS model, have none.

`ExamFilter` is the one filter model of the service. `ExamFilter.clauses()` turns it into a few neutral
clauses that each engine translates one-to-one (`filters.py`), which keeps the engines' semantics equal.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cmr.quant.volumes import MEASUREMENT_FIELDS, Measurements
from cmr.rpc.keys import STUDY_KEY_HEX_CHARS, is_study_key

# --- collections --------------------------------------------------------------------------------------------
EXAMS: Final = "exams"  # one image embedding per exam
REPORTS: Final = "reports"  # one text embedding of the exam's impression
COLLECTIONS: Final[tuple[str, ...]] = (EXAMS, REPORTS)

# --- field vocabularies -------------------------------------------------------------------------------------
VENDORS: Final[tuple[str, ...]] = ("siemens", "ge", "philips", "canon", "other")
# DICOM Manufacturer (0008,0070) spellings seen in the wild -> normalised vendor.
_VENDOR_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("siemens", re.compile(r"siemens")),
    ("ge", re.compile(r"^ge\b|general electric|ge medical|ge healthcare|gehc")),
    ("philips", re.compile(r"philips")),
    ("canon", re.compile(r"canon|toshiba")),
)
FIELD_STRENGTH_TOLERANCE_T: Final = 0.05  # 1.5 matches 1.494 T as written by some scanners
MAX_IMPRESSION_CHARS: Final = 10_000
MAX_LIST_ITEMS: Final = 64
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_.:@-]{0,63}$")  # a view, a label or a model version ("name@hash")
MEASUREMENT_QUALITIES: Final[tuple[str, ...]] = ("ok", "check", "failed")
MAX_MEASUREMENT_TEXT: Final = 500  # one quality reason or one "unavailable" explanation
MAX_CURVE_POINTS: Final = 1024  # phases of the LV volume curve
_MEASUREMENT_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$")  # a segmenter version "name@hash"
PARTS_KEY: Final = "parts"  # the payload key of an exam's embedding parts (StoredParts)
PART_KINDS: Final[tuple[str, ...]] = ("view", "measurement", "exam")  # as common.proto EmbeddingPart.kind
MAX_PARTS: Final = 64  # exam slots + measurement tokens + the CLS part: the shipped configs have 10 to 15
# L2 distance allowed between the stored (float16) parts' sum and the exam's unit vector. A cosine with any
# unit vector split over the parts then sums to the stored cosine within this. float16 rounding alone leaves ~1e-4
# (measured on the small and base configs); parts of another vector (another model, a stale one) are ~1 away.
PARTS_SUM_TOLERANCE: Final = 5e-3
_PART_DTYPE: Final = np.dtype("<f2")  # little-endian float16, whatever the machine


class IndexKind(str, Enum):
    """Payload index types that both engines support with the same filter semantics."""

    KEYWORD = "keyword"
    INTEGER = "integer"
    FLOAT = "float"
    DATETIME = "datetime"


# The fields filters run on. study_date is a datetime index: both engines parse "YYYY-MM-DD" as midnight UTC.
PAYLOAD_INDEXES: Final[Mapping[str, IndexKind]] = {
    "study_key": IndexKind.KEYWORD,
    "vendor": IndexKind.KEYWORD,
    "field_strength_t": IndexKind.FLOAT,
    "study_date": IndexKind.DATETIME,
    "study_year": IndexKind.INTEGER,
    "views": IndexKind.KEYWORD,
    "labels": IndexKind.KEYWORD,
    "model_version": IndexKind.KEYWORD,
    **{f"measurements.{m}": IndexKind.FLOAT for m in MEASUREMENT_FIELDS},
}


def normalise_vendor(manufacturer: str | None) -> str:
    """DICOM Manufacturer text -> one of VENDORS ('other' when unknown or missing)."""
    text = (manufacturer or "").strip().lower()
    for vendor, pattern in _VENDOR_PATTERNS:
        if pattern.search(text):
            return vendor
    return "other"


# --- the payload --------------------------------------------------------------------------------------------
def _as_date(value: dt.date | str, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{what} must be an ISO date YYYY-MM-DD, got {value!r}")


def _tokens(values: Iterable[str] | None, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{what} must be a list of strings, not one string ({values!r})")
    out = tuple(dict.fromkeys(values))  # de-duplicated, order kept
    if len(out) > MAX_LIST_ITEMS:
        raise ValueError(f"{what} has {len(out)} items (at most {MAX_LIST_ITEMS})")
    for v in out:
        if not isinstance(v, str) or not _TOKEN.match(v):
            raise ValueError(f"{what} item {v!r} is not a lower-case token "
                             f"like 'cine_sax' or 'lv_dysfunction'")
    return out


def _field_strength(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 20.0:
        raise ValueError(f"{what} must be a field strength in tesla in (0, 20], got {value!r}")
    return float(value)


def _texts(values: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{what} must be a list of strings, not one string")
    out = tuple(values)
    if len(out) > MAX_LIST_ITEMS:
        raise ValueError(f"{what} has {len(out)} items (at most {MAX_LIST_ITEMS})")
    for v in out:
        if not isinstance(v, str) or len(v) > MAX_MEASUREMENT_TEXT:
            raise ValueError(f"{what} items must be strings of at most {MAX_MEASUREMENT_TEXT} characters")
    return out


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _unknown_measures(names: Iterable[str]) -> list[str]:
    return sorted(set(names) - set(MEASUREMENT_FIELDS))


def measure_names() -> str:
    return ", ".join(MEASUREMENT_FIELDS)


@dataclass(frozen=True)
class ExamMeasurements:
    """The stored form of a study's cmr.quant Measurements (see the module doc). `values` holds only what was
    measured (MEASUREMENT_FIELDS names, rounded to 0.01); `unavailable` says why the others are absent."""

    values: Mapping[str, float] = field(default_factory=dict, hash=False)
    quality: str = "failed"
    quality_reasons: tuple[str, ...] = ()
    unavailable: Mapping[str, str] = field(default_factory=dict, hash=False)
    model: str = ""  # the segmenter version that measured
    ed_phase: int | None = None
    es_phase: int | None = None
    lv_volume_curve_ml: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.values, Mapping):
            raise ValueError("measurement values must be a mapping of measure name -> number")
        unknown = _unknown_measures(self.values)
        if unknown:
            raise ValueError(f"unknown measurements {unknown}; valid: {measure_names()}")
        values = {k: round(_finite(self.values[k], f"measurement {k}"), 2) for k in MEASUREMENT_FIELDS
                  if k in self.values and self.values[k] is not None}
        object.__setattr__(self, "values", values)
        if self.quality not in MEASUREMENT_QUALITIES:
            raise ValueError(f"measurement quality must be one of {MEASUREMENT_QUALITIES}, got {self.quality!r}")
        object.__setattr__(self, "quality_reasons", _texts(self.quality_reasons, "quality_reasons"))
        if not isinstance(self.unavailable, Mapping):
            raise ValueError("unavailable must be a mapping of measure name -> reason")
        unknown = _unknown_measures(self.unavailable)
        if unknown:
            raise ValueError(f"unavailable names unknown measurements {unknown}; valid: {measure_names()}")
        reasons = _texts(list(self.unavailable.values()), "unavailable reasons")
        object.__setattr__(self, "unavailable", {k: r for k, r in zip(self.unavailable, reasons)
                                                 if k not in values})
        if self.model and (not isinstance(self.model, str) or not _MEASUREMENT_MODEL.match(self.model)):
            raise ValueError(f"measurement model must be a segmenter version like 'cmr-seg-small@1a2b3c', "
                             f"got {self.model!r}")
        for name in ("ed_phase", "es_phase"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < MAX_CURVE_POINTS):
                raise ValueError(f"{name} must be a phase index in 0..{MAX_CURVE_POINTS - 1}, got {v!r}")
        curve = tuple(round(_finite(v, "lv_volume_curve_ml item"), 1) for v in self.lv_volume_curve_ml)
        if len(curve) > MAX_CURVE_POINTS:
            raise ValueError(f"lv_volume_curve_ml has {len(curve)} points (at most {MAX_CURVE_POINTS})")
        object.__setattr__(self, "lv_volume_curve_ml", curve)

    def get(self, measure: str) -> float | None:
        return self.values.get(measure)

    def to_dict(self) -> dict[str, Any]:
        """The stored sub-payload: measured values at the top (the filterable `measurements.<field>` keys)."""
        d: dict[str, Any] = dict(self.values)
        d.update(quality=self.quality, quality_reasons=list(self.quality_reasons),
                 unavailable=dict(self.unavailable), model=self.model,
                 lv_volume_curve_ml=list(self.lv_volume_curve_ml))
        if self.ed_phase is not None:
            d["ed_phase"] = self.ed_phase
        if self.es_phase is not None:
            d["es_phase"] = self.es_phase
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExamMeasurements:
        if not isinstance(data, Mapping):
            raise ValueError(f"measurements must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - _MEASUREMENT_KEYS)
        if unknown:
            raise ValueError(f"measurements have unknown keys {unknown}; allowed: {sorted(_MEASUREMENT_KEYS)}")
        return cls(values={k: data[k] for k in MEASUREMENT_FIELDS if data.get(k) is not None},
                   quality=data.get("quality", "failed"), quality_reasons=tuple(data.get("quality_reasons") or ()),
                   unavailable=dict(data.get("unavailable") or {}), model=data.get("model") or "",
                   ed_phase=data.get("ed_phase"), es_phase=data.get("es_phase"),
                   lv_volume_curve_ml=tuple(data.get("lv_volume_curve_ml") or ()))

    @classmethod
    def from_measurements(cls, m: Measurements) -> ExamMeasurements:
        return cls(values={k: v for k, v in m.values().items() if v is not None}, quality=m.quality,
                   quality_reasons=tuple(m.quality_reasons), unavailable=dict(m.unavailable), model=m.model,
                   ed_phase=m.ed_phase, es_phase=m.es_phase, lv_volume_curve_ml=tuple(m.lv_volume_curve_ml))

    def to_measurements(self) -> Measurements:
        return Measurements(**dict(self.values), quality=self.quality,  # type: ignore[arg-type]
                            quality_reasons=list(self.quality_reasons), unavailable=dict(self.unavailable),
                            model=self.model, ed_phase=self.ed_phase, es_phase=self.es_phase,
                            lv_volume_curve_ml=list(self.lv_volume_curve_ml))


_MEASUREMENT_KEYS: Final = frozenset({*MEASUREMENT_FIELDS, "quality", "quality_reasons", "unavailable", "model",
                                      "ed_phase", "es_phase", "lv_volume_curve_ml"})


@dataclass(frozen=True)
class StoredParts:
    """An exam embedding's parts as the index stores them: G names and kinds (PART_KINDS) and a float16 matrix
    [G, D] as raw little-endian bytes (`matrix` reads it). Make one with `of` from float vectors; a point
    checks that they sum to its vector (`check_sums_to`)."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.names, (str, bytes)) or isinstance(self.kinds, (str, bytes)):
            raise ValueError("part names and kinds must be lists of strings")
        names, kinds = tuple(self.names), tuple(self.kinds)
        if not 1 <= len(names) <= MAX_PARTS:
            raise ValueError(f"{len(names)} parts; an exam has 1 to {MAX_PARTS}")
        if len(kinds) != len(names):
            raise ValueError(f"{len(names)} part names but {len(kinds)} kinds")
        for n in names:
            if not isinstance(n, str) or not _TOKEN.match(n):
                raise ValueError(f"part name {n!r} is not a lower-case token like 'cine_sax' or 'lvef_pct'")
        if len(set(names)) != len(names):
            raise ValueError(f"part names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
        unknown = sorted({str(k) for k in kinds if k not in PART_KINDS})
        if unknown:
            raise ValueError(f"unknown part kind(s) {unknown}; a part is one of {PART_KINDS}")
        row = _PART_DTYPE.itemsize * len(names)
        if not isinstance(self.data, bytes) or not self.data or len(self.data) % row:
            raise ValueError(f"part data must be {len(names)} float16 rows of equal length")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "kinds", kinds)
        if not np.all(np.isfinite(self.matrix)):
            raise ValueError("part values must be finite and within the float16 range (|x| <= 65504)")

    @classmethod
    def of(cls, names: Iterable[str], kinds: Iterable[str], vectors: ArrayLike) -> StoredParts:
        """From float vectors [G, D] (rounded to float16)."""
        names, kinds = tuple(names), tuple(kinds)
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(names) or arr.shape[1] == 0:
            raise ValueError(f"parts must be {len(names)} vectors of one length, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("part values must be finite")
        with np.errstate(over="ignore"):  # beyond float16 becomes inf, which __post_init__ refuses by name
            data = arr.astype(_PART_DTYPE).tobytes()
        return cls(names, kinds, data)

    @property
    def dim(self) -> int:
        return len(self.data) // (_PART_DTYPE.itemsize * len(self.names))

    @property
    def matrix(self) -> NDArray[np.float16]:
        """[G, D] float16 (read-only: a view of the stored bytes)."""
        return np.frombuffer(self.data, dtype=_PART_DTYPE).reshape(len(self.names), -1)

    def contributions(self, vector: ArrayLike) -> NDArray[np.float64]:
        """[G] each part dotted with `vector`: for a unit vector they sum to its cosine with the exam."""
        return self.matrix.astype(np.float64) @ np.asarray(vector, dtype=np.float64)

    def check_sums_to(self, vector: ArrayLike) -> None:
        """ValueError unless the parts sum to `vector` normalised, within PARTS_SUM_TOLERANCE (L2)."""
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != (self.dim,):
            raise ValueError(f"parts are {self.dim}-d; the exam vector has {v.size} dimensions")
        norm = float(np.linalg.norm(v))
        if not 0.0 < norm < np.inf:
            raise ValueError("the exam vector has no direction for parts to sum to")
        gap = float(np.linalg.norm(self.matrix.astype(np.float64).sum(axis=0) - v / norm))
        if not gap <= PARTS_SUM_TOLERANCE:
            raise ValueError(f"parts do not sum to the exam's unit vector (their sum is {gap:.3g} away; at "
                             f"most {PARTS_SUM_TOLERANCE:g}): send the parts the model returned with this vector")

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "kinds": list(self.kinds),
                "float16": base64.b64encode(self.data).decode("ascii")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredParts:
        if not isinstance(data, Mapping) or set(data) != _PARTS_KEYS:
            raise ValueError(f"parts must be an object with exactly the keys {sorted(_PARTS_KEYS)}")
        try:
            raw = base64.b64decode(data["float16"], validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise ValueError(f"parts float16 is not base64: {exc}") from exc
        return cls(tuple(data["names"] or ()), tuple(data["kinds"] or ()), raw)


_PARTS_KEYS: Final = frozenset({"names", "kinds", "float16"})


@dataclass(frozen=True)
class ExamPayload:
    """The de-identified description of one exam stored with each of its vectors."""

    study_key: str
    vendor: str
    model_version: str
    study_date: str | None = None  # ISO date; None when the study carried none
    field_strength_t: float | None = None
    views: tuple[str, ...] = ()  # e.g. ("cine_sax", "cine_4ch", "lge_sax")
    labels: tuple[str, ...] = ()  # findings present, e.g. ("lv_dysfunction", "lge")
    impression: str = ""
    measurements: ExamMeasurements | None = None  # None: not measured (or indexed before measurements existed)
    # The exam vector's parts (attention-pooling models; exam points only). None: a CLS model, a point written
    # before parts were stored or with CMR_STORE_EMBEDDING_PARTS off, a report point, or a read without them.
    parts: StoredParts | None = None

    def __post_init__(self) -> None:
        if not is_study_key(self.study_key):
            raise ValueError(f"study_key must be {STUDY_KEY_HEX_CHARS} lower-case hex characters "
                             f"(cmr.rpc.keys.study_key), got {self.study_key!r}")
        if self.vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {VENDORS} (see normalise_vendor), got {self.vendor!r}")
        if not isinstance(self.model_version, str) or not _TOKEN.match(self.model_version):
            raise ValueError(f"model_version must be a short lower-case token, got {self.model_version!r}")
        if self.study_date is not None:
            object.__setattr__(self, "study_date", _as_date(self.study_date, "study_date").isoformat())
        if self.field_strength_t is not None:
            tesla = _field_strength(self.field_strength_t, "field_strength_t")
            object.__setattr__(self, "field_strength_t", tesla)
        object.__setattr__(self, "views", _tokens(self.views, "views"))
        object.__setattr__(self, "labels", _tokens(self.labels, "labels"))
        if not isinstance(self.impression, str) or len(self.impression) > MAX_IMPRESSION_CHARS:
            raise ValueError(f"impression must be a string of at most {MAX_IMPRESSION_CHARS} characters")
        if isinstance(self.measurements, Mapping):
            object.__setattr__(self, "measurements", ExamMeasurements.from_dict(self.measurements))
        elif self.measurements is not None and not isinstance(self.measurements, ExamMeasurements):
            raise ValueError(f"measurements must be ExamMeasurements, got {type(self.measurements).__name__}")
        if isinstance(self.parts, Mapping):
            object.__setattr__(self, "parts", StoredParts.from_dict(self.parts))
        elif self.parts is not None and not isinstance(self.parts, StoredParts):
            raise ValueError(f"parts must be StoredParts, got {type(self.parts).__name__}")

    @property
    def study_year(self) -> int | None:
        return None if self.study_date is None else int(self.study_date[:4])

    def to_dict(self) -> dict[str, Any]:
        """The stored payload; absent values are left out (a filter on them then never matches)."""
        d: dict[str, Any] = {
            "study_key": self.study_key,
            "vendor": self.vendor,
            "model_version": self.model_version,
            "views": list(self.views),
            "labels": list(self.labels),
            "impression": self.impression,
        }
        if self.study_date is not None:
            d["study_date"] = self.study_date
            d["study_year"] = self.study_year
        if self.field_strength_t is not None:
            d["field_strength_t"] = self.field_strength_t
        if self.measurements is not None:
            d["measurements"] = self.measurements.to_dict()
        if self.parts is not None:
            d[PARTS_KEY] = self.parts.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExamPayload:
        """Strict inverse of to_dict: unknown keys are refused, so nothing unexpected is ever stored."""
        unknown = sorted(set(data) - _PAYLOAD_KEYS)
        if unknown:
            raise ValueError(f"payload has unknown keys {unknown}; allowed: {sorted(_PAYLOAD_KEYS)}")
        missing = sorted(k for k in ("study_key", "vendor", "model_version") if data.get(k) is None)
        if missing:
            raise ValueError(f"payload lacks required keys {missing}")
        payload = cls(
            study_key=data["study_key"], vendor=data["vendor"], model_version=data["model_version"],
            study_date=data.get("study_date"), field_strength_t=data.get("field_strength_t"),
            views=tuple(data.get("views") or ()), labels=tuple(data.get("labels") or ()),
            impression=data.get("impression") or "",
            measurements=(None if data.get("measurements") is None
                          else ExamMeasurements.from_dict(data["measurements"])),
            parts=None if data.get(PARTS_KEY) is None else StoredParts.from_dict(data[PARTS_KEY]),
        )
        year = data.get("study_year")
        if year is not None and year != payload.study_year:
            raise ValueError(f"study_year {year!r} does not match study_date {payload.study_date!r}")
        return payload


    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> ExamPayload:
        """A payload read back from a store that only this code writes (the `to_dict` of a checked payload),
        rebuilt without running every field's check again: ten hits' checks cost about as much as the engine's
        whole search (bench/store_overhead.py). Unknown or missing keys still go to `from_dict`, which names
        what is wrong; measurements and parts are decoded (and checked) as always."""
        if (not _PAYLOAD_KEYS.issuperset(data) or data.get("study_key") is None or data.get("vendor") is None
                or data.get("model_version") is None):
            return cls.from_dict(data)
        payload = object.__new__(cls)
        put = object.__setattr__  # a frozen dataclass, filled field by field
        put(payload, "study_key", data["study_key"])
        put(payload, "vendor", data["vendor"])
        put(payload, "model_version", data["model_version"])
        put(payload, "study_date", data.get("study_date"))
        put(payload, "field_strength_t", data.get("field_strength_t"))
        put(payload, "views", tuple(data.get("views") or ()))
        put(payload, "labels", tuple(data.get("labels") or ()))
        put(payload, "impression", data.get("impression") or "")
        measurements, parts = data.get("measurements"), data.get(PARTS_KEY)
        put(payload, "measurements", None if measurements is None else ExamMeasurements.from_dict(measurements))
        put(payload, "parts", None if parts is None else StoredParts.from_dict(parts))
        return payload


_PAYLOAD_KEYS: Final = frozenset({"study_key", "vendor", "model_version", "study_date", "study_year",
                                  "field_strength_t", "views", "labels", "impression", "measurements",
                                  PARTS_KEY})


# --- the filter ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnyOf:
    """The keyword field (or one element of a list field) equals one of `values`."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Contains:
    """The list (or keyword) field holds `value`."""

    key: str
    value: str


@dataclass(frozen=True)
class NumberNear:
    """The float field lies within `tolerance` of one of `values`."""

    key: str
    values: tuple[float, ...]
    tolerance: float


@dataclass(frozen=True)
class DateRange:
    """gte <= field < lt on a datetime field, RFC 3339 bounds (either may be None)."""

    key: str
    gte: str | None
    lt: str | None


@dataclass(frozen=True)
class NumberRange:
    """gte <= field <= lte on a float field (either bound may be None; with neither: the field has a value)."""

    key: str
    gte: float | None
    lte: float | None


Clause = AnyOf | Contains | NumberNear | DateRange | NumberRange


@dataclass(frozen=True)
class MeasureRange:
    """min <= measurement <= max (closed; an unset bound is open). A study without that measurement never
    matches, whatever the bounds."""

    measure: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.measure not in MEASUREMENT_FIELDS:
            raise ValueError(f"unknown measurement {self.measure!r} in a measurement range; valid: {measure_names()}")
        for name in ("min", "max"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _finite(v, f"{self.measure} {name}"))
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"measurement range on {self.measure}: min {self.min:g} is greater than max {self.max:g}")

    @property
    def key(self) -> str:
        return f"measurements.{self.measure}"


@dataclass(frozen=True)
class FilterClauses:
    must: tuple[Clause, ...]  # all hold
    must_not: tuple[Clause, ...]  # none holds


@dataclass(frozen=True)
class ExamFilter:
    """Conditions an exam must meet; empty fields do not constrain. A point lacking a constrained field
    (no date, no field strength) does not match that condition."""

    vendors: tuple[str, ...] = ()  # any of
    field_strengths_t: tuple[float, ...] = ()  # any of, within FIELD_STRENGTH_TOLERANCE_T
    date_from: dt.date | None = None  # inclusive
    date_to: dt.date | None = None  # inclusive
    views_all: tuple[str, ...] = ()  # every one present
    labels_all: tuple[str, ...] = ()  # every one present
    labels_none: tuple[str, ...] = ()  # none present
    measurements: tuple[MeasureRange, ...] = ()  # every range holds (a study lacking the measure never does)
    study_keys_none: tuple[str, ...] = field(default=(), repr=False)  # excluded exams (e.g. the query exam)

    def __post_init__(self) -> None:
        vendors = _tokens(self.vendors, "vendors")
        bad = [v for v in vendors if v not in VENDORS]
        if bad:
            raise ValueError(f"unknown vendors {bad}; use {VENDORS}")
        object.__setattr__(self, "vendors", vendors)
        if isinstance(self.field_strengths_t, (int, float)):
            raise ValueError("field_strengths_t must be a list of tesla values, not one number")
        strengths = (_field_strength(v, "field_strengths_t item") for v in self.field_strengths_t)
        object.__setattr__(self, "field_strengths_t", tuple(dict.fromkeys(strengths)))
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _as_date(value, name))
        if self.date_from is not None and self.date_to is not None and self.date_from > self.date_to:
            raise ValueError(f"date_from {self.date_from} is after date_to {self.date_to}")
        for name in ("views_all", "labels_all", "labels_none"):
            object.__setattr__(self, name, _tokens(getattr(self, name), name))
        both = set(self.labels_all) & set(self.labels_none)
        if both:
            raise ValueError(f"labels {sorted(both)} are both required and excluded")
        keys = tuple(dict.fromkeys(self.study_keys_none))
        for k in keys:
            if not is_study_key(k):
                raise ValueError(f"study_keys_none item {k!r} is not a study key")
        object.__setattr__(self, "study_keys_none", keys)
        if isinstance(self.measurements, MeasureRange):
            raise ValueError("measurements must be a list of measurement ranges, not one range")
        ranges = tuple(self.measurements)
        for r in ranges:
            if not isinstance(r, MeasureRange):
                raise ValueError(f"measurements items must be MeasureRange, got {type(r).__name__}")
        object.__setattr__(self, "measurements", tuple(dict.fromkeys(ranges)))

    @property
    def is_empty(self) -> bool:
        clauses = self.clauses()
        return not (clauses.must or clauses.must_not)

    def clauses(self) -> FilterClauses:
        must: list[Clause] = []
        must_not: list[Clause] = []
        if self.vendors:
            must.append(AnyOf("vendor", self.vendors))
        if self.field_strengths_t:
            must.append(NumberNear("field_strength_t", self.field_strengths_t, FIELD_STRENGTH_TOLERANCE_T))
        if self.date_from is not None or self.date_to is not None:
            # Inclusive whole days: [date_from 00:00, day after date_to 00:00) in UTC.
            gte = None if self.date_from is None else f"{self.date_from.isoformat()}T00:00:00Z"
            lt = (None if self.date_to is None or self.date_to == dt.date.max
                  else f"{(self.date_to + dt.timedelta(days=1)).isoformat()}T00:00:00Z")
            must.append(DateRange("study_date", gte, lt))
        must.extend(Contains("views", v) for v in self.views_all)
        must.extend(Contains("labels", v) for v in self.labels_all)
        must.extend(NumberRange(r.key, r.min, r.max) for r in self.measurements)
        if self.labels_none:
            must_not.append(AnyOf("labels", self.labels_none))
        if self.study_keys_none:
            must_not.append(AnyOf("study_key", self.study_keys_none))
        return FilterClauses(tuple(must), tuple(must_not))
