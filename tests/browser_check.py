"""A report as a reader sees it: one HTML file alone in an empty folder, in headless Chromium.

The reports promise to stand alone (pictures embedded as data URIs), so the
check copies the page by itself into a fresh folder, opens it over
``file://`` and asks the browser what it did: every ``<img>`` loaded
(``complete`` and ``naturalWidth > 0``) and drawn whole (inside the page's
width, at its own aspect ratio), no SEVERE line in the console (a missing
file, a script error, ``console.error``), and a screenshot of at least
800 x 600 that is not blank.

The browser is Debian's ``chromium`` with its ``chromedriver`` (``.ci/run``
installs both where they are missing). The driver's path is given to
Selenium, so Selenium Manager never runs and nothing is downloaded. Without
Chromium the browser tests are skipped with the reason, except under CI
(``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 1024)  # the screenshot is the viewport: at least 800 x 600 of it
MIN_SHOT = (800, 600)

# what the page says about its images, measured in the browser after load
_IMAGES_JS = """
const page = document.documentElement.clientWidth;
return Array.from(document.images).map(img => {
  const r = img.getBoundingClientRect();
  return {src: img.getAttribute('src') || img.currentSrc || '', alt: img.getAttribute('alt') || '', complete: img.complete,
          naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
          left: r.left + window.scrollX, right: r.right + window.scrollX,
          width: r.width, height: r.height, pageWidth: page};
});
"""


def require_browser() -> None:
    """Skip (with the reason) when Chromium or its driver is missing; under CI, fail instead."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return
    reason = (f"headless browser check needs {', '.join(missing)} "
              "(Debian: apt-get install chromium chromium-driver; pip install -e '.[dev]')")
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


def open_browser():
    """Headless Chromium through Debian's chromedriver, its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--no-sandbox",
                "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-extensions",
                "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@contextmanager
def chromium() -> Iterator:
    """One headless browser, quit on leaving: a module-scoped fixture yields it to all its tests."""
    driver = open_browser()
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Rendering:
    """What the browser made of a page, and what is wrong with it (empty: nothing)."""

    url: str
    images: list[dict]
    console: list[dict]
    screenshot: Path
    shot_size: tuple[int, int]
    colours: int
    # (the document's scroll width, the window's width): wider means something runs off the right edge
    widths: tuple[int, int] = (0, 0)
    # embedded PNG -> the darkest grey (0-255) of its outer 2 px: ink there is a text or line cut off
    edges: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def render_alone(driver, page: Path, folder: Path) -> Rendering:
    """Copy ``page`` alone into the empty ``folder``, open it, and list every problem seen."""
    from PIL import Image
    from selenium.webdriver.support.ui import WebDriverWait

    folder.mkdir(parents=True, exist_ok=True)
    assert not any(folder.iterdir()), f"{folder} must be empty: the page is checked standing alone"
    target = folder / page.name
    shutil.copyfile(page, target)
    driver.get_log("browser")  # drop what an earlier page left in the log
    url = target.resolve().as_uri()
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    images = driver.execute_script(_IMAGES_JS)
    console = driver.get_log("browser")
    widths = tuple(driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"))
    png = driver.get_screenshot_as_png()
    shot = folder.parent / f"{folder.name}-screenshot.png"  # beside the folder, which stays the page's alone
    shot.write_bytes(png)
    with Image.open(io.BytesIO(png)) as im:
        size = im.size
        colours = len(im.convert("RGB").getcolors(maxcolors=1 << 24) or [])
    found = Rendering(url, images, console, shot, size, colours, (int(widths[0]), int(widths[1])),
                      {img["src"]: edge_darkness(img["src"]) for img in images if img["src"].startswith(_PNG_URI)})
    found.problems = _problems(found)
    return found


_PNG_URI = "data:image/png;base64,"
# a picture's outer 2 px must be lighter than this: matplotlib pads its figures with white, so ink at
# the edge is what a clipped caption or label leaves (the forest plot's cut "Haldane-correc")
EDGE_LIGHT = 200


def edge_darkness(src: str) -> int:
    """The darkest grey (0 black .. 255 white) of the outer 2 px of the PNG in a data URI."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(src[len(_PNG_URI):]))) as im:
        grey = im.convert("L")
        w, h = grey.size
        boxes = [(0, 0, w, 2), (0, h - 2, w, h), (0, 0, 2, h), (w - 2, 0, w, h)]
        return min(int(grey.crop(b).getextrema()[0]) for b in boxes)


def _name(src: str) -> str:
    """An image as a message names it: its ``src``, a data URI cut to its head."""
    return src if not src.startswith("data:") else src[:30] + "..."


def _problems(r: Rendering) -> list[str]:
    problems = []
    for img in r.images:
        name = _name(img["src"])
        if not img["complete"] or img["naturalWidth"] <= 0:
            problems.append(f"image {name} did not load")
            continue
        if img["left"] < 0 or img["right"] > img["pageWidth"] + 0.5 or img["width"] > img["pageWidth"] + 0.5:
            problems.append(f"image {name} is clipped: drawn {img['left']:.0f}..{img['right']:.0f} px "
                            f"on a page {img['pageWidth']} px wide")
        if img["width"] <= 0 or img["height"] <= 0:
            problems.append(f"image {name} is not drawn ({img['width']} x {img['height']} px)")
        elif abs(img["width"] / img["height"] - img["naturalWidth"] / img["naturalHeight"]) > 0.02 * (
                img["naturalWidth"] / img["naturalHeight"]):
            problems.append(f"image {name} is distorted: drawn {img['width']:.0f} x {img['height']:.0f}, "
                            f"natural {img['naturalWidth']} x {img['naturalHeight']}")
    for src, dark in r.edges.items():
        if dark < EDGE_LIGHT:
            problems.append(f"image {_name(src)} has ink at its edge (grey {dark} < {EDGE_LIGHT}): a text or "
                            "line of the picture is cut off")
    if r.widths[0] > r.widths[1]:
        problems.append(f"the page is {r.widths[0]} px wide in a {r.widths[1]} px window: something runs off "
                        "its right edge")
    for entry in r.console:
        if entry.get("level") == "SEVERE":
            problems.append(f"console: {entry.get('message')}")
    if r.shot_size[0] < MIN_SHOT[0] or r.shot_size[1] < MIN_SHOT[1]:
        problems.append(f"screenshot {r.shot_size[0]} x {r.shot_size[1]} is under {MIN_SHOT[0]} x {MIN_SHOT[1]}")
    if r.colours < 2:
        problems.append("screenshot is blank (one colour)")
    return problems


def assert_renders(driver, page: Path, folder: Path, min_images: int = 0) -> Rendering:
    """``render_alone`` and fail with every problem listed; ``min_images``: images the page must hold."""
    r = render_alone(driver, page, folder)
    problems = list(r.problems)
    if len(r.images) < min_images:
        problems.append(f"{len(r.images)} images on the page, expected at least {min_images}")
    assert not problems, f"{page.name} in a browser ({r.url}; screenshot {r.screenshot}):\n  " + "\n  ".join(problems)
    return r
