"""Interoperability: de-identification, FHIR RiskAssessment, QuPath GeoJSON.

Import the submodules (:mod:`~hccstrat.interop.deid`, :mod:`~hccstrat.interop.fhir`,
:mod:`~hccstrat.interop.geojson`) directly; none is imported here so that importing
the package stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
