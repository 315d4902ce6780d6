"""convkit summary / train / evaluate / predict, driven as a user would, on a slice of Fashion-MNIST.

One short training run (a few hundred images, two epochs) is shared by the tests; each test then checks one
subcommand against it: the files written, the numbers agreeing across commands, predictions on .npy and on a PNG
of the same pixels, and the refusals (exit status 2, nothing written)."""
import gzip
import os
import re
import shutil
import tempfile
import unittest

import numpy as np

from cli_common import BINARY, ErrorChecks, listing, run

DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CNN = os.path.join(ROOT, "examples", "fashion_cnn.json")


def test_images(n):
    with gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:n]
    return x


@unittest.skipUnless(os.path.isdir(DATA), "Fashion-MNIST is not installed (scripts/setup.sh installs it)")
class ModelCommands(unittest.TestCase, ErrorChecks):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="convkit_cli_model_")
        cls.model = os.path.join(cls.dir, "cnn.safetensors")
        cls.ckpt = os.path.join(cls.dir, "cnn.ckpt.safetensors")
        cls.train = run("train", "--model", CNN, "--limit", "640", "--epochs", "2", "--batch-size", "64",
                        "--validation-split", "0.1", "--checkpoint", cls.ckpt, "--seed", "3", "--out", cls.model)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_summary_of_the_classic_cnn(self):
        rc, out, err = run("summary", CNN)
        self.assertEqual(rc, 0, err)
        self.assertIn("Total params: 3,274,634", out)
        self.assertIn("conv2d_1 (Conv2D)", out)
        self.assertIn("(None, 7, 7, 64)", out)

    def test_train_writes_the_model_and_reports(self):
        rc, out, err = self.train
        self.assertEqual(rc, 0, err)
        self.assertIn("Training on 576 samples, validating on 64", out)
        self.assertEqual(len(re.findall(r"^Epoch \d/2$", out, re.M)), 2, out)
        self.assertIn("val_accuracy", out)
        acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
        self.assertGreater(acc, 0.4, out)  # two epochs on 576 images: far above chance (0.1)
        self.assertTrue(os.path.isfile(self.model) and os.path.isfile(self.ckpt))
        # The saved model is the trained one: its summary loads, and evaluate reproduces the test accuracy.
        rc, out2, err = run("evaluate", "--model", self.model)
        self.assertEqual(rc, 0, err)
        self.assertAlmostEqual(float(re.search(r"accuracy: ([0-9.]+)", out2).group(1)), acc, places=4)
        rc, out3, err = run("summary", self.model)
        self.assertEqual(rc, 0, err)
        self.assertIn("Total params: 3,274,634", out3)

    def test_predict_npy_and_png_agree(self):
        self.assertEqual(self.train[0], 0, self.train[2])
        x = test_images(4)
        npy = os.path.join(self.dir, "x.npy")
        np.save(npy, x.astype(np.float32) / 255)
        probs = os.path.join(self.dir, "p.npy")
        rc, out, err = run("predict", "--model", self.model, "--input", npy, "--top", "2", "--output", probs)
        self.assertEqual(rc, 0, err)
        p = np.load(probs)
        self.assertEqual(p.shape, (4, 10))
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 4, out)
        names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]
        for i, line in enumerate(lines):  # the printed top class is the arg-max of the written probabilities
            self.assertTrue(line.startswith(f"input {i}: {names[int(p[i].argmax())]} "), line)
        # The same pixels as a PNG (8-bit grey, 28x28: the resize is the identity) give the same probabilities.
        from PIL import Image
        png = os.path.join(self.dir, "item.png")
        Image.fromarray(x[2, :, :, 0]).save(png)
        probs_png = os.path.join(self.dir, "p_png.npy")
        rc, out, err = run("predict", "--model", self.model, "--input", png, "--output", probs_png)
        self.assertEqual(rc, 0, err)
        np.testing.assert_allclose(np.load(probs_png)[0], p[2], rtol=1e-4, atol=1e-6)

    def test_refusals_write_nothing(self):
        before = listing(self.dir)
        self.assert_refused("train", ["train", "--model", CNN, "--out", os.path.join(self.dir, "no", "m.safetensors")],
                            "--out", "No such file")
        self.assert_refused("train", ["train", "--model", CNN, "--epochs", "0", "--out", self.model], "--epochs")
        self.assert_refused("train", ["train", "--model", os.path.join(self.dir, "nope.json"), "--out", self.model],
                            "--model", "nope.json")
        self.assert_refused("train", ["train", "--model", CNN, "--optimizer", "rmsprop", "--out", self.model],
                            "--optimizer", "rmsprop")
        self.assert_refused("train", ["train", "--model", CNN, "--lr", "fast", "--out", self.model], "--lr", "fast")
        self.assert_refused("evaluate", ["evaluate", "--model", self.model, "--split", "validation"], "--split")
        wrong = os.path.join(self.dir, "wrong.npy")
        np.save(wrong, np.zeros((2, 32, 32, 1), np.float32))
        self.assert_refused("predict", ["predict", "--model", self.model, "--input", wrong], "--input",
                            "(2, 32, 32, 1)")
        os.remove(wrong)
        self.assertEqual(listing(self.dir), before)


if __name__ == "__main__":
    unittest.main()
