"""A node's preferred syntax that an image cannot take falls back instead of failing the C-STORE."""

from __future__ import annotations

import numpy as np
import pytest

from pacs.services.transcode import TranscodeError, instance_for_peer, transfer_syntax_choose
from tests import dicom_factories as f


@pytest.fixture
def ct_file(tmp_path):
    ds = f.ct_dataset(size=64)
    assert ds.BitsAllocated == 16
    return f.write(ds, tmp_path / "ct.dcm"), ds


@pytest.mark.parametrize(("accepted", "expected"), [
    ([f.JPEG_BASELINE, f.EXPLICIT_LE], f.EXPLICIT_LE),  # as stored
    ([f.JPEG_BASELINE, f.JPEG_LS_LOSSLESS], f.JPEG_LS_LOSSLESS),  # the next lossless one
])
def test_sixteen_bit_image_and_a_baseline_preference(ct_file, accepted, expected):
    path, original = ct_file
    target = transfer_syntax_choose(f.EXPLICIT_LE, accepted, preferred=f.JPEG_BASELINE)
    assert target == f.JPEG_BASELINE  # the preference is taken as long as only syntaxes are known
    sent = instance_for_peer(path, target, stored_ts=f.EXPLICIT_LE, accepted=accepted)
    assert sent.file_meta.TransferSyntaxUID == expected
    assert sent.SOPInstanceUID == original.SOPInstanceUID  # lossless: the same instance
    assert np.array_equal(sent.pixel_array, original.pixel_array)


def test_nothing_acceptable_still_fails_clearly(ct_file):
    path, _ = ct_file
    with pytest.raises(TranscodeError):
        instance_for_peer(path, f.JPEG_BASELINE, stored_ts=f.EXPLICIT_LE, accepted=[f.JPEG_BASELINE])
