"""convkit filter / visualize / train's curves, driven as a user would.

filter: known answers on synthetic pictures (a vertical edge through sobel-x, identity exact on a colour PNG, a
constant picture blurred), PNG / JPEG / 16-bit PNG inputs, PNG and JPEG outputs, the documented sizes (stride, the
grid of several kernels), and the refusals (exit status 2, a message, nothing written).
train: OUT.history.csv and OUT.curves.svg next to the model (or where --history / --curves say).
visualize: the pictures of a small trained model and an index.html that references only files beside it.
Pillow (Debian's python3-pil) reads and writes the pictures independently of convkit's codecs."""
import csv
import json
import os
import re
import shutil
import tempfile
import unittest
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from cli_common import ErrorChecks, listing, run

DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PHOTO = os.path.join(ROOT, "examples", "images", "chelsea.jpg")


def pixels(path):
    """The picture as a uint8 (or uint16) array, (H, W) for grey, (H, W, 3) for colour."""
    return np.array(Image.open(path))


def vertical_edge(path, h=8, w=8):
    """Grey 8-bit PNG: the left half black, the right half white."""
    x = np.zeros((h, w), np.uint8)
    x[:, w // 2:] = 255
    Image.fromarray(x, "L").save(path)


class Filter(unittest.TestCase, ErrorChecks):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="convkit_cli_filter_")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def ok(self, *args):
        rc, out, err = run("filter", *args)
        self.assertEqual(rc, 0, f"{args}: {err}")
        return out

    def test_sobel_x_on_a_vertical_edge(self):
        vertical_edge(self.path("edge.png"))
        self.ok(self.path("edge.png"), "--kernel", "sobel-x", "--out", self.path("sx.png"))
        y = pixels(self.path("sx.png"))
        self.assertEqual(y.shape, (8, 8))
        # Response 4 * (x[j+1] - x[j-1]) = 4 at columns 3 and 4, 0 elsewhere (reflect padding); signed scaling
        # maps 0 to mid-grey (0.5 * 255 = 127.5, rounded to 128) and the largest response to white.
        expected = np.full((8, 8), 128, np.uint8)
        expected[:, 3:5] = 255
        np.testing.assert_array_equal(y, expected)
        # sobel (magnitude): 0 is black.
        self.ok(self.path("edge.png"), "--kernel", "sobel", "--out", self.path("s.png"))
        expected[expected == 128] = 0
        np.testing.assert_array_equal(pixels(self.path("s.png")), expected)
        # A custom kernel beginning with a minus sign, and the same from an .npy file: x[j+1] - x[j-1].
        self.ok(self.path("edge.png"), "--kernel=-1,0,1", "--out", self.path("c.png"))
        np.save(self.path("k.npy"), np.array([[-1, 0, 1]], np.float32))
        self.ok(self.path("edge.png"), "--kernel", self.path("k.npy"), "--out", self.path("n.png"))
        np.testing.assert_array_equal(pixels(self.path("c.png")), pixels(self.path("n.png")))
        np.testing.assert_array_equal(pixels(self.path("c.png")), pixels(self.path("sx.png")))

    def test_identity_is_exact_and_a_constant_blurs_to_itself(self):
        rng = np.random.default_rng(5)
        x = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
        Image.fromarray(x, "RGB").save(self.path("rgb.png"))
        self.ok(self.path("rgb.png"), "--kernel", "identity", "--out", self.path("id.png"))
        np.testing.assert_array_equal(pixels(self.path("id.png")), x)
        Image.fromarray(np.full((20, 30, 3), 77, np.uint8), "RGB").save(self.path("flat.png"))
        for k in ("box-blur", "gaussian-blur"):
            self.ok(self.path("flat.png"), "--kernel", k, "--sigma", "2", "--out", self.path("b.png"))
            np.testing.assert_array_equal(pixels(self.path("b.png")), np.full((20, 30, 3), 77, np.uint8))

    def test_jpeg_and_16_bit_inputs_and_jpeg_output(self):
        # JPEG in (grey and colour): identity gives back what Pillow decodes, within libjpeg's rounding.
        rng = np.random.default_rng(1)
        smooth = np.clip(np.add.outer(np.arange(32) * 6, np.arange(40) * 3), 0, 255).astype(np.uint8)
        Image.fromarray(smooth, "L").save(self.path("g.jpg"), quality=95)
        self.ok(self.path("g.jpg"), "--kernel", "identity", "--out", self.path("g.png"))
        self.assertLessEqual(np.abs(pixels(self.path("g.png")).astype(int) - pixels(self.path("g.jpg"))).max(), 1)
        self.ok(PHOTO, "--kernel", "identity", "--out", self.path("photo.png"))
        ref = pixels(PHOTO)
        got = pixels(self.path("photo.png"))
        self.assertEqual(got.shape, ref.shape)
        self.assertLessEqual(np.abs(got.astype(int) - ref).max(), 3)
        # 16-bit grey PNG in: read with its 16 bits, written as 8-bit.
        x16 = (rng.integers(0, 65536, (9, 11))).astype(np.uint16)
        Image.fromarray(x16, "I;16").save(self.path("g16.png"))
        with open(self.path("g16.png"), "rb") as f:
            self.assertEqual(f.read(26)[24:26], bytes([16, 0]))  # IHDR: bit depth 16, colour type 0 (grey)
        self.ok(self.path("g16.png"), "--kernel", "identity", "--out", self.path("g8.png"))
        np.testing.assert_array_equal(pixels(self.path("g8.png")), np.round(x16 / 65535 * 255).astype(np.uint8))
        # JPEG out: a valid JPEG of the input's size.
        self.ok(PHOTO, "--kernel", "sobel", "--out", self.path("edges.jpg"))
        with Image.open(self.path("edges.jpg")) as im:
            self.assertEqual(im.format, "JPEG")
            self.assertEqual(im.size, (451, 300))

    def test_documented_sizes(self):
        vertical_edge(self.path("e.png"), 21, 33)
        # Stride 2, "same": ceil(21 / 2) x ceil(33 / 2); valid: 21 - 2 x 33 - 2; dilation 2 valid: 21 - 4.
        self.ok(self.path("e.png"), "--kernel", "edge", "--stride", "2", "--out", self.path("s2.png"))
        self.assertEqual(Image.open(self.path("s2.png")).size, (17, 11))
        self.ok(self.path("e.png"), "--kernel", "edge", "--padding", "valid", "--out", self.path("v.png"))
        self.assertEqual(Image.open(self.path("v.png")).size, (31, 19))
        self.ok(self.path("e.png"), "--kernel", "edge", "--padding", "valid", "--dilation", "2", "--out",
                self.path("d.png"))
        self.assertEqual(Image.open(self.path("d.png")).size, (29, 17))
        # Four kernels: a grid of 3 columns, gap 4, labels of scale 1 (the picture is under 200 wide):
        # width 4 + 3 * (33 + 4), height 4 + 2 * (21 + 9 + 4).
        out = self.ok(self.path("e.png"), "--kernel", "identity", "--kernel", "sobel", "--kernel", "emboss",
                      "--kernel", "outline", "--out", self.path("grid.png"))
        self.assertIn("sobel: magnitude", out)
        self.assertIn("outline: signed", out)
        with Image.open(self.path("grid.png")) as im:
            self.assertEqual(im.size, (4 + 3 * 37, 4 + 2 * 34))
        # The photograph (451 wide): labels of scale 2, 7 * 2 + 2 = 16 high.
        self.ok(PHOTO, "--kernel", "sobel-x", "--kernel", "sobel-y", "--out", self.path("pg.png"))
        with Image.open(self.path("pg.png")) as im:
            self.assertEqual(im.size, (4 + 2 * (451 + 4), 4 + 300 + 16 + 4))
            self.assertEqual(im.mode, "RGB")

    def test_refusals_write_nothing(self):
        vertical_edge(self.path("e.png"))
        Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(self.path("kept.png"))
        before = listing(self.dir)
        out = self.path("kept.png")  # an existing output: left as it was
        cases = [
            (["--kernel", "sobel-z"], ["unknown kernel 'sobel-z'", "sobel-x"]),
            (["--kernel", "1,2;3"], ["--kernel", "row 2"]),
            (["--kernel", "1,x,3"], ["--kernel", "'x'"]),
            (["--kernel", "gaussian-blur", "--sigma", "0"], ["--sigma", "'0'"]),
            (["--kernel", "gaussian-blur", "--sigma", "abc"], ["--sigma", "'abc'"]),
            (["--kernel", "edge", "--padding-mode", "mirror"], ["--padding-mode", "mirror"]),
            (["--kernel", "edge", "--stride", "0"], ["--stride"]),
            (["--kernel", "edge", "--scaling", "loud"], ["--scaling", "loud"]),
            (["--kernel", self.path("missing.npy")], ["--kernel", "missing.npy"]),
            (["--kernel", "gaussian-blur", "--sigma", "5"], ["reflect"]),  # pads of 15 on an 8 x 8 picture
        ]
        for extra, needles in cases:
            with self.subTest(extra=extra):
                self.assert_refused("filter", ["filter", self.path("e.png"), *extra, "--out", out], *needles)
        self.assert_refused("filter", ["filter", self.path("nothere.png"), "--kernel", "edge", "--out", out],
                            "IMAGE", "nothere.png")
        self.assert_refused("filter", ["filter", self.path("e.png"), "--kernel", "edge", "--out",
                                       self.path("x.gif")], "--out", ".png")
        self.assert_refused("filter", ["filter", self.path("e.png"), "--kernel", "edge", "--out",
                                       self.path("no/such/dir.png")], "--out")
        self.assertEqual(listing(self.dir), before)


# A small CNN in Keras' JSON: the classic architecture with fewer filters, so that training takes a second.
def tiny_architecture(path):
    with open(os.path.join(ROOT, "examples", "fashion_cnn.json")) as f:
        arch = json.load(f)
    for layer in arch["config"]["layers"]:
        c = layer["config"]
        if layer["class_name"] == "Conv2D":
            c["filters"] = 4 if c["name"] == "conv2d" else 6
            c["kernel_size"] = [3, 3]
        if layer["class_name"] == "Dense" and c["units"] != 10:
            c["units"] = 16
    with open(path, "w") as f:
        json.dump(arch, f)


@unittest.skipUnless(os.path.isdir(DATA), "Fashion-MNIST is not installed (scripts/setup.sh installs it)")
class TrainAndVisualize(unittest.TestCase, ErrorChecks):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="convkit_cli_viz_")
        cls.arch = os.path.join(cls.dir, "tiny.json")
        tiny_architecture(cls.arch)
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        cls.train = run("train", "--model", cls.arch, "--limit", "512", "--epochs", "3", "--batch-size", "32",
                        "--validation-split", "0.25", "--seed", "1", "--quiet", "--out", cls.model)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_train_writes_history_and_curves(self):
        rc, out, err = self.train
        self.assertEqual(rc, 0, err)
        with open(os.path.join(self.dir, "tiny.history.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["epoch"] for r in rows], ["1", "2", "3"])
        for r in rows:
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"):
                self.assertTrue(np.isfinite(float(r[k])), (k, r))
            self.assertTrue(0 <= float(r["accuracy"]) <= 1 and 0 <= float(r["val_accuracy"]) <= 1)
        self.assertEqual(float(rows[0]["learning_rate"]), 0.001)
        self.assertLess(float(rows[-1]["loss"]), float(rows[0]["loss"]))  # it learns
        svg = ET.parse(os.path.join(self.dir, "tiny.curves.svg")).getroot()  # well-formed XML
        self.assertEqual(svg.tag, "{http://www.w3.org/2000/svg}svg")
        self.assertEqual((svg.get("width"), svg.get("height")), ("900", "360"))
        lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
        self.assertEqual(len(lines), 4)  # loss, val_loss, accuracy, val_accuracy
        self.assertTrue(all(len(l.get("points").split()) == 3 for l in lines))

    def test_train_curves_options(self):
        curves, hist = os.path.join(self.dir, "c.svg"), os.path.join(self.dir, "h.csv")
        rc, out, err = run("train", "--model", self.arch, "--limit", "64", "--epochs", "1", "--quiet",
                           "--curves", curves, "--history", hist, "--out", os.path.join(self.dir, "o.safetensors"))
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.isfile(curves) and os.path.isfile(hist))
        with open(hist) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["val_loss"], "")  # no validation split: empty fields
        self.assertEqual(len(ET.parse(curves).getroot().findall("{http://www.w3.org/2000/svg}polyline")), 2)
        before = listing(self.dir)
        self.assert_refused("train", ["train", "--model", self.arch, "--limit", "64", "--epochs", "1", "--curves",
                                      os.path.join(self.dir, "nodir", "c.svg"), "--out",
                                      os.path.join(self.dir, "p.safetensors")], "--curves", "nodir")
        self.assertEqual(listing(self.dir), before)
        rc, out, err = run("train", "--model", self.arch, "--limit", "64", "--epochs", "1", "--quiet", "--no-curves",
                           "--out", os.path.join(self.dir, "q.safetensors"))
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "q.curves.svg")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "q.history.csv")))

    def visualize(self, out, *extra):
        rc, stdout, err = run("visualize", "--model", self.model, "--out", out, *extra)
        self.assertEqual(rc, 0, err)
        return stdout

    def test_visualize_sample(self):
        self.assertEqual(self.train[0], 0, self.train[2])
        out = os.path.join(self.dir, "viz")
        Image.fromarray(np.zeros((5, 5, 3), np.uint8), "RGB").save(os.path.join(self.dir, "extra.png"))
        stdout = self.visualize(out, "--sample", "3", "--attach", os.path.join(self.dir, "extra.png") + "=An extra",
                                "--note", "A <note>")
        self.assertRegex(stdout, r"predicted: \S")
        files = set(os.listdir(out))
        self.assertEqual(files, {"index.html", "input.png", "conv2d_filters.png", "conv2d_activations.png",
                                 "conv2d_1_filters.png", "conv2d_1_activations.png", "training_curves.svg",
                                 "extra.png"})
        # conv2d: 4 filters of 3 x 3 x 1, each enlarged 14x (to >= 40 px), one row of 4 labelled tiles under a
        # title band (7 * 2 + 2 * 3): height 20 + 3 + (42 + 9 + 3).
        with Image.open(os.path.join(out, "conv2d_filters.png")) as im:
            self.assertEqual(im.size[1], 20 + 3 + 42 + 9 + 3)
            self.assertGreaterEqual(im.size[0], 3 + 4 * (42 + 3))
        # conv2d_1: 6 filters x 4 input channels, one row of 4 grey tiles per filter, no labels.
        with Image.open(os.path.join(out, "conv2d_1_filters.png")) as im:
            self.assertEqual(im.size[1], 20 + 3 + 6 * (42 + 3))
        # Activations: conv2d (28 x 28, 4 maps enlarged 2x), conv2d_1 (14 x 14, 6 maps enlarged 4x).
        with Image.open(os.path.join(out, "conv2d_activations.png")) as im:
            self.assertEqual(im.size[1], 20 + 3 + 56 + 9 + 3)
        with Image.open(os.path.join(out, "conv2d_1_activations.png")) as im:
            self.assertEqual(im.size[1], 20 + 3 + 56 + 9 + 3)
            self.assertGreaterEqual(im.size[0], 3 + 6 * (56 + 3))
        with Image.open(os.path.join(out, "input.png")) as im:
            self.assertEqual(im.size, (196, 196))  # 28 x 28 enlarged 7x
        html = open(os.path.join(out, "index.html")).read()
        srcs = re.findall(r'src="([^"]+)"', html)
        self.assertEqual(set(srcs), files - {"index.html"})
        self.assertNotIn("file:", html)
        self.assertNotIn("://", html.replace("http://www.w3.org", ""))
        self.assertIn("A &lt;note&gt;", html)
        self.assertIn("true label:", html)
        pred = re.search(r'id="prediction">Prediction: ([^<]+)<', html).group(1)
        self.assertIn(pred, stdout)
        probs = [float(p) for p in re.findall(r"<td>([0-9.]+)%</td>", html)]
        self.assertEqual(len(probs), 10)
        self.assertAlmostEqual(sum(probs), 100, delta=0.1)

    def test_visualize_image_and_refusals(self):
        self.assertEqual(self.train[0], 0, self.train[2])
        out = os.path.join(self.dir, "viz_photo")
        self.visualize(out, "--image", PHOTO, "--invert")
        self.assertTrue(os.path.isfile(os.path.join(out, "index.html")))
        self.assertIn("chelsea.jpg (inverted)", open(os.path.join(out, "index.html")).read())
        nodir = os.path.join(self.dir, "refused")
        for extra, needles in [
            (["--image", os.path.join(self.dir, "nothere.png")], ["--image", "nothere.png"]),
            (["--image", PHOTO, "--sample", "1"], ["--image", "--sample"]),
            (["--sample", "10000"], ["--sample", "10000"]),
            (["--sample", "-1"], ["--sample"]),
            (["--attach", os.path.join(self.dir, "nothere.png")], ["--attach"]),
        ]:
            with self.subTest(extra=extra):
                self.assert_refused("visualize", ["visualize", "--model", self.model, "--out", nodir, *extra],
                                    *needles)
                self.assertFalse(os.path.exists(nodir))
        self.assert_refused("visualize", ["visualize", "--model", os.path.join(self.dir, "none.safetensors"),
                                          "--out", nodir], "--model")
        self.assertFalse(os.path.exists(nodir))


if __name__ == "__main__":
    unittest.main()
