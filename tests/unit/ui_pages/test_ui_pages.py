"""Every UI page under Streamlit's AppTest with a fake service layer: what the page shows for results, for bad
input and when a service is down (a message, never an exception on the page)."""

from __future__ import annotations

from ui_fakes import (
    KEYS, NO_HEIGHT, SEG_VERSION, FakeSearchClient, FakeSegmenter, FakeServices, FolderPreviews, GifPreviews,
    measured, real_services, run_page, zip_bytes,
)


def _texts(at) -> str:  # noqa: ANN001
    parts = [m.value for m in at.markdown] + [t.value for t in at.text] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts).replace("\u00a0", " ")  # the panel keeps numbers with their units


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
    assert len(at.get("vega_lite_chart")) == 2  # the zero-shot profile chart and the volume curve


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


# --- measurements ------------------------------------------------------------------------------------------
def _scan_indexed(svc: FakeServices, previews: object | None = None, segmenter: object | None = None):  # noqa: ANN202
    at = run_page("scan.py", svc, previews, segmenter=segmenter, timeout=90)
    at.text_input(key="scan_key").input(KEYS[0])
    return at.run()


def test_scan_page_shows_the_measurement_panel_of_an_indexed_exam() -> None:
    at = _scan_indexed(FakeServices())
    assert not at.exception and not at.error
    assert "Measurements" in [h.value for h in at.subheader]
    body = _texts(at)
    for text in ("| **LVEF** | 55 % |", "| **LVEDV** | 150 ml | 86 ml/m² |", "| **LVESV** | 68 ml | 39 ml/m² |",
                 "| **LV mass** | 121 g | 70 g/m² |", "| **RVEF** | 50 % |",
                 "Indexed to the body surface area, BSA 1.74 m²",
                 "quality ok", f"segmenter `{SEG_VERSION}` · measured at ingestion"):
        assert text in body, text
    assert len(at.get("vega_lite_chart")) == 2  # the profile and the volume curve (ED/ES marked)
    # no study on this host: no contours, said so; the numbers stay
    assert "No contours: the study's images are not on this host. The numbers come from the services." in body
    # the twins' cards: LVEF when measured, else why not
    assert "**LVEF 28 % · LVEDV 260 ml · LV mass 180 g (quality: check)**" in body
    assert "not measured" in [c.value for c in at.caption]


def test_scan_page_quality_check_and_absent_values_have_reasons() -> None:
    at = _scan_indexed(FakeServices(me=1))
    assert not at.exception
    body = _texts(at)
    assert "| **RVEF** | not measured: no right ventricle found in the short-axis stack |" in body
    assert f"Indexed values not measured: {NO_HEIGHT}." in body
    assert ":orange-badge[quality check]" in body
    assert "• right ventricle not found" in body and "• low segmentation confidence (0.62)" in body


def test_scan_page_of_an_unmeasurable_exam() -> None:
    at = _scan_indexed(FakeServices(me=2))
    assert not at.exception and not at.error
    body = _texts(at)
    assert "Not measured: no short-axis cine stack in the study" in body and ":red-badge[quality failed]" in body


def test_scan_page_contours_over_the_cine_loop_with_a_slice_selector(synth_study) -> None:  # noqa: ANN001
    seg = FakeSegmenter(version="contours-test@1")
    at = _scan_indexed(FakeServices(), FolderPreviews(synth_study), seg)
    assert not at.exception and not at.error
    body = _texts(at)
    assert "Contours over the cine loop" in body
    assert "LV endocardium (cavity)" in body and "LV epicardium (myocardium)" in body
    assert "RV endocardium (cavity)" in body
    slider = next(s for s in at.slider if s.key and s.key.startswith("scan_slice_"))
    n = int(slider.max)
    assert n >= 8 and slider.value == n // 2 + 1  # the mid-ventricular slice first
    assert f"slice {n // 2 + 1} of {n} (base → apex), series 7 · mid-ventricular" in body
    assert len(at.get("image")) == 4  # the cine loop, the contours, two twin cards
    # the numbers are the index's; the contours by another segmenter say so
    assert "measured at ingestion" in body and "contours by `contours-test@1`" in body
    slider.set_value(2)
    at = at.run()
    assert not at.exception
    assert f"slice 2 of {n} (base → apex), series 7" in _texts(at)
    at = _scan_indexed(FakeServices(), FolderPreviews(synth_study), seg)  # another session: the cached contours
    assert not at.exception and seg.calls == 1


def test_scan_page_measures_here_when_the_services_sent_nothing(synth_study) -> None:  # noqa: ANN001
    at = _scan_indexed(FakeServices(me=4), FolderPreviews(synth_study), FakeSegmenter(version="local-test@1"))
    assert not at.exception and not at.error
    body = _texts(at)
    assert "| **LVEF** |" in body
    assert "segmenter `local-test@1` · measured in the UI from the images on this host" in body
    assert len(at.get("vega_lite_chart")) == 2  # the curve of the masks computed here (LV and RV)


def test_scan_page_numbers_stay_when_the_contours_fail(synth_study) -> None:  # noqa: ANN001
    seg = FakeSegmenter(version="broken-test@1", fail=RuntimeError("boom at line 3 of unet.py"))
    at = _scan_indexed(FakeServices(), FolderPreviews(synth_study), seg)
    assert not at.exception and not at.error
    body = _texts(at)
    assert "| **LVEF** | 55 % |" in body
    assert "No contours: they could not be computed (RuntimeError; the UI log has the details)." in body
    assert "boom" not in body
    assert not [s for s in at.slider if s.key and s.key.startswith("scan_slice_")]


def test_scan_page_upload_shows_the_encoders_measurements_and_contours(synth_study) -> None:  # noqa: ANN001
    files = {f.relative_to(synth_study).as_posix(): f.read_bytes() for f in sorted(synth_study.rglob("*"))
             if f.is_file()}
    svc = FakeServices(upload_measurements=measured(1))
    seg = FakeSegmenter(version=SEG_VERSION + "-upload")
    at = run_page("scan.py", svc, segmenter=seg, timeout=90)
    at.radio(key="scan_source").set_value("Upload a study (zip of DICOM)")
    at = at.run()
    at.get("file_uploader")[0].set_value(("study.zip", zip_bytes(files), "application/zip"))
    at = at.run()
    assert not at.exception and not at.error
    body = _texts(at)
    assert "| **LVEF** | 28 % |" in body and "measured by the encoder service" in body
    assert "Contours over the cine loop" in body and "LV endocardium (cavity)" in body
    assert seg.calls == 1 and [s for s in at.slider if s.key and s.key.startswith("scan_slice_")]
    assert len(at.get("image")) == 2  # the upload's cine loop and its contours (no twin is on this host)


def test_text_search_hits_show_lvef_and_measurement_filters_reach_the_service() -> None:
    svc = FakeServices()
    at = run_page("text_search.py", svc)
    at.text_input(key="ts_phrase").input("dilated")
    at.number_input(key="ts_lvef_pct_max").set_value(35.0)
    at.text_input(key="ts_where").input("lvedv_ml>=200")
    at = _submit(at, "Search")
    assert not at.exception and not at.error
    body = _texts(at)
    assert "**LVEF 55 % · LVEDV 150 ml · LV mass 121 g**" in body
    assert "LVEF not measured: no short-axis cine stack in the study" in body
    ranges = svc.calls[-1][1]["filters"].ranges()
    assert [(r.measure, r.HasField("min"), r.HasField("max")) for r in ranges] == [("lvef_pct", False, True),
                                                                                   ("lvedv_ml", True, False)]


def test_cohort_measurement_filters_and_columns() -> None:
    svc = FakeServices()
    at = run_page("cohort.py", svc)
    at.text_area(key="co_all").input("dilated left ventricle")
    at.number_input(key="co_lvef_pct_max").set_value(35.0)
    at.number_input(key="co_lvedv_ml_min").set_value(150.0)
    at.text_input(key="co_where").input("rvef_pct<45")
    at = _submit(at, "Build cohort")
    assert not at.exception and not at.error
    f = svc.calls[-1][1]["filters"]
    assert f.measures[0] == ("lvef_pct", None, 35.0) and f.measures[1] == ("lvedv_ml", 150.0, None)
    assert [r.measure for r in f.ranges()] == ["lvef_pct", "lvedv_ml", "rvef_pct"]
    assert any(c.value.startswith("Measurement ranges: LVEF ≤ 35 % · LVEDV ≥ 150 ml · RVEF ≤ 45 %")
               for c in at.caption)
    df = at.dataframe[0].value
    assert list(df["LVEF (%)"][:2]) == [54.7, 28.0] and df["LVEF (%)"].isna().iloc[2]
    assert list(df["LVEDV (ml)"][:2]) == [150.0, 260.0]


def test_cohort_empty_range_is_a_message_not_a_call() -> None:
    svc = FakeServices()
    at = run_page("cohort.py", svc)
    at.text_area(key="co_all").input("dilated left ventricle")
    at.number_input(key="co_lvef_pct_min").set_value(50.0)
    at.number_input(key="co_lvef_pct_max").set_value(30.0)
    at = _submit(at, "Build cohort")
    assert not at.exception
    assert "LVEF range: the minimum 50 is above the maximum 30 %" in at.error[0].value
    assert not [c for c in svc.calls if c[0] == "cohort"]
    at.number_input(key="co_lvef_pct_min").set_value(None)
    at.text_input(key="co_where").input("ejection<35")
    at = _submit(at, "Build cohort")
    assert not at.exception and "Measurement condition: " in at.error[0].value


def test_cohort_service_refusal_names_the_field() -> None:
    server_says = "filter.measurements[0]: measurement range on lvef_pct: min 50 is greater than max 30"
    at = run_page("cohort.py", real_services(FakeSearchClient(refuse=server_says)))
    at.text_area(key="co_all").input("dilated left ventricle")
    at = _submit(at, "Build cohort")
    assert not at.exception
    assert at.error and server_says in at.error[0].value and "Traceback" not in at.error[0].value


def test_cohort_with_the_real_request_building() -> None:
    client = FakeSearchClient()
    at = run_page("cohort.py", real_services(client))
    at.text_area(key="co_any").input("dilated left ventricle")
    at.number_input(key="co_lv_mass_g_min").set_value(100.0)
    at = _submit(at, "Build cohort")
    assert not at.exception and not at.error
    sent = next(kw for name, kw in client.calls if name == "cohort")["where"]
    assert [(r.measure, r.min) for r in sent] == [("lv_mass_g", 100.0)]
    assert at.metric[0].value == "3"


class _ExplainingServices(FakeServices):
    """SearchByStudy with an attention-pooling model: the first twin says why it matched, the second not."""

    def similar(self, *, study_key=None, embedding=None, top_k: int = 8):  # noqa: ANN001, ANN201
        import dataclasses

        exams, reports = super().similar(study_key=study_key, embedding=embedding, top_k=top_k)
        why = (("cine_sax", 0.46), ("lvef_pct", 0.31), ("lge_sax", 0.12), ("exam", 0.11))
        return [dataclasses.replace(exams[0], why=why), *exams[1:]], reports


def test_scan_page_twin_cards_say_why_they_matched() -> None:
    at = run_page("scan.py", _ExplainingServices())
    at.text_input(key="scan_key").input(KEYS[2])
    at = at.run()
    assert not at.exception and not at.error
    lines = [c.value for c in at.caption if str(c.value).startswith("why:")]
    # the top 3 shares; the card without shares has no line
    assert lines == ["why: cine SAX 46 % · LVEF (%) 31 % · LGE SAX 12 %"]


def test_text_search_cards_say_why_they_matched() -> None:
    """The search service's why rows of a text hit (its stored parts . the phrase) reach the card through the
    real request handling, as the twin cards show theirs; a hit without parts has no line."""
    from cmr.v1 import search_pb2

    why = [search_pb2.MatchShare(part=p, kind=k, contribution=c, share=sh) for p, k, c, sh in (
        ("cine_sax", "view", 0.23, 0.46), ("lvef_pct", "measurement", 0.155, 0.31),
        ("lge_sax", "view", 0.06, 0.12), ("exam", "exam", 0.055, 0.11))]
    at = run_page("text_search.py", real_services(FakeSearchClient(why=why)))
    at.text_input(key="ts_phrase").input("dilated left ventricle with reduced ejection fraction")
    at = _submit(at, "Search")
    assert not at.exception and not at.error
    lines = [c.value for c in at.caption if str(c.value).startswith("why:")]
    assert lines == ["why: cine SAX 46 % · LVEF (%) 31 % · LGE SAX 12 %"]
    assert "#5" in _texts(at)  # every hit has its card, with or without a why line


def test_exam_of_a_hit_keeps_its_shares() -> None:
    from cmr.v1 import search_pb2
    from ui.services import Exam

    from ui_fakes import record

    hit = search_pb2.ExamHit(exam=record(0), score=0.8,
                             why=[search_pb2.MatchShare(part="lvef_pct", kind="measurement", contribution=0.5,
                                                        share=0.625)])
    e = Exam.of(hit.exam, hit.score, why=hit.why)
    assert e.why == (("lvef_pct", 0.625),)
    assert Exam.of(hit.exam, hit.score).why == ()
