"""The CMR semantic search UI (Streamlit): run with `cmr up`, or `streamlit run ui/app.py` beside running
services (CMR_SEARCH_URL, CMR_ENCODER_URL, CMR_GENERATOR_URL). It talks to the services over gRPC only."""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="CMR semantic search", page_icon=":material/cardiology:", layout="wide")
page = st.navigation([
    st.Page(HERE / "views" / "text_search.py", title="Text → scan", icon=":material/search:", default=True),
    st.Page(HERE / "views" / "scan.py", title="Scan → report & twins", icon=":material/monitor_heart:"),
    st.Page(HERE / "views" / "cohort.py", title="Cohort builder", icon=":material/groups:"),
    st.Page(HERE / "views" / "draft.py", title="Draft report", icon=":material/edit_note:"),
])
page.run()
