"""The scan page's measurements: the clinical panel (the numbers EncodeStudy or the index sent), the LV/RV
volume curve with ED and ES marked, and the contours over the cine loop.

The masks are in no RPC, so the contours are segmented here, in the UI process, from the study this host has
(the bytes of an upload, or the indexed study's folder under CMR_STUDY_ROOTS): the segmenter is loaded once per
process (st.cache_resource; a test puts its own in session_state["cmr_segmenter"]), the contours are cached per
study content and segmenter version (st.cache_data), one segmentation runs at a time, and when they cannot be
computed the numbers still show.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from cmr.config import Settings
from cmr.quant.volumes import Measurements
from ui.measurements import LEGEND, ContourView, contour_gif, contour_view, curve_rows, panel

log = logging.getLogger(__name__)
_ONE_AT_A_TIME = threading.Lock()  # the host's cores are shared with the services: never two segmentations
CHAMBER_COLOURS = {"LV": "#c0392b", "RV": "#2e6fd1"}  # as the `cmr measure` volume curve draws them


@st.cache_resource(show_spinner=False)
def _segmenter() -> Any:
    from cmr.quant.segmenter import load_segmenter

    settings = Settings()
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    seg = load_segmenter(settings.segmenter_checkpoint)
    log.info("UI segmenter %s loaded", seg.version)
    return seg


def segmenter() -> Any:
    return st.session_state.get("cmr_segmenter") or _segmenter()


@st.cache_data(show_spinner=False, max_entries=4, ttl=3600)  # a real stack is tens of MB
def _contours(key: str, version: str, _source: Path | bytes, _segmenter: Any) -> ContourView:
    """Keyed by the study's content key and the segmenter version (the source and segmenter are not hashed)."""
    with _ONE_AT_A_TIME:
        return contour_view(_source, _segmenter)


@st.cache_data(show_spinner=False, max_entries=64)
def _slice_gif(key: str, version: str, k: int, _view: ContourView) -> bytes:
    return contour_gif(_view, k)


def measurement_panel(m: Measurements, origin: str) -> None:
    """The numbers with units (or why not), the quality flag with its reasons, the segmenter version."""
    p = panel(m)
    st.markdown(p.markdown())
    colour = {"ok": "green", "check": "orange"}.get(p.quality, "red")
    st.markdown(f":{colour}-badge[quality {p.quality}]")
    if p.quality_reasons:
        st.caption("  \n".join(f"• {r}" for r in p.quality_reasons))
    st.caption(f"segmenter `{p.model}` · {origin}")


def volume_curve(m: Measurements) -> None:
    """LV (and RV, when sent) cavity volume over the cardiac cycle, ED and ES marked."""
    import altair as alt
    import pandas as pd

    rows = curve_rows(m)
    if not rows:
        st.caption("no volume curve")
        return
    df = pd.DataFrame(rows)
    chambers = sorted(df["chamber"].unique())
    line = (alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=18))
            .encode(x=alt.X("phase:Q", title="cardiac phase", axis=alt.Axis(tickMinStep=1)),
                    y=alt.Y("volume_ml:Q", title="volume (ml)", scale=alt.Scale(zero=False)),
                    color=alt.Color("chamber:N", title=None, legend=alt.Legend(orient="bottom"),
                                    scale=alt.Scale(domain=chambers, range=[CHAMBER_COLOURS[c] for c in chambers])),
                    tooltip=["chamber", "phase", alt.Tooltip("volume_ml:Q", format=".1f", title="ml")]))
    marks = pd.DataFrame([{"phase": p, "label": name} for p, name in ((m.ed_phase, "ED"), (m.es_phase, "ES"))
                          if p is not None])
    chart: Any = line
    if not marks.empty:
        rule = alt.Chart(marks).mark_rule(strokeDash=[3, 3], color="#555").encode(x="phase:Q")
        text = (alt.Chart(marks).mark_text(baseline="top", dy=2, fontWeight="bold")
                .encode(x="phase:Q", y=alt.value(0), text="label:N"))
        chart = alt.layer(line, rule, text)
    st.altair_chart(chart.properties(height=240), width="stretch")


def legend() -> None:
    from cmr.quant.outputs import COLOURS  # the colours the contours are drawn in

    st.markdown("  \n".join(f'<span style="color:rgb{COLOURS[label]}">&#9632;</span> {name}'
                            for name, label in LEGEND), unsafe_allow_html=True)


@st.fragment
def _player(key: str, version: str, view: ContourView) -> None:
    """The contours over the cine loop of one slice; the slice selector reruns only this."""
    n, k = view.n_slices, view.mid
    if n > 1:
        k = st.slider("Short-axis slice (1 = base)", 1, n, view.mid + 1, key=f"scan_slice_{key[-16:]}") - 1
    st.image(_slice_gif(key, version, k, view), width=256)
    mid = " · mid-ventricular" if k == view.mid else ""
    st.caption(f"slice {k + 1} of {n} (base → apex), {view.labels[k]}{mid}")
    legend()


def _why(exc: Exception) -> str:
    from cmr.dicom import StudyLoadError

    if isinstance(exc, (StudyLoadError, FileNotFoundError, ValueError)):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}; the UI log has the details"


def measurement_section(measured: Measurements | None, *, source: Path | bytes | None, key: str | None,
                        origin: str) -> Callable[[], None]:
    """Draw the panel and the curve now (from `measured`, the services' numbers), and return the function that
    fills in the contours: the page calls it after its other results, so nothing waits for the segmentation."""
    st.subheader("Measurements")
    numbers, curve, player = st.columns([4, 5, 3], gap="medium")
    with numbers:
        numbers_slot = st.empty()
    with curve:
        st.markdown("**Volume curve** (ED = end-diastole, ES = end-systole)")
        curve_slot = st.empty()
    with player:
        player_slot = st.container()
    if measured is not None:
        with numbers_slot.container():
            measurement_panel(measured, origin)
        with curve_slot.container():
            volume_curve(measured)
    else:
        numbers_slot.caption("The services sent no measurements for this study.")

    def contours() -> None:
        with player_slot:
            st.markdown("**Contours over the cine loop**")
            view, why = _compute(source, key)
            if view is not None and view.n_slices == 0:
                why = f"nothing to segment: {panel(view.measurements).headline or 'no short-axis slices'}"
            if view is not None and measured is None:
                with numbers_slot.container():  # the numbers of the same masks, said to be measured here
                    measurement_panel(view.measurements, "measured in the UI from the images on this host")
            if view is not None and view.n_slices and (measured is None or measured.model == view.measurements.model):
                with curve_slot.container():  # the same segmenter: its curves have the RV too
                    volume_curve(view.measurements)
            if view is None or not view.n_slices:
                st.caption(f"No contours: {why}." + (" The numbers come from the services." if measured else ""))
                return
            version = view.measurements.model
            _player(key or "", version, view)
            if measured is not None and measured.model != version:
                st.caption(f"contours by `{version}` (the numbers: `{measured.model}`)")

    return contours


def _compute(source: Path | bytes | None, key: str | None) -> tuple[ContourView | None, str]:
    if source is None or not key:
        return None, "the study's images are not on this host"
    if not Settings().measure:
        return None, "measuring is off on this host (CMR_MEASURE=false)"
    try:
        seg = segmenter()
        with st.spinner("Segmenting the short-axis cine for the contours…"):
            return _contours(key, seg.version, source, seg), ""
    except Exception as exc:  # noqa: BLE001 - the numbers matter more than the contours
        log.warning("no contours for %s: %s", key, exc, exc_info=not isinstance(exc, (OSError, ValueError)))
        return None, f"they could not be computed ({_why(exc)})"
