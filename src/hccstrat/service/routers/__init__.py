"""One router per resource."""

from __future__ import annotations

from hccstrat.service.routers import (
    admin,
    audit,
    auth,
    dicom,
    images,
    jobs,
    pathology,
    patients,
    predictions,
    reports,
    trial,
    ui,
    uploads,
)

__all__ = ["ROUTERS"]

#: routers included by :func:`hccstrat.service.create_app`, in order
ROUTERS = [auth.router, admin.router, patients.router, uploads.router, pathology.router,
           jobs.router, predictions.router, trial.router, reports.router, dicom.router,
           audit.router, images.router, ui.router]
