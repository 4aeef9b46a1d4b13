"""Endpoints derived from the canonical table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccstrat.survival import endpoint, event_by, is_aggressive, make_surv


def _table() -> pd.DataFrame:
    d = pd.to_datetime
    return pd.DataFrame(
        {
            "surgery_date": d(["2020-01-01"] * 5),
            # P1 aggressive (multinodular) at ~6 m; P2 solitary recurrence at ~12 m then death;
            # P3 death without recurrence; P4 censored; P5 extrahepatic at 30 m (beyond 24 m)
            "recurrence": [True, True, False, False, True],
            "recurrence_date": d(["2020-07-01", "2021-01-01", None, None, "2022-07-01"]),
            "recurrence_pattern": ["multinodular", "solitary", None, None, "solitary"],
            "recurrence_site": ["intrahepatic", "intrahepatic", None, None, "extrahepatic"],
            "recurrence_nodules": [5, 1, None, None, 1],
            "death": [False, True, True, False, False],
            "death_date": d([None, "2022-01-01", "2021-06-01", None, None]),
            "last_followup_date": d(
                ["2023-01-01", "2022-01-01", "2021-06-01", "2021-01-01", "2024-01-01"]
            ),
        }
    )


def months(days):
    return days / 30.4375


def test_rfs_os_and_recurrence():
    t = _table()
    rfs = endpoint(t, "rfs")
    assert rfs["event"].tolist() == [True, True, True, False, True]
    assert rfs["time"] == pytest.approx(months(np.array([182, 366, 517, 366, 912])))
    os_ = endpoint(t, "os")
    assert os_["event"].tolist() == [False, True, True, False, False]
    rec = endpoint(t, "recurrence")
    # death without recurrence is censored at death
    assert rec["event"].tolist() == [True, True, False, False, True]
    assert rec["time"][2] == pytest.approx(months(517))


def test_aggressive_definition_and_24_month_horizon():
    t = _table()
    assert is_aggressive(t).tolist() == [True, False, False, False, True]
    y = endpoint(t, "aggressive")
    # P5's extrahepatic recurrence at 30 m is after the 24-month horizon
    assert y["event"].tolist() == [True, False, False, False, False]
    # P2's non-aggressive recurrence ends follow-up for this endpoint at 12 m
    assert y["time"][1] == pytest.approx(months(366))
    assert y["time"].max() <= 24.0


def test_event_by_horizon_and_make_surv_errors():
    y = make_surv([True, False, False], [10.0, 30.0, 5.0])
    ev, known = event_by(y, 24)
    assert ev.tolist() == [True, False, False]
    assert known.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="negative"):
        make_surv([True], [-1.0])
    with pytest.raises(ValueError, match="missing"):
        make_surv([True], [np.nan])


def test_recorded_event_without_date_is_an_error_not_event_free():
    from hccstrat.exceptions import DataValidationError

    t = _table()
    t.loc[0, "recurrence_date"] = pd.NaT  # P1 recurred, date lost
    t.loc[1, "death_date"] = pd.NaT  # P2 died, date lost
    for which in ("rfs", "os", "recurrence", "aggressive"):
        with pytest.raises(DataValidationError, match=r"recurrence_date|death_date"):
            endpoint(t, which)
