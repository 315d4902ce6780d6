"""Shared helpers for the convkit CLI tests: running the binary, .npy files, and the expectations every error
case shares (exit status 2, one message on stderr naming the problem, nothing on stdout)."""
import os
import subprocess
import sys

# argv: <path to the convkit binary> <project version>. Taken off sys.argv so that unittest does not see them.
if len(sys.argv) < 3:
    sys.exit(f"usage: {sys.argv[0]} <convkit binary> <project version> [unittest args]")
BINARY = os.path.abspath(sys.argv.pop(1))
VERSION = sys.argv.pop(1)


def run(*args, cwd=None):
    """Runs convkit with the given arguments; returns (exit status, stdout, stderr) as text."""
    p = subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)
    return p.returncode, p.stdout, p.stderr


def listing(directory):
    """Every file under directory with its bytes, to prove that a failed command changed nothing."""
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, directory)] = fh.read()
    return out


class ErrorChecks:
    """Mixin for unittest.TestCase: the contract of a refused command."""

    def assert_refused(self, subcommand, args, *needles, cwd=None):
        rc, out, err = run(*args, cwd=cwd)
        context = f"convkit {' '.join(map(str, args))}\nstderr: {err!r}"
        self.assertEqual(rc, 2, context)
        self.assertEqual(out, "", context)
        prefix = f"convkit {subcommand}: error: " if subcommand else "convkit: error: "
        self.assertTrue(err.startswith(prefix), context)
        for needle in needles:
            self.assertIn(needle, err, context)
        return err
