"""Tasks: shapes, determinism, labels against the inputs, chance levels against the empirical
best input-blind predictor, and the real-data loaders on tiny files the tests write."""
import gzip
import math
import struct
import sys

import numpy as np
import pytest
import torch
from _support import HYPOTHESIS, INF, NAN, bad_floats, bad_ints, raises_cleanly
from hypothesis import given
from hypothesis import strategies as st

from stablernn import DeepRNN
from stablernn.tasks import (
    TASKS,
    check_task_params,
    describe_tasks,
    make_task,
    read_idx,
    synthetic_names,
)
from stablernn.tasks import base as task_base

SMALL = ["copy", "adding", "copy_first", "denoising", "delayed_xor", "digits", "pdigits",
         "sl_digits"]


def best_constant_logits(y, classes, per_step):
    """Log of the empirical target frequencies (per step when ``per_step``): the best
    input-blind predictor of the batch ``y`` under cross-entropy."""
    onehot = torch.nn.functional.one_hot(y, classes).double()
    freq = onehot.mean(0, keepdim=True) if per_step else onehot.reshape(-1, classes).mean(0)
    return freq.clamp_min(1e-300).log().float().expand(*y.shape, classes)


# ----- registry and parameters -------------------------------------------------------------
def test_registry_lists_every_family():
    expected = {"copy", "adding", "copy_first", "denoising", "delayed_xor", "digits", "pdigits",
                "sl_digits", "char_lm", "ptb", "mnist", "pmnist", "shd"}
    assert expected <= set(TASKS)
    lines = describe_tasks()
    assert len(lines) == len(TASKS)
    assert any(line.startswith("copy ") and "T=100" in line for line in lines)


def test_unknown_name_and_parameter_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid tasks: .*adding.*copy"):
        make_task("copyy")
    with pytest.raises(ValueError, match="valid parameters: seed, size, T, n_train"):
        make_task("copy", blanks=10)


@pytest.mark.parametrize("params", [{"T": "10"}, {"T": 10.0}, {"T": True}, {"seed": 1.5},
                                    {"n_train": None}])
def test_wrong_types_raise_type_error(params):
    with pytest.raises(TypeError):
        make_task("copy", size="smoke", **params)


def test_int_is_accepted_for_a_float_parameter():
    assert make_task("sl_digits", tau=10, size="smoke").tau == 10.0


@pytest.mark.parametrize("name, params", [
    ("copy", {"T": 0}), ("adding", {"T": 1}), ("copy_first", {"T": 0}),
    ("denoising", {"T": 14, "n_marks": 5, "gap": 10}), ("sl_digits", {"T": 0}),
    ("copy", {"n_train": 0}), ("digits", {"pad": -1}), ("digits", {"n_train": 2000}),
    ("copy", {"seed": -1}), ("copy", {"size": "tiny"}), ("delayed_xor", {"delay": 0}),
    ("delayed_xor", {"order": 0}), ("delayed_xor", {"T": 20, "delay": 10})])
def test_out_of_range_parameters_raise_value_error(name, params):
    with pytest.raises(ValueError):
        make_task(name, **params)


def test_smoke_keeps_explicit_parameters():
    task = make_task("copy", T=50, n_valid=7, size="smoke")
    assert (task.T, task.n_train, task.n_valid) == (50, 64, 7)
    assert make_task("copy", size="smoke").T < make_task("copy").T


# ----- shapes, batches, determinism ------------------------------------------------------------
@pytest.mark.parametrize("name", SMALL)
def test_shapes_and_dtypes(name):
    task = make_task(name, size="smoke")
    for split, n in (("train", 64), ("valid", 32), ("test", 32)):
        x, y = task.split(split)
        assert x.dtype == torch.float32 and x.shape == (n, task.seq_len, task.input_size)
        if task.readout_mode == "all":
            assert y.shape[:2] == (n, task.seq_len)
        else:
            assert y.shape[0] == n
        assert y.dtype == (torch.long if task.is_classification else torch.float32)


@pytest.mark.parametrize("name", SMALL)
def test_same_seed_same_data_other_seed_other_data(name):
    a, b = make_task(name, size="smoke", seed=3), make_task(name, size="smoke", seed=3)
    for split in ("train", "valid", "test"):
        assert all(torch.equal(u, v) for u, v in zip(a.split(split), b.split(split)))
    if name not in ("digits", "sl_digits"):  # the digits split is fixed; only pdigits permutes
        c = make_task(name, size="smoke", seed=4)
        assert not torch.equal(a.split("train")[0], c.split("train")[0])


def test_splits_differ_and_do_not_depend_on_other_split_sizes():
    a = make_task("adding", size="smoke")
    b = make_task("adding", size="smoke", n_train=10)
    assert not torch.equal(a.split("valid")[0], a.split("test")[0])
    assert torch.equal(a.split("valid")[0], b.split("valid")[0])


def test_batches_cover_the_split_and_shuffle_per_generator():
    task = make_task("adding", T=10, size="smoke")
    _, y = task.split("train")
    sizes = [len(yb) for _, yb in task.batches("train", 24, shuffle=False)]
    assert sizes == [24, 24, 16]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ys1 = torch.cat([yb for _, yb in task.batches("train", 24, shuffle=True, generator=g1)])
    ys2 = torch.cat([yb for _, yb in task.batches("train", 24, shuffle=True, generator=g2)])
    assert torch.equal(ys1, ys2) and not torch.equal(ys1, y)
    assert torch.equal(ys1.sort(0).values, y.sort(0).values)
    with pytest.raises(ValueError, match="batch_size"):
        next(task.batches("train", 0, shuffle=False))
    with pytest.raises(ValueError, match="valid splits"):
        task.split("dev")


# ----- labels consistent with the inputs ---------------------------------------------------------
def test_copy_target_is_the_copied_prefix():
    task = make_task("copy", T=7, size="smoke")
    x, y = task.split("train")
    ids = x.argmax(-1)
    assert torch.equal(y[:, -10:], ids[:, :10]) and (ids[:, :10] >= 1).all()
    assert (ids[:, :10] <= 8).all() and (y[:, :-10] == 0).all()
    assert (ids[:, 10 + 7 - 1] == 9).all()  # the delimiter after T - 1 blanks
    assert (ids[:, 10:16] == 0).all() and (ids[:, -10:] == 0).all()
    assert x.sum(-1).eq(1).all()


def test_adding_target_is_the_sum_of_the_marked_values():
    task = make_task("adding", T=11, size="smoke")
    x, y = task.split("train")
    marks = x[..., 1]
    assert (marks.sum(1) == 2).all()
    assert (marks[:, :5].sum(1) == 1).all() and (marks[:, 5:].sum(1) == 1).all()
    reference = torch.tensor([[sum(v for v, m in zip(row[:, 0].tolist(), row[:, 1].tolist())
                                   if m == 1)] for row in x])
    torch.testing.assert_close(y, reference)


def test_copy_first_target_is_the_first_input():
    x, y = make_task("copy_first", T=9, size="smoke").split("valid")
    assert torch.equal(y[:, 0], x[:, 0, 0])


@pytest.mark.parametrize("order", [1, 2, 3])
def test_delayed_xor_targets_match_a_bitwise_reference(order):
    task = make_task("delayed_xor", T=40, delay=4, order=order, size="smoke")
    x, y = task.split("valid")
    bits = x[..., 0].numpy().astype(np.int64)
    assert set(np.unique(bits)) == {0, 1} and x.shape[-1] == 1
    for row in range(4):
        for t in range(order * 4, 40):  # xor of the bits 4, 8, .. order x 4 steps back
            assert y[row, t] == np.bitwise_xor.reduce([bits[row, t - 4 * j]
                                                       for j in range(1, order + 1)])
    # unscored steps are ignored: a perfect guess there changes neither loss nor metric
    logits = 50.0 * torch.nn.functional.one_hot(y, 2).float()
    assert task.metric(logits, y) == 1.0
    logits[:, : order * 4] = -logits[:, : order * 4]
    assert task.metric(logits, y) == 1.0 and float(task.loss(logits, y)) < 1e-6


def test_delayed_xor_chance_is_a_fair_coin():
    task = make_task("delayed_xor", T=60, delay=5, n_test=2000, size="smoke")
    _, y = task.split("test")
    logits = best_constant_logits(y, 2, per_step=True)
    assert task.chance == 0.5 and task.chance_loss == pytest.approx(math.log(2))
    assert abs(float(task.loss(logits, y)) - task.chance_loss) < 2e-3
    assert abs(task.metric(logits, y) - 0.5) < 0.02


def test_denoising_marks_respect_the_gap_and_targets_keep_their_order():
    task = make_task("denoising", T=30, n_marks=4, gap=8, size="smoke")
    x, y = task.split("train")
    marker = x[..., 1]
    assert (marker[:, :30] == 1).sum(1).eq(4).all() and (marker[:, 22:30] == 0).all()
    assert (marker[:, 30:] == -1).all() and (x[:, 30:, 0] == 0).all()
    for row in range(len(x)):
        positions = (marker[row] == 1).nonzero().squeeze(1)
        assert torch.equal(y[row, 30:, 0], x[row, positions, 0])
    assert (y[:, :30] == 0).all()


# ----- chance levels: the empirical best input-blind predictor on a generated batch -----------
def test_copy_chance_matches_the_best_position_aware_predictor():
    task = make_task("copy", T=15, n_test=4000, size="smoke")
    _, y = task.split("test")
    logits = best_constant_logits(y, task.output_size, per_step=True)
    assert math.isclose(task.chance_loss, 10 * math.log(8) / 35)
    assert abs(float(task.loss(logits, y)) - task.chance_loss) < 2e-3
    assert abs(task.metric(logits, y) - task.chance) < 0.02


@pytest.mark.parametrize("name, params, chance", [
    ("adding", {"T": 10}, 1 / 6), ("copy_first", {"T": 5}, 1.0),
    ("denoising", {"T": 12, "gap": 2}, 1.0)])
def test_regression_chance_matches_the_best_constant(name, params, chance):
    task = make_task(name, n_test=4000, size="smoke", **params)
    _, y = task.split("test")
    pred = y.mean(0, keepdim=True).expand_as(y).clone()  # per-step mean: best input-blind
    assert task.chance == task.chance_loss == pytest.approx(chance)
    assert abs(task.metric(pred, y) - chance) < 0.05 * chance


@pytest.mark.parametrize("name", ["digits", "pdigits", "sl_digits"])
def test_digits_chance_is_the_majority_class_of_the_test_split(name):
    task = make_task(name, size="smoke")
    _, y = task.split("test")
    logits = best_constant_logits(y, 10, per_step=False)
    assert task.metric(logits, y) == pytest.approx(task.chance)
    assert float(task.loss(logits, y)) == pytest.approx(task.chance_loss, rel=1e-5)
    assert task.chance == pytest.approx(torch.bincount(y).max().item() / len(y))


# ----- loss and metric ----------------------------------------------------------------------
def test_perfect_predictions_score_perfectly_and_loss_is_differentiable():
    copy = make_task("copy", T=5, size="smoke")
    _, y = copy.split("valid")
    logits = (20.0 * torch.nn.functional.one_hot(y, 9).float()).requires_grad_()
    loss = copy.loss(logits, y)
    loss.backward()
    assert loss.item() < 1e-6 and copy.metric(logits, y) == 1.0 and logits.grad is not None
    adding = make_task("adding", T=10, size="smoke")
    _, y = adding.split("valid")
    assert adding.loss(y.clone(), y).item() == 0.0 and adding.metric(y, y) == 0.0


def test_evaluate_weights_batches_by_size():
    task = make_task("digits", size="smoke")
    x, y = task.split("valid")

    def predict(xb):  # any input-dependent guess
        return xb[:, :10, 0] * 5.0

    result = task.evaluate(predict, "valid", batch_size=7)
    assert result["metric"] == pytest.approx(task.metric(predict(x), y))
    assert result["loss"] == pytest.approx(float(task.loss(predict(x), y)), rel=1e-5)


def test_wrong_prediction_shapes_raise():
    task = make_task("copy", T=5, size="smoke")
    _, y = task.split("valid")
    with pytest.raises(ValueError, match=r"\(B, T, O\)"):
        task.loss(torch.zeros(32, 9), y)
    with pytest.raises(TypeError):
        task.loss(torch.zeros(32, 25, 9, dtype=torch.long), y)


def test_split_too_large_points_to_batches(monkeypatch):
    monkeypatch.setattr(task_base, "MAX_SPLIT_ELEMENTS", 100)
    with pytest.raises(ValueError, match="batches"):
        make_task("copy", size="smoke").split("train")


# ----- digits -------------------------------------------------------------------------------
def test_permutation_is_fixed_per_seed_and_pad_is_blank():
    plain = make_task("digits", pad=10, size="smoke")
    p0, p0b = make_task("pdigits", size="smoke"), make_task("pdigits", size="smoke")
    p1 = make_task("pdigits", size="smoke", seed=1)
    assert torch.equal(p0.permutation, p0b.permutation)
    assert not torch.equal(p0.permutation, p1.permutation)
    assert torch.equal(p0.permutation.sort().values, torch.arange(64))
    x, y = plain.split("test")
    xp, yp = p0.split("test")
    assert torch.equal(y, yp) and torch.equal(xp[:, :, 0], x[:, :64, 0][:, p0.permutation])
    assert x.shape[1] == 74 and (x[:, 64:] == 0).all()


def test_spike_latency_matches_the_closed_form():
    task = make_task("sl_digits", T=30, tau=10.0, threshold=0.3, size="smoke")
    x, _ = task.split("train")
    pixels = task._images[task._rows("train")].numpy()
    for row in range(4):
        for unit in range(64):
            v = float(pixels[row, unit])
            spikes = x[row, :, unit].nonzero().flatten().tolist()
            if v <= 0.3 or 10 * math.log(v / (v - 0.3)) >= 30:
                assert spikes == []
            else:
                assert spikes == [int(10 * math.log(v / (v - 0.3)))]


# ----- real-data loaders on tiny files -------------------------------------------------------------
def write_idx(path, array, *, magic_ndim=None, gz=False, cut=0):
    array = np.asarray(array, dtype=np.uint8)
    ndim = array.ndim if magic_ndim is None else magic_ndim
    raw = bytes([0, 0, 8, ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.tobytes()
    raw = raw[:len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.fixture
def mnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 6)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


def test_mnist_loads_pixels_in_reading_order(mnist_root):
    task = make_task("mnist", root=str(mnist_root), n_valid=4)
    x, y = task.split("valid")
    images = read_idx(str(mnist_root / "train-images-idx3-ubyte"), 3)
    assert x.shape == (4, 784, 1) and torch.equal(y, torch.tensor([8, 9, 0, 1]))
    torch.testing.assert_close(x[0, :, 0], torch.tensor(images[8].reshape(-1) / 255.0).float())
    assert task.num_examples("train") == 8 and task.num_examples("test") == 6
    assert task.chance == pytest.approx(1 / 6)


def test_pmnist_permutation_fixed_per_seed_and_gz_files(mnist_root, tmp_path_factory):
    gz_root = tmp_path_factory.mktemp("gz")
    for path in mnist_root.iterdir():
        (gz_root / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
    plain = make_task("mnist", root=str(mnist_root), n_valid=4)
    a = make_task("pmnist", root=str(gz_root), n_valid=4)
    b = make_task("pmnist", root=str(mnist_root), n_valid=4, seed=1)
    xa = a.split("test")[0]
    assert torch.equal(xa[:, :, 0], plain.split("test")[0][:, a.permutation, 0])
    assert not torch.equal(a.permutation, b.permutation)


def test_mnist_missing_file_names_it(mnist_root):
    (mnist_root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.*uncompressed or .gz"):
        make_task("mnist", root=str(mnist_root))


@pytest.mark.parametrize("damage", ["truncated", "magic", "count", "gz"])
def test_mnist_corrupt_files_raise_value_error(mnist_root, damage):
    target = mnist_root / "train-images-idx3-ubyte"
    images = np.zeros((12, 28, 28))
    if damage == "truncated":
        write_idx(target, images, cut=100)
    elif damage == "magic":
        write_idx(target, images, magic_ndim=2)
    elif damage == "count":
        write_idx(target, np.zeros((11, 28, 28)))
    else:
        target.unlink()
        (mnist_root / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError):
        make_task("mnist", root=str(mnist_root))


PTB_TEXT = {"train": " the cat sat on the mat \n the dog sat <unk> \n a cat ran \n" * 3,
            "valid": " the cat ran on a mat \n the zebra sat \n",
            "test": " a dog sat on the cat \n the mat ran \n"}


@pytest.fixture
def ptb_root(tmp_path):
    for split, text in PTB_TEXT.items():
        (tmp_path / f"ptb.{split}.txt").write_text(text)
    return tmp_path


def test_ptb_windows_and_vocabulary(ptb_root):
    task = make_task("ptb", root=str(ptb_root), T=4)
    x, y = task.split("valid")
    words = PTB_TEXT["valid"].replace("\n", " <eos> ").split()
    ids = [task.vocab.index(w if w in task.vocab else "<unk>") for w in words]
    assert x.shape == ((len(words) - 1) // 4, 4, len(task.vocab))
    assert x.argmax(-1).flatten().tolist() == ids[:x.shape[0] * 4]
    assert torch.equal(y[:, :-1], x.argmax(-1)[:, 1:])
    assert "<eos>" in task.vocab and "zebra" not in task.vocab  # valid-only word -> <unk>
    assert task.vocab.index("<unk>") in y  # "zebra" is the last target


def test_ptb_chance_is_the_unigram_perplexity_of_the_test_split(ptb_root):
    task = make_task("ptb", root=ptb_root, T=3)  # a path-like root is accepted
    _, y = task.split("test")
    logits = best_constant_logits(y, task.output_size, per_step=False)
    result = task.evaluate(lambda xb: logits[:len(xb)], "test", batch_size=2)
    assert result["metric"] == pytest.approx(task.chance, rel=1e-5)
    assert result["loss"] == pytest.approx(task.chance_loss, rel=1e-5)
    assert task.higher_is_better is False and task.metric_name == "perplexity"


def test_ptb_missing_file_names_it(ptb_root):
    (ptb_root / "ptb.valid.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"ptb\.valid\.txt"):
        make_task("ptb", root=str(ptb_root))


def test_char_lm_targets_bpc_chance_and_bad_files(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("hello world, long memory helps. " * 20)
    task = make_task("char_lm", path=str(path), T=16, valid_frac=0.1, test_frac=0.1)
    x, y = task.split("train")
    assert torch.equal(y[:, :-1], x.argmax(-1)[:, 1:]) and task.metric_name == "bpc"
    _, yt = task.split("test")
    logits = best_constant_logits(yt, task.output_size, per_step=False)
    assert task.metric(logits, yt) == pytest.approx(task.chance, rel=1e-5)
    smoke = make_task("char_lm", path=str(path), T=4, size="smoke")  # real data: first rows
    assert smoke.num_examples("train") == 64 and smoke.num_examples("test") <= 32
    with pytest.raises(ValueError, match="needs at least"):
        make_task("char_lm", path=str(path), T=200)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="UTF-8"):
        make_task("char_lm", path=str(path))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        make_task("char_lm", path=str(tmp_path / "missing.txt"))


def write_shd(path, times, units, labels):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        vt, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        f.create_dataset("spikes/times", data=np.array(times, dtype=object), dtype=vt)
        f.create_dataset("spikes/units", data=np.array(units, dtype=object), dtype=vu)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))


def random_shd(rng, n):
    counts = rng.integers(1, 40, n)
    times = [np.sort(rng.uniform(0, 1.5, c)).astype(np.float32) for c in counts]
    units = [rng.integers(0, 700, c).astype(np.uint16) for c in counts]
    return times, units, rng.integers(0, 20, n)


@pytest.fixture
def shd_root(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 10), ("test", 5)):
        write_shd(tmp_path / f"shd_{split}.h5", *random_shd(rng, n))
    return tmp_path


def test_shd_bins_spikes_like_a_reference_loop(shd_root):
    task = make_task("shd", root=str(shd_root), T=20, valid_frac=0.2)
    x, y = task.split("test")
    rng = np.random.default_rng(1)  # replay the fixture's draws: train first, then test
    random_shd(rng, 10)
    times, units, labels = random_shd(rng, 5)
    reference = torch.zeros(5, 20, 700)
    for i, (ts, us) in enumerate(zip(times, units)):
        for t, u in zip(ts, us):
            if t < 1.4:
                reference[i, int(t / 1.4 * 20), u] += 1
    assert x.shape == (5, 20, 700) and torch.equal(x, reference)
    assert torch.equal(y, torch.as_tensor(labels).long())
    assert task.num_examples("train") == 8 and task.num_examples("valid") == 2


def test_shd_missing_corrupt_and_inconsistent_files(shd_root):
    (shd_root / "shd_test.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="HDF5"):
        make_task("shd", root=str(shd_root))
    rng = np.random.default_rng(2)
    times, units, labels = random_shd(rng, 4)
    units[1] = units[1][:-1]
    write_shd(shd_root / "shd_test.h5", times, units, labels)
    with pytest.raises(ValueError, match="sample 1"):
        make_task("shd", root=str(shd_root))
    (shd_root / "shd_train.h5").unlink()
    with pytest.raises(FileNotFoundError, match="shd_train.h5"):
        make_task("shd", root=str(shd_root))


def test_synthetic_names_are_registered():
    assert set(synthetic_names()) <= set(TASKS)


def test_missing_optional_dependencies_name_the_extra(monkeypatch, shd_root):
    from stablernn.tasks import digits

    digits.load_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"stablernn\[digits\]"):
        make_task("digits", size="smoke")
    with pytest.raises(ImportError, match=r"stablernn\[hdf5\]"):
        make_task("shd", root=str(shd_root))
    digits.load_digits.cache_clear()


# ----- case 5: losses on what a DeepRNN returns -----
def test_task_loss_metric_evaluate_accept_a_deeprnn_tuple():
    task = make_task("adding", T=10, size="smoke")
    model = DeepRNN.build("gru", 2, 8, 2, readout=1, readout_mode="last")
    x, y = task.split("valid")
    out = model(x)
    assert isinstance(out, tuple)
    torch.testing.assert_close(task.loss(out, y), task.loss(out[0], y))
    assert task.metric(out, y) == task.metric(out[0], y)
    loss = task.loss(out, y)
    loss.backward()  # still differentiable through the tuple
    assert model.cells[0].weight_hh.grad is not None
    report = task.evaluate(model, "valid", batch_size=16)
    with torch.no_grad():
        expected = float(torch.nn.functional.mse_loss(model(x)[0], y))
    assert report["loss"] == pytest.approx(expected, rel=1e-5)


def test_task_loss_on_a_copy_task_with_readout_all():
    task = make_task("copy", T=5, size="smoke")
    model = DeepRNN.build("lstm", 10, 8, 2, readout=9)
    x, y = task.split("test")
    out = model(x)
    torch.testing.assert_close(task.loss(out, y), task.loss(out[0], y))
    with pytest.raises(TypeError, match="floating-point"):
        task.loss(("not", "a tensor"), y)


# ----- case 7: corrupt data files -----
def _write_mnist(root, images_raw: bytes | None = None):
    """Valid tiny MNIST IDX files; the train images replaced by ``images_raw`` if given."""
    for prefix, n in (("train", 8), ("t10k", 4)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        raw_i = bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 28, 28) + images.tobytes()
        raw_l = bytes([0, 0, 8, 1]) + struct.pack(">I", n) + labels.tobytes()
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(raw_i)
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(raw_l)
    if images_raw is not None:
        (root / "train-images-idx3-ubyte").write_bytes(images_raw)


@pytest.mark.parametrize("raw, what", [
    (b"\x12\x34\x08\x03" + b"\x00" * 20, "magic"), (b"\x00\x00\x08", "magic"),
    (b"", "magic"), (b"\x00\x00\x08\x03\x00\x00", "header"),
    (bytes([0, 0, 8, 3]) + struct.pack(">3I", 8, 28, 28) + b"\x00" * 100, "truncated"),
    (bytes([0, 0, 8, 3]) + struct.pack(">3I", 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1), "truncated"),
])
def test_corrupt_mnist_names_the_file(tmp_path, raw, what):
    _write_mnist(tmp_path, raw)
    message = raises_cleanly(lambda: make_task("mnist", root=str(tmp_path), n_valid=2))
    assert "train-images-idx3-ubyte" in message and what in message


def test_corrupt_mnist_gzip_names_the_file(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    data = gzip.compress(path.read_bytes())
    path.unlink()
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(data[:len(data) // 2])
    message = raises_cleanly(lambda: make_task("mnist", root=str(tmp_path), n_valid=2))
    assert "train-labels-idx1-ubyte.gz" in message and "gzip" in message


def _write_ptb(root, train: bytes):
    text = b" the cat sat on the mat \n the dog sat <unk> \n" * 4
    for split in ("train", "valid", "test"):
        (root / f"ptb.{split}.txt").write_bytes(train if split == "train" else text)


@pytest.mark.parametrize("raw, what", [(b"", "empty"), (b" \n\t\n", "empty"),
                                       (b"\xff\xfe\x00 cat", "UTF-8")])
def test_corrupt_ptb_names_the_file(tmp_path, raw, what):
    _write_ptb(tmp_path, raw)
    message = raises_cleanly(lambda: make_task("ptb", root=str(tmp_path), T=3))
    assert "ptb.train.txt" in message and what in message


def test_unreadable_text_file_names_it(tmp_path, monkeypatch):
    from stablernn.tasks import lm

    _write_ptb(tmp_path, b" a b c \n" * 5)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lm, "open", denied, raising=False)
    message = raises_cleanly(lambda: make_task("ptb", root=str(tmp_path), T=3))
    assert "ptb.train.txt" in message and "Permission denied" in message


def _shd_file(path, layout: str):
    h5py = pytest.importorskip("h5py")
    if layout == "not hdf5":
        path.write_bytes(b"\x1f\x8b gzip, not gunzipped")
        return
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.array([1, 2], dtype=np.uint16))
        if layout == "no spikes":
            return
        if layout == "group":
            f.create_group("spikes/times")
        elif layout == "strings":
            f.create_dataset("spikes/times", data=np.array([b"a", b"b"]))
        f.create_dataset("spikes/units", data=np.array([1, 2], dtype=np.uint16))


@pytest.mark.parametrize("layout, what", [
    ("not hdf5", "HDF5"), ("no spikes", "spikes/times, spikes/units"),
    ("group", "spikes/times"), ("strings", "cannot be read")])
def test_corrupt_shd_names_the_file(tmp_path, layout, what):
    for split in ("train", "test"):
        _shd_file(tmp_path / f"shd_{split}.h5", layout)
    message = raises_cleanly(lambda: make_task("shd", root=str(tmp_path)))
    assert "shd_train.h5" in message and what in message


# ----- case 8 and check_task_params: one home for task parameter checks -----
@pytest.mark.parametrize("name, params, kind, text", [
    ("adding", {"T": 0}, ValueError, "task 'adding': T must be an int >= 2, got 0"),
    ("adding", {"T": "abc"}, TypeError, "task 'adding': T must be an int, got str ('abc')"),
    ("copy", {"T": 1.0}, TypeError, "task 'copy': T must be an int, got float (1.0)"),
    ("copy", {"n_train": -5}, ValueError, "task 'copy': n_train must be an int >= 1, got -5"),
    ("sl_digits", {"tau": NAN}, ValueError, "task 'sl_digits': tau must be finite, got nan"),
    ("sl_digits", {"threshold": 1.0}, ValueError, "threshold must be < 1"),
    ("shd", {"max_time": -INF}, ValueError, "task 'shd': max_time must be finite, got -inf"),
    ("char_lm", {"valid_frac": 0.5}, ValueError, "valid_frac must be < 0.5"),
    ("digits", {"permuted": 1}, TypeError, "permuted must be bool"),
    ("denoising", {"T": 10}, ValueError, "T must be >= n_marks + gap = 15"),
    ("copy", {"T": 10 ** 9}, ValueError, "lower T or n_train"),
    ("ptb", {"root": "a\0b"}, ValueError, "NUL"),
])
def test_task_parameters_checked_the_same_cheap_way(name, params, kind, text):
    with pytest.raises(kind) as info:
        check_task_params(name, "full", params)
    assert text in str(info.value)
    with pytest.raises(kind) as again:  # the constructor runs the very same checks
        make_task(name, **params)
    assert str(again.value) == str(info.value)


def test_check_task_params_resolves_without_data(tmp_path):
    missing = str(tmp_path / "nowhere")  # no files: check_task_params never reads them
    assert check_task_params("ptb", "smoke", {"root": missing}) == {"root": missing, "T": 20}
    assert check_task_params("sl_digits", params={"tau": 5, "seed": 2})["tau"] == 5.0
    resolved = check_task_params("denoising", "smoke", {"gap": 2})
    assert resolved == make_task("denoising", size="smoke", gap=2).config
    assert check_task_params("copy") == make_task("copy").config
    for bad, kind in [(("copyy",), ValueError), ((3,), TypeError),
                      (("copy", "tiny"), ValueError), (("copy", "full", [1]), TypeError),
                      (("copy", "full", {"size": "smoke"}), ValueError),
                      (("copy", "full", {"seed": -1}), ValueError),
                      (("copy", "full", {"blanks": 3}), ValueError)]:
        with pytest.raises(kind):
            check_task_params(*bad)


TASK_TARGETS = {
    ("copy", "T"): bad_ints(1), ("adding", "T"): bad_ints(2), ("copy", "n_train"): bad_ints(1),
    ("denoising", "n_marks"): bad_ints(1), ("denoising", "gap"): bad_ints(0),
    ("digits", "pad"): bad_ints(0), ("sl_digits", "tau"): bad_floats(0.0),
    ("sl_digits", "threshold"): st.one_of(bad_floats(0.0), st.floats(min_value=1.0)),
    ("shd", "valid_frac"): st.one_of(bad_floats(0.0), st.floats(min_value=1.0)),
    ("char_lm", "test_frac"): st.one_of(bad_floats(0.0), st.floats(min_value=0.5)),
    ("mnist", "n_valid"): bad_ints(1), ("ptb", "T"): bad_ints(1),
}


@HYPOTHESIS
@given(data=st.data(), target=st.sampled_from(sorted(TASK_TARGETS)))
def test_task_parameters_refuse_bad_numbers(data, target):
    name, key = target
    value = data.draw(TASK_TARGETS[target], label="value")
    first = raises_cleanly(lambda: check_task_params(name, "smoke", {key: value}))
    assert raises_cleanly(lambda: make_task(name, size="smoke", **{key: value})) == first
    assert key in first
