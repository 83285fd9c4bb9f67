"""Every UI page under Streamlit's AppTest with a fake service layer: what the page shows for results, for bad
input and when a service is down (a message, never an exception on the page)."""

from __future__ import annotations

from ui_fakes import KEYS, FakeServices, GifPreviews, run_page


def _texts(at) -> str:  # noqa: ANN001
    parts = [m.value for m in at.markdown] + [t.value for t in at.text] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def _submit(at, label: str):  # noqa: ANN001, ANN202
    return next(b for b in at.button if b.label == label).click().run()


def test_text_search_shows_ranked_cards_with_impressions() -> None:
    svc = FakeServices()
    at = run_page("text_search.py", svc)
    assert not at.exception
    at.text_input(key="ts_phrase").input("dilated left ventricle")
    at.slider(key="ts_top").set_value(3)
    at = _submit(at, "Search")
    assert not at.exception and not at.error
    assert any("3 exams for" in h.value for h in at.subheader)
    body = _texts(at)
    assert "#1" in body and "#3" in body and "cosine **0.900**" in body
    assert "Finding number 0" in body and KEYS[0] in body
    assert svc.calls[-1][1]["top_k"] == 3
    assert "no cine preview" in body  # the fake has no studies on disk: the card says so


def test_text_search_cards_play_cine_loops() -> None:
    at = run_page("text_search.py", FakeServices(), GifPreviews())
    at.text_input(key="ts_phrase").input("dilated left ventricle")
    at = _submit(at, "Search")
    assert not at.exception
    assert len(at.get("image")) == 5  # one cine loop per card
    assert "no cine preview" not in _texts(at)


def test_text_search_filters_reach_the_service() -> None:
    svc = FakeServices()
    at = run_page("text_search.py", svc)
    at.text_input(key="ts_phrase").input("LGE")
    at.multiselect(key="ts_vendors").select("ge")
    at.multiselect(key="ts_fields").select(3.0)
    at = _submit(at, "Search")
    f = svc.calls[-1][1]["filters"]
    assert f.vendors == ("ge",) and f.field_strengths_t == (3.0,)


def test_text_search_empty_phrase_and_service_down_are_messages() -> None:
    at = run_page("text_search.py", FakeServices())
    at = _submit(at, "Search")
    assert not at.exception
    assert "Type a phrase first" in at.error[0].value
    at = run_page("text_search.py", FakeServices(down_services=("search",)))
    at.text_input(key="ts_phrase").input("dilated")
    at = _submit(at, "Search")
    assert not at.exception
    assert any("search service is unavailable" in w.value for w in at.warning)


def test_scan_page_profile_reports_and_twins_for_an_indexed_exam() -> None:
    svc = FakeServices()
    at = run_page("scan.py", svc)
    assert not at.exception
    assert "Search for a phrase" in at.info[0].value
    at.text_input(key="scan_key").input(KEYS[2])
    at = at.run()
    assert not at.exception and not at.error
    heads = [h.value for h in at.subheader]
    assert {"Zero-shot finding profile", "Nearest reports", "Most similar exams (digital twins)"} <= set(heads)
    assert ("similar", {"study_key": KEYS[2], "embedding": None}) in svc.calls
    assert "Nearest report impression." in _texts(at)
    assert len(at.get("vega_lite_chart")) == 1  # the zero-shot profile chart


def test_scan_page_picks_from_a_phrase_search() -> None:
    at = run_page("scan.py", FakeServices())
    at.text_input(key="scan_find").input("hypertrophy")
    at = at.run()
    assert not at.exception
    assert at.selectbox(key="scan_pick").value == KEYS[0]
    assert any(h.value == "Nearest reports" for h in at.subheader)


def test_scan_page_search_down_is_a_message() -> None:
    at = run_page("scan.py", FakeServices(down_services=("search",)))
    at.text_input(key="scan_key").input(KEYS[1])
    at = at.run()
    assert not at.exception
    assert any("search service is unavailable" in w.value for w in at.warning)


def test_cohort_builder_counts_table_and_csv() -> None:
    svc = FakeServices()
    at = run_page("cohort.py", svc)
    at.text_area(key="co_all").input("dilated left ventricle\nreduced ejection fraction")
    at.text_area(key="co_none").input("hypertrophic cardiomyopathy")
    at.slider(key="co_threshold").set_value(0.6)
    at = _submit(at, "Build cohort")
    assert not at.exception and not at.error
    assert at.metric[0].value == "3"
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 3
    q = svc.calls[-1][1]
    assert q["all_of"] == ["dilated left ventricle", "reduced ejection fraction"]
    assert q["none_of"] == ["hypertrophic cardiomyopathy"] and abs(q["threshold"] - 0.6) < 1e-9
    assert at.session_state["co_csv"][1].startswith(b"study_key,score")


def test_cohort_builder_needs_a_positive_phrase() -> None:
    at = run_page("cohort.py", FakeServices())
    at.text_area(key="co_none").input("normal")
    at = _submit(at, "Build cohort")
    assert not at.exception
    assert "at least one phrase" in at.error[0].value


def test_draft_streams_both_modes_side_by_side_and_is_editable() -> None:
    at = run_page("draft.py", FakeServices())
    at.text_input(key="draft_key").input(KEYS[0])
    at = at.run()
    at = _submit(at, "Draft the impression")
    assert not at.exception and not at.error
    assert at.text_area(key="draft_edit_retrieval").value == "1. retrieval sentence one.\n2. retrieval sentence two."
    assert "target sentence two" in at.text_area(key="draft_edit_target").value
    at.text_area(key="draft_edit_target").input("Edited by the radiologist.")
    at = at.run()
    assert at.text_area(key="draft_edit_target").value == "Edited by the radiologist."


def test_draft_generator_down_says_unavailable() -> None:
    at = run_page("draft.py", FakeServices(down_services=("generator",)))
    at.text_input(key="draft_key").input(KEYS[0])
    at = at.run()
    at = _submit(at, "Draft the impression")
    assert not at.exception
    assert any("generator service is unavailable" in w.value for w in at.warning)


def test_unexpected_failure_is_a_short_notice_not_a_trace() -> None:
    class Broken(FakeServices):
        def search_text(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
            raise RuntimeError("boom at line 12 of something.py")

    at = run_page("text_search.py", Broken())
    at.text_input(key="ts_phrase").input("x")
    at = _submit(at, "Search")
    assert not at.exception
    assert "Something went wrong" in at.error[0].value and "boom" not in at.error[0].value
