"""What the pages share: the service and preview singletons (a test may put fakes in session_state under
"cmr_services" / "cmr_previews"), the error guard, filters (measurement ranges too), result cards with cine
loops and measurements, the exam picker and the zero-shot chart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import streamlit as st

from cmr.config import Settings
from ui.auth import UserSession, session_settings
from ui.measurements import FILTER_MEASURES, LABELS, WHERE_HELP, Bound, card_summary, content_key, unit
from ui.services import Exam, Filters, Finding, Services, UiError

log = logging.getLogger(__name__)

VENDORS = ("siemens", "ge", "philips", "canon", "other")
FIELD_STRENGTHS = (1.5, 3.0)
VIEWS = ("cine_sax", "cine_4ch", "cine_2ch", "cine_3ch", "lge_sax", "lge_lax")


@st.cache_resource(show_spinner=False)
def _services() -> Services:
    return Services(Settings())  # auth off: one set of channels for every browser session


def current_session() -> UserSession | None:
    """The logged-in user of this browser session (None, or expired: log in again)."""
    session: UserSession | None = st.session_state.get("cmr_user")
    if session is not None and session.expired:
        logout()
        return None
    return session


def start_session(session: UserSession) -> None:
    st.session_state["cmr_user"] = session
    st.session_state["cmr_user_services"] = Services(session_settings(Settings(), session))


def logout() -> None:
    svc = st.session_state.pop("cmr_user_services", None)
    if svc is not None:
        svc.close()
    for key in [k for k in st.session_state if k != "cmr_services"]:
        del st.session_state[key]  # results of the last user must not stay on screen for the next


@st.cache_resource(show_spinner=False)
def _previews() -> Any:
    from ui.cine import CinePreviews

    return CinePreviews.from_settings(Settings())


def services() -> Services:
    """A test's fake, else the logged-in user's clients (their token), else the shared ones (auth off)."""
    return st.session_state.get("cmr_services") or st.session_state.get("cmr_user_services") or _services()


def previews() -> Any:
    return st.session_state.get("cmr_previews") or _previews()


def guarded(body: Callable[[], None]) -> None:
    """Run a page: a UiError becomes its message; anything else a short notice (details only in the log)."""
    try:
        body()
    except UiError as exc:
        (st.warning if exc.down else st.error)(exc.message)
    except Exception:  # noqa: BLE001 - the page must never show a stack trace
        log.exception("UI page failed")
        st.error("Something went wrong on this page. The UI log has the details; try again, or reload.")


def sidebar_status(svc: Services) -> None:
    with st.sidebar:
        st.caption("Services")
        try:
            health = _health(svc)
        except Exception:  # noqa: BLE001
            health = {}
        st.markdown("  \n".join(f"{':green[●]' if ok else ':red[●]'} {name} {'' if ok else '(down)'}"
                               for name, ok in health.items()))
        try:
            n = svc.stats().exams
            st.caption(f"{n} exams indexed")
        except UiError:
            st.caption("index: search service unavailable")


def _health(svc: Services) -> dict[str, bool]:
    cache = st.session_state.setdefault("_cmr_health", {})
    import time

    if not cache or time.monotonic() - cache.get("at", 0) > 5:
        cache.clear()
        cache.update(at=time.monotonic(), value=svc.health())
    return dict(cache["value"])


def measurement_filters(prefix: str, expanded: bool = False) -> tuple[tuple[Bound, ...], str]:
    """Min/max inputs of the common measurements ("any" when empty) and free `where` conditions."""
    with st.expander("Measurements (LVEF, volumes, mass)", expanded=expanded):
        st.caption("Empty = any. A range leaves out exams without that measurement.")
        bounds = []
        for name, col in zip(FILTER_MEASURES, st.columns(len(FILTER_MEASURES))):
            lo, hi = (col.number_input(f"{LABELS[name]} {end} ({unit(name)})", value=None, step=1.0, format="%g",
                                       placeholder="any", key=f"{prefix}_{name}_{end}") for end in ("min", "max"))
            bounds.append((name, lo, hi))
        where = st.text_input("More measurement conditions", key=f"{prefix}_where", help=WHERE_HELP,
                              placeholder="e.g. rvef_pct<45; lvedvi_ml_m2>=100")
    return tuple(bounds), where


def filters_form(prefix: str, *, measurements_expanded: bool = False) -> Filters:
    with st.expander("Filters", expanded=False):
        c1, c2, c3 = st.columns(3)
        vendors = c1.multiselect("Vendor", VENDORS, key=f"{prefix}_vendors")
        fields = c2.multiselect("Field strength (T)", FIELD_STRENGTHS, key=f"{prefix}_fields")
        views = c3.multiselect("Views present (all)", VIEWS, key=f"{prefix}_views")
        d1, d2 = st.columns(2)
        use_dates = d1.checkbox("Limit by study date", key=f"{prefix}_use_dates")
        date_from = date_to = ""
        if use_dates:
            rng = d2.date_input("Study dates", (date(2000, 1, 1), date.today()), key=f"{prefix}_dates")
            if isinstance(rng, (list, tuple)) and len(rng) == 2:
                date_from, date_to = rng[0].isoformat(), rng[1].isoformat()
    bounds, where = measurement_filters(prefix, measurements_expanded)
    return Filters(tuple(vendors), tuple(float(f) for f in fields), date_from, date_to, tuple(views), bounds, where)


def first_line(text: str, n: int = 140) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= n else line[: n - 1] + "…"


def exam_meta(e: Exam) -> str:
    parts = [e.vendor or "?", f"{e.field_strength_t:g} T" if e.field_strength_t else "", e.study_date or ""]
    return " · ".join(p for p in parts if p)


def cine(study_key: str, width: int = 512) -> None:
    try:
        gif = previews().gif(study_key)
    except Exception:  # noqa: BLE001 - a missing preview never breaks the page
        log.exception("preview of %s", study_key)
        gif = None
    if gif:
        st.image(gif, width=width)
    else:
        st.caption("no cine preview (the study is not on this host)")


def cine_upload(data: bytes, name: str, width: int = 512) -> None:
    """The cine loop of an uploaded study, rendered here from the upload (kept for the session)."""
    import tempfile
    from pathlib import Path

    from ui.cine import render_preview

    cache = st.session_state.setdefault("cmr_upload_gifs", {})
    sig = (name, len(data))
    if sig not in cache:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                cache[sig] = render_preview(data, Path(tmp) / "upload.gif").read_bytes()
        except Exception as exc:  # noqa: BLE001 - the search results matter more than the preview
            log.info("no preview of the upload %s: %s", name, exc)
            cache[sig] = None
    if cache[sig]:
        st.image(cache[sig], width=width)
    else:
        st.caption("no cine preview of this upload")


WHY_PARTS = 3  # parts named on a card; the rest is in `cmr explain`


def why_line(why: tuple[tuple[str, float], ...], top: int = WHY_PARTS) -> str:
    """'why: cine SAX 46 % · LVEF (%) 31 % · LGE SAX 12 %' from an ExamHit's shares (largest first); '' when
    the search gave none (a CLS model, an exam indexed without parts, a query by an uploaded study's vector)."""
    if not why:
        return ""
    from cmr.model.explain import part_label  # only when there is something to explain (loads model code)

    return "why: " + " · ".join(f"{part_label(part)} {100 * share:.0f} %" for part, share in why[:top])


def exam_card(e: Exam, rank: int, *, score_label: str = "score", show_cine: bool = True) -> None:
    with st.container(border=True):
        left, right = st.columns([3, 2])
        with left:
            if show_cine:
                cine(e.study_key)
        with right:
            st.markdown(f"**#{rank}** · {score_label} **{e.score:.3f}**")
            st.caption(f"{exam_meta(e)}  \nstudy `{e.study_key}`")
            why = why_line(e.why)
            if why:
                st.caption(why)
            measured = card_summary(e.measurements)
            if e.measurements is not None and e.measurements.lvef_pct is not None:
                st.markdown(f"**{measured}**")
            else:
                st.caption(measured)
            st.markdown("**Impression**")
            st.text(e.impression or "(no impression)")


def zero_shot_chart(findings: list[Finding]) -> None:
    import altair as alt
    import pandas as pd

    if not findings:
        st.info("No findings scored.")
        return
    df = pd.DataFrame([{"finding": f.display or f.name, "probability": f.probability, "kind": f.kind}
                       for f in findings]).sort_values("probability", ascending=False)
    chart = (alt.Chart(df).mark_bar()
             .encode(x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), title="calibrated probability"),
                     y=alt.Y("finding:N", sort="-x", title=None, axis=alt.Axis(labelLimit=220, labelOverlap=False)),
                     color=alt.Color("kind:N", title=None),
                     tooltip=["finding", alt.Tooltip("probability:Q", format=".2f"), "kind"])
             .properties(height=max(160, 24 * len(df))))
    st.altair_chart(chart, width="stretch")


def remember_exams(exams: list[Exam]) -> None:
    """Exams seen on any page, offered by the exam pickers of the other pages."""
    seen: dict[str, Exam] = st.session_state.setdefault("cmr_seen_exams", {})
    for e in exams:
        seen.setdefault(e.study_key, e)


def exam_picker(svc: Services, prefix: str, *, allow_upload: bool = True) -> dict[str, Any] | None:
    """An indexed exam (from earlier results, a quick phrase search, or a pasted study key) or an uploaded study
    (zip of DICOM). Returns {"study_key" | "embedding", "label"} or None; an upload adds "upload" (the bytes),
    "content_key" and EncodeStudy's "measurements"."""
    options = ["An indexed exam"] + (["Upload a study (zip of DICOM)"] if allow_upload else [])
    source = st.radio("Exam", options, horizontal=True, key=f"{prefix}_source")
    if source.startswith("Upload"):
        f = st.file_uploader("Study zip", type=["zip"], key=f"{prefix}_upload")
        if f is None:
            return None
        data = f.getvalue()
        cache = st.session_state.setdefault("cmr_uploads", {})
        sig = (f.name, len(data))
        if sig not in cache:
            with st.spinner("uploading and encoding the study..."):
                cache[sig] = svc.encode_upload(data)
        up = cache[sig]
        keys = st.session_state.setdefault("cmr_upload_keys", {})
        if sig not in keys:
            keys[sig] = content_key(data)
        st.caption(f"{f.name}: {up.manufacturer or 'unknown vendor'} "
                   f"{up.field_strength_t:g} T, views {', '.join(up.slots_present) or 'none'}"
                   + (f"; missing {', '.join(up.slots_missing)}" if up.slots_missing else ""))
        return {"embedding": up.embedding, "label": f.name, "upload": data, "content_key": keys[sig],
                "measurements": up.measurements}
    seen: dict[str, Exam] = st.session_state.get("cmr_seen_exams", {})
    phrase = st.text_input("Find exams by phrase", key=f"{prefix}_find",
                           placeholder="e.g. hypertrophic cardiomyopathy with asymmetric septal hypertrophy")
    if phrase.strip():
        remember_exams(svc.search_text(phrase, top_k=20))
        seen = st.session_state.get("cmr_seen_exams", {})
    pasted = st.text_input("…or paste a study key", key=f"{prefix}_key").strip().lower()
    if pasted:
        return {"study_key": pasted, "label": pasted}
    if not seen:
        st.info("Search for a phrase above (or on the Text → scan page) to pick an exam.")
        return None
    keys = list(seen)
    key = st.selectbox("Indexed exam", keys, key=f"{prefix}_pick",
                       format_func=lambda k: f"{k[:8]}… {exam_meta(seen[k])} - {first_line(seen[k].impression, 80)}")
    return {"study_key": key, "label": key}
