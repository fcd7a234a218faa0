"""Models an operator declares in `vidgate.yaml`, checked and turned into catalog entries.

The types catch what one field can get wrong (pydantic, with the file's own field names);
`build_catalog` catches what spans fields or models: defaults outside the lists, price tiers
out of order, and names or aliases used twice. Every message names the file, the model
(`models[i]`) and the field, like the channel messages of channels.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .catalog import Catalog
from .models import BUILTIN_MODELS, Model, parse_size
from .prices import PriceTier, usd_to_micro

SIZE = re.compile(r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")
# No '/', so that every model is reachable as /v1/models/{id}.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
Seconds = Annotated[int, Field(strict=True, gt=0)]


def check_size(size: str) -> str:
    if not SIZE.match(size):
        raise ValueError(f"'{size}' is not WIDTHxHEIGHT")
    return size


def _check_name(name: str) -> str:
    if not MODEL_NAME.match(name):
        raise ValueError(f"'{name}' must be 1-64 letters, digits, '_', '.', ':' or '-'")
    return name


class PriceEntry(BaseModel):
    """One price tier: sizes of at most `max_size` pixels (no `max_size`: every larger size)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_size: str | None = None
    usd_per_second: float = Field(ge=0, allow_inf_nan=False)

    @field_validator("max_size")
    @classmethod
    def _max_size(cls, value: str | None) -> str | None:
        return None if value is None else check_size(value)


class ModelEntry(BaseModel):
    """One public model as written in `vidgate.yaml` (fields documented in docs/backends.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sizes: list[str] = Field(min_length=1)
    seconds: list[Seconds] = Field(min_length=1)
    default_size: str | None = None
    default_seconds: Seconds | None = None
    prices: list[PriceEntry] = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    created: Annotated[int, Field(strict=True, ge=0)] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        return [_check_name(alias) for alias in value]

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[str]) -> list[str]:
        return [check_size(size) for size in value]

    @field_validator("default_size")
    @classmethod
    def _default_size(cls, value: str | None) -> str | None:
        return None if value is None else check_size(value)


def where(path: Path, index: int, name: Any) -> str:
    label = f"model '{name}'" if isinstance(name, str) else f"model #{index + 1}"
    return f"{path}: {label} (models[{index}])"


def build_catalog(path: Path, entries: list[ModelEntry], keep_builtins: bool,
                  created: int) -> tuple[Catalog, list[str]]:
    """The catalog the file describes, and the problems found (empty when it is usable).

    A declared model replaces a built-in one of the same name in its place; the others
    follow in file order. `created` is what a model without its own `created` reports.
    """
    problems: list[str] = []
    for i, entry in enumerate(entries):
        problems += _check_entry(where(path, i, entry.name), entry)
    problems += _check_names(path, entries, keep_builtins)
    if not keep_builtins and not entries:
        problems.append(f"{path}: field 'default_models': false, but no models are declared; "
                        "the catalog would be empty")
    declared = {e.name: _model(e, created) for e in entries}
    builtins = [declared.pop(m.name, m) for m in BUILTIN_MODELS] if keep_builtins else []
    return Catalog.of([*builtins, *declared.values()]), problems


def _check_entry(at: str, entry: ModelEntry) -> list[str]:
    problems = []
    for field, values in (("sizes", entry.sizes), ("seconds", entry.seconds)):
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            problems.append(f"{at}: field '{field}': listed twice: {', '.join(twice)}")
    if entry.default_size is not None and entry.default_size not in entry.sizes:
        problems.append(f"{at}: field 'default_size': '{entry.default_size}' is not one of "
                        f"sizes ({', '.join(entry.sizes)})")
    if entry.default_seconds is not None and entry.default_seconds not in entry.seconds:
        problems.append(f"{at}: field 'default_seconds': {entry.default_seconds} is not one "
                        f"of seconds ({', '.join(str(s) for s in entry.seconds)})")
    *bounded, last = entry.prices
    if last.max_size is not None:
        problems.append(f"{at}: field 'prices': the last tier must have no max_size (it "
                        "prices every larger size)")
    previous = 0
    for i, tier in enumerate(bounded):
        if tier.max_size is None:
            problems.append(f"{at}: field 'prices.{i}.max_size': required on every tier but "
                            "the last")
            continue
        w, h = parse_size(tier.max_size)
        if w * h <= previous:
            problems.append(f"{at}: field 'prices.{i}.max_size': tiers must grow; "
                            f"{tier.max_size} is not larger than the tier before")
        previous = w * h
    return problems


def _check_names(path: Path, entries: list[ModelEntry], keep_builtins: bool) -> list[str]:
    """No name or alias may stand for two things (a declared model may reuse a built-in's
    name: that is how it replaces it)."""
    problems = []
    declared = {e.name for e in entries}
    owner: dict[str, str] = {}
    if keep_builtins:
        for m in BUILTIN_MODELS:
            if m.name not in declared:
                owner[m.name] = f"the built-in model '{m.name}'"
    for i, entry in enumerate(entries):
        at = where(path, i, entry.name)
        for field, name in [("name", entry.name), *(("aliases", a) for a in entry.aliases)]:
            if name in owner:
                problems.append(f"{at}: field '{field}': '{name}' is already used by "
                                f"{owner[name]}")
            else:
                owner[name] = f"model '{entry.name}' (models[{i}])"
    return problems


def _model(entry: ModelEntry, created: int) -> Model:
    tiers = [PriceTier(t.max_size, usd_to_micro(t.usd_per_second)) for t in entry.prices]
    return Model(
        name=entry.name,
        sizes=tuple(entry.sizes),
        seconds=tuple(entry.seconds),
        prices=tuple(tiers),
        default_size=entry.default_size or entry.sizes[0],
        default_seconds=entry.default_seconds or entry.seconds[0],
        aliases=tuple(entry.aliases),
        created=entry.created if entry.created is not None else created,
    )
