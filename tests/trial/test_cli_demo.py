"""CLI commands of ``hccstrat trial`` and the demo stage."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from hccstrat.cli.trial import app, demo_stage

runner = CliRunner()


def test_cli_screen_allocate_verify(tmp_path):
    clin = pd.DataFrame({"patient_id": ["a", "b", "c"], "age": [60, 80, 50], "ecog": [0, 0, 1],
                         "histology": ["HCC"] * 3, "mri_date": ["2026-01-01"] * 3,
                         "surgery_date": ["2026-01-20"] * 3,
                         "last_followup_date": ["2026-06-01"] * 3})
    scr = pd.DataFrame({"patient_id": ["a", "b", "c"], "screening_date": ["2026-01-10"] * 3,
                        "consent": ["yes"] * 3, "bclc_stage": ["A"] * 3,
                        "child_pugh_points": [5, 5, 8]})
    clin.to_csv(tmp_path / "c.csv", index=False)
    scr.to_csv(tmp_path / "s.csv", index=False)
    r = runner.invoke(app, ["screen", str(tmp_path / "c.csv"), "--screening",
                            str(tmp_path / "s.csv"), "--as-of", "2026-07-01", "--out",
                            str(tmp_path / "scr")])
    assert r.exit_code == 0, r.output
    counts = json.loads((tmp_path / "scr" / "consort.json").read_text())
    assert counts["assessed"] == 3
    log = pd.read_csv(tmp_path / "scr" / "screening_log.csv")
    assert log.set_index("patient_id").at["b", "decision"] == "not eligible"

    pts = pd.DataFrame({"patient_id": [f"p{i}" for i in range(20)],
                        "centre": ["C1", "C2"] * 10, "risk_group": ["low"] * 10 + ["high"] * 10})
    pts.to_csv(tmp_path / "p.csv", index=False)
    r = runner.invoke(app, ["allocate", str(tmp_path / "p.csv"), "--method", "blocks",
                            "--seed", "7", "--log", str(tmp_path / "l.jsonl"), "--out",
                            str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["allocate", "--verify", str(tmp_path / "l.jsonl"), "--seed", "7"])
    assert r.exit_code == 0 and '"ok": true' in r.output
    r = runner.invoke(app, ["allocate", "--verify", str(tmp_path / "l.jsonl"), "--seed", "8"])
    assert r.exit_code != 0


def test_cli_simulate():
    r = runner.invoke(app, ["simulate", "--n", "200", "--reps", "200"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["sample_size"]["events"] == 247


def test_demo_stage_end_to_end(tmp_path):
    from hccstrat.reports.html import render_report
    from hccstrat.synthetic.cohort import generate_cohort

    cohort = generate_cohort(300, 4, seed=3)
    steps = []
    secs = demo_stage(cohort, tmp_path, seed=3, progress=steps.append)
    assert len(steps) >= 5
    titles = [s.title for s in secs]
    assert any("CONSORT" in t for t in titles) and any("RFS" in t for t in titles)
    consort = secs[0].numbers["consort"]
    assert consort["assessed"] == 300
    assert sum(a["allocated"] for a in consort["arms"].values()) == consort["enrolled"]
    assert (tmp_path / "trial" / "allocation_log.jsonl").exists()
    render_report(tmp_path / "r.html", "trial demo", secs)
    assert "data:image/png;base64" in (tmp_path / "r.html").read_text()


def test_cli_schedule_ae_analyse(tmp_path):
    from hccstrat.synthetic.cohort import generate_cohort

    pts = pd.DataFrame({"patient_id": ["a", "b"], "surgery_date": ["2024-01-01", "2024-02-01"],
                        "height_cm": [170, 160], "weight_kg": [70, 55]})
    pts.to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"patient_id": ["a"], "visit_date": ["2024-04-02"]}).to_csv(
        tmp_path / "v.csv", index=False)
    r = runner.invoke(app, ["schedule", str(tmp_path / "p.csv"), "--visits",
                            str(tmp_path / "v.csv"), "--as-of", "2024-12-31", "--out",
                            str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    fu = pd.read_csv(tmp_path / "s" / "followup_status.csv").set_index("patient_id")
    assert fu.at["b", "status"] == "lost_to_followup" and fu.at["a", "n_done"] == 1
    assert pd.read_csv(tmp_path / "s" / "neoadjuvant_doses.csv")["lenvatinib_mg_day"].tolist() \
        == [12, 8]

    ae = pd.DataFrame({"patient_id": ["a", "b"], "term": ["Hypertension", "Colitis"],
                       "grade": [3, 4], "onset_date": ["2024-01-05", "2024-02-10"],
                       "awareness_date": ["2024-01-05", "2024-02-10"],
                       "report_date": [None, "2024-02-13"]})
    ae.to_csv(tmp_path / "ae.csv", index=False)
    pd.DataFrame({"patient_id": ["a", "b"], "arm": ["X", "Y"]}).to_csv(tmp_path / "arms.csv",
                                                                       index=False)
    r = runner.invoke(app, ["ae", str(tmp_path / "ae.csv"), "--arms", str(tmp_path / "arms.csv"),
                            "--as-of", "2024-03-01", "--out", str(tmp_path / "ae")])
    assert r.exit_code == 0, r.output
    assert "overdue reports: 1" in r.output

    cohort = generate_cohort(200, 3, seed=5)
    df = cohort.clinical.assign(arm=["A", "B"] * 100)
    df.to_csv(tmp_path / "o.csv", index=False)
    r = runner.invoke(app, ["analyse", str(tmp_path / "o.csv"), "--experimental", "B",
                            "--strata", "centre", "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").exists() and '"endpoint": "OS"' in r.output


def test_cli_bad_dates_are_usage_errors(tmp_path, capsys):
    from hccstrat.cli import main

    pd.DataFrame({"patient_id": ["a"], "age": [60]}).to_csv(tmp_path / "c.csv", index=False)
    # before: 'internal error: DateParseError' (exit 70)
    assert main(["trial", "screen", str(tmp_path / "c.csv"), "--as-of", "13.13.2026",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--as-of '13.13.2026' is not a date" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    # an ambiguous day/month order is refused, not guessed (was read as 13 January)
    assert main(["trial", "screen", str(tmp_path / "c.csv"), "--as-of", "01/13/2026",
                 "--out", str(tmp_path / "s")]) == 2
    assert "give it as YYYY-MM-DD" in capsys.readouterr().err
