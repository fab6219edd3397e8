"""Built-in viewer in a real browser: pixels drawn, window/level, scrolling, multi-frame, tags."""

from __future__ import annotations

import numpy as np
import pytest

from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

CANVAS_STATS = """() => {
  const canvas = document.querySelector('.viewport.active canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let nonBlack = 0, sum = 0, hash = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > 8) nonBlack++;
    sum += data[i];
    hash = (hash * 31 + data[i]) | 0;
  }
  return {nonBlack, sum, hash, pixels: data.length / 4};
}"""


def _stats(page) -> dict:
    return page.evaluate(CANVAS_STATS)


def _open(page, study_uid: str) -> None:
    page.goto(f"/viewer/{study_uid}/")
    page.locator(".viewport.active .ov-bl").filter(has_text="Im 1/").wait_for()
    eventually(lambda: _stats(page)["nonBlack"] > 0, timeout=10)


def test_viewer_draws_pixels_and_window_level_changes_them(logged_in, archive, screenshot):
    uids = archive(count=3, patient_name="VIEWER^TEST", size=64)
    _open(logged_in, uids["study"])
    before = _stats(logged_in)
    assert before["nonBlack"] > before["pixels"] * 0.05  # the image fills part of the canvas
    wl_before = logged_in.locator(".viewport.active").get_attribute("data-wl")
    screenshot(logged_in, "viewer", full_page=False)

    logged_in.keyboard.press("2")  # CT bone preset
    eventually(lambda: logged_in.locator(".viewport.active").get_attribute("data-wl") == "300,1500")
    after_preset = _stats(logged_in)
    assert after_preset["hash"] != before["hash"]

    # Right-drag changes window/level too.
    box = logged_in.locator(".viewport.active").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    logged_in.mouse.move(cx, cy)
    logged_in.mouse.down(button="right")
    logged_in.mouse.move(cx + 120, cy + 60, steps=5)
    logged_in.mouse.up(button="right")
    assert logged_in.locator(".viewport.active").get_attribute("data-wl") not in ("300,1500", wl_before)
    assert _stats(logged_in)["hash"] != after_preset["hash"]

    logged_in.keyboard.press("i")  # invert
    assert "INV" in logged_in.locator(".viewport.active .ov-br").inner_text()
    screenshot(logged_in, "viewer-wl-inverted", full_page=False)


def test_scrolling_changes_the_instance(logged_in, archive):
    uids = archive(count=3, size=64)
    _open(logged_in, uids["study"])
    first = _stats(logged_in)["hash"]
    overlay = logged_in.locator(".viewport.active .ov-bl")
    box = logged_in.locator(".viewport.active").bounding_box()
    logged_in.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    logged_in.mouse.wheel(0, 120)
    eventually(lambda: overlay.inner_text().startswith("Im 2/3"))
    eventually(lambda: _stats(logged_in)["hash"] != first)
    logged_in.keyboard.press("End")
    eventually(lambda: overlay.inner_text().startswith("Im 3/3"))
    logged_in.keyboard.press("ArrowUp")
    eventually(lambda: overlay.inner_text().startswith("Im 2/3"))


def test_multiframe_instance_scrolls_through_frames_and_tag_browser(logged_in, storage_root, archive_config,
                                                                   screenshot):
    from pacs.services.ingest import instance_ingest
    from tests.dicom_factories import J2K_LOSSLESS, ct_dataset, encode

    frames = 4
    ds = ct_dataset(patient_name="MULTI^FRAME", size=32)
    yy, xx = np.mgrid[0:32, 0:32]
    ds.NumberOfFrames = frames
    ds.PixelData = np.stack([((xx + yy) * 20 * (f + 1)) % 4096 for f in range(frames)]).astype(np.uint16).tobytes()
    result = instance_ingest(source=encode(ds, J2K_LOSSLESS))  # compressed: the server decodes frames
    _open(logged_in, result.study_instance_uid)
    overlay = logged_in.locator(".viewport.active .ov-bl")
    assert overlay.inner_text().startswith(f"Im 1/{frames}")
    logged_in.keyboard.press("ArrowDown")
    eventually(lambda: "fr 2" in overlay.inner_text())

    logged_in.keyboard.press("t")
    body = logged_in.locator("#tag-body")
    body.locator("text=Patient's Name").wait_for()
    assert "MULTI^FRAME" in body.inner_text()
    assert "Number of Frames" in body.inner_text()
    screenshot(logged_in, "viewer-tags", full_page=False)


def test_layout_two_series_side_by_side_and_tools(logged_in, archive, screenshot):
    uids = archive(count=2, series=2, size=48)
    _open(logged_in, uids["study"])
    logged_in.select_option("#layout", "1x2")
    logged_in.locator(".viewport").nth(1).locator(".ov-bl").filter(has_text="Im 1/2").wait_for()
    series = {logged_in.locator(".viewport").nth(i).get_attribute("data-series") for i in range(2)}
    assert series == set(uids["series"])
    # Length measurement on the first viewport.
    logged_in.locator(".viewport").first.click()
    logged_in.click("[data-tool=length]")
    box = logged_in.locator(".viewport").first.bounding_box()
    logged_in.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    logged_in.mouse.down()
    logged_in.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=4)
    logged_in.mouse.up()
    for name in ("rotate", "fliph", "fit"):
        logged_in.click(f"[data-action={name}]")
    assert "Rot 90" in logged_in.locator(".viewport.active .ov-br").inner_text()
    screenshot(logged_in, "viewer-1x2", full_page=False)
