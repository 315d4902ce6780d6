"""Nothing lost (docs/errors.md, "Interrupted runs"): a save killed midway (SIGKILL) leaves the previous file intact,
and `convkit train` interrupted by SIGINT finishes its step, saves a checkpoint, exits with status 130, and
`--resume` from that checkpoint ends with exactly the model file of a run that was never interrupted.

Usage: /usr/bin/python3 test_interrupt.py <convkit binary> <version>"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

BINARY = os.path.abspath(sys.argv.pop(1))
sys.argv.pop(1)


def layer(cls, name, **config):
    config.update(name=name, trainable=True, dtype="float32")
    return {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}


# Small, but with every kind of state: batch-norm statistics, a dropout stream, Adam's moments.
ARCH = {"module": "keras", "class_name": "Sequential", "config": {
    "name": "sequential", "trainable": True, "dtype": "float32", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {
            "batch_shape": [None, 28, 28, 1], "dtype": "float32", "sparse": False, "name": "input_layer"},
         "registered_name": None},
        layer("Conv2D", "conv2d", filters=8, kernel_size=[3, 3], activation="relu"),
        layer("BatchNormalization", "batch_normalization"),
        layer("MaxPooling2D", "max_pooling2d", pool_size=[2, 2]),
        layer("Flatten", "flatten"),
        layer("Dropout", "dropout", rate=0.25),
        layer("Dense", "dense", units=10, activation="softmax")]}}


def idx_bytes(a):
    return struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.tobytes()


class Interrupts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="convkit_interrupt_")
        data = os.path.join(cls.dir, "data")
        os.makedirs(data)
        rng = np.random.default_rng(5)
        y = rng.integers(0, 10, 300).astype(np.uint8)
        # Learnable: the class sets the brightness of one row band.
        x = rng.integers(0, 120, (300, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            x[i, 2 * k:2 * k + 3, :] += 120
        for split in ("train", "t10k"):
            with open(os.path.join(data, f"{split}-images-idx3-ubyte"), "wb") as f:
                f.write(idx_bytes(x))
            with open(os.path.join(data, f"{split}-labels-idx1-ubyte"), "wb") as f:
                f.write(idx_bytes(y))
        cls.arch = os.path.join(cls.dir, "arch.json")
        with open(cls.arch, "w") as f:
            json.dump(ARCH, f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def train_args(self, out, *extra):
        # 30 epochs x 7 steps of 16 over 300 images (passes and epochs do not line up), cosine schedule.
        return [BINARY, "train", "--model", self.arch, "--data", os.path.join(self.dir, "data"), "--out", out,
                "--epochs", "30", "--steps-per-epoch", "7", "--batch-size", "16", "--schedule", "cosine",
                "--seed", "9", "--threads", "2", *extra]

    def test_sigint_saves_a_checkpoint_and_resume_is_bit_identical(self):
        whole = os.path.join(self.dir, "whole.safetensors")
        p = subprocess.run(self.train_args(whole, "--quiet"), capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)

        cut = os.path.join(self.dir, "cut.safetensors")
        ckpt = os.path.join(self.dir, "cut.ckpt")
        proc = subprocess.Popen(self.train_args(cut, "--checkpoint", ckpt), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        # Interrupt once the second epoch has begun (its header is printed): the run is well under way.
        for line in proc.stdout:
            if line.startswith("Epoch 2/30"):
                time.sleep(0.05)
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=600)
        self.assertEqual(proc.returncode, 130, err)
        self.assertIn("interrupted at epoch", err)
        self.assertIn(f"--resume {ckpt}", err)
        self.assertFalse(os.path.exists(cut), "an interrupted run must not write --out")
        self.assertTrue(os.path.isfile(ckpt))

        p = subprocess.run(self.train_args(cut, "--checkpoint", ckpt, "--resume", ckpt, "--quiet"),
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(whole, "rb") as a, open(cut, "rb") as b:
            self.assertTrue(a.read() == b.read(), "the resumed run's model file differs from the uninterrupted run's")
        # The curves continue too: the resumed run's history holds all 30 epochs, equal to the uninterrupted run's in
        # every column but the wall time.
        def history(stem):
            with open(os.path.join(self.dir, stem + ".history.csv")) as f:
                return [line.rsplit(",", 1)[0] for line in f.read().splitlines()]
        self.assertEqual(len(history("whole")), 31)
        self.assertEqual(history("cut"), history("whole"))

    def test_resume_with_other_options_is_refused(self):
        ckpt = os.path.join(self.dir, "other.ckpt")
        out = os.path.join(self.dir, "other.safetensors")
        args = self.train_args(out, "--checkpoint", ckpt, "--quiet")
        args[args.index("--epochs") + 1] = "1"
        p = subprocess.run(args, capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        os.remove(out)
        # The checkpoint was written after the last of 1 epochs: nothing left to resume with --epochs 1 ...
        p = subprocess.run(args + ["--resume", ckpt], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("cannot resume", p.stderr)
        # ... and another seed is another run.
        args2 = self.train_args(out, "--resume", ckpt, "--quiet")
        args2[args2.index("--seed") + 1] = "10"
        p = subprocess.run(args2, capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--seed 9", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_sigkill_during_a_save_leaves_the_previous_file_intact(self):
        # conv2d writes a 64 MiB output; the previous output must survive a SIGKILL at any point of the save.
        x = os.path.join(self.dir, "big_x.npy")
        w = os.path.join(self.dir, "big_w.npy")
        y = os.path.join(self.dir, "big_y.npy")
        np.save(x, np.ones((1, 2048, 2048, 4), np.float32))
        np.save(w, np.ones((1, 1, 4, 4), np.float32))
        old = b"previous output, which must survive\n"
        with open(y, "wb") as f:
            f.write(old)
        kills_during_save = 0
        for attempt in range(20):
            proc = subprocess.Popen([BINARY, "conv2d", "--input", x, "--kernel", w, "--output", y],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Wait until the temporary file of the atomic write exists (the save has begun), then kill at once.
            killed = False
            while proc.poll() is None:
                if any(n.startswith("big_y.npy.tmp.") for n in os.listdir(self.dir)):
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                    break
            proc.wait()
            with open(y, "rb") as f:
                now = f.read()
            if killed and proc.returncode == -signal.SIGKILL:
                kills_during_save += 1
                self.assertEqual(now, old, "a save killed midway changed the previous file")
            else:  # the save won the race: the command succeeded and the file is the complete new output
                self.assertEqual(proc.returncode, 0)
                self.assertEqual(np.load(y).shape, (1, 2048, 2048, 4))
                with open(y, "wb") as f:
                    f.write(old)
            for n in os.listdir(self.dir):  # a killed save leaves its temporary file; clear it for the next try
                if n.startswith("big_y.npy.tmp."):
                    os.remove(os.path.join(self.dir, n))
            if kills_during_save >= 3:
                break
        self.assertGreaterEqual(kills_during_save, 3, "never managed to kill the process during its save")


if __name__ == "__main__":
    unittest.main()
