"""``application/dicom+json`` in and out of the worklist API (PS3.18 F.2).

The parser turns a DICOM JSON dataset into the keyword form the serializers
validate (one validation for both forms); the renderer turns the keyword form
back into DICOM JSON.  Error bodies stay plain JSON objects.
"""

from __future__ import annotations

import json

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

from worklist.dicom import dicom_json_keywords
from worklist.matching import ITEM_KEYS, SPS_SEQUENCE, STEP_KEYS

DICOM_JSON = "application/dicom+json"


class DicomJsonParser(JSONParser):
    """Parse a DICOM JSON dataset into ``{keyword: value}`` with the SPS list."""

    media_type = DICOM_JSON

    def parse(self, stream, media_type=None, parser_context=None):
        payload = super().parse(stream, media_type, parser_context)
        try:
            return dicom_json_keywords(payload)
        except ValueError as exc:
            raise ParseError(str(exc)) from None


def _dataset(data: dict, keys: dict) -> Dataset:
    ds = Dataset()
    for keyword, key in keys.items():
        value = data.get(keyword)
        if value not in (None, ""):
            setattr(ds, keyword, value)
    return ds


def keywords_to_dicom_json(data: dict) -> dict:
    """One item of the keyword form as a DICOM JSON object."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.update(_dataset(data, ITEM_KEYS))
    steps = [_dataset(step, STEP_KEYS) for step in data.get(SPS_SEQUENCE, [])]
    ds.ScheduledProcedureStepSequence = DicomSequence(steps)
    return ds.to_json_dict()


class DicomJsonRenderer(JSONRenderer):
    """Render worklist items (one, or a page of them as an array) as DICOM JSON."""

    media_type = DICOM_JSON
    format = "dicom-json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if data is None or (response is not None and response.status_code >= 400):
            return super().render(data, accepted_media_type, renderer_context)
        if isinstance(data, dict) and "results" in data:
            data = data["results"]
        if isinstance(data, list):
            body = [keywords_to_dicom_json(item) for item in data]
        else:
            body = keywords_to_dicom_json(data)
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
