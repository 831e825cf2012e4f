"""How fast the draw-a-digit figure runs LeNet in headless Chromium: median milliseconds.

    python benchmarks/draw_digit_speed.py [--repeat N]

Builds ``DrawDigit`` for a seeded ``LeNet`` on a bare page, then loads ``repeat`` images
through the figure's ``cnnbook:load-digit`` hook (MNIST test digits when the data is
there, else seeded random images) and reads back, for each, ``data-forward-ms`` (the
forward pass alone, timed by the page) and the time of the whole synchronous update
(forward pass and redrawing every feature map and bar). A pass must stay under 20 ms so
that drawing feels live; this prints the numbers rather than asserting them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from playwright.sync_api import sync_playwright

from cnnbook.models.lenet import LeNet
from cnnbook.widgets.draw_digit import DrawDigit

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
BUDGET_MS = 20.0
MEASURE = """(r, images) => images.map(p => {
  const t0 = performance.now();
  r.dispatchEvent(new CustomEvent('cnnbook:load-digit', {detail: {pixels: p}}));
  return [Number(r.getAttribute('data-forward-ms')), performance.now() - t0];
})"""


def digits(count: int) -> tuple[np.ndarray, str]:
    """(count, 784) float pixels in [0, 1] and where they came from."""
    try:
        from cnnbook.data import DatasetNotFoundError, mnist

        data = mnist(train=False).data[:count].numpy().reshape(count, -1) / 255
        return data, "MNIST test digits"
    except (DatasetNotFoundError, OSError):
        rng = np.random.default_rng(0)
        return rng.random((count, 784)) * (rng.random((count, 784)) < 0.2), "random images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="images loaded (timed)")
    args = parser.parse_args()
    torch.manual_seed(0)
    html = DrawDigit(LeNet()).to_html()
    images, source = digits(args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "index.html"
        page_path.write_text(f"<!doctype html><html><body>{html}</body></html>", "utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_path.as_uri())
            root = page.locator('[data-widget="draw-digit"]')
            root.evaluate(MEASURE, images[:10].tolist())  # warm-up: let the JIT compile
            times = root.evaluate(MEASURE, images.tolist())
            version = browser.version
            browser.close()
    forward = statistics.median(t[0] for t in times)
    update = statistics.median(t[1] for t in times)
    print(f"Chromium {version}, {len(times)} {source}, LeNet-5 (61,706 parameters)")
    print(f"median forward pass:            {forward:6.2f} ms")
    print(f"median update (forward + draw): {update:6.2f} ms")
    verdict = "within" if forward <= BUDGET_MS else "OVER"
    print(f"forward pass {verdict} the {BUDGET_MS:.0f} ms budget")


if __name__ == "__main__":
    main()
