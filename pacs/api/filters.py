"""Filtering of the archive API lists through :mod:`pacs.matching` (the C-FIND/QIDO rules).

Query parameters named as DICOM keywords (``PatientName=WANG*``,
``StudyDate=20240101-``, ``ModalitiesInStudy=CT``) are matched exactly as
C-FIND and QIDO-RS match them; ``ordering`` sorts by an allowed field.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

from pacs import matching

RESERVED = {"limit", "offset", "ordering", "format", "fuzzymatching"}


class MatchingFilterBackend(BaseFilterBackend):
    """Applies DICOM matching for the view's ``matching_level``; documents the keys in the schema."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", "list") != "list":
            return queryset  # detail actions take their own parameters (download?dicomdir=...)
        level = view.matching_level
        filters = {}
        for key, value in request.query_params.items():
            if key in RESERVED:
                continue
            keyword = matching.keyword_normalise(key)
            if not keyword:
                raise ValidationError({key: ["not a DICOM keyword or a known parameter"]})
            try:
                found = matching.key_lookup(level, keyword)
            except matching.MatchingError as exc:
                raise ValidationError({key: [exc.message]}) from None
            if found is None or found.field is None:
                raise ValidationError({key: ["the archive index cannot match this attribute"]})
            filters[keyword] = value
        fuzzy = request.query_params.get("fuzzymatching", "").lower() == "true"
        try:
            queryset = matching.level_queryset(level, filters, fuzzy=fuzzy, base=queryset)
        except matching.MatchingError as exc:
            raise ValidationError({"query": [exc.message]}) from None
        ordering = request.query_params.get("ordering")
        if ordering:
            field = ordering.lstrip("-")
            if field not in view.ordering_fields:
                raise ValidationError({"ordering": [f"use one of {', '.join(view.ordering_fields)} (prefix - to reverse)"]})
            queryset = queryset.order_by(ordering, "id")
        return queryset

    def get_schema_operation_parameters(self, view):
        level = view.matching_level
        params = []
        for upper in matching.LEVELS[: matching.LEVELS.index(level) + 1]:
            for keyword, key in matching.LEVEL_KEYS[upper].items():
                if key.field is None:
                    continue
                params.append({
                    "name": keyword, "required": False, "in": "query",
                    "description": f"DICOM matching on {keyword} (VR {key.vr}): wildcards * ?, ranges a-b for dates",
                    "schema": {"type": "string"},
                })
        params.append({"name": "ordering", "required": False, "in": "query",
                       "description": "Sort field: " + ", ".join(view.ordering_fields), "schema": {"type": "string"}})
        params.append({"name": "fuzzymatching", "required": False, "in": "query",
                       "description": "true: person names match any component by prefix",
                       "schema": {"type": "boolean"}})
        return params
