"""Contrast-phase identification of liver MRI series.

Evidence is used in this order (DESIGN §4); each identified series gets a phase, a
confidence in [0, 1] and a reason:

1. **User mapping** (SeriesInstanceUID, series number or exact description → phase):
   overrides everything else (confidence 1.0).
2. **Tags**: keywords in SeriesDescription/ProtocolName in several vendors' styles
   and languages (English, German, Chinese), accepted when no two series claim the
   same phase (0.95).
3. **Timing**: AcquisitionTime minus ContrastBolusStartTime when the bolus start is
   recorded (arterial < 55 s, portal venous 55–130 s, delayed 130–600 s,
   hepatobiliary > 10 min; 0.9); otherwise the order of acquisition times within
   the dynamic group (same matrix and slice count): first = non-contrast, then
   arterial, portal venous, delayed (0.8 with four series).
4. **Measured enhancement** (reads the pixels, 4× down-sampled): the non-contrast
   series has the lowest parenchymal signal; among the others the arterial phase
   has the highest vascular-peak to parenchyma ratio (aorta bright, liver not yet
   enhanced) and the portal venous phase a higher vascular peak than the delayed
   phase. Agreement with timing raises the confidence to 0.9; on disagreement the
   complete timing order wins with confidence 0.6.
"""

from __future__ import annotations

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


def _enhancement_signature(img) -> tuple[float, float]:
    """(parenchyma level, vascular peak) of a volume: robust global statistics."""
    import SimpleITK as sitk

    size = img.GetSize()
    f = [max(1, int(size[0] // 64)), max(1, int(size[1] // 64)), 1]
    arr = sitk.GetArrayViewFromImage(sitk.Shrink(img, f)).astype(np.float32)
    vals = arr[arr > 0]
    if vals.size < 100:
        return float("nan"), float("nan")
    body = vals[vals > np.percentile(vals, 50) * 0.5]
    paren = float(np.percentile(body, 75))
    peak = float(np.percentile(body, 99.7))
    return paren, peak


def _enhancement_order(series: list, loader: Callable) -> dict[str, str] | None:
    """Phase per series key from measured enhancement, or None when unusable."""
    sig = {}
    for s in series:
        try:
            sig[s.key] = _enhancement_signature(loader(s))
        except Exception as err:
            log.debug("enhancement signature failed for %s: %s", s.key, err)
    if len(sig) < 2 or any(not np.isfinite(v[0]) for v in sig.values()):
        return None
    keys = list(sig)
    pre = min(keys, key=lambda k: sig[k][0])
    out = {pre: "pre"}
    posts = [k for k in keys if k != pre]
    if len(posts) >= 3:
        art = max(posts, key=lambda k: sig[k][1] / sig[k][0])
        out[art] = "arterial"
        rest = sorted([k for k in posts if k != art], key=lambda k: -sig[k][1])
        for k, ph in zip(rest, ("portal", "delayed", "hepatobiliary"), strict=False):
            out[k] = ph
    elif len(posts) == 2:
        a, b = posts
        ra, rb = sig[a][1] / sig[a][0], sig[b][1] / sig[b][0]
        if max(ra, rb) > 1.6 * min(ra, rb):
            art = a if ra > rb else b
            out[art] = "arterial"
            out[b if art == a else a] = "portal"
        else:
            hi = a if sig[a][1] >= sig[b][1] else b
            out[hi] = "portal"
            out[b if hi == a else a] = "delayed"
    else:
        (a,) = posts
        out[a] = "portal"
    return out


def _timing_order(series: list) -> dict[str, str] | None:
    times = [s.acquisition_time for s in series]
    if any(t is None for t in times) or len(set(times)) < len(times) or len(series) < 2:
        return None
    order = sorted(series, key=lambda s: s.acquisition_time)
    out = {order[0].key: "pre"}
    t_first_post = order[1].acquisition_time if len(order) > 1 else None
    names = iter(("arterial", "portal", "delayed"))
    for s in order[1:]:
        if t_first_post is not None and s.acquisition_time - t_first_post > 600:
            out[s.key] = "hepatobiliary"
        else:
            out[s.key] = next(names, "delayed")
    return out


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
    counts = Counter(ph for ph, _ in text_phase.values())
    for s in cands:
        if s.key in text_phase:
            ph, why = text_phase[s.key]
            if counts[ph] == 1:
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
    # 4. timing order + enhancement within the dynamic group
    rest = [s for s in cands if s.phase is None]
    if not rest:
        return
    groups = defaultdict(list)
    for s in cands:
        groups[_geometry_key(s)].append(s)
    known = [g for g, ss in groups.items() if any(s.phase in DYNAMIC for s in ss)]
    gkey = known[0] if known else max(groups, key=lambda g: len(groups[g]))
    dyn = groups[gkey]
    if len(dyn) < 2:
        return
    taken = {s.phase for s in dyn if s.phase}
    timing = _timing_order(dyn) if len(taken) == 0 else None
    enh = (_enhancement_order(dyn, loader)
           if use_enhancement and loader is not None and len(taken) == 0 else None)
    if timing is None and enh is None and has_agent:
        # last resort: the only series without contrast agent is the non-contrast one
        no_agent = [s for s in dyn if not s.contrast_agent]
        if len(no_agent) == 1 and "pre" not in taken:
            _assign(no_agent[0], "pre", 0.7, "only series without ContrastBolusAgent")
        return
    for s in dyn:
        if s.phase is not None:
            continue
        t = timing.get(s.key) if timing else None
        e = enh.get(s.key) if enh else None
        if t and e and t == e:
            _assign(s, t, 0.9, "acquisition-time order and measured enhancement agree")
        elif t and e:
            conf = 0.6 if len(dyn) >= 4 else 0.4
            ph, src = (t, "acquisition-time order") if len(dyn) >= 4 else (e, "enhancement")
            _assign(s, ph, conf, f"{src} (time order says {t}, enhancement says {e})")
        elif t:
            _assign(s, t, 0.8 if len(dyn) >= 4 else 0.5, "acquisition-time order")
        elif e:
            _assign(s, e, 0.7, "measured enhancement (vascular peak / parenchyma)")
    # never two series with the same phase: keep the most confident
    by_phase = defaultdict(list)
    for s in dyn:
        if s.phase:
            by_phase[s.phase].append(s)
    for ph, ss in by_phase.items():
        if len(ss) > 1:
            ss.sort(key=lambda s: -s.phase_confidence)
            for s in ss[1:]:
                s.phase_reason = f"conflict: also looks like {ph} ({s.phase_reason})"
                s.phase, s.phase_confidence = None, 0.0
