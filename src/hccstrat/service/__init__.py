"""Web service: FastAPI app (one router per resource), accounts and roles, audit, pages.

>>> from hccstrat.service import ServiceSettings, create_app   # doctest: +SKIP
>>> app = create_app(ServiceSettings(data_dir="data"))           # doctest: +SKIP
"""

from __future__ import annotations

from hccstrat.service.app import create_app
from hccstrat.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
