"""Film composition: lay the image boxes of a film box out on one film image.

Pure functions over pydicom datasets and numpy arrays (no ORM, no files):

- :func:`display_format_parse` turns an Image Display Format (``STANDARD\\C,R``,
  ``ROW\\a,b,..``, ``COL\\a,b,..``; PS3.3 C.13.8) into a :class:`Layout`;
- :func:`film_geometry` gives the film size in pixels from Film Size ID,
  Film Orientation and the print resolution (``PACS_PRINT_DPI``);
- :func:`preformatted_image_read` validates and decodes a Preformatted
  Grayscale/Color Image Sequence item (PS3.3 C.13.5);
- :func:`film_compose` renders the film honouring layout, polarity, border
  and empty image densities, Min/Max Density, trim, requested image size and
  magnification type.

Densities are hundredths of optical density; the composed softcopy maps Max
Density to black and Min Density to white linearly, so ``BLACK``/``WHITE``
and numeric densities land where a film viewer would see them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from printing.choices import FILM_SIZES_MM, FilmOrientation, MagnificationType, Polarity
from printing.exceptions import InvalidAttributeValue, MissingAttribute

DEFAULT_FILM_SIZE = "14INX17IN"
DEFAULT_ORIENTATION = FilmOrientation.PORTRAIT
DEFAULT_MAGNIFICATION = MagnificationType.BILINEAR
DEFAULT_MIN_DENSITY = 20
DEFAULT_MAX_DENSITY = 300
DEFAULT_BORDER_DENSITY = "BLACK"
DEFAULT_EMPTY_IMAGE_DENSITY = "BLACK"
MAX_IMAGE_BOXES = 100  # a 10x10 film is the largest layout any printer offers
GAP_INCHES = 0.08  # border between image boxes and around the film
TRIM_PIXELS = 2
# Basic Annotation Box (PS3.4 H.4.5): this printer offers six text positions for any
# Annotation Display Format ID: 1-3 left/centre/right above the images, 4-6 below.
ANNOTATION_POSITIONS = 6
ANNOTATION_BAND_INCHES = 0.3

_COUNT = r"[1-9][0-9]{0,1}"
_STANDARD_RE = re.compile(rf"^STANDARD\\({_COUNT}),({_COUNT})$")
_ROW_COL_RE = re.compile(rf"^(ROW|COL)\\({_COUNT}(?:,{_COUNT})*)$")
_DENSITY_RE = re.compile(r"^[0-9]{1,5}$")
_RESAMPLING = {
    MagnificationType.REPLICATE: Image.Resampling.NEAREST,
    MagnificationType.BILINEAR: Image.Resampling.BILINEAR,
    MagnificationType.CUBIC: Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class Layout:
    """Image boxes per row (``ROW``/``STANDARD``) or per column (``COL``)."""

    kind: str  # "ROW" or "COL"
    counts: tuple[int, ...]

    @property
    def image_box_count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


@dataclass
class FilmImage:
    """A decoded image box: ``pixels`` float32 in [0, 1] (1 = brightest), HxW or HxWx3."""

    pixels: np.ndarray
    color: bool


def display_format_parse(value: str) -> Layout:
    """Parse an Image Display Format (PS3.3 C.13.8 Table C.13-3).

    ``STANDARD\\C,R`` is C columns by R rows; ``ROW\\a,b`` has a images in the
    first row and b in the second; ``COL\\a,b`` a images in the first column.

    Raises
    ------
    InvalidAttributeValue
        0x0106 for anything else (SLIDE, SUPERSLIDE, CUSTOM, malformed counts).
    """
    text = (value or "").strip().upper()
    match = _STANDARD_RE.match(text)
    if match:
        columns, rows = int(match.group(1)), int(match.group(2))
        layout = Layout("ROW", tuple([columns] * rows))
    else:
        match = _ROW_COL_RE.match(text)
        if not match:
            raise InvalidAttributeValue(
                f"Image Display Format {value!r} is not supported: use STANDARD\\C,R, ROW\\a,b,... or COL\\a,b,..."
            )
        layout = Layout(match.group(1), tuple(int(n) for n in match.group(2).split(",")))
    if layout.image_box_count > MAX_IMAGE_BOXES:
        raise InvalidAttributeValue(f"Image Display Format {value!r} has more than {MAX_IMAGE_BOXES} image boxes")
    return layout


def film_size_validate(value: str) -> str:
    if value not in FILM_SIZES_MM:
        raise InvalidAttributeValue(f"Film Size ID {value!r} is not a defined term ({', '.join(FILM_SIZES_MM)})")
    return value


def density_validate(value: str, keyword: str) -> str:
    """BLACK, WHITE or hundredths of optical density (PS3.3 C.13.8)."""
    text = (value or "").strip().upper()
    if text in ("BLACK", "WHITE") or _DENSITY_RE.match(text):
        return text
    raise InvalidAttributeValue(f"{keyword} {value!r} must be BLACK, WHITE or a density in hundredths of OD")


def film_geometry(*, film_size_id: str, film_orientation: str, dpi: int) -> tuple[int, int]:
    """Film (width, height) in pixels at *dpi*; LANDSCAPE puts the long edge horizontal."""
    width_mm, height_mm = FILM_SIZES_MM[film_size_validate(film_size_id)]
    if film_orientation == FilmOrientation.LANDSCAPE:
        width_mm, height_mm = height_mm, width_mm
    return round(width_mm / 25.4 * dpi), round(height_mm / 25.4 * dpi)


def layout_rects(layout: Layout, width: int, height: int, gap: int) -> list[Rect]:
    """Image box rectangles in Image Box Position order (row by row, or column by column for COL)."""
    rects: list[Rect] = []
    lines = len(layout.counts)
    if layout.kind == "ROW":
        line_size = (height - gap * (lines + 1)) // lines
        for index, count in enumerate(layout.counts):
            y = gap + index * (line_size + gap)
            cell = (width - gap * (count + 1)) // count
            rects += [Rect(gap + n * (cell + gap), y, cell, line_size) for n in range(count)]
    else:
        line_size = (width - gap * (lines + 1)) // lines
        for index, count in enumerate(layout.counts):
            x = gap + index * (line_size + gap)
            cell = (height - gap * (count + 1)) // count
            rects += [Rect(x, gap + n * (cell + gap), line_size, cell) for n in range(count)]
    if any(rect.width < 1 or rect.height < 1 for rect in rects):
        raise InvalidAttributeValue("Image Display Format has too many image boxes for this film size")
    return rects


def density_to_gray(value: str, *, min_density: int, max_density: int) -> float:
    """Display brightness (0 black .. 1 white) of a density value."""
    if value == "BLACK":
        return 0.0
    if value == "WHITE":
        return 1.0
    span = max(max_density - min_density, 1)
    return float(np.clip((max_density - int(value)) / span, 0.0, 1.0))


def preformatted_image_read(item: Dataset, *, color: bool, little_endian: bool = True) -> FilmImage:
    """Validate and decode one Preformatted Grayscale/Color Image Sequence item.

    Grayscale: MONOCHROME1/2, 8 bits (Bits Allocated 8) or 12/16 bits (Bits
    Allocated 16), unsigned.  Color: RGB, 8 bits, either planar configuration.

    Raises
    ------
    MissingAttribute
        0x0120: a required Image Pixel attribute is absent.
    InvalidAttributeValue
        0x0106: unsupported values, or Pixel Data whose length does not match
        Rows x Columns x Samples per Pixel x Bits Allocated.
    """
    for keyword in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation", "PixelData"):
        if item.get(keyword) in (None, ""):
            raise MissingAttribute(f"Image box pixel data: {keyword} is missing")
    rows, columns = int(item.Rows), int(item.Columns)
    bits_allocated = int(item.BitsAllocated)
    bits_stored = int(item.get("BitsStored") or bits_allocated)
    samples = int(item.get("SamplesPerPixel") or 1)
    photometric = str(item.PhotometricInterpretation).strip().upper()
    if rows < 1 or columns < 1 or rows * columns > 64_000_000:
        raise InvalidAttributeValue(f"Image box pixel data: {rows}x{columns} is not a printable size")
    if int(item.get("PixelRepresentation") or 0) != 0:
        raise InvalidAttributeValue("Image box pixel data must be unsigned (Pixel Representation 0)")
    if color:
        if photometric != "RGB" or samples != 3 or bits_allocated != 8:
            raise InvalidAttributeValue(
                f"Color image box needs RGB, 3 samples, 8 bits; got {photometric}, {samples}, {bits_allocated}"
            )
    elif photometric not in ("MONOCHROME1", "MONOCHROME2") or samples != 1:
        raise InvalidAttributeValue(f"Grayscale image box needs MONOCHROME1/2, 1 sample; got {photometric}, {samples}")
    elif (bits_allocated, bits_stored) not in ((8, 8), (16, 12), (16, 16)):
        raise InvalidAttributeValue(
            f"Grayscale image box needs 8 bits, or 12/16 bits stored in 16; got {bits_stored} in {bits_allocated}"
        )
    data = item.PixelData
    expected = rows * columns * samples * bits_allocated // 8
    if len(data) not in (expected, expected + 1):  # an odd length is padded to even
        raise InvalidAttributeValue(
            f"Pixel Data has {len(data)} bytes; {rows} rows x {columns} columns x {samples} samples x "
            f"{bits_allocated} bits need {expected}"
        )
    dtype = np.dtype(np.uint8) if bits_allocated == 8 else np.dtype("<u2" if little_endian else ">u2")
    values = np.frombuffer(data[:expected], dtype=dtype)
    if color:
        planar = int(item.get("PlanarConfiguration") or 0)
        shaped = values.reshape(3, rows, columns).transpose(1, 2, 0) if planar else values.reshape(rows, columns, 3)
        return FilmImage(pixels=shaped.astype(np.float32) / 255.0, color=True)
    maximum = float((1 << bits_stored) - 1)
    pixels = np.minimum(values.reshape(rows, columns), maximum).astype(np.float32) / maximum
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
    return FilmImage(pixels=pixels, color=False)


def _fit(image: FilmImage, box: Rect, *, magnification: str, requested_width_px: int | None) -> np.ndarray:
    """Scale *image* into *box* keeping its aspect ratio (MagnificationType NONE: 1:1, cropped)."""
    pixels = image.pixels
    height, width = pixels.shape[:2]
    if magnification == MagnificationType.NONE:
        top, left = max((height - box.height) // 2, 0), max((width - box.width) // 2, 0)
        return pixels[top : top + box.height, left : left + box.width]
    scale = min(box.width / width, box.height / height)
    if requested_width_px:
        scale = min(scale, requested_width_px / width)  # larger than the box: demagnified to fit
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = _RESAMPLING.get(magnification, _RESAMPLING[DEFAULT_MAGNIFICATION])
    if image.color:
        as_bytes = Image.fromarray(np.rint(pixels * 255).astype(np.uint8), mode="RGB")
        return np.asarray(as_bytes.resize(target, resample), dtype=np.float32) / 255.0
    resized = Image.fromarray(pixels, mode="F").resize(target, resample)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


@dataclass
class ImageBoxRender:
    """What the composer needs of one image box."""

    position: int
    image: FilmImage | None
    polarity: str = Polarity.NORMAL
    magnification_type: str = ""
    requested_image_size_mm: float | None = None


def film_compose(
    *,
    image_display_format: str,
    film_size_id: str,
    film_orientation: str,
    image_boxes: list[ImageBoxRender],
    dpi: int,
    color: bool,
    magnification_type: str = "",
    border_density: str = DEFAULT_BORDER_DENSITY,
    empty_image_density: str = DEFAULT_EMPTY_IMAGE_DENSITY,
    min_density: int = DEFAULT_MIN_DENSITY,
    max_density: int = DEFAULT_MAX_DENSITY,
    trim: bool = False,
    annotations: dict[int, str] | None = None,
) -> np.ndarray:
    """Compose one film box; returns uint8 HxW (grayscale) or HxWx3 (color).

    The film is filled with Border Density; each image box area with Empty
    Image Density, then its image scaled to fit (aspect kept, centred),
    inverted for Polarity REVERSE, with a trim box when Trim is YES.
    ``annotations`` (position -> text, ``None`` when the film box has no
    Annotation Display Format ID) reserve a text band above and below the images.
    """
    layout = display_format_parse(image_display_format)
    width, height = film_geometry(film_size_id=film_size_id, film_orientation=film_orientation, dpi=dpi)
    band = round(ANNOTATION_BAND_INCHES * dpi) if annotations is not None else 0
    rects = [
        Rect(r.x, r.y + band, r.width, r.height)
        for r in layout_rects(layout, width, height - 2 * band, max(1, round(GAP_INCHES * dpi)))
    ]
    levels = {"min_density": min_density, "max_density": max_density}
    border = density_to_gray(border_density, **levels)
    empty = density_to_gray(empty_image_density, **levels)
    film = np.full((height, width, 3) if color else (height, width), border, dtype=np.float32)
    for box in image_boxes:
        if not 1 <= box.position <= len(rects):
            continue
        rect = rects[box.position - 1]
        film[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = empty
        if box.image is None:
            continue
        requested = round(box.requested_image_size_mm / 25.4 * dpi) if box.requested_image_size_mm else None
        pixels = _fit(
            box.image, rect, magnification=box.magnification_type or magnification_type, requested_width_px=requested
        )
        if box.polarity == Polarity.REVERSE:
            pixels = 1.0 - pixels
        if color and pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        elif not color and pixels.ndim == 3:
            pixels = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        h, w = pixels.shape[:2]
        y, x = rect.y + (rect.height - h) // 2, rect.x + (rect.width - w) // 2
        film[y : y + h, x : x + w] = pixels
        if trim:
            _trim_draw(film, x, y, w, h, 1.0 - border)
    out = np.rint(np.clip(film, 0.0, 1.0) * 255).astype(np.uint8)
    if annotations:
        out = _annotations_draw(out, annotations, band, round(255 * (1.0 - border)))
    return out


def _annotations_draw(film: np.ndarray, annotations: dict[int, str], band: int, level: int) -> np.ndarray:
    """Text of annotation positions 1-3 (top band) and 4-6 (bottom band), left/centre/right."""
    image = Image.fromarray(film)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, round(band * 0.6)))
    fill = (level, level, level) if film.ndim == 3 else level
    width, height = image.size
    for position, text in annotations.items():
        if not text or not 1 <= position <= ANNOTATION_POSITIONS:
            continue
        column = (position - 1) % 3
        anchor = ("l", "m", "r")[column] + "m"
        x = (band // 2, width // 2, width - band // 2)[column]
        y = band // 2 if position <= 3 else height - band // 2
        draw.text((x, y), text, fill=fill, font=font, anchor=anchor)
    return np.asarray(image)


def _trim_draw(film: np.ndarray, x: int, y: int, w: int, h: int, level: float) -> None:
    """A trim box just outside the image (PS3.3 C.13.8 Trim)."""
    t = TRIM_PIXELS
    y0, y1, x0, x1 = max(y - t, 0), min(y + h + t, film.shape[0]), max(x - t, 0), min(x + w + t, film.shape[1])
    film[y0:y, x0:x1] = level
    film[y + h : y1, x0:x1] = level
    film[y0:y1, x0:x] = level
    film[y0:y1, x + w : x1] = level
