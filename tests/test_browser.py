"""The headless-browser check itself (tests/browser_check.py), on tiny hand-written pages.

A check that cannot fail is no check: a good page passes, and a page with a
missing picture or a console error is caught, each with its reason.
"""

from __future__ import annotations

import base64
import io

import pytest
from browser_check import assert_renders, chromium, render_alone


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _png(width: int, height: int, edge_ink: bool = False) -> str:
    """A striped PNG of the given size, as a data URI."""
    from PIL import Image

    im = Image.new("RGB", (width, height), "white")
    for x in range(4, width - 4, 20):  # a white margin, as matplotlib leaves
        for y in range(4, height - 4):
            im.putpixel((x, y), (200, 30, 30))
    if edge_ink:  # a caption cut at the right edge leaves ink there
        for y in range(height // 3, height // 2):
            im.putpixel((width - 1, y), (0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _page(tmp_path, body: str, name: str = "page.html"):
    path = tmp_path / "src" / name
    path.parent.mkdir()
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title></head>"
                    f"<body><h1>A page</h1>{body}</body></html>", encoding="utf-8")
    return path


def test_a_page_with_an_embedded_png_renders(browser, tmp_path):
    page = _page(tmp_path, f"<p>text</p><img alt='plot' src='{_png(400, 200)}'>")
    r = assert_renders(browser, page, tmp_path / "alone", min_images=1)
    [img] = r.images
    assert (img["naturalWidth"], img["naturalHeight"], img["complete"]) == (400, 200, True)
    assert r.shot_size[0] >= 800 and r.shot_size[1] >= 600 and r.colours > 2
    assert sorted(p.name for p in (tmp_path / "alone").iterdir()) == ["page.html"]  # the page stood alone


def test_a_missing_image_is_a_failure(browser, tmp_path):
    page = _page(tmp_path, "<img alt='plot' src='missing.png'>")
    (page.parent / "missing.png").write_bytes(base64.b64decode(_png(10, 10).split(",")[1]))  # beside the source only
    r = render_alone(browser, page, tmp_path / "alone")
    assert any("missing.png did not load" in p for p in r.problems), r.problems
    assert any(p.startswith("console:") and "missing.png" in p for p in r.problems), r.problems
    with pytest.raises(AssertionError, match="missing.png did not load"):
        assert_renders(browser, page, tmp_path / "alone-again")


def test_a_console_error_is_a_failure(browser, tmp_path):
    page = _page(tmp_path, "<script>console.error('the plot failed')</script>")
    r = render_alone(browser, page, tmp_path / "alone")
    assert [p for p in r.problems if p.startswith("console:")] and "the plot failed" in r.problems[0], r.problems


def test_an_image_wider_than_the_page_is_clipped(browser, tmp_path):
    page = _page(tmp_path, f"<img alt='wide' src='{_png(2400, 100)}'>")
    r = render_alone(browser, page, tmp_path / "alone")
    assert len(r.problems) == 2 and "is clipped" in r.problems[0], r.problems
    assert "runs off its right edge" in r.problems[1], r.problems


def test_a_table_wider_than_the_page_is_a_failure(browser, tmp_path):
    cells = "".join(f"<td>column-{i:03d}-with-a-long-name</td>" for i in range(60))
    page = _page(tmp_path, f"<table><tr>{cells}</tr></table>")
    r = render_alone(browser, page, tmp_path / "alone")
    assert len(r.problems) == 1 and "runs off its right edge" in r.problems[0], r.problems
    # the report's way: the table scrolls inside a box of the page's width
    (tmp_path / "boxed").mkdir()
    boxed = _page(tmp_path / "boxed", f"<div style='overflow-x:auto'><table><tr>{cells}</tr></table></div>")
    assert render_alone(browser, boxed, tmp_path / "boxed-alone").problems == []


def test_a_picture_cut_at_its_edge_is_a_failure(browser, tmp_path):
    page = _page(tmp_path, f"<img alt='plot' src='{_png(400, 200, edge_ink=True)}'>")
    r = render_alone(browser, page, tmp_path / "alone")
    assert len(r.problems) == 1 and "has ink at its edge (grey 0 < 200)" in r.problems[0], r.problems
