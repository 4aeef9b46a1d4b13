"""Contrast-phase identification of liver MRI series.

Evidence is used in this order (DESIGN §4); each identified series gets a phase, a
confidence in [0, 1] and a reason:

1. **User mapping** (SeriesInstanceUID, series number or exact description → phase):
   overrides everything else (confidence 1.0).
2. **Tags**: keywords in SeriesDescription/ProtocolName in several vendors' styles
   and languages (English, German, Chinese), accepted when no two series claim the
   same phase (0.95).
3. **Bolus timing**: AcquisitionTime minus ContrastBolusStartTime when the bolus
   start is recorded (arterial < 55 s, portal venous 55–130 s, delayed 130–600 s,
   hepatobiliary > 10 min; 0.9).
4. **Acquisition-time order and measured enhancement** within the dynamic group
   (series of the same matrix and slice count), for the series still unnamed —
   including groups where only some series are named (e.g. two named, two not):
   every assignment of the phases left free to the unnamed series is tried; with
   distinct acquisition times only the assignments whose phase order
   (pre < arterial < portal < delayed) matches the time order of the whole group
   are kept; a series acquired > 10 min after the first post-contrast one is
   hepatobiliary. The enhancement of the **aorta and portal vein**
   (:mod:`hccstrat.radiology.vessels`, on 4 mm previews) labels every series
   (lowest vessel signal = non-contrast, highest aortic signal = arterial,
   highest portal signal = portal venous, next = delayed) and picks among the
   remaining assignments. Confidence: time order and enhancement agree 0.9; unique
   time order alone 0.8 (0.6 when the enhancement disagrees); enhancement alone
   0.3–0.9 from the vessel-finding confidence and the margins of its rules (× 0.7
   when it contradicts a tag-named series).
5. Last resort: the only series without ContrastBolusAgent is the non-contrast one.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["PHASE_NAMES", "identify_phases", "phase_from_text"]

log = logging.getLogger(__name__)

PHASE_NAMES: tuple[str, ...] = ("pre", "arterial", "portal", "delayed", "hepatobiliary")
DYNAMIC: tuple[str, ...] = ("pre", "arterial", "portal", "delayed")

_KEYWORDS: dict[str, tuple[str, ...]] = {
    "hepatobiliary": (r"\bhbp\b", r"hepatobil", r"\b(1[5-9]|20) ?min", "肝胆"),
    "delayed": (r"delay", r"\blate\b", r"equilib", r"transition", r"\btrans\b",
                r"\b[2-5] ?min", r"sp(ae|ä)t", "延迟", "平衡", r"\bdel\b"),
    "portal": (r"\bpv\b", r"portal", r"venous", r"\bven\b", r"\bvp\b", r"\bpvp\b",
               r"\b(60|65|70|75|80) ?s\b", "门脉", "门静脉", "静脉期"),
    "arterial": (r"\bart\b", r"arteri", r"\bhap\b", r"\bap\b", r"\blap\b",
                 r"\b(2[0-9]|3[0-9]|4[0-5]) ?s\b", "动脉"),
    "pre": (r"\bpre\b", r"precontrast", r"plain", r"non ?contrast", r"unenhanced",
            r"\bnativ", r"\bmask\b", r"\bnc\b", "平扫"),
}


def phase_from_text(*texts: str) -> tuple[str | None, str]:
    """Phase named by description/protocol keywords, with the keyword found.

    Returns ``(None, reason)`` when no keyword or keywords of several phases match.
    """
    text = " ".join(t for t in texts if t).lower()
    text = re.sub(r"[_\-+/]+", " ", text)
    hits: dict[str, str] = {}
    for phase, pats in _KEYWORDS.items():
        for pat in pats:
            m = re.search(pat, text)
            if m:
                hits[phase] = m.group(0)
                break
    if len(hits) == 1:
        ((phase, kw),) = hits.items()
        return phase, f"description keyword '{kw}'"
    if not hits:
        return None, "no phase keyword"
    return None, "keywords of several phases: " + ", ".join(f"{p} '{k}'" for p, k in hits.items())


def _geometry_key(s) -> tuple:
    ps = s.pixel_spacing or (0.0, 0.0)
    return (s.rows, s.columns, s.n_slices, round(ps[0], 2), round(ps[1], 2))


def _assign(s, phase: str, conf: float, reason: str) -> None:
    s.phase, s.phase_confidence, s.phase_reason = phase, float(conf), reason


def _by_bolus(s) -> str | None:
    if s.acquisition_time is None or s.bolus_start_time is None:
        return None
    dt = s.acquisition_time - s.bolus_start_time
    if dt < 0:
        return "pre"
    if dt < 55:
        return "arterial"
    if dt < 130:
        return "portal"
    if dt < 600:
        return "delayed"
    return "hepatobiliary"


def _enhancement_labels(series: list, loader: Callable) -> tuple[dict[str, str], float, str]:
    """Dynamic phase per series key from the aorta/portal-vein signal.

    Returns ``({}, 0, why)`` when the vessels cannot be measured. Rules (signals
    normalised by their maximum; ``a`` aorta, ``p`` portal vein):

    - non-contrast: lowest ``a`` (+ ``p``);
    - arterial: highest ``a`` (the aorta peaks in the arterial phase);
    - portal venous: highest ``p`` of the rest (the highest ``a`` without a portal
      vein);
    - delayed: the next one; further series get no phase.

    The confidence combines the vessel-finding confidence with the smallest relative
    margin between the winner and the runner-up of each rule (full at 30 %).
    """
    from hccstrat.radiology.vessels import measure_vessels

    imgs, keys = [], []
    for s in series:
        try:
            imgs.append(loader(s))
            keys.append(s.key)
        except Exception as err:
            log.debug("preview failed for %s: %s", s.key, err)
    if len(imgs) < 2:
        return {}, 0.0, "fewer than two readable series"
    vs = measure_vessels(imgs)
    if vs.aorta is None or not np.all(np.isfinite(vs.aorta)) or vs.aorta.max() <= 0:
        return {}, 0.0, "; ".join(vs.notes)
    a = vs.aorta / vs.aorta.max()
    p = None
    if vs.portal is not None and vs.portal.max() > 0 and vs.portal_confidence >= 0.3:
        p = vs.portal / vs.portal.max()
        if int(np.argmin(p)) != int(np.argmin(a)) or int(np.argmax(p)) == int(np.argmax(a)):
            p = None  # the portal region does not behave like a vessel: ignore it
    idx = list(range(len(keys)))
    margins = []

    def pick(cands: list[int], score: np.ndarray, lowest: bool = False) -> int:
        vals = sorted(((score[i], i) for i in cands), reverse=not lowest)
        if len(vals) > 1:
            best, nxt = vals[0][0], vals[1][0]
            margins.append(abs(nxt - best) / max(abs(best), abs(nxt), 1e-6))
        return vals[0][1]

    out: dict[str, str] = {}
    pre = pick(idx, a + (p if p is not None else 0), lowest=True)
    out[keys[pre]] = "pre"
    rest = [i for i in idx if i != pre]
    if len(rest) >= 2 or p is None:
        art = pick(rest, a)
        out[keys[art]] = "arterial"
        rest = [i for i in rest if i != art]
    for ph in ("portal", "delayed"):
        if not rest:
            break
        k = pick(rest, p if p is not None else a)
        out[keys[k]] = ph
        rest = [i for i in rest if i != k]
    margin = min(margins) if margins else 0.0
    vessel_conf = vs.aorta_confidence if p is None else max(vs.aorta_confidence,
                                                            0.5 * (vs.aorta_confidence + 1))
    conf = float(np.clip(0.45 + 0.45 * min(1.0, margin / 0.3) * vessel_conf, 0.3, 0.9))
    why = ("aorta" + (" and portal-vein" if p is not None else "") + " enhancement ("
           + "; ".join(vs.notes) + ")")
    return out, conf, why


def _times_usable(series: list) -> bool:
    times = [s.acquisition_time for s in series]
    return len(series) >= 2 and all(t is not None for t in times) and len(set(times)) == len(times)


def _consistent_with_time(assign: dict, series: list) -> bool:
    """Phase order (pre < arterial < portal < delayed) equals acquisition-time order."""
    rank = {p: i for i, p in enumerate(DYNAMIC)}
    pts = sorted((s.acquisition_time, rank[assign[s.key]]) for s in series if s.key in assign)
    return all(b[1] > a[1] for a, b in itertools.pairwise(pts))


def _resolve_dynamic(dyn: list, *, loader: Callable | None, use_enhancement: bool,
                     has_agent: bool) -> None:
    """Give the unnamed series of a dynamic group the phases the named ones leave free.

    Every injective assignment of the free phases to the unnamed series is tried;
    with usable acquisition times only those whose phase order matches the time order
    (named series included) are kept, and the measured enhancement chooses among
    them (or among all assignments when the times are unusable).
    """
    known = {s.key: s.phase for s in dyn if s.phase in DYNAMIC}
    unknown = [s for s in dyn if s.phase is None]
    timing = _times_usable(dyn)
    if timing and len(dyn) >= 3 and unknown:
        t_post = sorted(s.acquisition_time for s in dyn)[1]
        for s in list(unknown):
            if s.acquisition_time - t_post > 600 and "hepatobiliary" not in known.values():
                _assign(s, "hepatobiliary", 0.8,
                        f"acquired {(s.acquisition_time - t_post) / 60:.0f} min after the "
                        "first post-contrast series")
                unknown.remove(s)
                known[s.key] = "hepatobiliary"
    dyn = [s for s in dyn if known.get(s.key) != "hepatobiliary"]
    free = [p for p in DYNAMIC if p not in known.values()]
    if not unknown or not free:
        return
    n_assign = min(len(unknown), len(free))
    cands = set()
    for perm in itertools.permutations([*free, *([None] * len(unknown))], len(unknown)):
        if sum(p is not None for p in perm) == n_assign:
            cands.add(perm)
    cands = sorted(cands, key=lambda c: [str(x) for x in c])
    if timing:
        ok = [c for c in cands if _consistent_with_time(
            {**known, **{s.key: p for s, p in zip(unknown, c, strict=True) if p}}, dyn)]
        timing = bool(ok)
        cands = ok or cands
    enh, e_conf, e_why = ({}, 0.0, "enhancement not measured")
    if use_enhancement and loader is not None:
        enh, e_conf, e_why = _enhancement_labels(dyn, loader)
    if enh and known:  # check the measurement against the series named by their tags
        agree = np.mean([enh.get(k) == ph for k, ph in known.items() if ph in DYNAMIC] or [1])
        if agree < 1:
            e_conf *= 0.7
            e_why += f", agrees with {agree:.0%} of the named series"
    if not cands or (not timing and not enh):
        if has_agent:
            no_agent = [s for s in unknown if not s.contrast_agent]
            if len(no_agent) == 1 and "pre" in free:
                _assign(no_agent[0], "pre", 0.7, "only series without ContrastBolusAgent")
        return

    def score(c) -> int:
        return sum(enh.get(s.key) == p for s, p in zip(unknown, c, strict=True) if p)

    best = max(cands, key=score)
    full = sum(p is not None for p in best)
    matched = score(best) if enh else 0
    rel = " relative to the named series" if known else ""
    for s, ph in zip(unknown, best, strict=True):
        if ph is None:
            s.phase_reason = "no free dynamic phase left for this series"
            continue
        agrees = enh.get(s.key) == ph
        if timing and len(cands) == 1:
            if enh and agrees:
                _assign(s, ph, 0.9, f"acquisition-time order{rel} and {e_why} agree")
            elif enh:
                _assign(s, ph, 0.6, f"acquisition-time order{rel} (enhancement says "
                                    f"{enh.get(s.key)})")
            else:
                _assign(s, ph, 0.8 if len(dyn) >= 4 else 0.5, f"acquisition-time order{rel}")
        elif timing:
            conf = max(0.5, e_conf) if agrees else 0.4
            _assign(s, ph, conf, f"{e_why} among the time-consistent orders{rel}")
        else:
            conf = e_conf if matched == full else (e_conf * 0.8 if agrees else 0.35)
            _assign(s, ph, conf, e_why if agrees else f"left over after {e_why}")


def identify_phases(
    study,
    *,
    mapping: Mapping[str, str] | None = None,
    use_enhancement: bool = True,
    loader: Callable | None = None,
) -> None:
    """Set ``phase``, ``phase_confidence`` and ``phase_reason`` on a study's series.

    Parameters
    ----------
    study : hccstrat.io.dicom.Study
        Scanned study (modified in place).
    mapping : mapping, optional
        User mapping (SeriesInstanceUID, series number as text or exact description →
        phase name in :data:`PHASE_NAMES`).
    use_enhancement : bool
        Allow the pixel-based fallback.
    loader : callable, optional
        Series → SimpleITK image (needed by the enhancement fallback).
    """
    cands = [s for s in study.series
             if s.modality == "MR" and not s.is_localiser and s.n_slices >= 8
             and "SUB" not in s.image_type]
    for s in cands:
        s.phase, s.phase_confidence, s.phase_reason = None, 0.0, ""
    # 1. user mapping
    if mapping:
        norm = {str(k).strip(): str(v).strip().lower() for k, v in mapping.items()}
        for s in cands:
            for key in (s.uid, s.key, str(s.number), s.description):
                if key in norm and norm[key] in PHASE_NAMES:
                    _assign(s, norm[key], 1.0, f"user mapping '{key}'")
                    break
    # 2. description keywords (unique per phase)
    text_phase = {}
    for s in cands:
        if s.phase is None:
            ph, why = phase_from_text(s.description, s.protocol)
            s.phase_reason = why
            if ph:
                text_phase[s.key] = (ph, why)
    # parts of one series split by echo count once: the first echo carries the phase
    first_part: dict[str, str] = {}
    for s in cands:
        if s.key in text_phase:
            first_part.setdefault(s.uid, s.key)
    counts = Counter(ph for k, (ph, _) in text_phase.items() if k in first_part.values())
    for s in cands:
        if s.key in text_phase:
            ph, why = text_phase[s.key]
            if first_part[s.uid] != s.key:
                s.phase_reason = (f"{why}; another echo of series {s.number} "
                                  f"({first_part[s.uid]}) carries the phase")
            elif counts[ph] == 1:
                _assign(s, ph, 0.95, why)
            else:
                s.phase_reason = f"{why} shared by {counts[ph]} series"
    # 3. bolus timing
    taken = {s.phase for s in cands if s.phase}
    bolus = {s.key: _by_bolus(s) for s in cands if s.phase is None}
    bcount = Counter(v for v in bolus.values() if v)
    has_agent = any(s.contrast_agent for s in cands)
    for s in cands:
        ph = bolus.get(s.key)
        if ph and bcount[ph] == 1 and ph not in taken:
            dt = s.acquisition_time - s.bolus_start_time
            _assign(s, ph, 0.9, f"acquired {dt:.0f} s after contrast bolus start")
    # 4. timing order + measured enhancement within the dynamic group (also fills the
    #    phases left free by partially named groups)
    if not any(s.phase is None for s in cands):
        return
    groups = defaultdict(list)
    for s in cands:
        groups[_geometry_key(s)].append(s)
    known = [g for g, ss in groups.items() if any(s.phase in DYNAMIC for s in ss)]
    gkey = (max(known, key=lambda g: len(groups[g])) if known
            else max(groups, key=lambda g: len(groups[g])))
    dyn = groups[gkey]
    if len(dyn) >= 2:
        _resolve_dynamic(dyn, loader=loader, use_enhancement=use_enhancement,
                         has_agent=has_agent)
