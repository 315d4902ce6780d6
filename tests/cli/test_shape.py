"""convkit shape, --help, --version, and the option syntax every subcommand shares.

Expected shapes come from the seeds' examples (DESIGN.md) and, for every other form, from PyTorch: the test pads
a zero tensor with F.pad (TensorFlow's "same" split computed here from its definition) and runs F.conv2d, so the
oracle shares no code with convkit."""
import unittest

import torch
import torch.nn.functional as F

from cli_common import VERSION, ErrorChecks, run


def same_pads(n, k, s, d):
    """TensorFlow's "same": out = ceil(n / s); the extra pixel of an odd total goes after (bottom/right)."""
    k_eff = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def torch_output_shape(nhwc, filters, k, s=(1, 1), pad="valid", d=(1, 1), groups=1, mode="zeros"):
    """Output shape (N, OH, OW, F) of the convolution, computed by PyTorch on a zero input."""
    n, h, w, c = nhwc
    if pad == "valid":
        t = b = l = r = 0
    elif pad == "same":
        t, b = same_pads(h, k[0], s[0], d[0])
        l, r = same_pads(w, k[1], s[1], d[1])
    else:
        t, b, l, r = pad
    x = torch.zeros(n, c, h, w)
    torch_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}[mode]
    if t or b or l or r:
        x = F.pad(x, (l, r, t, b), mode=torch_mode)
    y = F.conv2d(x, torch.zeros(filters, c // groups, *k), stride=s, dilation=d, groups=groups)
    return (y.shape[0], y.shape[2], y.shape[3], y.shape[1]), (t, b, l, r)


def keras_str(shape):
    return "(" + ", ".join(str(v) for v in shape) + ("," if len(shape) == 1 else "") + ")"


def shape_args(shape):
    return ["--input-shape", ",".join(map(str, shape))]


class SeedShapes(unittest.TestCase):
    # The numbers the seeds state (DESIGN.md §1), not derived from convkit.
    def test_seed_examples(self):
        cases = [
            (["10,8,16,3", "--filters", 5, "--kernel-size", 3, "--strides", 2, "--padding", "valid"], "(10, 3, 7, 5)"),
            (["10,8,16,3", "--filters", 5, "--kernel-size", 3, "--strides", 2, "--padding", "same"], "(10, 4, 8, 5)"),
            (["1,32,32,3", "--filters", 6, "--kernel-size", 5, "--strides", 1, "--padding", "same"], "(1, 32, 32, 6)"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                rc, out, err = run("shape", "--input-shape", *args)
                self.assertEqual((rc, out, err), (0, want + "\n", ""))


class OptionSyntax(unittest.TestCase):
    """Each accepted form of each option, against the PyTorch oracle."""

    # (input NHWC, extra CLI args, oracle keyword arguments)
    CASES = [
        ((2, 9, 11, 3), ["--filters", 4, "--kernel-size", 3], dict(filters=4, k=(3, 3))),
        ((2, 9, 11, 3), ["--filters", 4, "--kernel-size", "3,5"], dict(filters=4, k=(3, 5))),
        ((2, 9, 11, 3), ["--filters", 4, "--kernel-size=2,4"], dict(filters=4, k=(2, 4))),
        ((1, 9, 11, 3), ["--filters", 4, "--kernel-size", 3, "--strides", 2], dict(filters=4, k=(3, 3), s=(2, 2))),
        ((1, 9, 11, 3), ["--filters", 4, "--kernel-size", 3, "--strides", "3,2"],
         dict(filters=4, k=(3, 3), s=(3, 2))),
        ((1, 9, 11, 3), ["--filters", 4, "--kernel-size", 3, "--dilation-rate", 2],
         dict(filters=4, k=(3, 3), d=(2, 2))),
        ((1, 9, 11, 3), ["--filters", 4, "--kernel-size", 3, "--dilation-rate", "1,3"],
         dict(filters=4, k=(3, 3), d=(1, 3))),
        ((1, 13, 11, 3), ["--filters", 2, "--kernel-size", 3, "--dilation-rate", 2, "--strides", 2],
         dict(filters=2, k=(3, 3), d=(2, 2), s=(2, 2))),
        ((1, 9, 10, 3), ["--filters", 4, "--kernel-size", "4,3", "--padding", "valid"], dict(filters=4, k=(4, 3))),
        ((1, 9, 10, 3), ["--filters", 4, "--kernel-size", "4,3", "--padding", "VALID"], dict(filters=4, k=(4, 3))),
        ((1, 9, 10, 3), ["--filters", 4, "--kernel-size", "4,3", "--strides", "2,3", "--padding", "same"],
         dict(filters=4, k=(4, 3), s=(2, 3), pad="same")),
        ((1, 9, 10, 3), ["--filters", 4, "--kernel-size", 4, "--padding", "Same"],
         dict(filters=4, k=(4, 4), pad="same")),
        ((1, 7, 7, 3), ["--filters", 4, "--kernel-size", 2, "--dilation-rate", 3, "--strides", 2, "--padding", "same"],
         dict(filters=4, k=(2, 2), d=(3, 3), s=(2, 2), pad="same")),
        ((1, 9, 10, 3), ["--filters", 4, "--kernel-size", 3, "--padding", 2],
         dict(filters=4, k=(3, 3), pad=(2, 2, 2, 2))),
        ((1, 9, 10, 3), ["--filters", 4, "--kernel-size", 3, "--padding", "1,3"],
         dict(filters=4, k=(3, 3), pad=(1, 1, 3, 3))),
        ((1, 9, 10, 3), ["--filters", 4, "--kernel-size", 3, "--padding", "0,2,1,4", "--strides", 2],
         dict(filters=4, k=(3, 3), s=(2, 2), pad=(0, 2, 1, 4))),
        ((1, 4, 5, 2), ["--filters", 1, "--kernel-size", 3, "--padding", "3,0,4,1", "--padding-mode", "zeros"],
         dict(filters=1, k=(3, 3), pad=(3, 0, 4, 1))),
        ((1, 4, 5, 2), ["--filters", 1, "--kernel-size", 3, "--padding", "3,1,4,2", "--padding-mode", "reflect"],
         dict(filters=1, k=(3, 3), pad=(3, 1, 4, 2), mode="reflect")),
        ((1, 4, 5, 2), ["--filters", 1, "--kernel-size", 3, "--padding", "6,1,9,2", "--padding-mode", "replicate"],
         dict(filters=1, k=(3, 3), pad=(6, 1, 9, 2), mode="replicate")),
        ((1, 4, 5, 2), ["--filters", 1, "--kernel-size", 3, "--padding", "4,1,5,2", "--padding-mode", "circular"],
         dict(filters=1, k=(3, 3), pad=(4, 1, 5, 2), mode="circular")),
        ((1, 4, 5, 2), ["--filters", 1, "--kernel-size", 4, "--padding", "same", "--padding-mode", "reflect"],
         dict(filters=1, k=(4, 4), pad="same", mode="reflect")),
        ((2, 6, 6, 6), ["--filters", 4, "--kernel-size", 3, "--groups", 2], dict(filters=4, k=(3, 3), groups=2)),
        ((2, 6, 6, 6), ["--filters", 6, "--kernel-size", 1, "--groups", 6], dict(filters=6, k=(1, 1), groups=6)),
        ((2, 6, 6, 6), ["--filters", 3, "--kernel-size", 3, "--groups", 3, "--padding", "same", "--padding-mode",
                        "circular"], dict(filters=3, k=(3, 3), groups=3, pad="same", mode="circular")),
        ((1, 1, 1, 3), ["--filters", 2, "--kernel-size", 1], dict(filters=2, k=(1, 1))),
        ((1, 1, 1, 3), ["--filters", 2, "--kernel-size", 3, "--padding", "same"],
         dict(filters=2, k=(3, 3), pad="same")),
        ((1, 1, 1, 3), ["--filters", 2, "--kernel-size", 3, "--padding", 1, "--padding-mode", "replicate"],
         dict(filters=2, k=(3, 3), pad=(1, 1, 1, 1), mode="replicate")),
    ]

    def test_forms(self):
        for nhwc, args, oracle in self.CASES:
            want, _ = torch_output_shape(nhwc, **oracle)
            with self.subTest(input=nhwc, args=args):
                rc, out, err = run("shape", *shape_args(nhwc), *args)
                self.assertEqual((rc, err), (0, ""))
                self.assertEqual(out, keras_str(want) + "\n")

    def test_flags_that_do_not_change_the_shape(self):
        base = ["shape", "--input-shape", "2,9,9,3", "--filters", 4, "--kernel-size", 3]
        want, _ = torch_output_shape((2, 9, 9, 3), 4, (3, 3))
        for extra in (["--activation", "relu"], ["--activation", "tanh"], ["--activation", "sigmoid"],
                      ["--activation", "linear"], ["--activation", "none"], ["--use-bias"], ["--no-bias"],
                      ["--activation=relu", "--no-bias"]):
            with self.subTest(extra=extra):
                self.assertEqual(run(*base, *extra), (0, keras_str(want) + "\n", ""))

    def test_channels_first(self):
        # Input N,C,H,W; output N,F,OH,OW (Keras' compute_output_shape with data_format="channels_first").
        want, _ = torch_output_shape((3, 10, 7, 4), 5, (3, 2), s=(2, 1), pad="same")
        rc, out, err = run("shape", "--input-shape", "3,4,10,7", "--filters", 5, "--kernel-size", "3,2", "--strides",
                           "2,1", "--padding", "same", "--data-format", "channels_first")
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, keras_str((want[0], want[3], want[1], want[2])) + "\n")

    def test_depthwise(self):
        for nhwc, mult_args, mult, k, pad in [((2, 8, 9, 3), ["--depth-multiplier", 2], 2, 3, "valid"),
                                             ((2, 8, 9, 3), [], 1, 3, "same"),
                                             ((1, 5, 5, 4), ["--depth-multiplier=3"], 3, 2, (1, 0, 2, 1))]:
            c = nhwc[3]
            want, _ = torch_output_shape(nhwc, c * mult, (k, k), pad=pad, groups=c)
            pad_arg = pad if isinstance(pad, str) else ",".join(map(str, pad))
            with self.subTest(input=nhwc, mult=mult, pad=pad):
                rc, out, err = run("shape", *shape_args(nhwc), "--depthwise", *mult_args, "--kernel-size", k,
                                   "--padding", pad_arg)
                self.assertEqual((rc, out, err), (0, keras_str(want) + "\n", ""))


class Verbose(unittest.TestCase):
    def check(self, nhwc, args, filters, k, d=(1, 1), s=(1, 1), pad="valid", groups=1, bias=True, kernel=None):
        want, pads = torch_output_shape(nhwc, filters, k, s=s, pad=pad, d=d, groups=groups)
        rc, out, err = run("shape", *shape_args(nhwc), *args, "--verbose")
        self.assertEqual((rc, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(lines[0], keras_str(want))
        self.assertIn("padding (top/bottom/left/right): " + "/".join(map(str, pads)), out)
        k_eff = ((k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1)
        self.assertIn(f"effective kernel size (with dilation): {keras_str(k_eff)}", out)
        kernel = kernel or (k[0], k[1], nhwc[3] // groups, filters)
        self.assertIn(f"kernel shape: {keras_str(kernel)}", out)
        params = k[0] * k[1] * (nhwc[3] // groups) * filters + (filters if bias else 0)
        self.assertIn(f"parameters: {params}\n", out)

    def test_seed_same(self):
        self.check((10, 8, 16, 3), ["--filters", 5, "--kernel-size", 3, "--strides", 2, "--padding", "same"], 5, (3, 3),
                   s=(2, 2), pad="same")

    def test_dilation_groups_no_bias(self):
        self.check((1, 12, 11, 4), ["--filters", 6, "--kernel-size", "3,2", "--dilation-rate", "2,3", "--groups", 2,
                                    "--padding", "same", "--no-bias", "-v"],
                   6, (3, 2), d=(2, 3), pad="same", groups=2, bias=False)

    def test_explicit_padding(self):
        self.check((1, 6, 6, 2), ["--filters", 3, "--kernel-size", 3, "--padding", "1,2,0,3", "--strides", 2], 3,
                   (3, 3), s=(2, 2), pad=(1, 2, 0, 3))

    def test_depthwise(self):
        # Keras' DepthwiseConv2D kernel is (kh, kw, in_channels, depth_multiplier); params kh*kw*C*M + C*M.
        self.check((1, 7, 7, 3), ["--depthwise", "--depth-multiplier", 2, "--kernel-size", 3, "--padding", "same"],
                   6, (3, 3), pad="same", groups=3, kernel=(3, 3, 3, 2))


class HelpAndVersion(unittest.TestCase):
    def test_version(self):
        rc, out, err = run("--version")
        self.assertEqual((rc, err), (0, ""))
        self.assertIn(VERSION, out)

    def test_help(self):
        for args, needles in [(["--help"], ["shape", "conv2d"]),
                              (["shape", "--help"], ["--input-shape", "--kernel-size", "--padding-mode", "--verbose"]),
                              (["conv2d", "--help"], ["--input", "--kernel-layout", "--data-format", "--explain"])]:
            with self.subTest(args=args):
                rc, out, err = run(*args)
                self.assertEqual((rc, err), (0, ""))
                for n in needles:
                    self.assertIn(n, out)


class Errors(ErrorChecks, unittest.TestCase):
    BASE = {"--input-shape": "2,8,8,4", "--filters": 4, "--kernel-size": 3}

    def refused(self, args, *needles):
        """A shape command with BASE's options, those that args names replaced (an option given twice is itself
        a usage error). args: a list of option/value words or "--option=value" words and flags."""
        given = {a.split("=")[0] for a in args if isinstance(a, str) and a.startswith("--")}
        base = [w for k, v in self.BASE.items() if k not in given for w in (k, v)]
        return self.assert_refused("shape", ["shape", *base, *args], *needles)

    def test_bad_numbers(self):
        for option in ["--kernel-size", "--strides", "--dilation-rate"]:
            for text, why in [("3x", "not an integer"), ("-1", "must be positive"), ("0", "must be positive"),
                              ("", "empty"), ("3,", "empty"), (",3", "empty"), ("2,,2", "empty"),
                              ("1,2,3", "1,2,3"), ("99999999999", "out of range"),
                              ("999999999999999999999999", "out of range"), (" 3", "not an integer"),
                              ("+3", "not an integer"), ("2.5", "not an integer"), ("0x3", "not an integer"),
                              ("1,-2", "must be positive")]:
                with self.subTest(option=option, text=text):
                    self.refused([option, text], option, f"'{text}'" if text else "", why)
        for option in ["--filters", "--groups"]:
            for text, why in [("4x", "not an integer"), ("-4", "must be positive"), ("0", "must be positive"),
                              ("", "empty"), ("4,4", "not an integer"), ("3000000000", "out of range")]:
                with self.subTest(option=option, text=text):
                    self.refused([option, text], option, f"'{text}'" if text else "", why)

    def test_negative_value_as_separate_word(self):
        self.refused(["--strides", "-2"], "--strides", "'-2'", "positive")

    def test_bad_padding(self):
        for text, needles in [("-1", ["'-1'", "non-negative"]), ("1,-1", ["'-1'", "non-negative", "'1,-1'"]),
                              ("1,2,3", ["'1,2,3'", "T,B,L,R"]), ("1,2,3,4,5", ["'1,2,3,4,5'"]),
                              ("full", ["'full'", "valid, same"]), ("", ["empty"]), ("1,,2,3", ["empty", "'1,,2,3'"]),
                              ("2x", ["'2x'"]), ("99999999999", ["out of range"])]:
            with self.subTest(text=text):
                self.refused(["--padding", text], "--padding", *needles)

    def test_bad_names(self):
        self.refused(["--padding-mode", "mirror"], "--padding-mode", "'mirror'", "reflect")
        self.refused(["--padding-mode", "Zeros"], "--padding-mode", "'Zeros'")
        self.refused(["--activation", "gelu"], "--activation", "'gelu'", "relu")
        self.refused(["--data-format", "NHWC"], "--data-format", "'NHWC'", "channels_last")

    def test_bad_input_shape(self):
        for text, needles in [("2,8,8", ["'2,8,8'", "4"]), ("2,8,8,4,1", ["'2,8,8,4,1'"]), ("0,8,8,4", ["positive"]),
                              ("2,8,-8,4", ["'-8'"]), ("2,8,8,x", ["'x'"])]:
            with self.subTest(text=text):
                self.refused([f"--input-shape={text}"], "--input-shape", *needles)
        self.refused(["--input-shape", ""], "--input-shape", "empty")

    def test_inconsistent_configurations(self):
        # groups not dividing the input channels, nor the filters
        self.refused(["--groups", 3, "--filters", 3], "groups", "input channels (4)", "(3)")
        self.refused(["--groups", 2, "--filters", 3], "filters (3)", "groups (2)")
        # kernel larger than the input, with and without dilation / padding
        self.refused(["--kernel-size", 9], "kernel", "larger", "9", "8")
        self.refused(["--kernel-size", "3,5", "--dilation-rate", 2], "kernel width 9", "dilated", "8")
        self.refused(["--kernel-size", 12, "--padding", "1,2"], "kernel height 12", "padded input height 10")
        # pads the padding mode cannot fill
        self.refused(["--padding", 8, "--padding-mode", "reflect"], "reflect", "8", "input height 8")
        self.refused(["--padding", "0,0,0,8", "--padding-mode", "reflect"], "reflect", "right pad is 8")
        self.refused(["--padding", 9, "--padding-mode", "circular"], "circular", "9", "8")
        self.assert_refused("shape", ["shape", "--input-shape", "1,2,2,1", "--filters", 1, "--kernel-size", 5,
                                      "--padding", "same", "--padding-mode", "reflect"], "reflect", "input height 2")

    def test_option_combinations(self):
        self.refused(["--depthwise"], "--filters", "--depthwise")
        self.assert_refused("shape", ["shape", "--input-shape", "1,8,8,4", "--depthwise", "--kernel-size", 3,
                                      "--groups", 2], "--groups", "--depthwise")
        self.refused(["--depth-multiplier", 2], "--depth-multiplier", "--depthwise")
        self.refused(["--use-bias", "--no-bias"], "--use-bias", "--no-bias")
        self.assert_refused("shape", ["shape", "--input-shape", "1,8,8,4", "--kernel-size", 3], "--filters")
        self.assert_refused("shape", ["shape", "--input-shape", "1,8,8,4", "--filters", 3], "--kernel-size")
        self.assert_refused("shape", ["shape", "--input-shape", "1,8,8,4", "--depthwise", "--kernel-size", 3,
                                      "--depth-multiplier", 0], "--depth-multiplier", "'0'")
        self.assert_refused("shape", ["shape", "--input-shape", "1,8,8,100000", "--depthwise", "--kernel-size", 3,
                                      "--depth-multiplier", 100000], "100000", "depth_multiplier")

    def test_usage_errors(self):
        self.refused(["--stride", 2], "--stride")             # unknown option
        self.refused(["--strides"], "--strides")              # missing value
        self.refused(["--strides=2", "--strides", 3], "--strides")  # given twice
        self.refused(["--padding="], "--padding")             # "--opt=" with nothing: CLI11 says the value is missing
        self.assert_refused("shape", ["shape", "--filters", 4, "--kernel-size", 3], "--input-shape")
        self.assert_refused(None, [], "subcommand")
        self.assert_refused(None, ["bogus"], "bogus", "shape", "conv2d")
        self.assert_refused(None, ["--bogus"], "--bogus")


if __name__ == "__main__":
    unittest.main(verbosity=2)
