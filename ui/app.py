"""The CMR semantic search UI (Streamlit): run with `cmr up`, or `streamlit run ui/app.py` beside running
services (CMR_SEARCH_URL, CMR_ENCODER_URL, CMR_GENERATOR_URL). It talks to the services over gRPC only, with the
logged-in user's token; it shows only the pages the user's roles allow."""

from pathlib import Path

import streamlit as st

from cmr.config import Settings
from ui.auth import auth_required, visible_pages
from ui.components import current_session, logout

HERE = Path(__file__).resolve().parent
PAGES = {
    "text_search": dict(title="Text → scan", icon=":material/search:"),
    "scan": dict(title="Scan → report & twins", icon=":material/monitor_heart:"),
    "cohort": dict(title="Cohort builder", icon=":material/groups:"),
    "draft": dict(title="Draft report", icon=":material/edit_note:"),
}

st.set_page_config(page_title="CMR semantic search", page_icon=":material/cardiology:", layout="wide")
settings = Settings()
session = current_session()
if auth_required(settings) and session is None:
    page = st.navigation([st.Page(HERE / "views" / "login.py", title="Log in", icon=":material/login:")])
else:
    names = visible_pages(session, settings)
    if session is not None:
        with st.sidebar:
            st.caption(f"Signed in as **{session.user}** ({', '.join(sorted(r.value for r in session.roles))})")
            st.button("Log out", key="logout", on_click=logout)
    if not names:
        st.warning("Your account has no role that this UI serves. Ask an administrator.")
        st.stop()
    page = st.navigation([st.Page(HERE / "views" / f"{n}.py", default=i == 0, **PAGES[n])  # type: ignore[arg-type]
                          for i, n in enumerate(names)])
page.run()
