"""A report as a person sees it, in headless Chromium: a screenshot, the console messages, whether every
image decoded, the page's text and whether any script ran. No DevTools protocol: Chromium's own logging
(`--enable-logging=stderr --v=0` prints each console message as an `INFO:CONSOLE` line) and a copy of the
page with two small scripts: the first, at the top of <head>, records every call of alert, confirm and
prompt (what an injected `<img src=x onerror=alert(1)>` would call); the last, once the page has loaded,
draws each image on a canvas (which decodes it there and then) and writes their sizes, the page's text and
the recorded calls into the DOM, which `--dump-dom` prints. The reports themselves hold no script."""
from __future__ import annotations

import html
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
SCRIPT_SPY = """<script>window.scriptCalls = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (...args) => { window.scriptCalls.push(`${name}(${args.join(", ")})`); };
}</script>"""
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
  document.body.setAttribute("data-probe", JSON.stringify({text: document.body.innerText, calls: window.scriptCalls}));
});</script>"""


@dataclass
class Rendered:
    screenshot: Path
    console: list[str]  # every console message of both loads
    images: list[tuple[int, int]]  # each <img>'s decoded size; (0, 0): it did not decode
    text: str  # the page's text as shown (document.body.innerText)
    script_calls: list[str]  # alert, confirm or prompt calls made while the page loaded: none, from a report


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
    # Both loads are of the copy with the probe's scripts (which draw nothing): a script the page ran would
    # open a dialog that stops a headless screenshot, where the spy records its call instead.
    probe = out_dir / f"{page.stem}.probe.html"
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("<head>", "<head>" + SCRIPT_SPY, 1).replace("</body>", DECODE_SCRIPT + "</body>"),
                     encoding="utf-8")
    shown = _chromium([f"--window-size=1280,{height}", f"--screenshot={shot}", probe.as_uri()])
    dumped = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()])
    found = re.search(r'data-decoded="([^"]*)"', dumped.stdout)
    assert found, f"the page did not finish loading in Chromium:\n{dumped.stderr[-2000:]}"
    sizes = [tuple(size) for size in json.loads(html.unescape(found.group(1)))]
    seen = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dumped.stdout).group(1)))
    console = CONSOLE.findall(shown.stderr) + CONSOLE.findall(dumped.stderr)
    assert shot.is_file(), shown.stderr[-2000:]
    return Rendered(shot, console, sizes, seen["text"], seen["calls"])


def looks_drawn(screenshot: Path) -> bool:
    """A screenshot with a page on it: many colours (plots), not one flat fill."""
    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    return pixels.std() > 10 and colours > 200


def check_page(page: Path, out_dir: Path, plots: int, height: int = 4000) -> Rendered:
    """What every report test asks: self-contained (nothing from the network, no script), renders without
    console messages or script calls, and every one of its `plots` images decoded at a real size."""
    text = Path(page).read_text(encoding="utf-8")
    assert "<script" not in text
    loaded = re.findall(r'(?:src|href)="([^"]+)"', text)
    outside = [u for u in loaded if u.startswith(("http:", "https:", "//")) and
               not re.search(r'<a [^>]*href="' + re.escape(u), text)]
    assert not outside, f"the page loads from the network: {outside}"
    assert all(u.startswith("data:") for u in re.findall(r'<img [^>]*src="([^"]+)"', text))
    rendered = render(page, out_dir, height)
    assert rendered.console == [], rendered.console
    assert rendered.script_calls == [], rendered.script_calls
    assert len(rendered.images) == plots, rendered.images
    assert all(width > 100 and height > 50 for width, height in rendered.images), rendered.images
    assert looks_drawn(rendered.screenshot)
    return rendered


MARKUP = "<img src=x onerror=alert(1)>"  # a class, job or trial name that is markup: the page must show it as text


def shows_as_text(rendered: Rendered, *names: str) -> None:
    """Each name is on the page as the text it is (not parsed into an element), and no script ran."""
    for name in names:
        assert name in rendered.text, f"{name!r} is not shown as text"
    assert rendered.script_calls == [], rendered.script_calls
