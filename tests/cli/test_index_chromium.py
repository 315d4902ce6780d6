"""The index page of `convkit visualize` in a real browser: Debian's chromium, headless, takes a screenshot of it.

The screenshot must exist, be a PNG of the window size asked for, and not be blank (many distinct colours: the
pictures loaded, not only the page background). Exit status 77 (CTest's skip) when chromium is not installed;
scripts/setup.sh installs it."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from PIL import Image

from cli_common import run
from test_pictures import DATA, PHOTO, tiny_architecture

CHROMIUM = shutil.which("chromium")


class IndexInChromium(unittest.TestCase):
    def test_screenshot(self):
        d = tempfile.mkdtemp(prefix="convkit_cli_chromium_")
        try:
            arch, model, out = (os.path.join(d, n) for n in ("tiny.json", "tiny.safetensors", "viz"))
            tiny_architecture(arch)
            rc, _, err = run("train", "--model", arch, "--limit", "128", "--epochs", "2", "--quiet",
                             "--validation-split", "0.25", "--out", model)
            self.assertEqual(rc, 0, err)
            rc, _, err = run("filter", PHOTO, "--kernel", "sobel", "--out", os.path.join(d, "photo_sobel.png"))
            self.assertEqual(rc, 0, err)
            rc, _, err = run("visualize", "--model", model, "--sample", "0", "--out", out, "--attach",
                             os.path.join(d, "photo_sobel.png") + "=Sobel")
            self.assertEqual(rc, 0, err)
            shot = os.path.join(d, "shot.png")
            # Root needs --no-sandbox; a private profile directory keeps concurrent runs apart.
            cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={os.path.join(d, 'profile')}", f"--screenshot={shot}", "--window-size=1000,1400",
                   "file://" + os.path.join(out, "index.html")]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            with Image.open(shot) as im:
                self.assertEqual(im.format, "PNG")
                self.assertEqual(im.size, (1000, 1400))
                px = np.array(im.convert("RGB"))
            colours = len(np.unique(px.reshape(-1, 3), axis=0))
            self.assertGreater(colours, 50, "the screenshot is nearly blank")
            self.assertGreater(px.std(), 20)
        finally:
            shutil.rmtree(d)


if __name__ == "__main__":
    if CHROMIUM is None:
        print("chromium is not installed (scripts/setup.sh installs it): skipped")
        sys.exit(77)
    if not os.path.isdir(DATA):
        print("Fashion-MNIST is not installed: skipped")
        sys.exit(77)
    unittest.main()
