"""Decoding of DICOM text to Unicode for the index (PS3.5 6.1).

Handles every Specific Character Set pydicom knows (ISO_IR 192, GB18030, GBK,
ISO 2022 IR 58/87/149, Latin-1, ...) and two real-world faults:

* Chinese devices that send GBK/GB18030 bytes while declaring Latin-1 or no
  character set at all: when the bytes decode cleanly as GB18030 *and* yield
  CJK ideographs, GB18030 is used instead of the declared set.
* A per-calling-AE override (``RemoteNode.charset_override``) for devices that
  are consistently wrong: the override replaces whatever the device declared.

The stored file keeps the received bytes; only the index holds Unicode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

# Declarations under which high-bit bytes may really be a Chinese encoding.
_SUSPECT_DECLARATIONS = {"", "ISO_IR 6", "ISO 2022 IR 6", "ISO_IR 100", "ISO 2022 IR 100"}
# Non-standard values seen in the field, mapped to the Defined Term that decodes them.
_ALIASES = {"GB2312": "GB18030", "GBK ": "GBK", "UTF-8": "ISO_IR 192", "UTF8": "ISO_IR 192"}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TEXT_DELIMITERS = {"\\"}
_IR58_ESCAPE = b"\x1b$)A"


def _normalise(charsets: list[str]) -> list[str]:
    return [_ALIASES.get(value.strip().upper(), value.strip()) or "ISO_IR 6" for value in charsets]


def declared_charsets(ds: Dataset) -> list[str]:
    """The Specific Character Set values of *ds*, as a list (possibly ``[""]``)."""
    elem = ds.get_item(0x00080005)
    if elem is None:
        return ["ISO_IR 6"]
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        values = value.split("\\")
    else:
        values = list(value or [""])
    return _normalise([str(v) for v in values]) or ["ISO_IR 6"]


def _gb_pairs_only(raw: bytes) -> bool:
    """Every high-bit byte belongs to a two-byte pair with a high-bit trail byte.

    Hanzi in GB2312/GBK names are such pairs; a Latin-1 accent is one high byte
    next to ASCII ("M\xfcller"), which this rejects.
    """
    i, n = 0, len(raw)
    while i < n:
        if raw[i] < 0x80:
            i += 1
        elif i + 1 < n and raw[i + 1] >= 0x80:
            i += 2
        else:
            return False
    return True


def _looks_chinese(raw: bytes) -> bool:
    if not any(b >= 0x80 for b in raw) or not _gb_pairs_only(raw):
        return False
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return bool(_CJK.search(text))


@dataclass(frozen=True)
class TextDecoder:
    """Decodes the text elements of one dataset with its effective character sets."""

    charsets: list[str]
    suspect: bool  # declared set may hide GBK/GB18030 bytes

    @classmethod
    def for_dataset(cls, ds: Dataset, override: str = "") -> TextDecoder:
        if override:
            return cls(charsets=_normalise(override.split("\\")), suspect=False)
        charsets = declared_charsets(ds)
        suspect = charsets[0] in _SUSPECT_DECLARATIONS and len(charsets) == 1
        return cls(charsets=charsets, suspect=suspect)

    def _effective(self, raw: bytes) -> tuple[bytes, list[str]]:
        """The bytes and Python codec names to decode them with."""
        if self.suspect and _looks_chinese(raw):
            return raw, ["GB18030"]
        if self.charsets == ["ISO_IR 192"]:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                if _looks_chinese(raw):
                    return raw, ["GB18030"]
        if "ISO 2022 IR 58" in self.charsets and _IR58_ESCAPE in raw:
            # GB2312 designated to G1 (ESC $ ) A) is plain EUC-CN after the escape;
            # pydicom expects Python to strip that escape, which Python does not.
            return raw.replace(_IR58_ESCAPE, b""), ["GB18030"]
        return raw, convert_encodings(self.charsets)

    @staticmethod
    def _raw(ds: Dataset, tag: int) -> bytes | str | None:
        elem = ds.get_item(tag)
        if elem is None:
            return None
        if isinstance(elem, RawDataElement):
            return elem.value or b""
        value = elem.value
        if value is None:
            return ""
        return str(value)

    def text(self, ds: Dataset, tag: int) -> str:
        """Decoded value of a LO/SH/LT/ST/UT element ('' when absent)."""
        raw = self._raw(ds, tag)
        if not raw:
            return ""
        if isinstance(raw, str):
            return raw.strip()
        raw, encodings = self._effective(raw)
        value = decode_bytes(raw, encodings, _TEXT_DELIMITERS)
        return value.strip(" \x00")

    def person_name(self, ds: Dataset, tag: int) -> PersonNameText:
        """Decoded PN value with its alphabetic/ideographic/phonetic groups."""
        raw = self._raw(ds, tag)
        if not raw:
            return PersonNameText("", "", "", "")
        if isinstance(raw, str):
            pn = PersonName(raw)
        else:
            # Only the first value of a multi-valued PN is indexed.
            raw = raw.split(b"\\")[0].rstrip(b" \x00")
            raw, encodings = self._effective(raw)
            pn = PersonName(raw, encodings)
        full = str(pn).strip()
        return PersonNameText(
            full=full,
            alphabetic=(pn.alphabetic or "").strip(),
            ideographic=(pn.ideographic or "").strip(),
            phonetic=(pn.phonetic or "").strip(),
        )


@dataclass(frozen=True)
class PersonNameText:
    full: str
    alphabetic: str
    ideographic: str
    phonetic: str
