"""Scan to report and digital twins: an indexed exam or an uploaded study -> its measurements (LVEF, volumes,
mass, with the volume curve and the contours over the cine loop), the nearest reports, the most similar exams
with their LVEF, and the zero-shot finding profile as a chart."""

import streamlit as st

from ui.components import (
    cine, cine_upload, exam_card, exam_picker, guarded, previews, remember_exams, services, sidebar_status,
    zero_shot_chart,
)
from ui.measurements import folder_fingerprint
from ui.quant_panel import measurement_section


def _local_study(study_key: str):  # noqa: ANN202
    """(folder, content key) of an indexed study on this host, else (None, None)."""
    folder = getattr(previews(), "folder", lambda _k: None)(study_key)
    return (folder, folder_fingerprint(folder)) if folder is not None else (None, None)


def page() -> None:
    svc = services()
    sidebar_status(svc)
    st.title("Scan → report & digital twins")
    choice = exam_picker(svc, "scan")
    if choice is None:
        return
    query = {k: choice[k] for k in ("study_key", "embedding") if k in choice}
    top_k = st.slider("How many", 1, 20, 5, key="scan_top")
    exams, reports = svc.similar(top_k=top_k, **query)
    remember_exams(exams)
    findings = svc.zero_shot(**query)
    head, chart = st.columns([3, 2])
    with head:
        st.subheader("This exam")
        if "study_key" in choice:
            me = svc.get(choice["study_key"])
            cine(me.study_key)
            st.markdown("**Impression on file**")
            st.text(me.impression or "(none)")
            measured, origin = me.measurements, "measured at ingestion"
            source, key = _local_study(me.study_key)
        else:
            cine_upload(choice["upload"], choice["label"])
            st.caption(f"uploaded: {choice['label']} (not indexed)")
            measured, origin = choice.get("measurements"), "measured by the encoder service"
            source, key = choice["upload"], choice.get("content_key")
    with chart:
        st.subheader("Zero-shot finding profile")
        zero_shot_chart(findings)
    contours = measurement_section(measured, source=source, key=key, origin=origin)
    st.subheader("Nearest reports")
    if not reports:
        st.info("No reports in the index yet.")
    for i, r in enumerate(reports, 1):
        with st.container(border=True):
            st.markdown(f"**#{i}** · cosine **{r.score:.3f}** · study `{r.study_key}`")
            st.text(r.impression)
    st.subheader("Most similar exams (digital twins)")
    for i, e in enumerate(exams, 1):
        exam_card(e, i, score_label="cosine")
    contours()  # last: the segmentation (seconds) keeps nothing above waiting


guarded(page)
