"""Text to scan: a phrase and filters (measurement ranges too) -> ranked exams with scores, cine loops of the
main views, and the impression and LVEF beside each."""

import streamlit as st

from ui.components import exam_card, filters_form, guarded, remember_exams, services, sidebar_status


def page() -> None:
    svc = services()
    sidebar_status(svc)
    st.title("Text → scan")
    st.caption("Describe what you are looking for; the exams whose images best match the phrase come first.")
    with st.form("text_search"):
        phrase = st.text_input("Phrase", key="ts_phrase",
                               placeholder="dilated left ventricle with reduced ejection fraction")
        top_k = st.slider("Results", 1, 30, 6, key="ts_top")
        filters = filters_form("ts")
        submitted = st.form_submit_button("Search", type="primary")
    if submitted:
        st.session_state["ts_results"] = (phrase, svc.search_text(phrase, top_k=top_k, filters=filters))
    if "ts_results" not in st.session_state:
        return
    phrase, hits = st.session_state["ts_results"]
    remember_exams(hits)
    if not hits:
        st.info("No indexed exam matches these filters. The index may still be filling: try again shortly.")
        return
    st.subheader(f"{len(hits)} exams for “{phrase}”")
    for i, exam in enumerate(hits, 1):
        exam_card(exam, i, score_label="cosine")


guarded(page)
