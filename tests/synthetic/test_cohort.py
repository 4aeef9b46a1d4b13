"""Tests of the synthetic cohort generator (hccstrat.synthetic.cohort)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from hccstrat.exceptions import ConfigError, InputFileError
from hccstrat.schema import canonical_columns, validate
from hccstrat.survival import endpoint, is_aggressive, months_between
from hccstrat.synthetic.cohort import (
    ARMS,
    SyntheticCohort,
    generate_cohort,
    neoadjuvant_policy,
    simulate_outcomes,
)

LATENT_NAMES = [
    "aggressiveness", "immune_phenotype", "lymphocyte_density", "margin_lymphocyte_density",
    "stroma_fraction", "necrosis_fraction", "vascular_invasion", "macrotrabecular",
    "mri_arterial_enhancement", "mri_rim", "mri_washout", "mri_capsule",
    "mri_margin_irregularity", "mri_peritumoral", "tumour_size_cm", "tumour_number",
]


@pytest.fixture(scope="module")
def cohort() -> SyntheticCohort:
    return generate_cohort(4000, 8, seed=0)


def km_at(y: np.ndarray, t: float) -> float:
    """Kaplan-Meier survival at t (independent of the module's own helper)."""
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(y["time"], y["event"])
    return float(kmf.survival_function_at_times(t).iloc[0])


def albi(c: pd.DataFrame) -> pd.Series:
    return np.log10(c["bilirubin_umol_l"]) * 0.66 - 0.085 * c["albumin_g_l"]


def child_pugh(c: pd.DataFrame) -> np.ndarray:
    bili, alb, inr = c["bilirubin_umol_l"], c["albumin_g_l"], c["inr"]
    pts = np.select([bili < 34, bili <= 50], [1, 2], 3)
    pts += np.select([alb > 35, alb >= 28], [1, 2], 3)
    pts += np.select([inr < 1.7, inr <= 2.3], [1, 2], 3)
    pts += c["ascites"].cat.codes.to_numpy() + 1
    return pts + c["encephalopathy"].cat.codes.to_numpy() + 1


def marginals(co: SyntheticCohort) -> dict[str, float]:
    c = co.clinical
    west = c["centre"].str.startswith("W").to_numpy(bool)
    rfs_rec = endpoint(c, "recurrence")
    rec = c[c["recurrence"].astype(bool)]
    gap = (c["surgery_date"] - c["mri_date"]).dt.days
    return {
        "median age (Chinese)": c.loc[~west, "age"].median(),
        "median age (Western)": c.loc[west, "age"].median(),
        "male": (c["sex"] == "M").mean(),
        "HBV (Chinese)": (c.loc[~west, "aetiology"] == "HBV").mean(),
        "HBV (Western)": (c.loc[west, "aetiology"] == "HBV").mean(),
        "cirrhosis": c["cirrhosis"].mean(),
        "median AFP": c["afp_ng_ml"].median(),
        "AFP >= 400": c["afp_ge_400"].mean(),
        "median size": c["tumour_size_cm"].median(),
        "BCLC 0": ((c["tumour_number"] == 1) & (c["tumour_size_cm"] <= 2)).mean(),
        "multiple": c["tumour_multiple"].mean(),
        "MVI": c["mvi"].mean(),
        "satellite": c["satellite_nodules"].mean(),
        "Edmondson III-IV": (c["edmondson_grade"] >= 3).mean(),
        "complete capsule": (c["capsule_pathology"] == "complete").mean(),
        "Child-Pugh A": (child_pugh(c) <= 6).mean(),
        "ALBI grade 1": (albi(c) <= -2.60).mean(),
        "ECOG 0": (c["ecog"] == 0).mean(),
        "non-HCC histology": (c["histology"] != "HCC").mean(),
        "R1": (c["margin_status"] == "R1").mean(),
        "MRI <= 30 days": (gap <= 30).mean(),
        "recurrence 24 mo": 1 - km_at(rfs_rec, 24),
        "recurrence 60 mo": 1 - km_at(rfs_rec, 60),
        "OS 60 mo": km_at(endpoint(c, "os"), 60),
        "extrahepatic share": rec["recurrence_site"].isin(["extrahepatic", "both"]).mean(),
    }


# DOMAIN.md ranges ("Patients undergoing resection"); a few widened by the sampling
# error of 4,000 patients, or where DOMAIN gives one figure ("about 95 %")
RANGES = {
    "median age (Chinese)": (52, 58),
    "median age (Western)": (62, 68),
    "male": (0.80, 0.88),
    "HBV (Chinese)": (0.70, 0.85),
    "HBV (Western)": (0.0, 0.30),
    "cirrhosis": (0.50, 0.70),
    "median AFP": (20, 60),
    "AFP >= 400": (0.25, 0.35),
    "median size": (4.0, 5.0),
    "BCLC 0": (0.10, 0.15),
    "multiple": (0.10, 0.20),
    "MVI": (0.30, 0.45),
    "satellite": (0.15, 0.25),
    "Edmondson III-IV": (0.30, 0.50),
    "complete capsule": (0.50, 0.60),
    "Child-Pugh A": (0.93, 0.97),
    "ALBI grade 1": (0.60, 0.70),
    "ECOG 0": (0.85, 0.97),
    "non-HCC histology": (0.01, 0.04),
    "R1": (0.02, 0.10),
    "MRI <= 30 days": (0.85, 1.0),
    "recurrence 24 mo": (0.30, 0.40),
    "recurrence 60 mo": (0.50, 0.70),
    "OS 60 mo": (0.60, 0.70),
    "extrahepatic share": (0.10, 0.15),
}


def test_marginals_within_domain_ranges(cohort):
    got = marginals(cohort)
    outside = {
        k: (round(float(v), 3), RANGES[k])
        for k, v in got.items()
        if not RANGES[k][0] <= v <= RANGES[k][1]
    }
    assert not outside, f"outside DOMAIN.md ranges: {outside}"


def test_clinical_is_canonical_and_valid(cohort):
    c = cohort.clinical
    assert set(c.columns) <= set(canonical_columns())
    for col in ("surgery_date", "mri_date", "recurrence_date", "death_date", "last_followup_date"):
        assert pd.api.types.is_datetime64_any_dtype(c[col]), col
    _, report = validate(c)
    assert len(report) == 0, report.format(10)
    gap = (c["surgery_date"] - c["mri_date"]).dt.days
    assert gap.between(0, 45).all()
    surgery = c["surgery_date"]
    assert surgery.min() >= pd.Timestamp("2018-01-01")
    assert surgery.max() < pd.Timestamp("2022-01-01")
    assert (c["neoadjuvant"] == "none").all()
    assert c["neoadjuvant_response"].isna().all()
    assert (c["adjuvant_start_date"].notna() <= (c["adjuvant"] != "surgery_alone")).all()


def test_latent_and_oracle_tables(cohort):
    lat, orc = cohort.latent, cohort.oracle
    assert set(LATENT_NAMES) <= set(lat.columns)
    assert list(lat["patient_id"]) == list(cohort.clinical["patient_id"])
    # latents stay out of the model inputs; size and number are also clinical columns, and
    # the clinical mri_washout / mri_capsule are the radiologist's yes/no reads of the
    # continuous latent traces of the same name
    shared = set(LATENT_NAMES) & set(cohort.clinical.columns)
    assert shared == {"tumour_size_cm", "tumour_number", "mri_washout", "mri_capsule"}
    for col in ("mri_washout", "mri_capsule"):
        read = cohort.clinical[col].astype(bool).to_numpy()
        assert lat.loc[read, col].mean() > lat.loc[~read, col].mean() + 0.3
    for col in ("lymphocyte_density", "margin_lymphocyte_density", "stroma_fraction",
                "necrosis_fraction", "mri_rim", "mri_washout", "mri_capsule",
                "mri_margin_irregularity", "mri_peritumoral"):
        assert lat[col].between(0, 1).all(), col
    assert set(lat["immune_phenotype"].astype(str)) == {"inflamed", "excluded", "desert"}
    assert abs(lat["aggressiveness"].mean()) < 0.15 and 0.9 < lat["aggressiveness"].std() < 1.15
    enh = lat["mri_arterial_enhancement"][cohort.clinical["histology"] == "HCC"]
    assert 0.8 <= enh.median() <= 1.5  # HCC +80-150 % arterial enhancement (DOMAIN.md)
    assert (lat["vascular_invasion"] == cohort.clinical["mvi"]).mean() > 0.9
    for arm in ARMS:
        for prefix in ("true_rfs24_", "true_rmst24_", "propensity_"):
            assert f"{prefix}{arm}" in orc.columns
    assert orc.filter(like="true_rfs24").stack().between(0, 1).all()
    assert orc.filter(like="true_rmst24").stack().between(0, 24).all()
    assert orc["true_p_aggressive24"].between(0, 1).all()
    props = orc[[f"propensity_{a}" for a in ARMS]].sum(axis=1)
    np.testing.assert_allclose(props, 1.0)
    best = orc[[f"true_rfs24_{a}" for a in ARMS]].to_numpy().argmax(axis=1)
    assert (orc["true_best_arm"] == np.array(ARMS)[best]).all()


def test_centres_table(cohort):
    ce = cohort.centres
    assert len(ce) == 8 and ce["centre"].is_unique
    assert set(ce["scanner_vendor"]) <= {"GE", "Siemens", "Philips", "UIH"}
    assert "UIH" in set(ce["scanner_vendor"])
    assert (ce.loc[ce["scanner_vendor"] == "UIH", "series_language"] == "zh").all()
    assert ce["western"].sum() == 2
    assert ce["weight"].sum() == pytest.approx(1.0)
    assert set(cohort.clinical["centre"]) <= set(ce["centre"])
    # stain vectors are unit optical-density vectors near Ruifrok & Johnston's
    h = ce[["stain_h_r", "stain_h_g", "stain_h_b"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(h, axis=1), 1.0)
    assert (h @ np.array([0.65, 0.70, 0.29]) / np.linalg.norm([0.65, 0.70, 0.29]) > 0.98).all()


def test_deterministic_per_seed():
    a = generate_cohort(300, 4, seed=7)
    b = generate_cohort(300, 4, seed=7)
    c = generate_cohort(300, 4, seed=8)
    for name in ("clinical", "latent", "oracle", "centres"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.config == b.config
    assert not a.latent["aggressiveness"].equals(c.latent["aggressiveness"])
    assert not a.clinical["afp_ng_ml"].equals(c.clinical["afp_ng_ml"])


def _clinical_design(c: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": c["age"],
            "male": (c["sex"] == "M").astype(float),
            "log_afp": np.log(c["afp_ng_ml"]),
            "size": c["tumour_size_cm"],
            "number": c["tumour_number"].astype(float),
            "albi": albi(c),
            "cirrhosis": c["cirrhosis"].astype(float),
            "mvi": c["mvi"].astype(float),
            "satellite": c["satellite_nodules"].astype(float),
            "grade": c["edmondson_grade"].astype(float),
            "r1": (c["margin_status"] == "R1").astype(float),
            "capsule": (c["capsule_pathology"] == "complete").astype(float),
        }
    )


def test_signal_lives_mostly_beyond_routine_clinical_variables(cohort):
    from lifelines import CoxPHFitter
    from lifelines.utils import concordance_index

    c = cohort.clinical
    y = endpoint(c, "rfs")
    oracle_c = concordance_index(y["time"], -cohort.oracle["true_lp"], y["event"])
    assert 0.75 <= oracle_c <= 0.80
    df = _clinical_design(c).assign(time=y["time"], event=y["event"])
    cox = CoxPHFitter(penalizer=0.01).fit(df, "time", "event")
    assert 0.62 <= cox.concordance_index_ <= 0.68
    # MVI is among the strongest routine risk factors
    hr = np.exp(cox.params_)
    assert hr["mvi"] > 1.15 and hr["satellite"] > 1.1 and hr["capsule"] < 1.0


def test_image_signal_knob():
    strong = generate_cohort(3000, 4, seed=3, image_signal=1.0)
    none = generate_cohort(3000, 4, seed=3, image_signal=0.0)
    traces = ["mri_rim", "mri_margin_irregularity", "mri_peritumoral", "lymphocyte_density",
              "necrosis_fraction"]

    def corr(co):
        # partial correlation with aggressiveness given tumour size (a clinical variable
        # that some traces also depend on, e.g. necrosis in large tumours)
        lat = co.latent
        x = np.column_stack([np.ones(len(lat)), np.log(lat["tumour_size_cm"])])

        def resid(v):
            v = np.asarray(v, float)
            return v - x @ np.linalg.lstsq(x, v, rcond=None)[0]

        agg = resid(lat["aggressiveness"])
        return pd.Series({t: abs(np.corrcoef(resid(lat[t]), agg)[0, 1]) for t in traces})

    assert (corr(none) < 0.06).all(), corr(none)
    assert (corr(strong) > 0.2).all(), corr(strong)
    # images aside, the patients are the same; their risks differ only by the prognostic
    # effects of the (redrawn) immune phenotype and macrotrabecular-massive subtype,
    # which image_signal 0 switches off
    baseline = strong.clinical.columns[: strong.clinical.columns.get_loc("adjuvant") + 1]
    same = [c for c in baseline if not c.startswith("mri_") or c == "mri_date"]
    pd.testing.assert_frame_equal(strong.clinical[same], none.clinical[same])
    phen = strong.latent["immune_phenotype"].astype(str)
    immune = phen.map({"inflamed": np.log(0.64), "excluded": 0.0, "desert": np.log(1.28)})
    mtm = 0.5 * strong.latent["macrotrabecular"].to_numpy(float)
    np.testing.assert_allclose(
        strong.oracle["true_lp_early"] - immune.to_numpy() - mtm, none.oracle["true_lp_early"]
    )
    cols = ["true_lp_late", "propensity_TACE"]
    pd.testing.assert_frame_equal(strong.oracle[cols], none.oracle[cols])


def test_mri_trace_sd_knob_sets_how_much_mri_shows():
    from scipy.special import logit

    base = generate_cohort(2000, 4, seed=2)
    noisy = generate_cohort(2000, 4, seed=2, mri_trace_sd=1.0)
    assert base.config["mri_trace_sd"] == 0.25 and noisy.config["mri_trace_sd"] == 1.0
    agg = base.latent["aggressiveness"].to_numpy()

    def r2(co):  # variance of aggressiveness explained by the three MRI traces
        traces = np.column_stack(
            [logit(co.latent[k]) for k in ("mri_rim", "mri_margin_irregularity", "mri_peritumoral")]
        )
        design = np.column_stack([np.ones(len(agg)), traces])
        resid = agg - design @ np.linalg.lstsq(design, agg, rcond=None)[0]
        return 1 - resid.var() / agg.var()

    assert r2(base) > 0.93 and r2(noisy) < 0.85  # ~95 % and ~78 %
    # everything but the MRI traces and the radiologist's reads stays the same
    mri = [c for c in base.latent.columns if c.startswith("mri_")]
    pd.testing.assert_frame_equal(base.latent.drop(columns=mri), noisy.latent.drop(columns=mri))
    pd.testing.assert_frame_equal(base.oracle, noisy.oracle)


def test_unobserved_sd_knob_sets_the_unobservable_share():
    base = generate_cohort(2000, 4, seed=2)
    none = generate_cohort(2000, 4, seed=2, unobserved_sd=0.0)
    more = generate_cohort(2000, 4, seed=2, unobserved_sd=1.0)
    assert base.config["unobserved_sd"] == 0.25 and more.config["unobserved_sd"] == 1.0
    u = base.latent["unobserved_risk"].to_numpy()
    # the baseline patients, their image traces and who benefits do not change
    for co in (none, more):
        pd.testing.assert_frame_equal(
            co.latent[LATENT_NAMES], base.latent[LATENT_NAMES]
        )
        np.testing.assert_allclose(co.latent["benefit_weight"], base.latent["benefit_weight"])
        np.testing.assert_allclose(co.oracle["true_hr_TACE+TKI"], base.oracle["true_hr_TACE+TKI"])
    # only the unobservable term of the early log hazard moves, by sd * unobserved_risk
    np.testing.assert_allclose(
        more.oracle["true_lp_early"] - none.oracle["true_lp_early"], 1.0 * u, atol=1e-9
    )
    np.testing.assert_allclose(
        base.oracle["true_lp_early"] - none.oracle["true_lp_early"], 0.25 * u, atol=1e-9
    )
    # some signal stays unobservable at the defaults: mostly in late (de novo) recurrence
    assert np.corrcoef(base.oracle["true_lp_late"], u)[0, 1] > 0.6
    assert 0.0 < np.corrcoef(base.oracle["true_lp_early"], u)[0, 1] < 0.2


def test_images_show_most_of_the_aggressiveness(cohort):
    # the MRI traces (before any measurement noise) explain most of the latent
    # aggressiveness at image_signal = 1, but not all of it
    from scipy.special import logit

    lat = cohort.latent
    cols = ["mri_rim", "mri_margin_irregularity", "mri_peritumoral"]
    x = np.column_stack([np.ones(len(lat)), *(logit(lat[c].clip(1e-6, 1 - 1e-6)) for c in cols)])
    agg = lat["aggressiveness"].to_numpy()
    resid = agg - x @ np.linalg.lstsq(x, agg, rcond=None)[0]
    r2 = 1 - resid.var() / agg.var()
    assert 0.75 < r2 < 0.97, r2


def test_treatment_heterogeneity_is_large_enough_to_matter(cohort):
    orc, lat = cohort.oracle, cohort.latent
    rfs = orc[[f"true_rfs24_{a}" for a in ARMS]].to_numpy()
    # the oracle policy beats the best single regimen for everyone by a meaningful margin
    # (~0.8 points of 2-year RFS on average, concentrated in high-risk inflamed tumours)
    gain = rfs.max(axis=1).mean() - rfs.mean(axis=0).max()
    assert gain > 0.007, gain
    # TACE+TKI over TACE: best in immune-inflamed high-risk tumours, not in immune-desert
    high = (lat["benefit_weight"] > 0.8).to_numpy()
    phen = lat["immune_phenotype"].astype(str).to_numpy()
    extra = rfs[:, 2] - rfs[:, 1]
    assert extra[high & (phen == "inflamed")].mean() > 0.05
    assert extra[high & (phen == "desert")].mean() < 0.0
    # and harmful in low risk (toxicity): surgery alone beats TACE+TKI there
    low = (lat["benefit_weight"] < 0.1).to_numpy()
    assert (rfs[low, 0] - rfs[low, 2]).mean() > 0.005


def test_treatment_confounded_in_observational_and_not_in_randomised(cohort):
    risk = cohort.oracle["true_rfs24_surgery_alone"]
    arm = cohort.clinical["adjuvant"].astype(str)
    share = arm.value_counts(normalize=True)
    assert share["surgery_alone"] > 0.45 and share["TACE"] > 0.2 and share["TACE+TKI"] > 0.08
    by_arm = risk.groupby(arm).mean()
    # higher-risk patients (lower RFS without adjuvant therapy) more often get TACE/TKI
    assert by_arm["surgery_alone"] - by_arm["TACE"] > 0.05
    assert by_arm["surgery_alone"] - by_arm["TACE+TKI"] > 0.05
    # centre practice matters: Western centres give less adjuvant TACE
    west = cohort.clinical["centre"].str.startswith("W")
    assert (arm[west] == "surgery_alone").mean() > (arm[~west] == "surgery_alone").mean() + 0.1
    rct = generate_cohort(4000, 8, seed=0, treatment="randomised")
    arm_r = rct.clinical["adjuvant"].astype(str)
    assert arm_r.value_counts(normalize=True).between(0.3, 0.37).all()
    by_arm_r = rct.oracle["true_rfs24_surgery_alone"].groupby(arm_r).mean()
    assert by_arm_r.max() - by_arm_r.min() < 0.03
    np.testing.assert_allclose(rct.oracle[f"propensity_{ARMS[1]}"], 1 / 3)


def test_true_effects_heterogeneous(cohort):
    orc, lat = cohort.oracle, cohort.latent
    vi = lat["vascular_invasion"].to_numpy(bool)
    assert 0.62 <= orc.loc[vi, "true_hr_TACE"].mean() <= 0.78  # DOMAIN: ~0.70 in MVI+
    assert orc.loc[~vi, "true_hr_TACE"].mean() > 0.8
    q = pd.qcut(orc["true_lp_early"], 5, labels=False)
    tki = orc["true_hr_TACE+TKI"]
    assert tki[q == 4].mean() < 0.6 and tki[q == 0].mean() > 1.05  # benefit vs toxicity harm
    high = q >= 3
    phen = lat["immune_phenotype"].astype(str)
    assert tki[high & (phen == "inflamed")].mean() < tki[high & (phen == "desert")].mean() - 0.05
    neo_high = orc.loc[q == 4, "true_hr_neoadjuvant"].mean()
    assert 0.5 <= neo_high <= 0.7  # DOMAIN: neoadjuvant HR ~0.6 in high risk
    best = orc["true_best_arm"].value_counts(normalize=True)
    assert (best.reindex(list(ARMS)).fillna(0) > 0.1).all()
    gain = orc["true_rfs24_TACE"] - orc["true_rfs24_surgery_alone"]
    assert gain[q == 4].mean() > 0.05 > gain[q == 0].mean()


def test_oracle_matches_simulated_outcomes(cohort):
    for arm in ("surgery_alone", "TACE+TKI"):
        sim = simulate_outcomes(cohort, arm, seed=11)
        y = endpoint(sim.clinical, "rfs")
        assert km_at(y, 24) == pytest.approx(cohort.oracle[f"true_rfs24_{arm}"].mean(), abs=0.02)
    sim = simulate_outcomes(cohort, "surgery_alone", seed=11)
    c = sim.clinical
    early_agg = is_aggressive(c) & (months_between(c["surgery_date"], c["recurrence_date"]) <= 24)
    assert early_agg.mean() == pytest.approx(cohort.oracle["true_p_aggressive24"].mean(), abs=0.02)
    # the aggressive-recurrence endpoint is predictable from the truth
    from lifelines.utils import concordance_index

    ya = endpoint(c, "aggressive")
    assert concordance_index(ya["time"], -cohort.oracle["true_p_aggressive24"], ya["event"]) > 0.8
    rec = c[c["recurrence"].astype(bool)]
    agg = is_aggressive(rec)
    a = cohort.latent.set_index("patient_id").loc[rec["patient_id"], "aggressiveness"].to_numpy()
    assert a[agg.to_numpy()].mean() > a[~agg.to_numpy()].mean() + 0.3


def test_neoadjuvant_simulation(cohort):
    n = len(cohort)
    plan = pd.DataFrame(
        {
            "patient_id": cohort.clinical["patient_id"].to_numpy()[::-1],
            "adjuvant": "surgery_alone",
            "neoadjuvant": ["HAIC+LEN+PD1", "none"] * (n // 2),
        }
    )
    sim = simulate_outcomes(cohort, plan, seed=3)
    c = sim.clinical
    neo = c["neoadjuvant"] == "HAIC+LEN+PD1"
    assert neo.mean() == pytest.approx(0.5)
    resp = c.loc[neo, "neoadjuvant_response"].astype(str)
    assert 0.5 <= resp.isin(["CR", "PR"]).mean() <= 0.7
    assert c.loc[~neo, "neoadjuvant_response"].isna().all()
    assert (c.loc[neo, "neoadjuvant_start_date"] < c.loc[neo, "surgery_date"]).all()
    assert (c.loc[neo, "mri_date"] < c.loc[neo, "neoadjuvant_start_date"]).all()
    assert len(validate(c)[1]) == 0
    assert sim.oracle["propensity_TACE"].isna().all()
    high_risk = (cohort.oracle["true_p_aggressive24"] > 0.3).to_numpy()
    policy = neoadjuvant_policy(cohort, high_risk)
    assert (policy["neoadjuvant"] == "HAIC+LEN+PD1").sum() == high_risk.sum()
    with pytest.raises(ConfigError):
        neoadjuvant_policy(cohort, high_risk[:10])
    treated = simulate_outcomes(cohort, policy, seed=3).clinical
    assert (treated["neoadjuvant"] == "HAIC+LEN+PD1").to_numpy().tolist() == high_risk.tolist()
    all_neo = simulate_outcomes(cohort, plan.assign(neoadjuvant="HAIC+LEN+PD1"), seed=3)
    y = endpoint(all_neo.clinical, "rfs")
    assert km_at(y, 24) == pytest.approx(cohort.oracle["true_rfs24_neoadjuvant"].mean(), abs=0.02)


def test_simulate_outcomes_reproduces_and_couples(cohort):
    same = simulate_outcomes(
        cohort, cohort.clinical[["patient_id", "adjuvant"]], seed=cohort.config["outcome_seed"]
    )
    pd.testing.assert_frame_equal(same.clinical, cohort.clinical)
    pd.testing.assert_series_equal(same.oracle["true_lp"], cohort.oracle["true_lp"])
    # common random numbers: a patient keeps the same outcome when only others change arm
    arms = np.where(np.arange(len(cohort)) % 2 == 0, "TACE", "surgery_alone")
    other = np.where(np.arange(len(cohort)) % 4 == 0, "TACE", "TACE+TKI")
    a = simulate_outcomes(cohort.latent, arms, seed=4)
    b = simulate_outcomes(cohort.latent, other, seed=4)
    kept = (arms == other)
    pd.testing.assert_frame_equal(a[kept], b[kept])
    assert not a[~kept]["followup_months"].equals(b[~kept]["followup_months"])
    assert {"recurrence_months", "death_months", "followup_months"} <= set(a.columns)


@pytest.mark.parametrize(
    "assignment",
    ["chemo", ["TACE"] * 3, pd.DataFrame({"arm": ["TACE"]}), 42],
)
def test_simulate_outcomes_rejects_bad_assignment(cohort, assignment):
    with pytest.raises(ConfigError):
        simulate_outcomes(cohort, assignment)


def test_save_load_round_trip(cohort, tmp_path):
    small = generate_cohort(200, 3, seed=5)
    folder = small.save(tmp_path / "c")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["clinical.csv", "latent.csv", "oracle.csv", "centres.csv", "config.json"]
    )
    back = SyntheticCohort.load(folder)
    for name in ("clinical", "latent", "oracle", "centres"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(small, name))
    assert back.config == small.config
    with pytest.raises(InputFileError, match="missing"):
        SyntheticCohort.load(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_patients": 0},
        {"n_patients": 2.5},
        {"n_centres": 0},
        {"seed": -1},
        {"image_signal": -0.1},
        {"image_signal": float("nan")},
        {"accrual_years": 0},
        {"treatment": "random"},
        {"start_date": "not a date"},
        {"start_date": "03/01/2020"},  # was taken as 1 March 2020 without a word
        {"western_centres": 9},
        {"unobserved_sd": -0.5},
        {"unobserved_sd": float("inf")},
        {"mri_trace_sd": -0.1},
    ],
)
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError) as info:
        generate_cohort(**{"n_patients": 10, **kwargs})
    assert info.value.hint


def test_tiny_cohorts():
    one = generate_cohort(1, 1, seed=0)
    assert len(one) == 1 and len(one.centres) == 1 and not one.centres["western"].any()
    assert len(validate(one.clinical)[1]) == 0


@pytest.mark.slow
def test_generation_time_100k():
    start = time.perf_counter()
    big = generate_cohort(100_000, 10, seed=0)
    elapsed = time.perf_counter() - start
    print(f"\n100,000 patients generated in {elapsed:.1f} s (target < 10 s)")
    assert len(big) == 100_000
