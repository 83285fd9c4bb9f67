"""Draft report: the retrieval draft (nearest indexed reports) and the CMR-TARGET draft (generated from the
image features) side by side, streamed sentence by sentence from GeneratorService, then editable and
downloadable."""

import streamlit as st

from ui.components import exam_picker, guarded, services, sidebar_status
from ui.services import UiError

MODES = (("retrieval", "Retrieval (nearest reports)"), ("target", "CMR-TARGET (generated)"))


def _stream(svc, mode: str, query: dict) -> str:  # noqa: ANN001
    """Stream one draft into the current column; returns its text ("" with a message when it fails)."""
    sentences: list[str] = []
    box = st.empty()
    try:
        for s in svc.draft(mode, **query):
            sentences.append(s)
            box.markdown("  \n".join(sentences) + " ▌")
    except UiError as exc:
        (st.warning if exc.down else st.error)(exc.message)
    box.markdown("  \n".join(sentences) if sentences else "")
    return "\n".join(sentences)


def page() -> None:
    svc = services()
    sidebar_status(svc)
    st.title("Draft report")
    st.caption("Drafts are suggestions for a radiologist to edit, never a final report.")
    choice = exam_picker(svc, "draft")
    if choice is None:
        return
    query = {k: choice[k] for k in ("study_key", "embedding", "measurements") if choice.get(k) is not None}
    ident = choice.get("study_key") or choice["label"]
    if st.button("Draft the impression", type="primary", key="draft_go"):
        cols = st.columns(len(MODES))
        drafts = {}
        for (mode, title), col in zip(MODES, cols):
            with col:
                st.subheader(title)
                drafts[mode] = _stream(svc, mode, query)
        st.session_state["draft_texts"] = (ident, drafts)
        for mode, _ in MODES:
            st.session_state.pop(f"draft_edit_{mode}", None)
    saved = st.session_state.get("draft_texts")
    if not saved or saved[0] != ident:
        return
    _, drafts = saved
    st.divider()
    st.subheader("Edit and download")
    cols = st.columns(len(MODES))
    for (mode, title), col in zip(MODES, cols):
        with col:
            text = st.text_area(title, drafts.get(mode, ""), height=220, key=f"draft_edit_{mode}")
            st.download_button(f"Download ({mode})", text or "", file_name=f"draft_{mode}_{ident[:12]}.txt",
                               mime="text/plain", key=f"draft_dl_{mode}", disabled=not text)


guarded(page)
