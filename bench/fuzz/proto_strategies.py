"""Protobuf descriptor -> hypothesis strategy of messages, recursive over the message's fields.

Generic over any proto3 message: scalars with their extremes (int bounds, NaN, +-inf, -0.0), unicode and huge
strings, bytes, enums including values the schema does not know, repeated fields from empty to long, nested
messages (to a depth), oneofs (one member or none) and maps. Each field is left unset about a third of the
time, so defaults (the zero values a server must treat as "not given") are common too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor
HUGE_TEXT = 100_000  # characters: over every text limit the services have (MAX_TEXT_CHARS is 2,000)

_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1), F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}


def integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Small values (what limits are checked against), the bounds, and anything in between."""
    edges = sorted({v for v in (lo, hi, 0, 1, -1, lo + 1, hi - 1, 2**31 - 1, 2**32 - 1, 2**53 + 1) if lo <= v <= hi})
    return st.one_of(st.integers(max(lo, -3), min(hi, 300)), st.sampled_from(edges), st.integers(lo, hi))


def floats(width: int) -> st.SearchStrategy[float]:
    big = 3.4e38 if width == 32 else 1.7e308
    return st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, math.nan, math.inf, -math.inf, big, -big, 1e-45]),
                     st.floats(width=width, allow_nan=True, allow_infinity=True))


def rarely(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int) -> st.SearchStrategy[Any]:
    """`rare` about once in `one_in` draws: huge values are worth trying, but not in every field of every
    message (a message of forty 100k strings is one test, not forty)."""
    return st.integers(1, one_in).flatmap(lambda i: rare if i == 1 else common)


def texts() -> st.SearchStrategy[str]:
    """Short unicode (control characters, RTL, emoji, NUL), whitespace-only, and now and then huge strings."""
    common = st.one_of(
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="ascii"), max_size=40),
        st.sampled_from(["", " ", "\n\t", "\x00", "../../etc/passwd", "%s%n", "\u202e", "🫀" * 3, "null", "-1"]),
    )
    huge = st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "🫀", " ", "\x00"]),
                     st.sampled_from([2_001, 10_000, HUGE_TEXT]))
    return rarely(common, huge, 25)


def blobs() -> st.SearchStrategy[bytes]:
    return rarely(st.binary(max_size=64), st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4),
                                                    st.sampled_from([1_000, 100_000])), 25)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_RANGES:
        return integers(*_INT_RANGES[t])
    if t == F.TYPE_FLOAT:
        return floats(32)
    if t == F.TYPE_DOUBLE:
        return floats(64)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_STRING:
        return texts()
    if t == F.TYPE_BYTES:
        return blobs()
    if t == F.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        # proto3 enums are open: a newer client may send a value this server does not know
        return st.one_of(st.sampled_from(known), integers(-(2**31), 2**31 - 1))
    raise TypeError(f"no strategy for field type {t} ({field.full_name})")


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _is_repeated(field: FieldDescriptor) -> bool:
    # `label` is deprecated in newer protobuf releases in favour of `is_repeated`
    rep = getattr(field, "is_repeated", None)
    return bool(rep) if rep is not None else field.label == F.LABEL_REPEATED


def _lengths(max_len: int) -> st.SearchStrategy[int]:
    return rarely(st.integers(0, 3), st.integers(0, max_len), 6)


class MessageStrategies:
    """Strategies for the messages of one schema, cached per (message, depth). `overrides` replaces the
    strategy of a field by its full name (e.g. to keep vectors at the model's dimension now and then)."""

    def __init__(self, max_depth: int = 3, max_repeated: int = 40,
                 overrides: dict[str, st.SearchStrategy[Any]] | None = None) -> None:
        self.max_depth = max_depth
        self.max_repeated = max_repeated
        self.overrides = dict(overrides or {})
        self._cache: dict[tuple[str, int], st.SearchStrategy[Message]] = {}

    def _value(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
        if field.full_name in self.overrides:
            return self.overrides[field.full_name]
        if field.type == F.TYPE_MESSAGE:
            return self.of(field.message_type, depth + 1) if depth < self.max_depth else None
        return _scalar(field)

    def _field(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
        """The value to assign for one field: a scalar/message, a list, or a dict for a map."""
        if _is_map(field):
            key_f, val_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            val = self._value(val_f, depth)
            if val is None:
                return None
            return st.dictionaries(_scalar(key_f), val, max_size=min(self.max_repeated, 8))
        val = self._value(field, depth)
        if val is None:
            return None
        if _is_repeated(field):
            return _lengths(self.max_repeated).flatmap(lambda n: st.lists(val, min_size=n, max_size=n))
        return val

    def of(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, depth)
        if key not in self._cache:
            self._cache[key] = st.deferred(lambda: self._build(descriptor, depth))
        return self._cache[key]

    def _build(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
        cls = GetMessageClass(descriptor)
        plain: dict[str, st.SearchStrategy[Any]] = {}
        for field in descriptor.fields:
            if field.containing_oneof is not None and not field.containing_oneof.name.startswith("_"):
                continue  # real oneofs are drawn as one member below (proto3 `optional` is a synthetic oneof)
            s = self._field(field, depth)
            if s is not None:
                plain[field.name] = st.one_of(st.none(), s)
        oneofs: dict[str, st.SearchStrategy[tuple[str, Any] | None]] = {}
        for oneof in descriptor.oneofs:
            if oneof.name.startswith("_"):
                continue
            members = [(f.name, self._field(f, depth)) for f in oneof.fields]
            options = [st.tuples(st.just(name), s) for name, s in members if s is not None]
            oneofs[oneof.name] = st.one_of(st.none(), *options)
        return st.builds(lambda fields, chosen: build_message(cls, fields, chosen),
                         st.fixed_dictionaries(plain), st.fixed_dictionaries(oneofs))


def assign(msg: Message, name: str, value: Any) -> None:
    """Set one field of `msg` from a Python value (scalar, message, list, or dict for a map)."""
    field = msg.DESCRIPTOR.fields_by_name[name]
    if _is_map(field):
        target = getattr(msg, name)
        val_is_msg = field.message_type.fields_by_name["value"].type == F.TYPE_MESSAGE
        for k, v in value.items():
            if val_is_msg:
                target[k].CopyFrom(v)
            else:
                target[k] = v
    elif _is_repeated(field):
        target = getattr(msg, name)
        if field.type == F.TYPE_MESSAGE:
            for v in value:
                target.add().CopyFrom(v)
        else:
            target.extend(value)
    elif field.type == F.TYPE_MESSAGE:
        getattr(msg, name).CopyFrom(value)
    else:
        setattr(msg, name, value)


def build_message(cls: Callable[[], Message], fields: dict[str, Any], oneofs: dict[str, tuple[str, Any] | None]) \
        -> Message:
    msg = cls()
    for name, value in fields.items():
        if value is not None:
            assign(msg, name, value)
    for chosen in oneofs.values():
        if chosen is not None:
            assign(msg, *chosen)
    return msg


def message_strategy(descriptor: Descriptor, **kwargs: Any) -> st.SearchStrategy[Message]:
    """Messages of `descriptor` (see MessageStrategies for the options)."""
    return MessageStrategies(**kwargs).of(descriptor)


__all__ = ["HUGE_TEXT", "MessageStrategies", "assign", "blobs", "build_message", "floats", "integers",
           "message_strategy", "rarely", "texts"]
