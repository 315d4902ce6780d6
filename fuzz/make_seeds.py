#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small valid files of every kind each
parser accepts, and a few near misses. Run once; the files are kept in the repository. Needs Debian's python3
with numpy and PIL."""
import gzip, io, json, os, struct, sys
import numpy as np
from PIL import Image

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy_bytes(a, **kw):
    b = io.BytesIO()
    np.save(b, a, **kw)
    return b.getvalue()


rng = np.random.default_rng(1)
# ---- .npy: dtypes, ranks, orders, and a version-2 header
put("npy", "f32_2x3", npy_bytes(rng.standard_normal((2, 3)).astype("<f4")))
put("npy", "f64_4", npy_bytes(rng.standard_normal(4)))
put("npy", "f32_scalar", npy_bytes(np.float32(1.5)))
put("npy", "f32_fortran", npy_bytes(np.asfortranarray(rng.standard_normal((3, 2)).astype("<f4"))))
put("npy", "i32_2x2", npy_bytes(np.arange(4, dtype="<i4").reshape(2, 2)))
put("npy", "u8_5", npy_bytes(np.arange(5, dtype="u1")))
put("npy", "f32_be", npy_bytes(np.ones((2, 2), dtype=">f4")))
put("npy", "f32_empty", npy_bytes(np.zeros((0, 3), dtype="<f4")))
put("npy", "f32_rank4", npy_bytes(rng.standard_normal((1, 2, 2, 3)).astype("<f4")))
v2 = bytearray(npy_bytes(np.ones(3, dtype="<f4")))
put("npy", "truncated", bytes(v2[:-5]))


# ---- safetensors: a convkit model file, an empty one, one with metadata only
def safetensors_bytes(tensors, metadata=None):
    header, data = {}, b""
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
tiny_arch = {"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "trainable": True,
    "dtype": "float32", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4, 4, 1],
         "dtype": "float32", "sparse": False, "name": "input_layer"}, "registered_name": None},
        {"module": "keras.layers", "class_name": "Conv2D", "config": {"name": "conv2d", "trainable": True,
         "dtype": "float32", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
         "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
         "use_bias": True}, "registered_name": None},
        {"module": "keras.layers", "class_name": "Flatten", "config": {"name": "flatten", "trainable": True,
         "dtype": "float32", "data_format": "channels_last"}, "registered_name": None},
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "trainable": True,
         "dtype": "float32", "units": 3, "activation": "softmax", "use_bias": True}, "registered_name": None}]},
    "keras_version": "3.0.0", "backend": "tensorflow"}
tiny = json.dumps(tiny_arch)
put("safetensors", "tiny_model", safetensors_bytes(
    {"conv2d/kernel": rng.standard_normal((3, 3, 1, 2)), "conv2d/bias": np.zeros(2),
     "dense/kernel": rng.standard_normal((8, 3)), "dense/bias": np.zeros(3)},
    {"format": "convkit", "architecture": tiny, "convkit_version": "0.1.0"}))
put("safetensors", "empty", safetensors_bytes({}))
put("safetensors", "metadata_only", safetensors_bytes({}, {"format": "convkit"}))
put("safetensors", "scalar_and_empty", safetensors_bytes({"s": np.float32(2.0).reshape(()), "e": np.zeros((0, 2))}))

# ---- Keras JSON: the examples, the tiny model, Keras 2 spelling bits
for name in sorted(os.listdir(examples)):
    if name.endswith(".json"):
        with open(os.path.join(examples, name), "rb") as f:
            put("keras_json", name[:-5], f.read())
put("keras_json", "tiny", tiny.encode())
k2 = json.loads(tiny)
k2["config"]["layers"][0]["config"] = {"batch_input_shape": [None, 4, 4, 1], "dtype": "float32",
                                       "sparse": False, "name": "input_1"}
put("keras_json", "keras2_input", json.dumps(k2).encode())
pool = json.loads(tiny)
pool["config"]["layers"].insert(2, {"module": "keras.layers", "class_name": "MaxPooling2D", "config": {
    "name": "max_pooling2d", "trainable": True, "dtype": "float32", "pool_size": [2, 2], "padding": "valid",
    "strides": [1, 1], "data_format": "channels_last"}, "registered_name": None})
pool["config"]["layers"].insert(3, {"module": "keras.layers", "class_name": "BatchNormalization", "config": {
    "name": "batch_normalization", "trainable": True, "dtype": "float32", "axis": -1, "momentum": 0.99,
    "epsilon": 0.001, "center": True, "scale": True}, "registered_name": None})
pool["config"]["layers"].insert(4, {"module": "keras.layers", "class_name": "Dropout", "config": {
    "name": "dropout", "trainable": True, "dtype": "float32", "rate": 0.25}, "registered_name": None})
put("keras_json", "pool_bn_dropout", json.dumps(pool).encode())


# ---- IDX: u8 images and labels, other types, gzip
def idx_bytes(a, code):
    return struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.tobytes()


imgs = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
labels = np.array([0, 9, 3], dtype=np.uint8)
put("idx", "images_u8", idx_bytes(imgs, 0x08))
put("idx", "labels_u8", idx_bytes(labels, 0x08))
put("idx", "i8", idx_bytes(np.array([-1, 2, -3], dtype="i1"), 0x09))
put("idx", "i16", idx_bytes(np.array([[1, -2], [3, 4]], dtype=">i2"), 0x0B))
put("idx", "i32", idx_bytes(np.array([7, -8], dtype=">i4"), 0x0C))
put("idx", "f32", idx_bytes(np.array([0.5, -1.25], dtype=">f4"), 0x0D))
put("idx", "f64", idx_bytes(np.array([2.5], dtype=">f8"), 0x0E))
put("idx", "images_u8.gz", gzip.compress(idx_bytes(imgs, 0x08), mtime=0))
put("idx", "labels_u8.gz", gzip.compress(idx_bytes(labels, 0x08), mtime=0))
put("idx", "two_members.gz", gzip.compress(idx_bytes(labels, 0x08)[:6], mtime=0) +
    gzip.compress(idx_bytes(labels, 0x08)[6:], mtime=0))


# ---- images: PNG of every colour type and depth, interlaced; JPEG grey/colour/progressive
def png(img, **kw):
    b = io.BytesIO()
    img.save(b, "PNG", **kw)
    return b.getvalue()


def jpeg(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


rgb = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), "RGB")
put("png", "rgb8", png(rgb))
put("png", "rgba8", png(rgb.convert("RGBA")))
put("png", "grey8", png(rgb.convert("L")))
put("png", "grey_alpha", png(rgb.convert("LA")))
put("png", "palette", png(rgb.convert("P")))
put("png", "palette_trns", png(rgb.convert("P"), transparency=0))
put("png", "bilevel", png(rgb.convert("1")))
put("png", "grey16", png(Image.fromarray(rng.integers(0, 65536, (4, 3), dtype=np.uint16))))

put("jpeg", "rgb", jpeg(rgb, quality=80))
put("jpeg", "grey", jpeg(rgb.convert("L"), quality=80))
put("jpeg", "progressive", jpeg(rgb, quality=70, progressive=True))
put("jpeg", "subsampled", jpeg(rgb.resize((16, 16)), quality=90, subsampling=2))

# ---- option texts: first byte picks the parser (fuzz_options.cpp)
opts = [(0, "12"), (0, "-7"), (1, "3"), (2, "1e-3"), (2, "0.9"), (3, "3"), (3, "2,5"), (4, "same"), (4, "1,2"),
        (4, "1,2,3,4"), (5, "reflect"), (6, "relu"), (7, "10,8,16,3"), (8, "channels_first"), (9, "-9223372036854775808")]
for i, (k, t) in enumerate(opts):
    put("options", "opt%02d" % i, bytes([k]) + t.encode())
# ---- benchmark descriptors: first byte even = one descriptor, odd = a shapes file (fuzz_bench.cpp)
put("bench", "one_resnet", b'\x00g1mb1ic3ih224oc64oh112kh7sh2ph3n"resnet_50:conv1"')
put("bench", "one_underscore", b"\x00mb2_ic3oc64_ih300oc64kh3")
put("bench", "one_dilated", b'\x00ic32ih28oc32kh3dh1ph2n"dilated*4"')
put("bench", "one_depthwise", b"\x00g32ic32oc32ih56kh3ph1")
put("bench", "list_three", b'\x01# shapes\n\nic3ih32oc16kh3ph1\n  ic16ih16iw8oc32kh1kw3pw1 \r\nmb8ic64ih7oc64kh7ph3n"x*2"\n')
print("seed corpora written under", root)
