"""Cohort builder: phrases combined with AND / OR / NOT, filters (measurement ranges too: LVEF, volumes, mass)
and a probability threshold -> every matching exam (scored exhaustively by the search service), counts, a table
with each member's LVEF and LVEDV, and the whole cohort as CSV (with every measurement)."""

import pandas as pd
import streamlit as st

from ui.components import filters_form, first_line, guarded, services, sidebar_status
from ui.measurements import describe_range, table_columns

SHOWN = 200


def _lines(text: str) -> list[str]:
    return [x.strip() for x in text.splitlines() if x.strip()]


def page() -> None:
    svc = services()
    sidebar_status(svc)
    st.title("Cohort builder")
    st.caption("One phrase per line. An exam joins when every ALL phrase, at least one ANY phrase (if given) and "
               "no NOT phrase reaches the threshold (calibrated probability).")
    with st.form("cohort"):
        c1, c2, c3 = st.columns(3)
        all_of = c1.text_area("ALL of (AND)", key="co_all", placeholder="e.g. dilated left ventricle")
        any_of = c2.text_area("ANY of (OR)", key="co_any", placeholder="e.g. mid-wall LGE\nreduced ejection fraction")
        none_of = c3.text_area("NONE of (NOT)", key="co_none", placeholder="e.g. hypertrophic cardiomyopathy")
        threshold = st.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="co_threshold")
        filters = filters_form("co", measurements_expanded=True)
        submitted = st.form_submit_button("Build cohort", type="primary")
    if submitted:
        query = dict(all_of=_lines(all_of), any_of=_lines(any_of), none_of=_lines(none_of), threshold=threshold,
                     filters=filters)
        result = svc.cohort(limit=SHOWN, **query)
        st.session_state["co_result"] = (query, result)
        st.session_state.pop("co_csv", None)
    if "co_result" not in st.session_state:
        return
    query, result = st.session_state["co_result"]
    ranges = query["filters"].ranges() if query.get("filters") is not None else []
    if ranges:
        st.caption("Measurement ranges: " + " · ".join(describe_range(r) for r in ranges))
    m1, m2, m3 = st.columns([1, 1, 2])
    m1.metric("Exams in the cohort", result.total)
    m2.metric("Shown", min(result.total, len(result.members)))
    if not result.members:
        st.info("No exam matches. Lower the threshold or loosen the filters.")
        return
    df = pd.DataFrame([{"study_key": e.study_key, "score": round(e.score, 3), "vendor": e.vendor,
                        "field_T": e.field_strength_t or None, "date": e.study_date,
                        **table_columns(e.measurements),
                        **{f"p({k})": round(v, 3) for k, v in e.phrase_scores.items()},
                        "impression": first_line(e.impression, 120)} for e in result.members])
    by_vendor = df.groupby("vendor").size().rename("exams")
    with m3:
        st.caption("Shown exams by vendor")
        st.bar_chart(by_vendor, horizontal=True, height=140)
    st.dataframe(df, hide_index=True, width="stretch")
    if "co_csv" not in st.session_state:
        st.session_state["co_csv"] = svc.export_cohort(**query)
    name, data = st.session_state["co_csv"]
    st.download_button(f"Download the whole cohort (CSV, {result.total} exams)", data, file_name=name or "cohort.csv",
                       mime="text/csv", key="co_download")


guarded(page)
