"""The teaching app without a browser: what the page is sent (b12pk.app.compute), the
lessons, the server's rules (Starlette's test client) and the command line.

Needs the [app] extra (in [test]); skipped with the reason where it is missing.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the app needs b12pk[app] (starlette, uvicorn, plotly)")
pytest.importorskip("uvicorn", reason="the app needs b12pk[app]")
pytest.importorskip("plotly", reason="the app needs b12pk[app]")

import b12pk  # noqa: E402
from b12pk.app.compute import curves_csv, figure_bytes, view  # noqa: E402
from b12pk.app.lessons import lessons  # noqa: E402
from b12pk.app.server import bind, create_app, is_loopback  # noqa: E402
from b12pk.errors import InputError, OutputError  # noqa: E402

SEEDS = Path(b12pk.__file__).resolve().parents[2] / "shared" / "seeds"
ORAL, IM = "1000 mcg cyanocobalamin oral daily", "1000 mcg hydroxocobalamin IM monthly"
PA = {"preset": "pernicious-anaemia", "baseline_serum_pmol_per_l": 110}


@pytest.fixture(scope="module")
def two():
    """The view of an oral and an injected regimen (slots A and C; B empty)."""
    return view({"patient": PA, "regimens": [ORAL, "", IM], "days": 120})


# ---------------------------------------------------------------------------------------
# The view
# ---------------------------------------------------------------------------------------
def test_view_has_one_series_per_regimen_in_its_slot(two):
    assert [s["slot"] for s in two["series"]] == [0, 2]
    assert [s["label"] for s in two["series"]] == [f"A: {ORAL}", f"C: {IM}"]


def test_view_curves_are_simulate_at_the_same_times(two):
    s = two["series"][1]
    patient = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
    df = b12pk.simulate(IM, patient, 120, times=s["time_days"])
    assert s["serum_pmol_per_l"] == pytest.approx(df["serum_pmol_per_l"].tolist(), abs=0.06)
    assert s["stores_ug"] == pytest.approx(df["stores_ug"].tolist(), abs=0.06)


def test_view_shows_the_hours_after_each_injection(two):
    oral, im = two["series"]
    assert len(oral["time_days"]) == 121
    assert len(im["time_days"]) > 121 + 3 * 48


def test_view_table_has_a_row_per_regimen_like_the_report(two):
    table = two["table"]
    assert [r[0] for r in table["rows"]] == [s["label"] for s in two["series"]]
    assert "lost in urine (% of B12 given)" in table["columns"]


def test_under_a_year_the_table_counts_the_horizon_not_a_year(two):
    """120 days: counts over those days; the last 90 days' trough is not called steady."""
    cols = two["table"]["columns"]
    assert "injections (in 120 days)" in cols and "injections per year" not in cols
    assert "lowest serum, last 90 days (pmol/L)" in cols
    im = two["table"]["rows"][1]
    assert im[cols.index("injections (in 120 days)")] == "4"   # days 0, 30, 60, 90


def test_from_a_year_the_table_is_the_reports():
    v = view({"patient": PA, "regimens": [IM], "days": 365})
    assert "steady-state trough (pmol/L)" in v["table"]["columns"]
    assert "injections per year" in v["table"]["columns"]


def test_view_reads_the_table_in_plain_words(two):
    assert two["reading"] and "trough" in two["reading"][0]


def test_view_carries_the_disclaimer_and_bands(two):
    assert two["disclaimer"] == b12pk.DISCLAIMER
    assert [b[0] for b in two["bands"]["serum_pmol_per_l"]] == ["deficient", "indeterminate",
                                                                "unlikely"]


def test_view_is_json(two):
    assert json.loads(json.dumps(two))["series"][0]["label"] == f"A: {ORAL}"


def test_bad_regimen_gets_its_own_error_and_the_others_still_run():
    v = view({"patient": PA, "regimens": [ORAL, "1000 mcg cyanocobalamin IM monhtly"],
              "days": 60})
    assert [s["slot"] for s in v["series"]] == [0]
    assert v["errors"]["regimens"][0] is None
    assert "monhtly" in v["errors"]["regimens"][1] and "monthly" in v["errors"]["regimens"][1]
    assert "\n" not in v["errors"]["regimens"][1]


@pytest.mark.parametrize("patient, words", [
    ({"preset": "nobody"}, "unknown"),
    ({"preset": "healthy", "egfr_ml_min": "-5"}, "egfr"),
    ({"preset": "healthy", "intrinsic_factor": "lots"}, "number"),
    ({"preset": "healthy", "baseline_serum_pmol_per_l": "nan"}, "finite"),
    ("healthy", "object"),
])
def test_bad_patient_is_reported_not_simulated(patient, words):
    v = view({"patient": patient, "regimens": [ORAL], "days": 30})
    assert words in v["errors"]["patient"].lower()
    assert v["series"] == [] and v["table"] is None


@pytest.mark.parametrize("days", [0, 3, 1e9, "soon", float("inf")])
def test_bad_horizon_is_reported(days):
    v = view({"patient": PA, "regimens": [ORAL], "days": days})
    assert v["errors"]["days"] and v["series"] == []


@pytest.mark.parametrize("regimens", [["a"] * 5, "1000 mcg daily", [1000]])
def test_bad_regimen_list_is_reported(regimens):
    v = view({"patient": PA, "regimens": regimens, "days": 30})
    assert v["errors"]["state"] and v["series"] == []


@pytest.mark.parametrize("state", [None, [], "text", 3])
def test_a_state_that_is_not_an_object_is_reported(state):
    assert view(state)["errors"]["state"]


def test_ten_years_is_a_horizon_the_page_offers():
    v = view({"patient": PA, "regimens": [ORAL], "days": 3650})
    assert v["errors"]["days"] is None and v["series"][0]["time_days"][-1] == 3650


def test_a_regimen_that_would_keep_the_page_waiting_is_refused_in_one_line():
    v = view({"patient": PA, "regimens": ["1000 mcg cyanocobalamin IM daily", ORAL],
              "days": 1826, "uncertainty": True})
    assert "too much for the page" in v["errors"]["regimens"][0]
    assert "band off" in v["errors"]["regimens"][0]
    assert [s["slot"] for s in v["series"]] == [1]


def test_a_dose_range_is_explained_in_the_pages_words():
    v = view({"patient": PA, "regimens": ["500-1000 mcg cyanocobalamin oral daily"], "days": 30})
    msg = v["errors"]["regimens"][0]
    assert "range" in msg and "another box" in msg and "regimen_variants" not in msg


def test_a_patient_who_cannot_start_there_is_a_patient_error_not_a_regimen_error():
    v = view({"patient": {"preset": "healthy", "baseline_serum_pmol_per_l": 50},
              "regimens": [ORAL, IM], "days": 30})
    assert "baseline serum 50" in v["errors"]["patient"]
    assert not any(v["errors"]["regimens"]) and v["series"] == []


def test_regimen_over_the_dose_limits_is_a_slot_error_not_a_crash():
    v = view({"patient": PA, "regimens": ["1000 mcg cyanocobalamin IM every 0.001 days"],
              "days": 3650})
    assert v["errors"]["regimens"][0] and v["series"] == []


def test_empty_slots_give_an_empty_view():
    v = view({"patient": PA, "regimens": ["", "  "], "days": 30})
    assert v["series"] == [] and v["table"] is None
    assert not any(v["errors"]["regimens"])


def test_uncertainty_adds_a_band_around_the_curve():
    v = view({"patient": PA, "regimens": [ORAL], "days": 30, "uncertainty": True})
    s = v["series"][0]
    assert v["uncertainty"]["draws"] == 20
    low, mid, high = s["serum_pmol_per_l_p5"], s["serum_pmol_per_l"], s["serum_pmol_per_l_p95"]
    assert all(lo <= m + 0.1 and m <= hi + 0.1 for lo, m, hi in zip(low, mid, high))
    assert any(hi > lo for lo, hi in zip(low, high))


def test_same_state_same_view():
    state = {"patient": PA, "regimens": [IM], "days": 45}
    a, b = view(state), view(state)
    assert a["series"] == b["series"] and a["table"] == b["table"]


# ---------------------------------------------------------------------------------------
# Downloads hold what the page shows
# ---------------------------------------------------------------------------------------
def test_csv_holds_exactly_the_curves_of_the_view(two):
    import pandas as pd

    text = curves_csv(two)
    assert text.startswith("# " + b12pk.DISCLAIMER)
    df = pd.read_csv(io.StringIO(text), comment="#")
    for s in two["series"]:
        part = df[df["regimen"] == s["label"]]
        assert part["time_days"].tolist() == s["time_days"]
        assert part["serum_pmol_per_l"].tolist() == s["serum_pmol_per_l"]
        assert part["mma_nmol_per_l"].tolist() == s["mma_nmol_per_l"]


def test_csv_holds_the_band_of_every_curve():
    import pandas as pd

    v = view({"patient": PA, "regimens": [ORAL], "days": 20, "uncertainty": True})
    df = pd.read_csv(io.StringIO(curves_csv(v)), comment="#")
    for column in ("serum_pmol_per_l", "holotc_pmol_per_l", "stores_ug", "mma_nmol_per_l"):
        assert df[f"{column}_p5"].tolist() == v["series"][0][f"{column}_p5"]
        assert df[f"{column}_p95"].tolist() == v["series"][0][f"{column}_p95"]


def test_csv_says_which_patient_and_horizon(two):
    head = curves_csv(two).splitlines()[:3]
    assert "pernicious-anaemia" in head[1] and "110 pmol/L" in head[1]
    assert head[2] == "# horizon: 120 days"


def test_svg_figure_names_every_regimen_as_text(two):
    svg = figure_bytes(two, "svg").decode("utf-8")
    for s in two["series"]:
        assert s["label"] in svg
    assert "not medical" in svg


def test_png_figure_is_a_png(two):
    assert figure_bytes(two, "png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_to_download_is_an_error():
    empty = view({"patient": PA, "regimens": [], "days": 30})
    with pytest.raises(InputError):
        curves_csv(empty)
    with pytest.raises(InputError):
        figure_bytes(empty, "png")
    with pytest.raises(InputError):
        figure_bytes(empty, "pdf")


# ---------------------------------------------------------------------------------------
# Lessons
# ---------------------------------------------------------------------------------------
def test_there_are_the_five_lessons_the_issue_asks_for():
    ids = [lesson.id for lesson in lessons()]
    assert ids == ["oral-vs-im-pa", "small-injections", "interval", "forms", "ileal-resection"]


@pytest.mark.parametrize("lesson", lessons(), ids=lambda x: x.id)
def test_every_lesson_runs_without_an_error(lesson):
    v = view({"patient": lesson.patient, "regimens": list(lesson.regimens),
              "days": lesson.days})
    assert v["errors"]["patient"] is None and not any(v["errors"]["regimens"])
    assert len(v["series"]) == len(lesson.regimens)


@pytest.mark.parametrize("lesson", lessons(), ids=lambda x: x.id)
def test_lesson_texts_are_filled_and_name_titles_not_files(lesson):
    for text in (lesson.text, lesson.look):
        assert "{" not in text and "}" not in text
    for source in lesson.sources:
        assert not re.search(r"\d{3}_[0-9a-f]{16}", source.article)


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed documents not found at {SEEDS}")
def test_lesson_quotes_are_in_their_articles_word_for_word():
    import tomllib

    from b12pk._data import data_path

    doc = tomllib.loads(data_path("lessons.toml").read_text(encoding="utf-8"))
    for entry in doc["lesson"]:
        for src in entry["source"]:
            seed = " ".join((SEEDS / src["article"]).read_text(encoding="utf-8").split())
            assert " ".join(src["quote"].split()) in seed, (entry["id"], src["quote"])


def test_small_injection_lesson_shows_what_its_text_says():
    """'The fraction lost is larger for 1000 µg than for 100 µg, but the amount kept is
    larger too' (data/lessons.toml): the model must show both."""
    lesson = next(x for x in lessons() if x.id == "small-injections")
    v = view({"patient": lesson.patient, "regimens": list(lesson.regimens), "days": lesson.days})
    cols = v["table"]["columns"]
    urine = [float(r[cols.index("lost in urine (% of B12 given)")]) for r in v["table"]["rows"]]
    stores = [s["stores_ug"][-1] for s in v["series"]]
    assert urine[0] < urine[1] and stores[0] < stores[1]


def test_lesson_with_an_unknown_parameter_is_refused(monkeypatch, tmp_path):
    from b12pk.app import lessons as mod
    from b12pk.errors import FileFormatError

    with pytest.raises(FileFormatError, match="unknown parameter"):
        mod._fill("about {no_such_parameter_pct} %", "lesson 'x'")


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    from starlette.testclient import TestClient

    return TestClient(create_app(), base_url="http://127.0.0.1:8000")


def test_page_carries_the_disclaimer_and_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and b12pk.DISCLAIMER in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert "http" not in re.sub(r"http-equiv", "", csp)


def test_page_loads_nothing_from_elsewhere(client):
    page = client.get("/").text
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    for name in ("app.js", "app.css"):
        assert "https://" not in client.get(f"/static/{name}").text


def test_plotly_is_served_locally(client):
    r = client.get("/static/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000


def test_unknown_static_file_is_not_found(client):
    assert client.get("/static/../server.py").status_code == 404
    assert client.get("/static/secret.txt").status_code == 404


def test_meta_lists_presets_lessons_and_examples(client):
    m = client.get("/api/meta").json()
    assert "pernicious-anaemia" in [p["name"] for p in m["presets"]]
    assert len(m["lessons"]) == 5 and ORAL in m["examples"]


def test_api_view_answers_the_view(client):
    r = client.post("/api/view", json={"patient": PA, "regimens": [ORAL], "days": 30})
    assert r.status_code == 200 and r.json()["series"][0]["label"] == f"A: {ORAL}"


def test_api_refuses_what_is_not_json(client):
    r = client.post("/api/view", content=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def test_api_refuses_a_huge_request(client):
    r = client.post("/api/view", content=b"x" * 100_000,
                    headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_api_refuses_a_plain_form_post_from_another_site(client):
    """A page elsewhere can send text/plain without asking; JSON needs a preflight that
    this server never grants."""
    r = client.post("/api/view", content=json.dumps({"regimens": [ORAL]}),
                    headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]


@pytest.mark.parametrize("body", [b"[" * 30_000 + b"]" * 30_000, b'{"days": 1' + b"0" * 500 + b"}",
                                  b'{"patient": {"preset": "healthy", "egfr_ml_min": 1'
                                  + b"0" * 400 + b"}}"])
def test_api_answers_hostile_json_without_crashing(client, body):
    r = client.post("/api/view", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (200, 400)
    assert r.status_code == 400 or any(r.json()["errors"].values())


def test_download_routes_give_files(client):
    state = {"patient": PA, "regimens": [ORAL], "days": 30}
    r = client.post("/download/curves.csv", json=state)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert client.post("/download/figure.svg", json=state).content.startswith(b"<?xml")
    assert client.post("/download/report.exe", json=state).status_code == 404
    assert client.post("/download/curves.csv", json={"regimens": []}).status_code == 400


def test_other_host_names_are_refused_on_loopback(client):
    """A page on another site that resolves its name to 127.0.0.1 (DNS rebinding) gets
    nothing."""
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("localhost", True),
                                        ("::1", True), ("0.0.0.0", False),
                                        ("192.168.1.4", False), ("example.org", False)])
def test_loopback_hosts(host, loop):
    assert is_loopback(host) is loop


def test_a_port_in_use_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OutputError, match=f"port {port} .* in use"):
            bind("127.0.0.1", port)


@pytest.mark.parametrize("port", [-1, 70000, 1.5, True])
def test_a_bad_port_is_refused(port):
    with pytest.raises(InputError):
        bind("127.0.0.1", port)


# ---------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "b12pk.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_port_in_use_is_one_line_and_non_zero():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = _cli("app", "--no-browser", "--port", str(taken.getsockname()[1]))
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "in use" in r.stderr


def test_cli_bad_port_is_a_usage_error():
    r = _cli("app", "--port", "99999")
    assert r.returncode == 2 and "99999" in r.stderr


def test_cli_unknown_host_is_one_line():
    r = _cli("app", "--no-browser", "--host", "no-such-host.invalid")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("b12pk: warning: serving on no-such-host.invalid")
    assert lines[-1].startswith("b12pk: error:") and len(lines) == 2


def test_missing_extra_is_named(monkeypatch):
    from b12pk.app import server

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(server.AppUnavailableError, match=r"pip install 'b12pk\[app\]'"):
        server.create_app()


def _started(proc: subprocess.Popen) -> str:
    """The URL the app announces on stderr (the first line)."""
    line = proc.stderr.readline()
    while line.startswith("b12pk: warning"):
        line = proc.stderr.readline()
    found = re.search(r"serving on (http://\S+)", line)
    assert found, line
    return found.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_cli_serves_the_page_and_stops_cleanly(signum):
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "b12pk.cli", "app", "--no-browser"],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = _started(proc)
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200 and b12pk.DISCLAIMER in r.read().decode("utf-8")
        proc.send_signal(getattr(signal, signum))
        err = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert err.strip() == f"b12pk app: stopped ({signum})"


@pytest.mark.slow
def test_cli_warns_when_serving_beyond_this_computer():
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "b12pk.cli", "app", "--no-browser",
                             "--host", "0.0.0.0"], stderr=subprocess.PIPE, text=True)
    try:
        warning = proc.stderr.readline()
        url = _started(proc)
        with urllib.request.urlopen(url.replace("0.0.0.0", "127.0.0.1"), timeout=30) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert warning.startswith("b12pk: warning: serving on 0.0.0.0") and "network" in warning


def test_what_the_model_warns_of_is_shown_not_lost():
    v = view({"patient": {"preset": "healthy", "baseline_serum_pmol_per_l": 900},
              "regimens": ["1000 mcg cyanocobalamin IV once"], "days": 30})
    said = " ".join(v["series"][0]["warnings"])
    assert "intravenous" in said and "storage capacity" in said


def _troughs(lesson_id: str, **patient) -> list[float]:
    lesson = next(x for x in lessons() if x.id == lesson_id)
    v = view({"patient": {**lesson.patient, **patient}, "regimens": list(lesson.regimens),
              "days": lesson.days})
    col = v["table"]["columns"].index("steady-state trough (pmol/L)")
    return [float(r[col].replace(",", "")) for r in v["table"]["rows"]]


def test_interval_lesson_shows_what_its_text_says():
    """Monthly troughs above the 2- and 3-monthly ones, which come out close; the baseline
    hardly matters after the loading course (data/lessons.toml, lesson 'interval')."""
    monthly, two, three = _troughs("interval")
    assert monthly > two >= three
    assert two - three < 0.25 * (monthly - two)
    assert _troughs("interval", baseline_serum_pmol_per_l=250) == \
        pytest.approx([monthly, two, three], rel=0.05)


def test_ileal_lesson_shows_what_its_text_says():
    """At 20 cm or less every trough rises, the low oral dose most, the injected one too."""
    at60 = _troughs("ileal-resection")
    at20 = _troughs("ileal-resection", ileal_resection_cm=20)
    assert all(b > a for a, b in zip(at60, at20))
    gains = [b / a for a, b in zip(at60, at20)]
    assert gains[2] == max(gains)


def test_page_draws_curves_and_bands_as_the_downloaded_figure_does(client):
    from b12pk.plot.figures import band_fill, curve_style

    m = client.get("/api/meta").json()
    assert [s["color"] for s in m["styles"]] == [curve_style(i)["color"] for i in range(4)]
    assert m["styles"][0]["dash"] == "solid"
    colour, alpha = band_fill("deficient")
    r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
    assert m["band_fills"]["deficient"] == f"rgba({r}, {g}, {b}, {alpha:g})"
