"""Pydantic request/response models of the API (they document the OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AdverseEventIn",
    "AllocateIn",
    "CentreIn",
    "ClinicalIn",
    "EmbedIn",
    "EnrolIn",
    "LoginIn",
    "PatientIn",
    "PredictIn",
    "ScreenIn",
    "TokenOut",
    "UserIn",
    "UserPatch",
    "VisitIn",
]

Role = Literal[
    "admin", "investigator", "radiologist", "pathologist", "data_manager", "statistician",
    "monitor",
]
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime
    role: str
    centre: str | None


class CentreIn(_In):
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=200)


class UserIn(_In):
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    password: str = Field(min_length=10, max_length=256)
    role: Role
    centre: str | None = Field(None, description="centre code; omit for all centres")


class UserPatch(_In):
    active: bool | None = None
    role: Role | None = None


class PatientIn(_In):
    patient_id: str | None = Field(
        None, pattern=_ID, description="pseudonymised id; generated when omitted"
    )
    centre: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    clinical: dict[str, Any] = Field(
        default_factory=dict, description="canonical clinical columns (hccstrat.schema)"
    )


class ClinicalIn(_In):
    clinical: dict[str, Any]


class PredictIn(_In):
    kind: Literal["PRE", "POST", "BENEFIT"] = Field(
        "PRE", description="PRE/POST risk score, or BENEFIT (adjuvant regimen recommendation)")
    background: bool = Field(False, description="run as a background job (202 + job)")


class EmbedIn(_In):
    encoder: str = Field("builtin", min_length=1, max_length=64,
                         description="configured encoder name (default: the built-in encoder)")


class ScreenIn(_In):
    patient_id: str = Field(pattern=_ID)
    answers: dict[str, Any] = Field(
        default_factory=dict, description="screening answers (consent, hypersensitivity...)"
    )
    as_of: dt.date | None = None


class EnrolIn(_In):
    consent: bool


class AllocateIn(_In):
    method: Literal["pre_rule", "randomised"] = Field(
        "pre_rule", description="pre_rule: by the latest PRE score (NCT07282184); randomised: "
        "concealed permuted blocks stratified by centre x PRE risk group")


class VisitIn(_In):
    name: str = Field(min_length=1, max_length=64)
    due_date: dt.date | None = None
    done_date: dt.date | None = None
    status: Literal["planned", "done", "missed"] = "planned"


class AdverseEventIn(_In):
    term: str = Field(min_length=1, max_length=128, description="CTCAE v5 term")
    grade: int = Field(ge=1, le=5, description="CTCAE grade 1-5")
    serious: bool = False
    onset_date: dt.date | None = None
    resolved_date: dt.date | None = None
    related: Literal["unrelated", "unlikely", "possible", "probable", "definite", "unknown"] = (
        "unknown"
    )
