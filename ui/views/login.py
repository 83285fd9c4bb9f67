"""Log in: the local accounts of the one-machine stack (`cmr security init-dev` makes clinician, researcher and
admin; `cmr auth add-user` adds more)."""

import streamlit as st

from cmr.config import Settings
from ui.auth import LoginError, login
from ui.components import start_session

st.title("CMR semantic search")
st.caption("Cardiac MRI exams and reports are protected health information: sign in to continue.")
with st.form("login"):
    user = st.text_input("User name", key="login_user", autocomplete="username")
    password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
    submitted = st.form_submit_button("Log in", type="primary")
if submitted:
    try:
        start_session(login(Settings(), user, password))
        st.rerun()
    except LoginError as exc:
        st.error(str(exc))
