"""Rendered images of archived instances: JPEG/PNG for viewers, thumbnails, WADO-URI.

One pipeline for every consumer (WADO-RS ``/rendered`` and ``/thumbnail``
(PS3.18 8.3.5 and 9.5), WADO-URI ``image/jpeg``/``image/png`` (PS3.18 9.1), the
built-in viewer):

1. decode only the requested frame (``pydicom.pixels.pixel_array(index=...)``,
   compressed syntaxes through pylibjpeg/pyjpegls);
2. Modality LUT (Rescale Slope/Intercept), then a VOI window: the request's
   ``window`` (center, width, function), else the dataset's first
   WindowCenter/WindowWidth, else the frame's min..max (PS3.3 C.11.2.1.2);
3. MONOCHROME1 inverted, colour kept as RGB (8 bits);
4. optional ``region`` crop (fractions, WADO-URI), then ``viewport`` /
   ``rows``/``columns`` fit with the aspect ratio kept (never upscaled for
   thumbnails);
5. encode with Pillow (JPEG ``quality`` 1-100, PNG).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, pixel_array

from pacs.exceptions import PacsError

logger = logging.getLogger(__name__)

MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}
THUMBNAIL_SIZE = 128


class RenderingNotPossible(PacsError):
    """The instance has no displayable pixel data (SR, PDF, video) or a bad frame number."""

    dicom_status = 0xC000
    http_status = 400


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"  # LINEAR | LINEAR_EXACT | SIGMOID


@dataclass(frozen=True)
class RenderOptions:
    """What to render and how (every field optional)."""

    frame: int = 1
    window: Window | None = None
    viewport: tuple[int, int] | None = None  # (width, height) box; aspect ratio kept
    region: tuple[float, float, float, float] | None = None  # (x1, y1, x2, y2) in 0..1
    quality: int = 90
    media_type: str = "image/jpeg"
    upscale: bool = True


def frame_array(path: Path, frame: int, *, frames: int | None = None) -> np.ndarray:
    """Decode one frame (1-based) of an archived file, reading only that frame when possible.

    Deflated files cannot be read frame by frame: they are inflated as a whole
    dataset first.
    """
    header = _header(path)
    count = frames or frame_count(header)
    index = frame - 1 if count > 1 else None
    if str(header.file_meta.get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.1.99":
        return pixel_array(dcmread(path), index=index)
    return pixel_array(str(path), index=index)


def _header(path: Path) -> Dataset:
    return dcmread(path, stop_before_pixels=True)


def frame_count(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or hasattr(value, "__getitem__") and not isinstance(value, str):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _windowed(arr: np.ndarray, window: Window | None, ds: Dataset, frame_ds: Dataset) -> np.ndarray:
    """8-bit greyscale after the VOI window (PS3.3 C.11.2.1.2)."""
    arr = arr.astype(np.float64)
    if window is None:
        center, width = _first(frame_ds.get("WindowCenter")), _first(frame_ds.get("WindowWidth"))
        function = str(frame_ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if center is not None and width is not None and width >= 1:
            window = Window(center, width, function)
    if window is None:
        low, high = float(arr.min()), float(arr.max())
        if high <= low:
            return np.zeros(arr.shape, dtype=np.uint8)
        out = (arr - low) / (high - low)
    elif window.function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (arr - window.center) / max(window.width, 1e-6)))
    elif window.function == "LINEAR_EXACT":
        out = (arr - (window.center - window.width / 2)) / max(window.width, 1e-6)
    else:
        width = max(window.width, 1.0)
        out = (arr - (window.center - 0.5)) / max(width - 1, 1e-6) + 0.5
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _to_image(arr: np.ndarray, ds: Dataset, options: RenderOptions) -> Image.Image:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 1 and arr.ndim == 2:
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            rgb = apply_color_lut(arr, ds)
            return Image.fromarray(_to_8bit(rgb), "RGB")
        values = apply_modality_lut(arr, ds) if "RescaleSlope" in ds or "ModalityLUTSequence" in ds else arr
        grey = _windowed(values, options.window, ds, ds)
        if photometric == "MONOCHROME1":
            grey = 255 - grey
        return Image.fromarray(grey, "L")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return Image.fromarray(_to_8bit(arr[..., :3]), "RGB")
    raise RenderingNotPossible(f"Cannot render pixel data of shape {arr.shape} ({photometric})")


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    maximum = float(arr.max()) or 1.0
    scale = 255.0 / (65535.0 if maximum > 255 else 255.0)
    return np.clip(arr.astype(np.float64) * scale, 0, 255).astype(np.uint8)


def _fit(image: Image.Image, box: tuple[int, int], upscale: bool) -> Image.Image:
    width, height = image.size
    box_w, box_h = max(box[0], 1), max(box[1], 1)
    scale = min(box_w / width, box_h / height)
    if scale >= 1 and not upscale:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR)


def frame_render(*, path: Path, options: RenderOptions) -> bytes:
    """Render one frame of the archived file at *path* as JPEG or PNG bytes.

    Parameters
    ----------
    path
        Absolute path of the archived instance.
    options
        Frame (1-based), window, viewport, region, quality and media type.

    Returns
    -------
    bytes
        The encoded image.

    Raises
    ------
    RenderingNotPossible
        No pixel data, a frame number out of range, an unsupported media type
        or a pixel format that cannot be shown.
    """
    if options.media_type not in MEDIA_TYPES:
        raise RenderingNotPossible(f"Cannot render as {options.media_type}; use image/jpeg or image/png")
    try:
        probe = _header(path)
    except Exception as exc:
        raise RenderingNotPossible(f"Stored file is not readable: {exc.__class__.__name__}") from exc
    if "Rows" not in probe or "Columns" not in probe:
        raise RenderingNotPossible("The instance has no image pixel data")
    frames = frame_count(probe)
    if not 1 <= options.frame <= frames:
        raise RenderingNotPossible(f"Frame {options.frame} does not exist (the instance has {frames})")
    try:
        arr = frame_array(path, options.frame, frames=frames)
    except Exception as exc:  # decoder missing or corrupt stream
        logger.warning("render decode failed path=%s error=%s", path.name, exc)
        raise RenderingNotPossible(f"Pixel data cannot be decoded: {exc.__class__.__name__}: {exc}") from exc
    if arr.ndim == 3 and frames > 1 and int(probe.get("SamplesPerPixel", 1) or 1) == 1:
        arr = arr[0]
    image = _to_image(arr, probe, options)
    if options.region:
        x1, y1, x2, y2 = options.region
        width, height = image.size
        box = (int(x1 * width), int(y1 * height), max(int(x1 * width) + 1, int(x2 * width)),
               max(int(y1 * height) + 1, int(y2 * height)))
        image = image.crop(box)
    if options.viewport:
        image = _fit(image, options.viewport, options.upscale)
    out = io.BytesIO()
    if MEDIA_TYPES[options.media_type] == "JPEG":
        image.save(out, "JPEG", quality=max(1, min(options.quality, 100)))
    else:
        image.save(out, "PNG")
    return out.getvalue()


def thumbnail_render(*, path: Path, size: int = THUMBNAIL_SIZE, viewport: tuple[int, int] | None = None,
                     media_type: str = "image/jpeg") -> bytes:
    """A thumbnail of the middle frame fitting ``size`` x ``size`` (or *viewport*), aspect kept."""
    try:
        frames = frame_count(_header(path))
    except Exception:
        frames = 1
    options = RenderOptions(
        frame=(frames + 1) // 2, viewport=viewport or (size, size), quality=80, media_type=media_type, upscale=False
    )
    return frame_render(path=path, options=options)
