"""A report as a person sees it, in headless Chromium: a screenshot, the console messages, and whether every
image decoded. No DevTools protocol: Chromium's own logging (`--enable-logging=stderr --v=0` prints each
console message as an `INFO:CONSOLE` line) and, for the images, a copy of the page with a small script that
draws each one on a canvas once the page has loaded (which decodes it there and then) and writes their
sizes into the DOM, which `--dump-dom` prints. The reports themselves hold no script."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)")
DECODE_SCRIPT = """<script>window.addEventListener("load", () => {
  const sizes = [...document.images].map((image) => {
    if (!image.complete || !image.naturalWidth) return [0, 0];
    const canvas = document.createElement("canvas");  // drawing it decodes it, now
    [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    return pixels.some((value, i) => i % 4 === 3 && value > 0) ? [image.naturalWidth, image.naturalHeight] : [0, 0];
  });
  document.body.setAttribute("data-decoded", JSON.stringify(sizes));
});</script>"""


@dataclass
class Rendered:
    screenshot: Path
    console: list[str]  # every console message of both loads
    images: list[tuple[int, int]]  # each <img>'s decoded size; (0, 0): it did not decode


def available() -> bool:
    return Path(CHROMIUM).exists()


def _chromium(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="reports-chromium-")
    try:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def render(page: Path, out_dir: Path, height: int = 4000) -> Rendered:
    page, out_dir = Path(page).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / f"{page.stem}.png"
    shown = _chromium([f"--window-size=1280,{height}", f"--screenshot={shot}", page.as_uri()])
    probe = out_dir / f"{page.stem}.probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", DECODE_SCRIPT + "</body>"), encoding="utf-8")
    dumped = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()])
    found = re.search(r'data-decoded="([^"]*)"', dumped.stdout)
    assert found, f"the page did not finish loading in Chromium:\n{dumped.stderr[-2000:]}"
    sizes = [tuple(size) for size in json.loads(found.group(1).replace("&quot;", '"'))]
    console = CONSOLE.findall(shown.stderr) + CONSOLE.findall(dumped.stderr)
    assert shot.is_file(), shown.stderr[-2000:]
    return Rendered(shot, console, sizes)


def looks_drawn(screenshot: Path) -> bool:
    """A screenshot with a page on it: many colours (plots), not one flat fill."""
    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    return pixels.std() > 10 and colours > 200


def check_page(page: Path, out_dir: Path, plots: int, height: int = 4000) -> Rendered:
    """What every report test asks: self-contained (nothing from the network, no script), renders without
    console messages, and every one of its `plots` images decoded at a real size."""
    text = Path(page).read_text(encoding="utf-8")
    assert "<script" not in text
    loaded = re.findall(r'(?:src|href)="([^"]+)"', text)
    outside = [u for u in loaded if u.startswith(("http:", "https:", "//")) and
               not re.search(r'<a [^>]*href="' + re.escape(u), text)]
    assert not outside, f"the page loads from the network: {outside}"
    assert all(u.startswith("data:") for u in re.findall(r'<img [^>]*src="([^"]+)"', text))
    rendered = render(page, out_dir, height)
    assert rendered.console == [], rendered.console
    assert len(rendered.images) == plots, rendered.images
    assert all(width > 100 and height > 50 for width, height in rendered.images), rendered.images
    assert looks_drawn(rendered.screenshot)
    return rendered
