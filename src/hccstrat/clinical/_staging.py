"""Tumour staging: BCLC (2022 update) and AJCC 8th edition TNM for HCC.

BCLC (Reig et al., J Hepatol 2022;76:681-693), decided in this order:

- **D** terminal: ECOG > 2, or end-stage liver function (Child-Pugh C).
- **C** advanced: macrovascular (portal) invasion and/or extrahepatic spread, or ECOG 1-2.
- **0** very early: single nodule <= 2 cm (ECOG 0, preserved liver function).
- **A** early: single nodule > 2 cm, or 2-3 nodules each <= 3 cm.
- **B** intermediate: multinodular beyond A (2-3 nodules with one > 3 cm, or >= 4).

Conventions and assumptions (documented, tested):

- "Preserved liver function" = not Child-Pugh C. The 2022 update leaves Child-Pugh B
  to clinical judgement; this implementation stages such patients by tumour burden
  and performance status, as the classical BCLC did.
- Cut-offs are inclusive as written: exactly 2 cm single is BCLC 0, exactly 3 cm
  largest of 2-3 nodules is BCLC A.
- The dataset has only the *largest* diameter and the *number* of nodules: "2-3
  nodules each <= 3 cm" is decided as 2 <= number <= 3 and largest <= 3 cm (if the
  largest is <= 3 cm, all are).
- Categorical versions are used where the number is absent, only as far as they
  decide: ``tumour_size_gt_5cm`` cannot separate <= 2 cm from 2-5 cm (0 versus A), and
  ``tumour_multiple`` cannot separate 2-3 nodules from >= 4 (A versus B when the
  largest is <= 3 cm).
- Every condition is three-valued; a stage is given only when it is certain. When
  it is not, ``bclc_missing`` lists the missing inputs that blocked it; then, if the
  centre recorded a stage (``bclc_recorded``), that is used and ``bclc_source`` says
  ``"recorded"`` (otherwise ``"computed"``, or missing when there is no stage).

AJCC 8th edition (Abou-Alfa et al., AJCC Cancer Staging Manual 2017, chapter 22):

- T1a solitary <= 2 cm (with or without vascular invasion); T1b solitary > 2 cm
  without vascular invasion; T2 solitary > 2 cm with vascular invasion, or multiple
  none > 5 cm; T3 multiple with at least one > 5 cm; T4 involvement of a major branch
  of the portal or hepatic vein, or direct invasion of adjacent organs.
- Stage groups: IA T1a N0 M0, IB T1b N0 M0, II T2 N0 M0, IIIA T3 N0 M0, IIIB T4 N0 M0,
  IVA any T N1 M0, IVB any T any N M1.

Mapping of the schema's columns (assumptions):

- ``mvi`` (pathology) is the "vascular invasion" that separates T1b from T2; when it
  is missing for a solitary tumour > 2 cm, T is missing (T1b versus T2 undecidable).
- ``macrovascular_invasion`` gives T4 (direct invasion of adjacent organs is not
  recorded in the schema, so T4 may be under-called for it).
- Size and number are the schema's (pre-operative) largest diameter and number.
- ``extrahepatic_spread`` (nodes *or* metastases; no separate node field exists) is
  treated as M1, hence stage IVB. N is N0 when there is no extrahepatic spread and
  unknown (missing) otherwise, so IVA (N1 M0) is never assigned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat.clinical._inputs import Inputs, certain, cmp, from_codes, reasons
from hccstrat.clinical._liver import CHILD_PUGH_ITEMS, LiverResult

__all__ = ["BCLC_STAGES", "TNM_STAGES", "TNM_T", "bclc_frame", "tnm_frame"]

BCLC_STAGES: tuple[str, ...] = ("0", "A", "B", "C", "D")
TNM_T: tuple[str, ...] = ("T1a", "T1b", "T2", "T3", "T4")
TNM_STAGES: tuple[str, ...] = ("IA", "IB", "II", "IIIA", "IIIB", "IVA", "IVB")


def _first_certain(conditions: list, n: int) -> np.ndarray:
    """Code of the first condition that is certainly true, given all earlier are certainly false.

    ``conditions`` are three-valued arrays in priority order; ``-1`` where undecided.
    """
    code = np.full(n, -1, dtype=np.int64)
    earlier_false = np.ones(n, dtype=bool)
    for k, cond in enumerate(conditions):
        hit = earlier_false & certain(cond) & (code < 0)
        code[hit] = k
        earlier_false &= certain(~cond)
    return code


def bclc_frame(x: Inputs, liver: LiverResult) -> pd.DataFrame:
    """BCLC stage (2022), its source and the inputs it lacked (module docstring)."""
    n = x.n
    ecog = x.get("ecog")
    d = cmp(ecog, ">", 2) | liver.is_class_c
    c = x.flag("macrovascular_invasion") | x.flag("extrahepatic_spread") | cmp(ecog, ">=", 1)
    single = x.number_cmp("==", 1)
    two_three = x.number_cmp(">=", 2) & x.number_cmp("<=", 3)
    le2 = x.size_cmp("<=", 2)
    le3 = x.size_cmp("<=", 3)
    zero = single & le2
    a = (single & ~le2) | (two_three & le3)
    multiple = x.number_cmp(">=", 2)
    b = multiple & ~(two_three & le3)  # multinodular beyond A: 2-3 with one > 3 cm, or >= 4
    # order D, C, 0, A, B -> codes in BCLC_STAGES
    order = [4, 3, 0, 1, 2]
    first = _first_certain([d, c, zero, a, b], n)
    computed = np.where(first >= 0, np.take(order, np.maximum(first, 0)), -1)

    # reasons: only for rows without a computed stage, only conditions that blocked it
    undecided = computed < 0
    d_na = undecided & d.isna()
    reach_c = undecided & ~certain(d)
    c_na = reach_c & c.isna()
    reach_t = reach_c & ~certain(c)
    tumour_na = reach_t & (zero.isna() | a.isna() | b.isna())
    parts: list[tuple[str, np.ndarray]] = [
        ("ecog", (d_na | c_na) & x.missing("ecog")),
    ]
    cp_undecided = d_na & liver.is_class_c.isna()
    parts += [(item, cp_undecided & liver.item_missing[item]) for item in CHILD_PUGH_ITEMS]
    parts += [
        ("macrovascular_invasion", c_na & x.missing("macrovascular_invasion")),
        ("extrahepatic_spread", c_na & x.missing("extrahepatic_spread")),
    ]
    number_na = single.isna() | two_three.isna() | multiple.isna()
    size_na = le2.isna() | le3.isna()
    parts += x.burden_reasons("number", tumour_na & number_na)
    parts += x.burden_reasons("size", tumour_na & size_na)
    missing = reasons(parts, x.index)

    recorded = x.get("bclc_recorded")
    use_rec = undecided & ~np.isnan(recorded)
    stage = np.where(use_rec, np.nan_to_num(recorded, nan=-1).astype(np.int64), computed)
    source = np.where(~undecided, 0, np.where(use_rec, 1, -1))
    return pd.DataFrame(
        {
            "bclc_stage": from_codes(stage, BCLC_STAGES, x.index),
            "bclc_source": from_codes(source, ["computed", "recorded"], x.index).cat.as_unordered(),
            "bclc_missing": missing,
        },
        index=x.index,
    )


def tnm_frame(x: Inputs) -> pd.DataFrame:
    """AJCC 8th edition T, N, M and stage group for HCC (module docstring)."""
    n = x.n
    macro = x.flag("macrovascular_invasion")
    mvi = x.flag("mvi")
    ehs = x.flag("extrahepatic_spread")
    single = x.number_cmp("==", 1)
    multiple = x.number_cmp(">=", 2)
    le2 = x.size_cmp("<=", 2)
    gt5 = x.size_cmp(">", 5)
    no_macro = ~macro
    t1a = no_macro & single & le2
    t1b = no_macro & single & ~le2 & ~mvi
    t2 = no_macro & ((single & ~le2 & mvi) | (multiple & ~gt5))
    t3 = no_macro & multiple & gt5
    # T4 first (overrides), then the mutually exclusive T1a..T3
    first = _first_certain([macro], n)
    t_code = np.where(first == 0, 4, -1)
    for code, cond in ((0, t1a), (1, t1b), (2, t2), (3, t3)):
        t_code = np.where((t_code < 0) & certain(cond), code, t_code)

    m_code = np.where(certain(ehs), 1, np.where(certain(~ehs), 0, -1))
    n_code = np.where(certain(~ehs), 0, -1)
    # stage: IVB if M1; else by T when M0 (N0 follows from no extrahepatic spread)
    t_to_stage = np.array([0, 1, 2, 3, 4])  # T1a IA, T1b IB, T2 II, T3 IIIA, T4 IIIB
    stage = np.where(
        m_code == 1,
        6,
        np.where((m_code == 0) & (t_code >= 0), t_to_stage[np.maximum(t_code, 0)], -1),
    )

    # reasons: for rows where T, M or the stage group could not be decided
    t_undecided = t_code < 0
    maybe_single = ~certain(~single)
    maybe_multiple = ~certain(~multiple)
    parts: list[tuple[str, np.ndarray]] = [
        ("extrahepatic_spread", m_code < 0),
        ("macrovascular_invasion", t_undecided & macro.isna()),
    ]
    parts += x.burden_reasons("number", t_undecided & single.isna())
    size_needed = (maybe_single & le2.isna()) | (maybe_multiple & gt5.isna())
    parts += x.burden_reasons("size", t_undecided & size_needed)
    parts.append(("mvi", t_undecided & mvi.isna() & maybe_single & ~certain(le2) & ~certain(macro)))
    return pd.DataFrame(
        {
            "tnm_t": from_codes(t_code, TNM_T, x.index),
            "tnm_n": from_codes(n_code, ["N0", "N1"], x.index),
            "tnm_m": from_codes(m_code, ["M0", "M1"], x.index),
            "tnm_stage": from_codes(stage, TNM_STAGES, x.index),
            "tnm_missing": reasons(parts, x.index),
        },
        index=x.index,
    )
