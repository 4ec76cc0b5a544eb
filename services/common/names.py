"""Resource names (AIP-122): "collection/{id}" and nested "collection/{id}/child/{id}"."""

from __future__ import annotations

from services.common.errors import InvalidArgument, quoted


def resource_ids(
    name: str, collections: tuple[str, ...], field_name: str, *, numeric: bool = False
) -> tuple[str, ...]:
    """The ids of a name made of `collections` in order; any other shape is refused naming the field."""
    pattern = "/".join(f"{c}/{{id}}" for c in collections)
    if not name:
        raise InvalidArgument.field(field_name, f"is required, a name of the form {pattern}")
    parts = name.split("/")
    well_formed = len(parts) == 2 * len(collections) and all(
        parts[2 * i] == collection and parts[2 * i + 1] for i, collection in enumerate(collections)
    )
    ids = tuple(parts[1::2])
    if not well_formed or (numeric and not all(i.isdigit() and len(i) <= 18 for i in ids)):
        kind = "numeric " if numeric else ""
        raise InvalidArgument.field(
            field_name, f"{quoted(name)} is not a name of the form {pattern} with {kind}ids"
        )
    return ids


def resource_id(name: str, collection: str, field_name: str) -> str:
    """The id of "collection/{id}"."""
    return resource_ids(name, (collection,), field_name)[0]
