"""Background compression of archived instances (a django-q2 task calls this).

Lossless syntaxes are verified by decoding the result and comparing it with
the original pixels before the archived file is replaced; a failed check
leaves the original untouched.  Already compressed data is never touched.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from django.db import transaction
from django.db.models import F
from pydicom import dcmread
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGLSLossless, RLELossless

from pacs import storage
from pacs.choices import Compression
from pacs.models import Instance, Study
from pacs.services.config import archive_config_get

logger = logging.getLogger(__name__)

_TARGETS = {
    Compression.RLE: (RLELossless, {}),
    Compression.JPEG_LS_LOSSLESS: (JPEGLSLossless, {}),
    Compression.J2K_LOSSLESS: (JPEG2000Lossless, {}),
    Compression.J2K_LOSSY: (JPEG2000, {"j2k_cr": [10]}),
}
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def instance_compress(*, instance_id: int, compression: str | None = None) -> str:
    """Compress one archived instance in place.

    Parameters
    ----------
    instance_id
        Primary key of the :class:`~pacs.models.Instance`.
    compression
        A :class:`~pacs.choices.Compression` value; default is the archive setting.

    Returns
    -------
    str
        ``compressed``, or why it was skipped (``already-compressed``, ``no-pixels``,
        ``verify-failed``, ``unsupported: ...``, ``missing``).
    """
    compression = compression or archive_config_get().compression
    if compression == Compression.NONE:
        return "disabled"
    instance = Instance.objects.filter(pk=instance_id).first()
    if instance is None:
        return "missing"
    if instance.transfer_syntax_uid not in _UNCOMPRESSED:
        return "already-compressed"
    path = storage.absolute_path(instance.file_path)
    ds = dcmread(path)
    if "PixelData" not in ds:
        return "no-pixels"
    target, options = _TARGETS[Compression(compression)]
    try:
        original = ds.pixel_array.copy()
        ds.compress(target, generate_instance_uid=False, **options)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
        check = dcmread(io.BytesIO(data)).pixel_array
    except Exception as exc:  # encoder limits: bit depth, photometric, ...
        logger.warning("compress skipped instance_id=%s target=%s reason=%s", instance_id, target, exc)
        return f"unsupported: {exc}"
    if target != JPEG2000 and not np.array_equal(original, check):
        logger.error("compress verify-failed instance_id=%s target=%s", instance_id, target)
        return "verify-failed"

    temp, checksum = storage.temp_write(data)
    with transaction.atomic():
        # Re-check under the transaction: the instance may have been replaced meanwhile.
        current = Instance.objects.select_for_update().filter(pk=instance_id, checksum=instance.checksum).first()
        if current is None:
            temp.unlink(missing_ok=True)
            return "changed"
        storage.file_commit(temp, instance.file_path)
        Instance.objects.filter(pk=instance_id).update(
            transfer_syntax_uid=str(target), file_size=len(data), checksum=checksum
        )
        Study.objects.filter(series__instances__pk=instance_id).update(
            size_bytes=F("size_bytes") + (len(data) - instance.file_size)
        )
    logger.info(
        "compress done instance_id=%s target=%s bytes_before=%d bytes_after=%d",
        instance_id, target, instance.file_size, len(data),
    )
    return "compressed"


