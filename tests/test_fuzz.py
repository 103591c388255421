"""Generated and mutated inputs against every reader: the IDX reader, the model-file
loader, the picture preprocessor and the API.  The only outcomes allowed are a
correct result or the project's own clear error: no other exception, no hang, no
memory blow-up.  ``DIGITNET_FUZZ_EXAMPLES`` sets the budget per target (default 200);
each target counts its own examples and checks it ran its budget, whatever else runs.
Each run draws new inputs: the seed is printed in pytest's header, and
``--hypothesis-seed=SEED`` replays a run's inputs (a failure also prints the
``@reproduce_failure`` blob of its shrunk input).
"""

import base64
import gzip
import io
import json
import os
import struct
import zlib
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from digitnet.files.data import IDX_TYPES, DataError, read_idx
from digitnet.files.modelfile import Model, ModelFileError, load, save
from digitnet.learn.network import Network
from digitnet.server import create_app
from digitnet.vision.preprocess import PictureError, read_digit, to_mnist

EXAMPLES = int(os.environ.get("DIGITNET_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # what a run tries follows from its seed alone
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BUDGET = min(EXAMPLES, 100)  # hypothesis may stop early once it has seen every case


def fuzz(strategies: dict, check) -> int:
    """Run ``check(**drawn)`` on ``FUZZ``'s budget of generated inputs; how many ran."""
    ran = 0

    @FUZZ
    @given(**strategies)
    def each(**drawn):
        nonlocal ran
        ran += 1
        check(**drawn)

    each()
    return ran


# -- mutations ---------------------------------------------------------------------------


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """original with some of: bit flips, overwritten bytes, truncation, junk appended."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "byte", "word"]))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[i] = draw(st.integers(0, 255))
        else:
            word = draw(st.sampled_from([0, 1, 0xFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**31]))
            data[i : i + 4] = struct.pack(">I", word)[: len(data) - i]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 5)) == 0:
        data += draw(st.binary(max_size=64))
    return bytes(data)


# -- the IDX reader -------------------------------------------------------------------------


@st.composite
def idx_files(draw) -> bytes:
    code = draw(st.sampled_from(sorted(IDX_TYPES)))
    dtype = IDX_TYPES[code]
    shape = draw(st.lists(st.integers(0, 6), min_size=1, max_size=3))
    values = np.arange(int(np.prod(shape)), dtype=np.int64).astype(dtype)
    raw = struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    raw += values.tobytes()
    raw = draw(mutated(raw))
    return gzip.compress(raw) if draw(st.booleans()) else raw


def test_idx_reader_fuzz(tmp_path):
    path = tmp_path / "fuzz.idx"

    def check(content):
        path.write_bytes(content)
        try:
            array = read_idx(path)
        except DataError:
            return
        assert isinstance(array, np.ndarray) and array.ndim >= 1

    assert fuzz({"content": idx_files()}, check) >= BUDGET


def test_declared_size_larger_than_the_file_is_refused_before_allocating(tmp_path):
    path = tmp_path / "liar.idx"
    path.write_bytes(struct.pack(">BBBBIII", 0, 0, 0x0E, 3, 1000, 1000, 100) + b"\0" * 64)
    with pytest.raises(DataError, match="holds 64 bytes"):
        read_idx(path)  # 800 MB declared: refused by the file size, nothing allocated
    path.write_bytes(gzip.compress(struct.pack(">BBBBII", 0, 0, 0x0D, 2, 10_000, 20_000)))
    with pytest.raises(DataError, match="truncated payload"):
        read_idx(path)  # 800 MB declared in a gzip: read in chunks until it runs out


# -- the model-file loader ------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-model") / "m.safetensors"
    save(path, Network((784, 6, 10), rng=np.random.default_rng(0)), {"test_accuracy": 0.5})
    return path.read_bytes()


def json_values():
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=10,
    )


def with_metadata(original: bytes, record) -> bytes:
    """The same tensors with the 'digitnet' metadata replaced."""
    length = struct.unpack("<Q", original[:8])[0]
    header = json.loads(original[8 : 8 + length])
    header["__metadata__"] = {"digitnet": json.dumps(record)}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + original[8 + length :]


def test_model_loader_fuzz(tmp_path, model_bytes):
    assert (
        fuzz({"data": st.data()}, lambda data: load_fuzzed(tmp_path, model_bytes, data)) >= BUDGET
    )


def load_fuzzed(tmp_path, model_bytes, data):
    if data.draw(st.booleans()):
        content = data.draw(mutated(model_bytes))
    else:
        record = {
            "format_version": 1,
            "sizes": [784, 6, 10],
            "activation": "sigmoid",
            "output": "softmax",
        }
        key = data.draw(st.sampled_from([*record, "test_accuracy", "history"]))
        record[key] = data.draw(json_values())
        content = with_metadata(model_bytes, record)
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(content)
    try:
        model = load(path)
    except ModelFileError:
        return
    out = model.network.forward(np.zeros(model.network.sizes[0], np.float32))
    assert np.isfinite(out).all()


# -- the picture preprocessor -----------------------------------------------------------


picture_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int16, np.bool_]),
    shape=st.one_of(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        st.tuples(st.integers(1, 30), st.integers(1, 30), st.integers(1, 5)),
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
    ),
)


def test_preprocess_arrays_fuzz():
    def check(picture):
        try:
            x = to_mnist(picture)
        except PictureError:
            return
        assert x.shape == (28, 28) and x.dtype == np.float32
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1

    assert fuzz({"picture": picture_arrays}, check) >= BUDGET


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@st.composite
def picture_files(draw) -> bytes:
    side = draw(st.integers(1, 40))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16"]))
    fmt = draw(st.sampled_from(["PNG", "GIF", "BMP", "JPEG", "TIFF", "WEBP"]))
    pixels = np.asarray(draw(hnp.arrays(np.uint8, (side, side))))
    image = Image.fromarray(pixels).convert(mode if mode != "I;16" else "I")
    try:
        data = encoded(image, fmt)
    except (OSError, ValueError, KeyError):
        data = encoded(image.convert("RGB"), "PNG")
    return draw(mutated(data))


def test_preprocess_files_fuzz():
    def check(content):
        try:
            x = read_digit(content)
        except PictureError:
            return
        assert x.shape == (28, 28) and np.isfinite(x).all()

    assert fuzz({"content": picture_files()}, check) >= BUDGET


# -- the API ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(mnist):
    app = create_app(
        Model(Network(rng=np.random.default_rng(0)), {"test_accuracy": 0.1}),
        samples=(mnist.test_images[:100], mnist.test_labels[:100]),
    )
    with TestClient(app) as client:
        yield client


def png_data_url(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode()


@st.composite
def predict_bodies(draw):
    kind = draw(st.sampled_from(["json", "pixels", "image", "grey", "raw"]))
    if kind == "json":
        return json.dumps(draw(json_values())).encode()
    if kind == "pixels":
        n = draw(st.sampled_from([784, 784, 783, 0, 785]))
        values = draw(
            st.lists(
                st.floats(allow_nan=True, allow_infinity=True, width=32) | st.integers(-2, 2),
                min_size=n,
                max_size=n,
            )
        )
        return json.dumps({"pixels": values}).encode()  # NaN and Infinity as JSON allows
    if kind == "image":
        return json.dumps({"image": png_data_url(draw(picture_files()))}).encode()
    if kind == "grey":
        return json.dumps({"grey": draw(grey_pictures())}).encode()
    return draw(st.binary(max_size=200))


@st.composite
def grey_pictures(draw):
    """A "grey" picture: any size, bytes of that many or not, deflated or not."""
    width, height = draw(st.integers(-1, 40)), draw(st.integers(-1, 40))
    exact = draw(st.booleans()) and width > 0 and height > 0
    n = width * height if exact else None
    raw = draw(st.binary(min_size=n or 0, max_size=n or 2000))
    data = zlib.compress(raw) if draw(st.booleans()) else raw
    return {"width": width, "height": height, "data": base64.b64encode(data).decode()}


@pytest.mark.slow
def test_api_predict_fuzz(client):
    def check(body):
        response = client.post(
            "/api/predict", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code in (200, 400, 413, 422), response.text
        answer = response.json()
        if response.status_code == 200:
            assert 0 <= answer["digit"] <= 9 and len(answer["input"]) == 784
            assert all(np.isfinite(answer["probabilities"]))
        else:
            assert isinstance(answer["error"], str) and answer["error"]

    assert fuzz({"body": predict_bodies()}, check) >= BUDGET


def test_api_get_fuzz(client):
    def check(query, path):
        response = client.get("/api/sample", params={"digit": query})
        assert response.status_code in (200, 422)
        response = client.get("/static/" + quote(path, safe="/.%"))
        assert response.status_code in (200, 404, 405)
        assert "def create_app" not in response.text

    assert fuzz({"query": st.text(max_size=30), "path": st.text(max_size=30)}, check) >= BUDGET
