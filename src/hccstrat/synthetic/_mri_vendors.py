"""Vendor styles of synthetic liver MRI: tags, series descriptions, intensity scaling.

Descriptions follow the naming habits of 3D T1 fat-suppressed gradient-echo sequences
(GE "LAVA", Siemens "VIBE", Philips "THRIVE", United Imaging "quick3d" with Chinese
phase names). Several variants per vendor are drawn at random so the phase
identifier is tested on more than one spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VENDORS", "VendorStyle", "vendor_style"]


@dataclass(frozen=True)
class VendorStyle:
    """Tags and habits of one vendor's scanners."""

    manufacturer: str
    model: str
    field_strength: float
    #: description variants per phase: each tuple is (pre, arterial, portal, delayed)
    descriptions: tuple[tuple[str, str, str, str], ...]
    protocol: str
    intensity_scale: float
    noise_fraction: float
    charset: str = "ISO_IR 100"
    #: True when InstanceNumber runs from head to feet (sorting by it would flip z)
    instance_descending: bool = False
    contrast_agent: str = "Gd-DTPA"


VENDORS: dict[str, VendorStyle] = {
    "GE": VendorStyle(
        manufacturer="GE MEDICAL SYSTEMS",
        model="SIGNA Architect",
        field_strength=3.0,
        descriptions=(
            ("Ax LAVA-Flex PRE", "Ax LAVA-Flex ARTERIAL", "Ax LAVA-Flex PORTAL VENOUS",
             "Ax LAVA-Flex DELAY 3min"),
            ("LAVA mask", "LAVA art 35s", "LAVA pv 70s", "LAVA equilibrium"),
        ),
        protocol="ABD LIVER DYN",
        intensity_scale=620.0,
        noise_fraction=0.025,
    ),
    "Siemens": VendorStyle(
        manufacturer="SIEMENS",
        model="MAGNETOM Skyra",
        field_strength=3.0,
        descriptions=(
            ("t1_vibe_fs_tra_pre", "t1_vibe_fs_tra_art", "t1_vibe_fs_tra_pv",
             "t1_vibe_fs_tra_delayed"),
            ("t1_vibe_dixon_tra_nativ", "t1_vibe_dixon_tra_arteriell", "t1_vibe_dixon_tra_portal",
             "t1_vibe_dixon_tra_spaet"),
        ),
        protocol="t1_vibe_fs_tra_dyn",
        intensity_scale=930.0,
        noise_fraction=0.03,
    ),
    "Philips": VendorStyle(
        manufacturer="Philips Medical Systems",
        model="Ingenia",
        field_strength=1.5,
        descriptions=(
            ("sT1W_THRIVE_pre", "sT1W_THRIVE_arterial", "sT1W_THRIVE_portal",
             "sT1W_THRIVE_late"),
            ("eTHRIVE plain", "eTHRIVE HAP", "eTHRIVE venous", "eTHRIVE transitional"),
        ),
        protocol="THRIVE_dyn",
        intensity_scale=360.0,
        noise_fraction=0.035,
        instance_descending=True,
    ),
    "UIH": VendorStyle(
        manufacturer="UIH",
        model="uMR 780",
        field_strength=3.0,
        descriptions=(
            ("t1_quick3d_tra_fs_平扫", "t1_quick3d_tra_fs_动脉期", "t1_quick3d_tra_fs_门脉期",
             "t1_quick3d_tra_fs_延迟期"),
            ("肝脏平扫 T1", "增强 动脉期", "增强 门静脉期", "增强 平衡期"),
        ),
        protocol="肝脏动态增强",
        intensity_scale=510.0,
        noise_fraction=0.03,
        charset="ISO_IR 192",
        contrast_agent="钆塞酸二钠 Gd-EOB-DTPA",
    ),
}


def vendor_style(vendor: str) -> VendorStyle:
    """Style of ``vendor`` (case-insensitive key of :data:`VENDORS`)."""
    from hccstrat.exceptions import ConfigError

    for key, style in VENDORS.items():
        if key.lower() == str(vendor).lower():
            return style
    raise ConfigError(
        f"unknown MRI vendor {vendor!r}",
        hint=f"use one of {', '.join(VENDORS)}",
    )
