"""convkit bench, driven as a user would: the CSV contract (exact header, one row per problem and direction, every
field parses, real algorithm names, GFLOP/s consistent with the FLOP count worked out here), the human table,
option errors (exit status 2, a message naming the option, nothing on stdout), and, when the tool was built with
oneDNN, agreement of convkit and oneDNN in every direction on small problems of every kind.

usage: test_bench_cli.py <convkit binary> <version> onednn|no-onednn <include/convkit/conv.hpp> [unittest args]
"""
import csv
import io
import os
import re
import subprocess
import sys
import tempfile
import unittest

if len(sys.argv) < 5:
    sys.exit(__doc__)
BINARY = os.path.abspath(sys.argv.pop(1))
VERSION = sys.argv.pop(1)
HAVE_ONEDNN = sys.argv.pop(1) == "onednn"
CONV_HPP = sys.argv.pop(1)

HEADER = "name,desc,dir,mb,algorithm,ms,gflops,pct_peak,onednn_ms,ratio"

# Small problems of every kind: (line in the shapes file, name, canonical descriptor, FLOPs at mb 2 worked out by
# hand as 2 * mb * oh * ow * oc * ic/g * kh * kw).
PROBLEMS = [
    # 3x3 'same': oh = ow = 10.  2*2*10*10*16*8*3*3
    ('mb2ic8ih10oc16oh10kh3ph1n"t:conv3x3"', "t:conv3x3", "mb2ic8ih10oc16oh10kh3ph1", 2 * 2 * 10 * 10 * 16 * 8 * 9),
    # 1x1: oh = 8.  2*2*8*8*8*16
    ('mb2ic16ih8oc8oh8kh1n"t:pw*3"', "t:pw", "mb2ic16ih8oc8oh8kh1", 2 * 2 * 8 * 8 * 8 * 16),
    # depthwise stride 2: oh = (9 + 2 - 3) / 2 + 1 = 5.  2*2*5*5*8*1*9
    ('g8mb2ic8ih9oc8kh3sh2ph1n"t:dw"', "t:dw", "g8mb2ic8ih9oc8oh5kh3sh2ph1", 2 * 2 * 5 * 5 * 8 * 9),
    # grouped, dilated (dh1 = Keras 2, dw defaults to dh), per-axis stride and padding:
    # oh = (7 + 2 - 5) / 2 + 1 = 3, ow = (9 - 3) / 1 + 1 = 7.  2*2*3*7*4*3*3*2
    ('g2mb2ic6ih7iw9oc4kh3kw2sh2sw1ph1pw0dh1n"t:grouped_dilated"', "t:grouped_dilated",
     "g2mb2ic6ih7iw9oc4oh3ow7kh3kw2sh2sw1ph1pw0dh1", 2 * 2 * 3 * 7 * 4 * 3 * 3 * 2),
    # asymmetric padding from an explicit oh: TF 'same' for an even kernel (0 above, 1 below).  2*2*6*6*8*4*2*2
    ('mb2ic4ih6oc8oh6kh2n"t:even_same"', "t:even_same", "mb2ic4ih6oc8oh6kh2", 2 * 2 * 6 * 6 * 8 * 4 * 4),
    # stride leaves the last input row unused (no padding below): oh = (9 - 3) / 2 + 1 = 4.  2*2*4*4*4*3*9
    ('mb2ic3ih9oc4oh4kh3sh2n"t:stride_drop"', "t:stride_drop", "mb2ic3ih9oc4oh4kh3sh2", 2 * 2 * 4 * 4 * 4 * 3 * 9),
]
DIRS = ["fwd", "bwd_d", "bwd_w"]


def algorithm_names():
    """The enumerators of Conv2dAlgorithm in the public header (to_string spells them the same), 'automatic' aside."""
    with open(CONV_HPP) as f:
        m = re.search(r"enum class Conv2dAlgorithm\s*\{([^}]*)\}", f.read())
    names = {n.strip() for n in m.group(1).split(",")} - {"automatic", ""}
    assert {"gemm_1x1", "depthwise", "implicit_gemm", "reference"} <= names, names
    return names


def run(*args):
    p = subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=240)
    return p.returncode, p.stdout, p.stderr


class BenchCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.shapes = os.path.join(cls.tmp.name, "tiny.txt")
        with open(cls.shapes, "w") as f:
            f.write("# tiny problems of every kind\n\n")
            f.write("\n".join(line for line, *_ in PROBLEMS) + "\n")
        cls.algorithms = algorithm_names()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_csv(self, *args):
        rc, out, err = run("bench", "--shapes", self.shapes, "--reps", 1, "--csv", *args)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0], HEADER)
        return list(csv.reader(io.StringIO("\n".join(lines[1:]))))

    def check_rows(self, rows, dirs, mb, onednn):
        self.assertEqual(len(rows), len(PROBLEMS) * len(dirs))
        expected_order = [(name, d) for _, name, _, _ in PROBLEMS for d in dirs]
        self.assertEqual([(r[0], r[2]) for r in rows], expected_order)
        flops = {name: f * mb / 2 for _, name, _, f in PROBLEMS}
        descs = {name: desc.replace("mb2", f"mb{mb}", 1) for _, name, desc, _ in PROBLEMS}
        for r in rows:
            with self.subTest(row=r):
                self.assertEqual(len(r), 10)
                name, desc, d, row_mb, algo, ms, gflops, pct, onednn_ms, ratio = r
                self.assertEqual(desc, descs[name])
                self.assertEqual(int(row_mb), mb)
                self.assertIn(algo, self.algorithms)
                ms, gflops, pct = float(ms), float(gflops), float(pct)
                self.assertGreater(ms, 0.0)
                # gflops is printed to 2 decimals from the unrounded time; ms to 6 decimals.
                self.assertAlmostEqual(gflops, flops[name] / (ms * 1e6),
                                       delta=0.006 + 1e-3 * gflops + 1e-6 * gflops / ms)
                self.assertGreaterEqual(pct, 0.0)
                if onednn:
                    theirs, ratio = float(onednn_ms), float(ratio)
                    self.assertGreater(theirs, 0.0)
                    self.assertAlmostEqual(ratio, theirs / ms, delta=0.0006 + 1e-3 * ratio + 1e-6 * ratio / ms)
                else:
                    self.assertEqual((onednn_ms, ratio), ("", ""))
        # The plan's documented order: a 1x1 stride-1 unpadded kernel is a GEMM, groups == channels is depthwise.
        by_name = {r[0]: r[4] for r in rows}
        self.assertEqual(by_name["t:pw"], "gemm_1x1")
        self.assertEqual(by_name["t:dw"], "depthwise")

    def test_median_script(self):
        # scripts/bench_median.py, which docs/performance.md's tables come from: one row per problem and direction
        # with the medians over the runs, and totals weighted by the *N counts (one run: exactly the rows' sums).
        script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(CONV_HPP))), "scripts",
                              "bench_median.py")
        extra = ["--vs", "onednn"] if HAVE_ONEDNN else []
        for runs in (1, 2):
            p = subprocess.run([sys.executable, script, "--runs", str(runs), "--bin", BINARY, "--", "--shapes",
                                self.shapes, "--reps", "1", "--dir", "all", *extra],
                               capture_output=True, text=True, timeout=240)
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            rows = [l.split() for l in lines if l.startswith("t:")]
            self.assertEqual([(r[0], r[1]) for r in rows], [(name, d) for _, name, _, _ in PROBLEMS for d in DIRS])
            totals = {l.split()[0]: float(l.split()[1]) for l in lines if l.startswith("  ")}
            self.assertEqual(sorted(totals), sorted(DIRS))
            if runs == 1:
                counts = {name: (3 if name == "t:pw" else 1) for _, name, _, _ in PROBLEMS}
                for d in DIRS:
                    expected = sum(counts[r[0]] * float(r[4]) for r in rows if r[1] == d)
                    self.assertAlmostEqual(totals[d], expected, delta=1e-3 + 1e-3 * expected)
            for r in rows:
                self.assertIn(r[3], self.algorithms)
                if HAVE_ONEDNN:
                    lo, hi = map(float, r[-1].split("-"))
                    self.assertLessEqual(lo, float(r[-2]))
                    self.assertLessEqual(float(r[-2]), hi)
        p = subprocess.run([sys.executable, script, "--bin", BINARY, "--", "--shapes", self.shapes, "--mb", "0"],
                           capture_output=True, text=True, timeout=240)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("run 1 failed", p.stderr)

    def test_csv_all_directions(self):
        self.check_rows(self.run_csv(), DIRS, 2, onednn=False)

    def test_csv_mb_override_and_one_direction(self):
        self.check_rows(self.run_csv("--mb", 3, "--dir", "bwd_w"), ["bwd_w"], 3, onednn=False)
        self.check_rows(self.run_csv("--dir", "fwd", "--threads", 2), ["fwd"], 2, onednn=False)

    def test_human_table(self):
        rc, out, err = run("bench", "--shapes", self.shapes, "--reps", 1, "--dir", "fwd")
        self.assertEqual(rc, 0, err)
        m = re.search(r"peak: ([0-9.]+) GFLOP/s \(FMA loop, 1 thread; 1 thread [0-9.]+\), ([0-9.]+) GB/s", out)
        self.assertIsNotNone(m, out)
        self.assertGreater(float(m.group(1)), 0.0)
        self.assertGreater(float(m.group(2)), 0.0)
        self.assertIn("t:pw*3", out)  # the repeat count is shown with the name
        for _, name, _, _ in PROBLEMS:
            self.assertIn(name, out)
        # The weighted total: the sum of the rows' times, t:pw counted 3 times.
        rows = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 8 and parts[1] == "fwd":
                rows[parts[0]] = float(parts[4])
        self.assertEqual(len(rows), len(PROBLEMS), out)
        total = re.search(r"^\s+fwd\s+([0-9.]+) ms", out, re.M)
        self.assertIsNotNone(total, out)
        expected = sum(v * (3 if k == "t:pw*3" else 1) for k, v in rows.items())
        self.assertAlmostEqual(float(total.group(1)), expected, delta=0.00005 * (len(rows) + 3) + 0.00005 + 1e-7)

    def test_explain_goes_to_stderr(self):
        rc, out, err = run("bench", "--shapes", self.shapes, "--reps", 1, "--dir", "fwd", "--csv", "--explain")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines()[0], HEADER)
        self.assertIn("chosen", err)
        self.assertIn("== t:conv3x3", err)

    def assert_refused(self, args, *needles):
        rc, out, err = run("bench", *args)
        context = f"convkit bench {' '.join(map(str, args))}\nstderr: {err!r}"
        self.assertEqual(rc, 2, context)
        self.assertEqual(out, "", context)
        self.assertTrue(err.startswith("convkit bench: error: "), context)
        for n in needles:
            self.assertIn(n, err, context)

    def test_option_errors(self):
        s = self.shapes
        self.assert_refused(["--shapes", s, "--mb", "abc"], "--mb", "'abc' is not an integer")
        self.assert_refused(["--shapes", s, "--mb", "0"], "--mb", "must be positive")
        self.assert_refused(["--shapes", s, "--mb", "-3"], "--mb")
        self.assert_refused(["--shapes", s, "--dir", "sideways"], "--dir", "sideways", "fwd, bwd_d, bwd_w or all")
        self.assert_refused(["--shapes", s, "--reps", "0"], "--reps", "must be positive")
        self.assert_refused(["--shapes", s, "--reps", "1x"], "--reps", "not an integer")
        self.assert_refused(["--shapes", s, "--threads", "two"], "--threads", "not an integer")
        self.assert_refused(["--shapes", s, "--vs", "tensorflow"], "--vs", "tensorflow", "onednn")
        self.assert_refused(["--shapes", os.path.join(self.tmp.name, "missing.txt")], "missing.txt")
        self.assert_refused(["--shapes", self.tmp.name], "directory")
        self.assert_refused([], "--shapes")
        self.assert_refused(["--shapes", s, "--inject-error"], "--inject-error needs --vs onednn")
        self.assert_refused(["--shapes", s, "--weights", "cached"], "--weights", "cached", "packed or per_call")

    def test_weights_per_call_and_packed(self):
        # Both ways of handing over the weights run every problem and direction with the same CSV contract; the
        # human table says which one was timed.
        self.check_rows(self.run_csv("--weights", "per_call"), DIRS, 2, onednn=False)
        self.check_rows(self.run_csv("--weights", "packed"), DIRS, 2, onednn=False)
        for choice, needle in [("packed", "packed once outside the timed loop"),
                               ("per_call", "packed by convkit at every call")]:
            rc, out, err = run("bench", "--shapes", self.shapes, "--reps", 1, "--dir", "fwd", "--weights", choice)
            self.assertEqual(rc, 0, err)
            self.assertIn(needle, out.splitlines()[0])

    def test_shapes_file_errors(self):
        bad = self.write("bad.txt", "# comment\nic3ih5oc2kh3\n\nic3ih5oc2kh3xy1\n")
        self.assert_refused(["--shapes", bad], "bad.txt", "line 4", "unknown key 'xy'")
        empty = self.write("empty.txt", "# only a comment\n\n")
        self.assert_refused(["--shapes", empty], "no convolution descriptors")
        # --mb re-checks the sizes: 2^31 - 1 images of 3 x 1 pixels x 2^31 - 1 channels cannot be indexed in int64.
        big = self.write("big.txt", "ic2147483647ih3iw1oc1kh1\n")
        self.assert_refused(["--shapes", big, "--mb", "2147483647"], "--mb 2147483647", "too many elements")
        # A problem far larger than any memory (4e15 bytes of input) is refused before anything is allocated (after
        # the CSV header).
        huge = self.write("huge.txt", "mb1000ic1000000ih1000oc1kh1\n")
        rc, out, err = run("bench", "--shapes", huge, "--reps", 1, "--csv")
        self.assertEqual(rc, 2, err)
        self.assertIn("GiB of buffers", err)

    @unittest.skipIf(HAVE_ONEDNN, "this convkit was built with oneDNN")
    def test_vs_onednn_without_onednn(self):
        self.assert_refused(["--shapes", self.shapes, "--vs", "onednn"], "built without oneDNN")

    @unittest.skipUnless(HAVE_ONEDNN, "this convkit was built without oneDNN")
    def test_agrees_with_onednn_in_every_direction(self):
        # The tool compares every output element of every direction with oneDNN's and exits 2 on a disagreement.
        # Both with the weights packed once (the default) and packed at every call.
        for weights in ["packed", "per_call"]:
            rc, out, err = run("bench", "--shapes", self.shapes, "--reps", 1, "--csv", "--vs", "onednn", "--explain",
                               "--weights", weights)
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.splitlines()[0], HEADER)
            rows = list(csv.reader(io.StringIO("\n".join(out.splitlines()[1:]))))
            self.check_rows(rows, DIRS, 2, onednn=True)
            # Every comparison was made: y, dx, dw and db for each problem.
            for what in ["fwd y", "bwd_d dx", "bwd_w dw", "bwd_w db"]:
                self.assertEqual(len(re.findall(rf"{what}: max \|convkit - oneDNN\|", err)), len(PROBLEMS), what)

    @unittest.skipUnless(HAVE_ONEDNN, "this convkit was built without oneDNN")
    def test_disagreement_is_caught(self):
        for d, what in [("fwd", "y["), ("bwd_d", "dx["), ("bwd_w", "dw[")]:
            rc, out, err = run("bench", "--shapes", self.shapes, "--reps", 1, "--dir", d, "--vs", "onednn",
                               "--inject-error")
            self.assertEqual(rc, 2, err)
            self.assertIn("convkit and oneDNN disagree on 't:conv3x3'", err)
            self.assertIn(what, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
