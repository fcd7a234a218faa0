"""The catalog: the public models a gateway offers, looked up by name or alias.

It is the built-in `sora-2` / `sora-2-pro` plus the models an operator declares in
`vidgate.yaml` (catalog/declared.py reads those). Clients may name a model by an alias; the
catalog resolves it, and tasks, holds, usage and the router only ever see the canonical name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ApiError
from .models import DEFAULT_MODELS, Model
from .prices import billable_seconds, charged_seconds
from .requests import RawVideoRequest, VideoRequest, normalize

if TYPE_CHECKING:
    from ..domain import Task


@dataclass
class Catalog:
    """The public models in listing order; the first is the default when a request names
    none (`sora-2` while the built-ins are kept)."""

    models: dict[str, Model] = field(default_factory=lambda: dict(DEFAULT_MODELS))

    def __post_init__(self) -> None:
        self._by_alias = {alias: m.name for m in self.models.values() for alias in m.aliases}

    @classmethod
    def of(cls, models: Iterable[Model]) -> Catalog:
        return cls({m.name: m for m in models})

    @property
    def default_model(self) -> str:
        return next(iter(self.models))

    def canonical(self, name: str) -> str | None:
        """The model's own name for a name or alias, or None when neither is known."""
        if name in self.models:
            return name
        return self._by_alias.get(name)

    def get(self, name: str, *, not_found_status: int = 400) -> Model:
        canonical = self.canonical(name)
        if canonical is None:
            raise ApiError(
                not_found_status,
                "model_not_found",
                f"The model '{name}' does not exist. Available: {', '.join(self.models)}.",
                param="model",
                type="invalid_request_error",
            )
        return self.models[canonical]

    def allows(self, allowed: list[str] | None, model: str) -> bool:
        """Whether a key's allow-list (None: every model) covers `model`; entries may be
        aliases, compared by the model they stand for."""
        if allowed is None:
            return True
        return any(self.canonical(entry) == model for entry in allowed)

    def price(self, request: VideoRequest, params: dict | None = None) -> int:
        """What the requested length costs, in micro-USD (the hold on a limited key)."""
        return self.delivered_price(request.model, request.width, request.height,
                                    charged_seconds(params or {}, request.seconds))

    def delivered_price(self, model: str, width: int, height: int, seconds: float) -> int:
        """What a delivered video costs: whole seconds, rounded to nearest, at least one."""
        return self.models[model].price_per_second(width, height) * billable_seconds(seconds)

    def settlement_price(self, task: Task, seconds: float) -> int:
        """The charge for a finished task. A task whose model left the catalog (the file was
        changed while it ran) is charged its hold, the price it was accepted at."""
        if task.model not in self.models:
            return task.hold_micro
        return self.delivered_price(task.model, task.width, task.height,
                                    charged_seconds(task.params, seconds))

    def normalize(self, raw: RawVideoRequest, *, default_size: str = "1280x720",
                  model_not_found_status: int = 400) -> VideoRequest:
        """The canonical request for `raw`; `default_size` is the route family's default for
        models that declare none (catalog/requests.py holds the rules)."""
        return normalize(self.get, raw, default_model=self.default_model,
                         default_size=default_size,
                         model_not_found_status=model_not_found_status)
