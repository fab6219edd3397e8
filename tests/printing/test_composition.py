"""Film composition service: display formats, film geometry, densities, magnification, pixel validation."""

from __future__ import annotations

import numpy as np
import pytest

from printing.choices import FILM_SIZES_MM
from printing.exceptions import InvalidAttributeValue, MissingAttribute
from printing.services import composition as c
from tests.printing.conftest import color_item, gray_item


@pytest.mark.parametrize(
    ("value", "kind", "counts"),
    [
        ("STANDARD\\1,1", "ROW", (1,)),
        ("STANDARD\\2,3", "ROW", (2, 2, 2)),
        ("standard\\4,5", "ROW", (4, 4, 4, 4, 4)),
        ("ROW\\2,3", "ROW", (2, 3)),
        ("ROW\\1", "ROW", (1,)),
        ("COL\\3,1,2", "COL", (3, 1, 2)),
        ("STANDARD\\10,10", "ROW", (10,) * 10),
    ],
)
def test_display_format_parse(value, kind, counts):
    layout = c.display_format_parse(value)
    assert (layout.kind, layout.counts, layout.image_box_count) == (kind, counts, sum(counts))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SLIDE",
        "SUPERSLIDE",
        "CUSTOM\\3",
        "STANDARD\\1",
        "STANDARD\\0,1",
        "STANDARD\\1,1,1",
        "ROW\\0",
        "COL\\",
        "ROW\\2,,3",
        "STANDARD\\a,b",
        "STANDARD\\100,1",
        "STANDARD\\11,10",
    ],
)
def test_display_format_invalid(value):
    with pytest.raises(InvalidAttributeValue):
        c.display_format_parse(value)


@pytest.mark.parametrize("film_size_id", sorted(FILM_SIZES_MM))
def test_every_defined_film_size_has_its_geometry(film_size_id):
    width_mm, height_mm = FILM_SIZES_MM[film_size_id]
    portrait = c.film_geometry(film_size_id=film_size_id, film_orientation="PORTRAIT", dpi=150)
    landscape = c.film_geometry(film_size_id=film_size_id, film_orientation="LANDSCAPE", dpi=150)
    assert portrait == (round(width_mm / 25.4 * 150), round(height_mm / 25.4 * 150))
    assert landscape == portrait[::-1]


def test_unknown_film_size_is_invalid():
    with pytest.raises(InvalidAttributeValue, match="Film Size ID"):
        c.film_geometry(film_size_id="5INX7IN", film_orientation="PORTRAIT", dpi=150)


def test_col_layout_fills_columns_top_to_bottom():
    rects = c.layout_rects(c.display_format_parse("COL\\1,2"), 300, 200, 10)
    assert [(r.x, r.y) for r in rects] == [(10, 10), (155, 10), (155, 105)]
    assert rects[0].height == 180 and rects[1].height == rects[2].height == 85


def test_too_many_boxes_for_a_small_film_is_invalid():
    with pytest.raises(InvalidAttributeValue):
        c.layout_rects(c.display_format_parse("STANDARD\\10,10"), 20, 20, 3)


@pytest.mark.parametrize(
    ("density", "gray"),
    [("BLACK", 0.0), ("WHITE", 1.0), ("300", 0.0), ("20", 1.0), ("160", 0.5), ("5", 1.0), ("900", 0.0)],
)
def test_density_to_gray(density, gray):
    assert c.density_to_gray(density, min_density=20, max_density=300) == pytest.approx(gray)


@pytest.mark.parametrize("value", ["GREY", "-5", "1.5", ""])
def test_density_invalid(value):
    with pytest.raises(InvalidAttributeValue):
        c.density_validate(value, "BorderDensity")


def test_preformatted_images_decode_to_unit_range():
    assert c.preformatted_image_read(gray_item(255), color=False).pixels.max() == 1.0
    assert c.preformatted_image_read(gray_item(4095, bits=12), color=False).pixels.min() == 1.0
    assert c.preformatted_image_read(gray_item(65535, bits=16), color=False).pixels.min() == 1.0
    assert c.preformatted_image_read(gray_item(0, photometric="MONOCHROME1"), color=False).pixels.min() == 1.0
    planar = c.preformatted_image_read(color_item((10, 20, 30), planar=1), color=True).pixels
    interleaved = c.preformatted_image_read(color_item((10, 20, 30), planar=0), color=True).pixels
    assert np.array_equal(planar, interleaved) and planar[0, 0].tolist() == pytest.approx(
        [10 / 255, 20 / 255, 30 / 255]
    )


@pytest.mark.parametrize(
    ("mutate", "color", "error"),
    [
        (lambda ds: delattr(ds, "PixelData"), False, MissingAttribute),
        (lambda ds: setattr(ds, "PixelRepresentation", 1), False, InvalidAttributeValue),
        (lambda ds: setattr(ds, "Rows", 0), False, InvalidAttributeValue),
        (lambda ds: setattr(ds, "Columns", 21), False, InvalidAttributeValue),
        (lambda ds: setattr(ds, "SamplesPerPixel", 3), False, InvalidAttributeValue),
        (lambda ds: None, True, InvalidAttributeValue),  # grayscale pixels in a color box
    ],
)
def test_preformatted_image_validation(mutate, color, error):
    item = gray_item(5)
    mutate(item)
    with pytest.raises(error):
        c.preformatted_image_read(item, color=color)


def _render(pixels: np.ndarray, **kwargs) -> c.ImageBoxRender:
    return c.ImageBoxRender(position=1, image=c.FilmImage(pixels=pixels.astype(np.float32), color=False), **kwargs)


def test_magnification_none_prints_one_to_one_and_crops():
    image = np.zeros((400, 400), dtype=np.float32)
    image[200:, :] = 1.0  # lower half white
    film = c.film_compose(
        image_display_format="STANDARD\\1,1",
        film_size_id="8INX10IN",
        film_orientation="PORTRAIT",
        image_boxes=[_render(image, magnification_type="NONE")],
        dpi=20,
        color=False,
    )
    # 8x10 in at 20 dpi = 160x200 pixels: only the central 152x192 of the 400x400 image fits (cropped, not scaled)
    assert film.shape == (200, 160)
    assert film[4:100, 80].max() == 0 and film[100:196, 80].min() == 255


def test_requested_image_size_limits_the_printed_width():
    image = np.ones((10, 10), dtype=np.float32)
    film = c.film_compose(
        image_display_format="STANDARD\\1,1",
        film_size_id="8INX10IN",
        film_orientation="PORTRAIT",
        image_boxes=[_render(image, requested_image_size_mm=50.8)],
        dpi=50,
        color=False,
        empty_image_density="BLACK",
    )
    row = film[250]
    assert int((row == 255).sum()) == 100  # 2 inches at 50 dpi


def test_magnification_types_resample_differently():
    image = np.zeros((2, 2), dtype=np.float32)
    image[0, 0] = image[1, 1] = 1.0
    films = {
        kind: c.film_compose(
            image_display_format="STANDARD\\1,1",
            film_size_id="8INX10IN",
            film_orientation="PORTRAIT",
            image_boxes=[_render(image)],
            dpi=20,
            color=False,
            magnification_type=kind,
        )
        for kind in ("REPLICATE", "BILINEAR", "CUBIC")
    }
    assert set(np.unique(films["REPLICATE"])) <= {0, 255}
    assert len(np.unique(films["BILINEAR"])) > 2
    assert not np.array_equal(films["BILINEAR"], films["CUBIC"])


def test_trim_draws_a_box_around_each_image():
    image = np.full((10, 10), 0.5, dtype=np.float32)
    plain = c.film_compose(
        image_display_format="STANDARD\\1,1",
        film_size_id="14INX14IN",
        film_orientation="PORTRAIT",
        image_boxes=[_render(image)],
        dpi=20,
        color=False,
        border_density="BLACK",
    )
    trimmed = c.film_compose(
        image_display_format="STANDARD\\1,1",
        film_size_id="14INX14IN",
        film_orientation="PORTRAIT",
        image_boxes=[_render(image)],
        dpi=20,
        color=False,
        border_density="BLACK",
        trim=True,
    )
    difference = plain != trimmed
    assert difference.any() and set(np.unique(trimmed[difference])) == {255}
