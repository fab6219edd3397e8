"""Text of worklist responses in the character set the modality asked for.

A modality names the Specific Character Set (0008,0005) it can display in its
C-FIND identifier; the response is encoded in that set (PS3.4 C.4.1.1.3.1 /
K.4.1.1.3).  Chinese text is sent as is when the set can carry it (ISO_IR 192,
GB18030, GBK, ISO 2022 IR 58).  Otherwise a person name falls back to its
alphabetic component group and, when there is none, to a pinyin transliteration
of the ideographic group (``王^小明`` -> ``WANG^XIAOMING``); other text is
transliterated syllable by syllable.  Characters the set still cannot carry are
folded to ASCII (``Müller`` -> ``Muller`` for a plain ASCII modality) so the
modality never shows ``?`` or mojibake.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

from pydicom.charset import convert_encodings, python_encoding
from pypinyin import Style, lazy_pinyin

logger = logging.getLogger(__name__)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Defined Terms that are not spelled the standard way by some modalities.
_ALIASES = {"GB2312": "GB18030", "UTF-8": "ISO_IR 192", "UTF8": "ISO_IR 192"}


@dataclass(frozen=True)
class ResponseCharset:
    """The Specific Character Set of a response and the Python codecs it maps to.

    ``terms`` is ``[]`` for the default repertoire (no SpecificCharacterSet sent).
    """

    terms: list[str]
    codecs: list[str]

    @classmethod
    def for_terms(cls, terms: list[str]) -> ResponseCharset:
        """Charset for the (normalised) values of a query's SpecificCharacterSet.

        Unknown terms fall back to the default repertoire (ASCII), which every
        modality can display; the fallback is logged.
        """
        cleaned = [_ALIASES.get(term.strip().upper(), term.strip()) for term in terms]
        if not any(cleaned) or cleaned == ["ISO_IR 6"]:
            return cls(terms=[], codecs=["ascii"])
        if any(term not in python_encoding for term in cleaned if term):
            logger.warning("worklist unknown charset requested charset=%s fallback=ascii", "\\".join(cleaned))
            return cls(terms=[], codecs=["ascii"])
        return cls(terms=cleaned, codecs=convert_encodings(cleaned))

    def can_encode(self, value: str) -> bool:
        """True when every character of *value* has a code in one of the codecs."""
        if not value or value.isascii():
            return True
        for codec in self.codecs:
            try:
                value.encode(codec)
                return True
            except (UnicodeError, LookupError):
                continue
        if len(self.codecs) < 2:
            return False
        # ISO 2022 code extensions: each character may come from a different set.
        return all(self._char_encodable(char) for char in value)

    def _char_encodable(self, char: str) -> bool:
        for codec in self.codecs:
            try:
                char.encode(codec)
                return True
            except (UnicodeError, LookupError):
                continue
        return False

    def text(self, value: str) -> str:
        """*value* (LO/SH/LT/ST) as this charset can carry it."""
        if self.can_encode(value):
            return value
        return self._fold(_pinyin_text(value))

    def person_name(self, value: str) -> str:
        """A PN value as this charset can carry it (see the module docstring)."""
        if self.can_encode(value):
            return value
        groups = value.split("=")
        alphabetic = groups[0]
        if alphabetic and self.can_encode(alphabetic):
            return alphabetic
        source = next((group for group in groups[1:] if group), "") or alphabetic
        return self._fold(pinyin_person_name(source))

    def _fold(self, value: str) -> str:
        if self.can_encode(value):
            return value
        folded = unicodedata.normalize("NFKD", value)
        return "".join(char for char in folded if not unicodedata.combining(char) and self.can_encode(char))


def _pinyin_syllables(text: str) -> str:
    """Han characters as upper-case pinyin syllables without tones, run together."""
    return "".join(lazy_pinyin(text, style=Style.NORMAL, errors="default")).upper()


def _pinyin_text(value: str) -> str:
    """Free text with each run of Han characters replaced by spaced pinyin syllables."""

    def replace(match: re.Match) -> str:
        return " ".join(lazy_pinyin(match.group(0), style=Style.NORMAL)).upper()

    text = re.sub(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+", lambda m: f" {replace(m)} ", value)
    return re.sub(r" {2,}", " ", text).strip()


# Two-character surnames: without a "^" the family name is otherwise one character.
_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 令狐 长孙 宇文 夏侯 轩辕 端木 司徒 西门 南宫 独孤 呼延".split()
)


def pinyin_person_name(value: str) -> str:
    """Transliterate a Chinese PN component group: ``王^小明`` -> ``WANG^XIAOMING``.

    Components keep their ``^`` positions; a name written without ``^``
    (``王小明``) is split after the surname (one character, or two for the
    compound surnames).
    """
    if "^" not in value and _HAN.fullmatch(value[:1] or "x") and len(value) > 1:
        cut = 2 if value[:2] in _COMPOUND_SURNAMES and len(value) > 2 else 1
        value = f"{value[:cut]}^{value[cut:]}"
    return "^".join(_pinyin_syllables(component).replace(" ", "") if _HAN.search(component) else component
                    for component in value.split("^"))
