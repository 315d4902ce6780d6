"""NumPy interoperability of convkit's .npy I/O: numpy.load reads what write_npy wrote, and read_npy reads what
numpy.save wrote (checked by copying through convkit and loading the copy back). Run by CTest as
    /usr/bin/python3 npy_numpy_interop.py PATH/TO/npy_tool WORK_DIR
Exit status 77 (CTest: skipped) only when numpy itself cannot be imported."""
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
except ImportError as e:  # reported as skipped, not passed
    print(f"numpy is not available: {e}")
    sys.exit(77)

tool, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args):
    return subprocess.run([tool, *args], capture_output=True, text=True)


# 1. convkit writes, numpy reads: shapes of rank 0..5, empty dimensions.
for shape in [(), (0,), (5,), (2, 3), (2, 0, 3), (1, 2, 3, 4), (2, 1, 3, 1, 2), (300, 7)]:
    path = os.path.join(work, "pattern_" + "x".join(map(str, shape)) + ".npy")
    r = run("pattern", path, *map(str, shape))
    check(r.returncode == 0, f"pattern {shape}: exit {r.returncode} {r.stderr}")
    a = np.load(path, allow_pickle=False)
    want = ((np.arange(int(np.prod(shape))) % 251) * 0.5 - 17.25).astype(np.float32).reshape(shape)
    check(a.dtype == np.float32 and a.shape == shape, f"pattern {shape}: numpy sees {a.dtype} {a.shape}")
    check(np.array_equal(a, want), f"pattern {shape}: values differ")
    with open(path, "rb") as f:  # numpy's own header parser agrees, and the data are 64-byte aligned
        version = np.lib.format.read_magic(f)
        check(version == (1, 0), f"pattern {shape}: version {version}")
        hshape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        check(hshape == shape and not fortran and dtype == np.dtype("<f4"),
              f"pattern {shape}: header {hshape} {fortran} {dtype}")
        check(f.tell() % 64 == 0, f"pattern {shape}: data offset {f.tell()} not 64-aligned")

# 2. numpy writes, convkit reads (and writes back): the copy must be bit-identical.
rng = np.random.default_rng(5)
arrays = {
    "scalar": np.array(3.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "vector": rng.standard_normal(17).astype(np.float32),
    "nhwc": rng.standard_normal((2, 5, 4, 3)).astype(np.float32),
    "rank5": rng.standard_normal((1, 2, 3, 2, 2)).astype(np.float32),
    "special": np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45, 3.4e38], dtype=np.float32),
}
for name, a in arrays.items():
    for version in [(1, 0), (2, 0), (3, 0)]:
        src = os.path.join(work, f"np_{name}_{version[0]}.npy")
        dst = os.path.join(work, f"ck_{name}_{version[0]}.npy")
        with open(src, "wb") as f:
            np.lib.format.write_array(f, a, version=version)
        r = run("copy", src, dst)
        check(r.returncode == 0, f"copy {name} v{version}: exit {r.returncode} {r.stderr}")
        if r.returncode == 0:
            b = np.load(dst)
            check(b.dtype == np.float32 and b.shape == a.shape, f"copy {name} v{version}: {b.dtype} {b.shape}")
            check(a.tobytes() == b.tobytes(), f"copy {name} v{version}: bits differ")
# np.save itself (the common path).
src, dst = os.path.join(work, "save.npy"), os.path.join(work, "save_copy.npy")
np.save(src, arrays["nhwc"])
r = run("copy", src, dst)
check(r.returncode == 0 and np.array_equal(np.load(dst), arrays["nhwc"]), f"np.save copy: {r.stderr}")

# 3. What numpy writes but convkit refuses: a clear message naming the file, a failure status, no output file.
refused = {
    "float64": (np.arange(6, dtype=np.float64).reshape(2, 3), "'<f8'"),
    "bigendian": (np.arange(6, dtype=">f4").reshape(2, 3), "'>f4'"),
    "int32": (np.arange(6, dtype=np.int32), "'<i4'"),
    "fortran": (np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), "Fortran"),
}
for name, (a, piece) in refused.items():
    src, dst = os.path.join(work, f"bad_{name}.npy"), os.path.join(work, f"bad_{name}_copy.npy")
    np.save(src, a)
    r = run("copy", src, dst)
    check(r.returncode == 1, f"{name}: exit status {r.returncode}, expected 1")
    check(piece in r.stderr and src in r.stderr, f"{name}: message {r.stderr!r} lacks {piece!r} or the path")
    check(not os.path.exists(dst), f"{name}: an output file was written")

leftovers = [n for n in os.listdir(work) if ".tmp." in n]
check(not leftovers, f"temporary files left behind: {leftovers}")
if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
shutil.rmtree(work, ignore_errors=True)
print("numpy interop: all checks passed")
