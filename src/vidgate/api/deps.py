"""The typed way from a FastAPI request to the process's services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..services import Services


def services_of(request: Request) -> Services:
    """The services `create_app` put on the FastAPI app (`request.app` is that app)."""
    services: Services = request.app.state.services
    return services


# The services, as a route parameter type.
Deps = Annotated[Services, Depends(services_of)]
