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
    save_weights(tmp_path / "w64.npz", net.params, {"sizes": net.sizes, "activation": "relu",
                                                    "dataset": "mnist", "normalize": True,
                                                    "dtype": "float64"})
    r = run("predict", tmp_path / "w64.npz", img)
    assert r.exit_code == 2 and "takes 64 inputs, expected 784" in r.output


def test_png_without_pillow_says_how_to_install_it(trained, tmp_path, monkeypatch):
    path, _, digits, _ = trained
    (tmp_path / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    monkeypatch.setitem(sys.modules, "PIL", None)
    r = run("predict", path, tmp_path / "d.png")
    assert r.exit_code == 1
    assert r.output == (f"bpnet: error: {tmp_path / 'd.png'}: reading PNG needs Pillow, which is "
                        f"not installed: pip install 'bpnet[image]'\n")
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
    files = [write_pgm(tmp_path / f"digit-with-a-long-name-{i}.pgm", d)
             for i, d in enumerate(digits[:5])]
    r = run("predict", path, *files, "--grid", tmp_path / "seen.png")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "seen.png") as im:
        assert im.size == (5 * 130, 150)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("predict", path, *files, "--grid", tmp_path / "again.png")
    assert r.exit_code == 1 and "pip install 'bpnet[plot]'" in r.output
    assert not (tmp_path / "again.png").exists()
