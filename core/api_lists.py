"""The API's long lists (trades, analyses, runs) written without building a model instance and a serializer
pass per row. A page of 50 trades spent half its time in DRF's generic walk over each row's fields
(`Serializer.to_representation`: `_readable_fields`, `get_attribute`, the SkipField checks) and a quarter in
turning rows into model instances; the SQL was a fraction of a millisecond (bench/bench_api.py).

`LeanListMixin.list` reads the page's columns with `.values()` and writes each field with the serializer's
own field's `to_representation`, so the output, and the OpenAPI schema drf-spectacular derives from the same
serializer, stay what they were; tests/api/test_lean_lists.py compares every list's page with the
serializer's output for the same rows."""

import functools
from types import SimpleNamespace

from django.core.exceptions import ImproperlyConfigured
from rest_framework import serializers


class LeanListMixin:
    """For a ReadOnlyModelViewSet with a paginator: `list` through `representation_plan`. Retrieve and every
    other action keep the serializer."""

    def list(self, request, *args, **kwargs):
        serializer = self.get_serializer()
        plan = representation_plan(type(serializer))
        queryset = self.filter_queryset(self.get_queryset())
        # The cursor's position is read from the row by the ordering's column, which the page may not show.
        ordering = {name.lstrip("-") for name in self.paginator.get_ordering(request, queryset, self)}
        page = self.paginate_queryset(queryset.values(*plan.columns, *(ordering - set(plan.columns))))
        return self.get_paginated_response([plan.represent(row, serializer) for row in page])


class RepresentationPlan:
    """How a serializer writes a row of `.values(*columns)`: each field with its source column and its
    `to_representation`, None passed through as the serializer does; a SerializerMethodField's method is
    given the row with attribute access (and `pk`), its columns named by the serializer's `method_columns`."""

    def __init__(self, columns, steps, methods):
        self.columns, self.steps, self.methods = columns, steps, methods

    def represent(self, row: dict, serializer: serializers.Serializer) -> dict:
        """`row` as `serializer` (an instance of the plan's class, with the request's context) writes it."""
        out = {}
        obj = SimpleNamespace(pk=row["id"], **row) if self.methods else None
        for name, column, convert in self.steps:
            if convert is None:  # a SerializerMethodField, called on this request's serializer
                out[name] = getattr(serializer, self.methods[name])(obj)
            else:
                value = row[column]
                out[name] = None if value is None else convert(value)
        return out


def _identity(value):
    return value


@functools.cache
def representation_plan(serializer_class: type[serializers.Serializer]) -> RepresentationPlan:
    """The plan of the serializer's readable fields, made once per process: building a ModelSerializer's
    fields from its model costs a tenth of the page, and the fields' `to_representation` do not depend on
    the request. A field it cannot write from one column (a nested serializer, a dotted source, a related
    field other than a bare primary key) is refused here, on the first request (and by the tests), rather
    than written differently from the serializer."""
    serializer = serializer_class()
    columns, steps, methods = ["id"], [], {}
    for field in serializer._readable_fields:
        name = field.field_name
        if isinstance(field, serializers.SerializerMethodField):
            methods[name] = field.method_name
            steps.append((name, None, None))
            continue
        if isinstance(field, serializers.BaseSerializer) or len(field.source_attrs) != 1:
            raise ImproperlyConfigured(f"{type(serializer).__name__}.{name}: not one column of the row")
        if isinstance(field, serializers.RelatedField):
            if not isinstance(field, serializers.PrimaryKeyRelatedField) or field.pk_field is not None:
                raise ImproperlyConfigured(f"{type(serializer).__name__}.{name}: not a bare primary key")
            convert = _identity  # .values() gives a foreign key's id, which is what the field writes
        else:
            convert = field.to_representation
        column = field.source_attrs[0]
        if column not in columns:
            columns.append(column)
        steps.append((name, column, convert))
    columns += [c for c in getattr(serializer, "method_columns", ()) if c not in columns]
    return RepresentationPlan(columns, steps, methods)
