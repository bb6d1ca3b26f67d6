"""Reading digit images and `bpnet predict`: real MNIST test digits written as PNG, PGM and NPY
get the labels the network gives the original pixels; inverted, transparent, large and
off-centre copies are brought back to MNIST's form; bad files are one line and exit 2."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from mnist import train_mnist_net

from bpnet.cli.main import main
from bpnet.data.idx import load_split
from bpnet.data.images import mnist_preprocess, read_image, resize_matrix
from bpnet.errors import InputError
from bpnet.nn import TwoLayerNet
from bpnet.training.weights import save_weights

N = 100


@pytest.fixture(scope="module")
def trained(mnist_session_dir, tmp_path_factory):
    """(weights path, net, first N test digits uint8 (N, 28, 28), the net's labels for them):
    784-50-10 trained for 300 momentum steps on real MNIST (about 93% test accuracy)."""
    path = tmp_path_factory.mktemp("net") / "weights.npz"
    net = train_mnist_net(mnist_session_dir, 50, 300, path)
    digits = load_split(mnist_session_dir, "mnist", "test")[0][:N]
    labels = net.predict((digits.reshape(N, -1) / 255.0).astype(np.float32)).argmax(axis=1)
    return path, net, digits, labels


def write_pgm(path, img, maxval=255, plain=False):
    h, w = img.shape
    header = f"P{2 if plain else 5}\n# a comment\n{w} {h}\n{maxval}\n".encode()
    if plain:
        body = "\n".join(" ".join(map(str, row)) for row in img).encode()
    else:
        body = img.astype(">u2" if maxval > 255 else "u1").tobytes()
    path.write_bytes(header + body)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def predicted(output):
    return [r["top"][0]["label"] for r in json.loads(output)]


def test_lossless_files_give_the_networks_labels(trained, tmp_path):
    """PNG, PGM and NPY are lossless, so the pixels read back exactly; MNIST digits are already
    cropped, 20-pixel boxed and centred, so preprocessing returns them up to the contrast
    stretch (≤ 1.5 grey levels): every one of the 100 gets the network's own label."""
    Image = pytest.importorskip("PIL.Image")
    path, _, digits, labels = trained
    files = {"png": [], "pgm": [], "npy": []}
    for i, d in enumerate(digits):
        Image.fromarray(d).save(tmp_path / f"{i}.png")
        files["png"].append(tmp_path / f"{i}.png")
        files["pgm"].append(write_pgm(tmp_path / f"{i}.pgm", d))
        np.save(tmp_path / f"{i}.npy", d)
        files["npy"].append(tmp_path / f"{i}.npy")
    for kind, paths in files.items():
        for d, p in zip(digits[:10], paths[:10]):
            assert np.array_equal(read_image(p), d), p
        r = run("predict", "--json", path, *paths)
        assert r.exit_code == 0, r.output
        assert predicted(r.output) == labels.tolist(), kind
    for d in digits:
        assert np.abs(mnist_preprocess(d) - d).max() <= 1.5


def test_text_output_lists_top_classes(trained, tmp_path):
    path, _, digits, labels = trained
    f = write_pgm(tmp_path / "seven.pgm", digits[0])
    r = run("predict", path, f)
    assert r.exit_code == 0, r.output
    name, *cells = r.output.split()
    assert name == str(f) and len(cells) == 6 and cells[0] == str(labels[0])
    probs = [float(c.rstrip("%")) for c in cells[1::2]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.01
    doc = json.loads(run("predict", "--json", "--top", "10", path, f).output)
    assert doc[0]["file"] == str(f) and len(doc[0]["top"]) == 10
    assert sum(t["probability"] for t in doc[0]["top"]) == pytest.approx(1.0)


def test_plain_and_16_bit_pgm_and_float_npy(trained, tmp_path):
    _, _, digits, _ = trained
    d = digits[3].astype(np.int64)
    assert np.array_equal(read_image(write_pgm(tmp_path / "p2.pgm", d, plain=True)), d)
    wide = d * 257  # 0..65535
    assert np.allclose(read_image(write_pgm(tmp_path / "p5.pgm", wide, 65535)), d)
    assert np.allclose(read_image(write_pgm(tmp_path / "p2w.pgm", d * 4, 1020, plain=True)), d)
    np.save(tmp_path / "f.npy", d / 255.0)
    assert np.allclose(read_image(tmp_path / "f.npy"), d)
    np.save(tmp_path / "b.npy", d > 127)
    assert np.array_equal(read_image(tmp_path / "b.npy"), (d > 127) * 255.0)


def test_black_on_white_and_transparent_copies_get_the_same_label(trained, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path, _, digits, labels = trained
    inverted, transparent = [], []
    for i, d in enumerate(digits[:20]):
        Image.fromarray(255 - d).save(tmp_path / f"inv{i}.png")
        inverted.append(tmp_path / f"inv{i}.png")
        rgba = np.zeros((28, 28, 4), np.uint8)  # black strokes whose alpha is the ink
        rgba[..., 3] = d
        Image.fromarray(rgba, "RGBA").save(tmp_path / f"alpha{i}.png")
        transparent.append(tmp_path / f"alpha{i}.png")
        assert np.abs(mnist_preprocess(read_image(inverted[-1])) - d).max() <= 1.5
    for files in (inverted, transparent):
        r = run("predict", "--json", path, *files)
        assert r.exit_code == 0, r.output
        assert predicted(r.output) == labels[:20].tolist()


def test_large_off_centre_digit_is_cropped_scaled_and_centred(trained, tmp_path):
    """Each digit blown up to 70x70, drawn black on white near a corner of a 100x80 canvas
    (with some paper noise) comes back 20 pixels high or wide, centred on (14, 14), close to
    the original and with its label."""
    Image = pytest.importorskip("PIL.Image")
    path, _, digits, labels = trained
    rng = np.random.default_rng(1)
    files, similarity = [], []
    for i, d in enumerate(digits[:20]):
        big = np.asarray(Image.fromarray(d).resize((70, 70), Image.BILINEAR), dtype=np.float64)
        canvas = np.zeros((100, 80))
        canvas[28:98, 2:72] = big
        page = np.clip(250 - canvas + rng.normal(0, 3, canvas.shape), 0, 255).astype(np.uint8)
        Image.fromarray(page).save(tmp_path / f"big{i}.png")
        files.append(tmp_path / f"big{i}.png")
        out = mnist_preprocess(read_image(files[-1]))
        rows, cols = np.nonzero(out > 0)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20
        com = [(out.sum(axis=a) * np.arange(28)).sum() / out.sum() for a in (1, 0)]
        assert np.allclose(com, 14, atol=0.5)
        similarity.append(np.corrcoef(out.ravel(), d.ravel())[0, 1])
    # thin strokes off by a pixel correlate poorly, so the bound is on the mean
    assert np.mean(similarity) > 0.85 and min(similarity) > 0.6
    r = run("predict", "--json", path, *files)
    assert r.exit_code == 0, r.output
    assert sum(a == b for a, b in zip(predicted(r.output), labels[:20])) >= 19


def test_resize_matrix_keeps_levels_and_is_exact_at_scale_one():
    assert np.array_equal(resize_matrix(20, 20), np.eye(20))
    for n_in, n_out in ((100, 20), (7, 20), (33, 19)):
        m = resize_matrix(n_in, n_out)
        assert m.shape == (n_out, n_in) and np.allclose(m.sum(axis=1), 1) and m.min() >= 0
    stripes = np.tile([0.0, 255.0], 50)  # 1-pixel stripes: shrinking 5x must average them
    assert np.allclose(resize_matrix(100, 20) @ stripes, 127.5, atol=30)


@pytest.fixture
def bad_files(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    png = tmp_path / "ok.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(png)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png.read_bytes()[:40])
    np.save(tmp_path / "cube.npy", np.zeros((2, 28, 28), np.uint8))
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "hot.npy", np.full((28, 28), 300))
    (tmp_path / "short.pgm").write_bytes(b"P5 28 28 255\n" + bytes(100))
    (tmp_path / "notes.txt").write_text("not an image\n")
    return {
        png: "blank image: no digit found",
        truncated: "cannot decode PNG",
        tmp_path / "cube.npy": "expected a 2-D (height, width) image",
        tmp_path / "pickled.npy": "pickled objects, which are never loaded",
        tmp_path / "hot.npy": "expected 0..255",
        tmp_path / "short.pgm": "PGM has 100 bytes of pixels, expected 784",
        tmp_path / "notes.txt": "not a PNG, JPEG, PGM (P2/P5) or NPY image",
        tmp_path / "missing.png": "no such file",
    }


def test_bad_images_fail_fast_with_one_line_exit_2(trained, tmp_path, bad_files):
    path, _, digits, _ = trained
    good = write_pgm(tmp_path / "good.pgm", digits[0])
    for bad, message in bad_files.items():
        r = run("predict", path, good, bad, good)
        assert r.exit_code == 2, (bad, r.output)
        assert r.output == f"bpnet: error: {bad}: {r.output.split(f'{bad}: ', 1)[1]}"
        assert message in r.output and r.output.count("\n") == 1, r.output


def test_bad_weights_and_networks_of_other_sizes(tmp_path):
    img = tmp_path / "d.npy"
    np.save(img, np.eye(28) * 255)
    r = run("predict", tmp_path / "none.npz", img)
    assert r.exit_code == 2 and "none.npz: no such weights file" in r.output
    net = TwoLayerNet(64, 10, 10, rng=0)
    save_weights(
        tmp_path / "w64.npz",
        net.params,
        {
            "sizes": net.sizes,
            "activation": "relu",
            "dataset": "mnist",
            "normalize": True,
            "dtype": "float64",
        },
    )
    r = run("predict", tmp_path / "w64.npz", img)
    assert r.exit_code == 2 and "takes 64 inputs, expected 784" in r.output


def test_png_without_pillow_says_how_to_install_it(trained, tmp_path, monkeypatch):
    path, _, digits, _ = trained
    (tmp_path / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    monkeypatch.setitem(sys.modules, "PIL", None)
    r = run("predict", path, tmp_path / "d.png")
    assert r.exit_code == 1
    assert r.output == (
        f"bpnet: error: {tmp_path / 'd.png'}: reading PNG needs Pillow, which is "
        f"not installed: pip install 'bpnet[image]'\n"
    )
    assert run("predict", path, write_pgm(tmp_path / "d.pgm", digits[0])).exit_code == 0


def test_blank_and_faint_images_are_refused():
    with pytest.raises(InputError, match="blank image"):
        mnist_preprocess(np.full((30, 30), 17.0))
    faint = np.zeros((28, 28))
    faint[10:18, 12:15] = 5.0
    with pytest.raises(InputError, match="blank image"):
        mnist_preprocess(faint)
    faint[10:18, 12:15] = 60.0  # a dim digit is stretched to full contrast
    assert mnist_preprocess(faint).max() == pytest.approx(255.0)


def test_grid_draws_what_the_network_saw(trained, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    Image = pytest.importorskip("PIL.Image")
    path, _, digits, _ = trained
    files = [
        write_pgm(tmp_path / f"digit-with-a-long-name-{i}.pgm", d) for i, d in enumerate(digits[:5])
    ]
    r = run("predict", path, *files, "--grid", tmp_path / "seen.png")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "seen.png") as im:
        assert im.size == (5 * 130, 150)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("predict", path, *files, "--grid", tmp_path / "again.png")
    assert r.exit_code == 1 and "pip install 'bpnet[plot]'" in r.output
    assert not (tmp_path / "again.png").exists()


# --- PNG and JPEG headers, and reading images from many threads at once ------------------------


def encoded(img, fmt, **options):
    import io

    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def pillow_open_reference(raw):
    """Grey levels as bpnet read PNG/JPEG before: ``Image.open``, then the same conversion."""
    import io

    from PIL import Image

    from bpnet.data.images import _pillow_grey

    with Image.open(io.BytesIO(raw)) as im:
        im.load()
        return im.size, _pillow_grey(im)


def odd_images():
    """{name: bytes} of PNGs and JPEGs that are valid but take the header parsers off the
    common path: 16-bit, palette with transparency, progressive, CMYK (Adobe APP14),
    greyscale, with EXIF/comment segments and fill bytes, restart markers, two pictures."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    grey = np.zeros((37, 29), np.uint8)
    grey[6:31, 11:18] = 220 + rng.integers(0, 30, (25, 7), dtype=np.uint8)
    im = Image.fromarray(grey)
    rgb = im.convert("RGB")
    pal = im.convert("P")
    pal.info["transparency"] = 0
    jpeg = encoded(im, "JPEG", quality=95)
    fill = jpeg[:2] + b"\xff\xff\xff" + jpeg[3:]  # fill bytes before the first marker's code
    return {
        "16-bit.png": encoded(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "palette-transparent.png": encoded(pal, "PNG", transparency=0),
        "rgba.png": encoded(rgb.convert("RGBA"), "PNG"),
        "text-chunk.png": encoded(im, "PNG", pnginfo=_text_info()),
        "grey.jpg": jpeg,
        "progressive.jpg": encoded(rgb, "JPEG", progressive=True, quality=90),
        "cmyk.jpg": encoded(rgb.convert("CMYK"), "JPEG", quality=95),
        "exif-comment.jpg": encoded(
            rgb, "JPEG", exif=b"Exif\0\0" + bytes(200), comment=b"a digit", quality=90
        ),
        "fill-bytes.jpg": fill,
        "restart-markers.jpg": encoded(rgb, "JPEG", restart_marker_blocks=1),
        "two-pictures.mpo.jpg": encoded(
            rgb, "MPO", save_all=True, append_images=[Image.new("RGB", (300, 300))]
        ),
    }


def _text_info():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 5000, zip=True)
    return info


def test_odd_pngs_and_jpegs_read_the_same_pixels_as_before():
    """The header parsers find the size Pillow finds, and reading without ``Image.open``
    gives the very pixels ``Image.open`` gave."""
    from bpnet.data.images import jpeg_size, png_size, read_image_bytes

    for name, raw in odd_images().items():
        size, pixels = pillow_open_reference(raw)
        assert (png_size if name.endswith(".png") else jpeg_size)(raw) == size, name
        assert np.array_equal(read_image_bytes(raw, name), pixels), name


def test_cut_and_broken_headers_are_one_line_refusals():
    """Every prefix of a PNG and a JPEG, and every byte of their headers set to 0xff or 0,
    is read or refused with an InputError naming the file: never another exception, and what
    is read has the size the header parser found."""
    from bpnet.data.images import jpeg_size, png_size, read_image_bytes

    images = odd_images()
    for name in ("16-bit.png", "progressive.jpg", "cmyk.jpg"):
        raw, kind = images[name], "PNG" if name.endswith(".png") else "JPEG"
        head = len(raw) if kind == "PNG" else raw.index(b"\xff\xda") + 20
        broken = [raw[:n] for n in range(3, min(head, 700))]
        broken += [
            raw[:i] + bytes([b]) + raw[i + 1 :] for i in range(3, min(head, 400)) for b in (0, 0xFF)
        ]
        for bad in broken:
            try:
                img = read_image_bytes(bad, name)
            except InputError as e:
                assert str(e).startswith(f"{name}: ") and "\n" not in str(e), str(e)
                continue
            size = (png_size if kind == "PNG" else jpeg_size)(bad)
            assert img.shape == size[::-1] and img.size <= 4096 * 4096, name
    with pytest.raises(ValueError, match="header cut short: 20 bytes without a whole IHDR"):
        png_size(images["16-bit.png"][:20])
    cut = images["grey.jpg"][: images["grey.jpg"].index(b"\xff\xc0") + 6]
    with pytest.raises(ValueError, match="without a whole frame header"):
        jpeg_size(cut)
    with pytest.raises(InputError, match=r"^t\.png: cannot decode PNG \(header cut short"):
        read_image_bytes(images["16-bit.png"][:22], "t.png")
    with pytest.raises(InputError, match=r"^t\.jpg: cannot decode JPEG \(header cut short"):
        read_image_bytes(cut, "t.jpg")


def _claiming(raw, width, height):
    """JPEG bytes whose first frame header claims width x height."""
    sof = raw.index(b"\xff\xc0")
    return raw[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + raw[sof + 9 :]


def test_jpeg_and_png_sizes_are_refused_from_the_header_bytes(monkeypatch):
    """A JPEG frame header or PNG IHDR claiming too many pixels is refused with bpnet's line
    before Pillow sees the bytes; so is a second, larger IHDR, and a segment length under 2."""
    from bpnet.data.images import jpeg_size, png_size, read_image_bytes

    images = odd_images()
    huge = _claiming(images["grey.jpg"], 60000, 50000)
    assert jpeg_size(huge) == (60000, 50000)
    with pytest.raises(InputError, match="JPEG of 60000x50000 = 3000000000 pixels, more than"):
        read_image_bytes(huge, "huge.jpg")
    png = images["16-bit.png"]
    second = png[8:33].replace(b"\x00\x00\x00\x1d\x00\x00\x00\x25", (9000).to_bytes(4, "big") * 2)
    assert png_size(png[:33] + second + png[33:]) == (9000, 9000)
    with pytest.raises(InputError, match="PNG of 9000x9000 = 81000000 pixels"):
        read_image_bytes(png[:33] + second + png[33:], "two.png")
    jpeg = images["grey.jpg"]
    bad = jpeg[:4] + b"\x00\x01" + jpeg[6:]  # APP0's length: 1
    with pytest.raises(
        InputError,
        match=r"cannot decode JPEG \(segment 0xffe0 at byte 2 of "
        r"length 1\)",
    ):
        read_image_bytes(bad, "bad.jpg")
    monkeypatch.setenv("BPNET_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InputError, match="JPEG of 29x37 = 1073 pixels, more than the 1000"):
        read_image_bytes(images["progressive.jpg"], "p.jpg")


def test_pillows_own_limit_is_neither_changed_nor_consulted(monkeypatch):
    """bpnet's limit governs its reads: with Pillow's global limit below an image (set here by
    the test, as a program might), ``Image.open`` refuses it but bpnet reads it, with no
    warning, and leaves the global as it found it; above bpnet's limit bpnet refuses it."""
    import io
    import warnings

    from PIL import Image

    from bpnet.data.images import read_image_bytes

    images = odd_images()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(images["grey.jpg"]))
    for name, raw in images.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert read_image_bytes(raw, name).shape == (37, 29)
        assert caught == [] and Image.MAX_IMAGE_PIXELS == 300, name
    monkeypatch.setenv("BPNET_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InputError, match="BPNET_MAX_IMAGE_PIXELS"):
        read_image_bytes(images["grey.jpg"], "g.jpg")
    assert Image.MAX_IMAGE_PIXELS == 300


class _Watched:
    """Records every assignment to ``names`` on a module, by giving the module a class of its
    own for the duration (a module's attribute assignment goes through its class)."""

    def __init__(self, module, names):
        import types

        self.module, self.writes = module, []
        writes, names = self.writes, set(names)

        class Watched(types.ModuleType):
            def __setattr__(self, name, value):
                if name in names:
                    writes.append((module.__name__, name, value))
                super().__setattr__(name, value)

        self.cls = Watched

    def __enter__(self):
        self.module.__class__ = self.cls
        return self.writes

    def __exit__(self, *exc):
        import types

        self.module.__class__ = types.ModuleType


def test_images_read_in_many_threads_at_once_touch_no_global(monkeypatch):
    """What ``bpnet serve`` does with uploads arriving together: 16 threads read 480 images
    (PNG and JPEG, some over the pixel limit, some cut short) at once. Each gets what it gets
    alone, and meanwhile nobody assigns Pillow's ``MAX_IMAGE_PIXELS`` or ``warnings.filters``,
    and a thread sampling both all along sees neither change."""
    import threading
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from bpnet.data.images import read_image_bytes

    monkeypatch.setenv("BPNET_MAX_IMAGE_PIXELS", str(60 * 60))
    big = np.zeros((70, 70), np.uint8)
    big[10:60, 30:40] = 255
    files = dict(odd_images())
    files["big.png"] = encoded(Image.fromarray(big), "PNG")  # 4900 pixels: refused
    files["big.jpg"] = encoded(Image.fromarray(big), "JPEG")
    files["cut.png"] = files["16-bit.png"][:60]
    files["cut.jpg"] = files["grey.jpg"][:300]

    def read(name):
        try:
            return read_image_bytes(files[name], name)
        except InputError as e:
            return str(e)

    expected = {name: read(name) for name in files}
    assert "more than the 3600 read" in expected["big.png"] + expected["big.jpg"]
    assert "cannot decode PNG" in expected["cut.png"]
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    seen, running = [], threading.Event()

    def sample():
        while running.is_set():
            if limit != Image.MAX_IMAGE_PIXELS or warnings.filters != filters:
                seen.append((Image.MAX_IMAGE_PIXELS, len(warnings.filters)))

    order = [name for _ in range(480 // len(files) + 1) for name in files][:480]
    with (
        _Watched(Image, ["MAX_IMAGE_PIXELS"]) as pillow_writes,
        _Watched(warnings, ["filters"]) as warning_writes,
    ):
        running.set()
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(16) as pool:
                got = list(pool.map(read, order))
        finally:
            running.clear()
            sampler.join()
    for name, result in zip(order, got):
        want = expected[name]
        assert result == want if isinstance(want, str) else np.array_equal(result, want), name
    assert pillow_writes == [] and warning_writes == [] and seen == []
    assert limit == Image.MAX_IMAGE_PIXELS and warnings.filters == filters
