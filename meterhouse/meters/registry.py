"""Where meters are defined: a file under version control, and the ``meters`` table.

The file (MH_METERS_FILE, YAML) is read when the service starts: its meters cannot be
changed through the API (edit the file, review it, restart). Meters added through the
API or ``meterhouse meters add`` are rows of ``meters`` (0081); a slug names one meter,
whichever of the two defines it.

    meters:
      - slug: gpu_minutes
        eventType: gpu.minutes
        aggregation: SUM
        valueProperty: $.minutes
        groupBy: {gpu: $.gpu}
        unit: minute
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from meterhouse.access.tenants import audit, audited_write
from meterhouse.meters import rollup
from meterhouse.meters.definition import Meter, MeterError, parse, parse_path, stable_ulid
from meterhouse.store.base import Store

_COLUMNS = (
    "slug, meter_id, name, description, event_type, aggregation, value_property, group_by, "
    "unit, event_from, created_at, updated_at"
)


UPDATABLE = frozenset({"name", "description", "groupBy", "metadata", "unit"})


def meter_payload(meter: Meter) -> dict[str, object]:
    """The meter as OpenMeter's MeterCreate JSON (plus meterhouse's unit)."""
    payload: dict[str, object] = {
        "slug": meter.slug,
        "eventType": meter.event_type,
        "aggregation": meter.aggregation,
        "groupBy": {key: path.text for key, path in meter.group_by.items()},
        "name": meter.name,
        "description": meter.description,
        "unit": meter.unit,
    }
    if meter.value_property is not None:
        payload["valueProperty"] = meter.value_property.text
    if meter.event_from is not None:
        payload["eventFrom"] = meter.event_from
    return payload


class MeterNotFoundError(MeterError):
    """No meter has this slug or id."""


class MeterConflictError(MeterError):
    """The slug is taken, or the meter is the file's and cannot change here."""


def load_file(path: str) -> list[Meter]:
    """The meters of the file at ``path`` ('' = no file); MeterError names the meter and
    field of a mistake (``meters[2].valueProperty: ...``)."""
    if not path:
        return []
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise MeterError("MH_METERS_FILE", f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise MeterError("MH_METERS_FILE", f"{path} is not YAML: {exc}") from exc
    entries = (document or {}).get("meters", []) if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise MeterError("MH_METERS_FILE", f"{path}: expected `meters:` followed by a list")
    meters: list[Meter] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            meter = parse(entry, origin="file")
        except MeterError as exc:
            where = f"{path}: meters[{index}]" + (f".{exc.field}" if exc.field else "")
            raise MeterError(where, exc.message) from exc
        if meter.slug in seen:
            raise MeterError(f"{path}: meters[{index}].slug", f"{meter.slug!r} is defined twice")
        seen.add(meter.slug)
        meters.append(
            _with(meter, meter_id=stable_ulid(f"meter:{meter.slug}"), created=_EPOCH_FILE)
        )
    return meters


_EPOCH_FILE = datetime(1970, 1, 1, tzinfo=UTC)


def _with(
    meter: Meter, *, meter_id: str, created: datetime, updated: datetime | None = None
) -> Meter:
    return replace(meter, meter_id=meter_id, created_at=created, updated_at=updated or created)


class Registry:
    """Every meter: the file's, then the table's."""

    def __init__(self, store: Store, file_meters: list[Meter], *, rollups: bool = True) -> None:
        self.store = store
        self.file_meters = {meter.slug: meter for meter in file_meters}
        # Rollup views are made on the node meterhouse talks to: on a cluster
        # (MH_CLICKHOUSE_CLUSTER) other replicas would not fill them, so queries read events.
        self.rollups = rollups
        # Held while a rollup is made (meterhouse/meters/rollup.py): the service sets it to
        # its writer's lock, so no insert of events is in flight meanwhile.
        self.write_lock: threading.Lock | None = None

    def ensure_rollups(self) -> None:
        """Every meter's hourly rollup, made where missing (at the service's start)."""
        for meter in self.list() if self.rollups else ():
            rollup.ensure(self.store, meter, self.write_lock)

    def _stored(self, slug: str | None = None) -> list[Meter]:
        where = "WHERE slug = {slug:String}" if slug is not None else ""
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM meters FINAL {where} ORDER BY slug",
            {"slug": slug} if slug is not None else None,
        ).rows
        return [_from_row(row) for row in rows]

    def list(self) -> list[Meter]:
        found = {meter.slug: meter for meter in self._stored()}
        found.update(self.file_meters)
        return [found[slug] for slug in sorted(found)]

    def get(self, slug_or_id: str) -> Meter:
        meter = self.file_meters.get(slug_or_id)
        if meter is not None:
            return meter
        for meter in self.list() if len(slug_or_id) == 26 else self._stored(slug_or_id):
            if slug_or_id in (meter.slug, meter.meter_id):
                return meter
        raise MeterNotFoundError(
            "", f"no meter {slug_or_id!r}; `meterhouse meters list` shows them"
        )

    def add(self, meter: Meter, *, meter_id: str, actor: str) -> Meter:
        if meter.slug in self.file_meters:
            raise MeterConflictError("slug", f"{meter.slug!r} is defined in the meters file")
        if self._stored(meter.slug):
            raise MeterConflictError("slug", f"a meter {meter.slug!r} exists already")
        stored = self._audited(
            _with(meter, meter_id=meter_id, created=datetime.now(UTC)), actor, None
        )
        if self.rollups:
            rollup.ensure(self.store, stored, self.write_lock)
        return stored

    def update(self, slug_or_id: str, changes: dict[str, object], *, actor: str) -> Meter:
        """OpenMeter's MeterUpdate: name, description and groupBy (and meterhouse's unit);
        the slug, event type, aggregation and value stay. A new groupBy is a new rollup."""
        meter = self.get(slug_or_id)
        if meter.origin == "file":
            raise MeterConflictError(
                "slug", f"{meter.slug!r} is defined in the meters file: edit it there"
            )
        fixed = sorted(set(changes) - UPDATABLE)
        if fixed:
            raise MeterError(
                fixed[0], f"cannot be changed; only {', '.join(sorted(UPDATABLE))} can"
            )
        payload = {**meter_payload(meter), **{k: v for k, v in changes.items() if k != "metadata"}}
        updated = replace(
            parse(payload),
            meter_id=meter.meter_id,
            created_at=meter.created_at,
            updated_at=datetime.now(UTC),
        )
        updated = self._audited(updated, actor, meter)
        if self.rollups:
            rollup.ensure(self.store, updated, self.write_lock)
        return updated

    def _audited(self, meter: Meter, actor: str, before: Meter | None) -> Meter:
        """Written, read back as stored, and audited (access.tenants.audited_write)."""
        return audited_write(
            self.store,
            lambda: self._write(meter),
            lambda: next(iter(self._stored(meter.slug)), None),
            actor=actor,
            action="meter.update" if before else "meter.add",
            target_type="meter",
            target_id=meter.slug,
            account_id="",
            before=before.as_openmeter() if before else None,
            shown=Meter.as_openmeter,
        )

    def _write(self, meter: Meter) -> None:
        self.store.insert(
            "meters",
            {
                "slug": [meter.slug],
                "meter_id": [meter.meter_id],
                "name": [meter.name],
                "description": [meter.description],
                "event_type": [meter.event_type],
                "aggregation": [meter.aggregation],
                "value_property": [meter.value_property.text if meter.value_property else ""],
                "group_by": [json.dumps({k: path.text for k, path in meter.group_by.items()})],
                "unit": [meter.unit],
                "event_from": [meter.event_from],
                "created_at": [meter.created_at],
                "updated_at": [meter.updated_at],
                "is_deleted": [0],
            },
        )

    def remove(self, slug_or_id: str, *, actor: str) -> Meter:
        meter = self.get(slug_or_id)
        if meter.origin == "file":
            raise MeterConflictError(
                "slug", f"{meter.slug!r} is defined in the meters file: remove it there"
            )
        now = datetime.now(UTC)
        self.store.insert(
            "meters",
            {
                "slug": [meter.slug],
                "meter_id": [meter.meter_id],
                "event_type": [meter.event_type],
                "aggregation": [meter.aggregation],
                "created_at": [meter.created_at or now],
                "updated_at": [now],
                "is_deleted": [1],
            },
        )
        self._audit(actor, "meter.remove", meter.slug, meter, None)
        rollup.drop(self.store, meter)
        return meter

    def _audit(
        self, actor: str, action: str, slug: str, before: Meter | None, after: Meter | None
    ) -> None:
        audit(
            self.store,
            actor=actor,
            action=action,
            target_type="meter",
            target_id=slug,
            account_id="",
            before=before.as_openmeter() if before else None,
            after=after.as_openmeter() if after else None,
        )


def _from_row(row: tuple[Any, ...]) -> Meter:
    slug, meter_id, name, description, event_type, aggregation, value, groups, unit = row[:9]
    event_from, created_at, updated_at = row[9:]
    group_by = {key: parse_path(f"groupBy.{key}", path) for key, path in json.loads(groups).items()}
    return Meter(
        slug=slug,
        event_type=event_type,
        aggregation=aggregation,
        value_property=parse_path("valueProperty", value) if value else None,
        group_by=group_by,
        name=name,
        description=description,
        unit=unit,
        event_from=event_from,
        meter_id=meter_id,
        created_at=created_at,
        updated_at=updated_at,
        origin="api",
    )
