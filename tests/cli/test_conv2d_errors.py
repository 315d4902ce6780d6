"""convkit conv2d refusing bad input: malformed or truncated .npy files, wrong dtypes, shape mismatches, missing
files, unwritable output paths, inconsistent options. Each case must exit 2 with a message on stderr naming the
problem, print nothing on stdout, create no file (output or temporary), and leave an existing output file with
exactly its old bytes."""
import os
import shutil
import struct
import tempfile
import unittest

import numpy as np

from cli_common import ErrorChecks, listing, run

SENTINEL = b"old output: must survive a failed run\n"


def npy_bytes(a):
    """The bytes numpy writes for a, to cut and corrupt."""
    import io
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


class Conv2dErrors(ErrorChecks, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="convkit_cli_")
        rng = np.random.default_rng(7)
        self.x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
        self.w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
        self.b = rng.standard_normal((4,)).astype(np.float32)
        self.save("x.npy", self.x)
        self.save("w.npy", self.w)
        self.save("b.npy", self.b)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def save(self, name, a):
        np.save(self.path(name), a)

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)

    def refused(self, args, *needles, output="y.npy"):
        """Runs conv2d twice, once with no output file and once over an existing one; both must be refused and
        change nothing in the directory."""
        out_path = self.path(output)
        full = ["conv2d", *args, "--output", out_path]
        # 1. No output file before: none after, and no stray temporary file either.
        before = listing(self.dir)
        self.assert_refused("conv2d", full, *needles, cwd=self.dir)
        self.assertEqual(listing(self.dir), before, f"files changed by a failed run: {full}")
        # 2. An existing output file keeps its bytes (when its directory exists).
        if os.path.isdir(os.path.dirname(out_path)) and not os.path.isdir(out_path):
            with open(out_path, "wb") as f:
                f.write(SENTINEL)
            before = listing(self.dir)
            self.assert_refused("conv2d", full, *needles, cwd=self.dir)
            self.assertEqual(listing(self.dir), before, f"files changed by a failed run: {full}")
            os.remove(out_path)

    def std(self, **override):
        """--input x.npy --kernel w.npy --bias b.npy, with files replaced (name -> path) or dropped (name -> None)."""
        files = {"--input": "x.npy", "--kernel": "w.npy", "--bias": "b.npy"}
        files.update({f"--{k}": v for k, v in override.items()})
        return [w for k, v in files.items() if v is not None for w in (k, self.path(v))]

    # --- a success first, so that the checks above are known to notice a written file -----------------------
    def test_success_replaces_existing_output(self):
        out = self.path("y.npy")
        self.write("y.npy", SENTINEL)
        rc, stdout, stderr = run("conv2d", *self.std(), "--output", out)
        self.assertEqual((rc, stdout, stderr), (0, "", ""))
        y = np.load(out)
        self.assertEqual(y.shape, (2, 3, 4, 4))
        self.assertEqual(y.dtype, np.float32)
        self.assertEqual(sorted(os.listdir(self.dir)), ["b.npy", "w.npy", "x.npy", "y.npy"])

    # --- malformed files ---------------------------------------------------------------------------------------
    def test_truncated_data(self):
        self.write("t.npy", npy_bytes(self.x)[:-5])
        self.refused(self.std(input="t.npy"), "--input", "t.npy", "truncated")

    def test_truncated_header(self):
        self.write("t.npy", npy_bytes(self.x)[:40])
        self.refused(self.std(input="t.npy"), "--input", "t.npy", "truncated")

    def test_truncated_kernel(self):
        self.write("t.npy", npy_bytes(self.w)[:-1])
        self.refused(self.std(kernel="t.npy"), "--kernel", "t.npy", "truncated")

    def test_truncated_to_nothing(self):
        self.write("t.npy", b"")
        self.refused(self.std(bias="t.npy"), "--bias", "t.npy")

    def test_corrupt_magic(self):
        data = bytearray(npy_bytes(self.x))
        data[1:6] = b"NUMPZ"
        self.write("c.npy", bytes(data))
        self.refused(self.std(input="c.npy"), "--input", "c.npy", "magic")

    def test_not_npy_at_all(self):
        self.write("c.npy", b"hello, world\n" * 10)
        self.refused(self.std(kernel="c.npy"), "--kernel", "c.npy", "magic")

    def test_corrupt_header(self):
        data = npy_bytes(self.x)
        data = data.replace(b"'shape': (2, 5, 6, 3)", b"'shape': (2, 5, 6; 3)")
        self.write("c.npy", data)
        self.refused(self.std(input="c.npy"), "--input", "c.npy", "header")

    def test_header_length_past_the_end(self):
        data = bytearray(npy_bytes(self.x))
        data[8:10] = struct.pack("<H", 60000)
        self.write("c.npy", bytes(data))
        self.refused(self.std(input="c.npy"), "--input", "c.npy", "truncated")

    def test_trailing_bytes(self):
        self.write("c.npy", npy_bytes(self.x) + b"\0\0\0\0")
        self.refused(self.std(input="c.npy"), "--input", "c.npy", "corrupt")

    def test_float64_input(self):
        self.save("d.npy", self.x.astype(np.float64))
        self.refused(self.std(input="d.npy"), "--input", "d.npy", "dtype", "<f8")

    def test_float64_kernel_and_int_bias(self):
        self.save("d.npy", self.w.astype(np.float64))
        self.refused(self.std(kernel="d.npy"), "--kernel", "d.npy", "dtype")
        self.save("i.npy", np.arange(4, dtype=np.int32))
        self.refused(self.std(bias="i.npy"), "--bias", "i.npy", "dtype", "<i4")

    def test_big_endian(self):
        self.save("be.npy", self.x.astype(">f4"))
        self.refused(self.std(input="be.npy"), "--input", "be.npy", ">f4")

    def test_fortran_order(self):
        self.save("f.npy", np.asfortranarray(self.x))
        self.refused(self.std(input="f.npy"), "--input", "f.npy", "Fortran")

    # --- shapes ----------------------------------------------------------------------------------------------
    def test_kernel_in_channels_mismatch(self):
        self.save("k.npy", np.zeros((3, 3, 2, 4), np.float32))
        self.refused(self.std(kernel="k.npy"), "--kernel", "(3, 3, 2, 4)", "(3, 3, 3, 4)", "3 input channels")

    def test_kernel_mismatch_in_oihw(self):
        # The message shows shapes in the layout the user gave.
        self.save("k.npy", np.zeros((4, 2, 3, 3), np.float32))
        self.refused([*self.std(kernel="k.npy"), "--kernel-layout", "oihw"], "--kernel", "(4, 2, 3, 3)",
                     "(4, 3, 3, 3)", "oihw")

    def test_kernel_rank(self):
        self.save("k.npy", np.zeros((3, 3, 12), np.float32))
        self.refused(self.std(kernel="k.npy"), "--kernel", "4-D", "(3, 3, 12)")

    def test_input_rank(self):
        self.save("i.npy", np.zeros((5, 6, 3), np.float32))
        self.refused(self.std(input="i.npy"), "--input", "4-D", "(5, 6, 3)")

    def test_bias_shape(self):
        self.save("bb.npy", np.zeros((5,), np.float32))
        self.refused(self.std(bias="bb.npy"), "--bias", "(5,)", "(4,)")
        self.save("bb.npy", np.zeros((1, 4), np.float32))
        self.refused(self.std(bias="bb.npy"), "--bias", "(1, 4)")

    def test_options_disagreeing_with_the_kernel(self):
        self.refused([*self.std(), "--filters", 5], "--filters 5", "(3, 3, 3, 4)")
        self.refused([*self.std(), "--kernel-size", "3,2"], "--kernel-size 3,2", "(3, 3, 3, 4)")

    def test_kernel_larger_than_input(self):
        self.save("k.npy", np.zeros((6, 3, 3, 4), np.float32))
        self.refused(self.std(kernel="k.npy"), "kernel height 6", "input height 5")

    def test_groups_not_dividing_channels(self):
        self.refused([*self.std(), "--groups", 2], "input channels (3)", "groups (2)")

    def test_reflect_pad_too_large(self):
        self.refused([*self.std(), "--padding", "5,0", "--padding-mode", "reflect"], "reflect", "top pad is 5",
                     "height 5")

    def test_channels_first_mismatch(self):
        # (2, 5, 6, 3) read as NCHW has 5 channels: the kernel's 3 input channels no longer fit.
        self.refused([*self.std(), "--data-format", "channels_first"], "--kernel", "5 input channels")

    def test_depthwise_kernel_mismatch(self):
        self.save("dw.npy", np.zeros((3, 3, 2, 2), np.float32))  # 2 channels, input has 3
        self.refused([*self.std(kernel="dw.npy", bias=None), "--depthwise"], "--kernel", "(3, 3, 2, 2)", "3 input")
        self.save("dw.npy", np.zeros((3, 3, 3, 2), np.float32))
        self.refused([*self.std(kernel="dw.npy", bias=None), "--depthwise", "--depth-multiplier", 3],
                     "--depth-multiplier 3", "(3, 3, 3, 2)")
        self.save("dw.npy", np.zeros((7, 1, 3, 3), np.float32))  # 7 filters for 3 channels
        self.refused([*self.std(kernel="dw.npy", bias=None), "--depthwise", "--kernel-layout", "oihw"], "--kernel",
                     "(7, 1, 3, 3)")

    def test_bias_options(self):
        self.refused([*self.std(bias=None), "--use-bias"], "--use-bias", "--bias")
        self.refused([*self.std(), "--no-bias"], "--bias", "--no-bias")

    # --- files that are not there, outputs that cannot be written --------------------------------------------
    def test_missing_files(self):
        self.refused(self.std(input="nope.npy"), "--input", "nope.npy", "No such file")
        self.refused(self.std(kernel="nope.npy"), "--kernel", "nope.npy", "No such file")
        self.refused(self.std(bias="nope.npy"), "--bias", "nope.npy", "No such file")

    def test_input_is_a_directory(self):
        os.mkdir(self.path("d"))
        self.refused(self.std(input="d"), "--input", "is a directory")

    def test_output_in_missing_directory(self):
        self.refused(self.std(), "--output", "no_such_dir", output=os.path.join("no_such_dir", "y.npy"))
        self.assertFalse(os.path.exists(self.path("no_such_dir")))

    def test_output_is_a_directory(self):
        os.mkdir(self.path("out"))
        self.refused(self.std(), "--output", "out", output="out")
        self.assertTrue(os.path.isdir(self.path("out")))

    def test_bad_options(self):
        self.refused([*self.std(), "--kernel-layout", "ohwi"], "--kernel-layout", "'ohwi'")
        self.refused([*self.std(), "--data-format", "nchw"], "--data-format", "'nchw'")
        self.refused([*self.std(), "--strides", "2,0"], "--strides", "'0'")
        self.refused([*self.std(), "--filters", "4", "--depthwise"], "--filters", "--depthwise")

    def test_missing_required_options(self):
        for drop in ["--input", "--kernel"]:
            with self.subTest(drop=drop):
                args = self.std(**{drop[2:]: None})
                self.refused(args, drop)
        before = listing(self.dir)
        self.assert_refused("conv2d", ["conv2d", *self.std()], "--output")
        self.assertEqual(listing(self.dir), before)


if __name__ == "__main__":
    unittest.main(verbosity=2)
