"""Tests of amnesiac.data: datasets by name, IDX/CIFAR/folder readers, tensors, forget sets."""

from __future__ import annotations

import gzip
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, Subset, TensorDataset

from amnesiac.data import (
    Splits,
    as_tensors,
    forget_spec_help,
    list_datasets,
    load_dataset,
    parse_forget,
    retain_indices,
)
from amnesiac.data import locate as locate_module
from amnesiac.data.datasets import read_idx
from amnesiac.errors import (
    AmnesiacError,
    DatasetNotFoundError,
    InvalidForgetSetError,
    InvalidSettingsError,
    UnknownNameError,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Search only what a test gives: no $AMNESIAC_DATA, no system folder, an empty cache."""
    monkeypatch.delenv("AMNESIAC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(locate_module, "_SYSTEM_DIRS", {})


@pytest.fixture(scope="module")
def digits() -> Splits:
    return load_dataset("digits")


# ---------------------------------------------------------------------------------------------
# Writers of tiny files in the real on-disk formats


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    header = (0x0800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def make_idx_folder(
    folder: Path, *, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write the four MNIST-style files with random 6x5 images; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 6, 5), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 6, 5), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), array)
    return arrays


def _cifar_batch(n: int, labels_key: str, rng: np.random.Generator, *, bytes_keys: bool) -> dict:
    def key(text: str) -> Any:
        return text.encode() if bytes_keys else text

    return {
        key("batch_label"): key("tiny batch"),
        key(labels_key): [int(v) for v in rng.integers(0, 3, n)],
        key("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        key("filenames"): [key(f"img_{i}.png") for i in range(n)],
    }


def make_cifar(root: Path, name: str, *, bytes_keys: bool = True) -> dict[str, list[dict]]:
    """Write a tiny CIFAR-10 or CIFAR-100 folder in the real layout; return the batches."""
    rng = np.random.default_rng(1)
    if name == "cifar10":
        folder, labels_key = root / "cifar-10-batches-py", "labels"
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file = ["test_batch"], "batches.meta"
        meta = {"label_names": ["airplane", "automobile", "bird"], "num_cases_per_batch": 2}
    else:
        folder, labels_key = root / "cifar-100-python", "fine_labels"
        train_files, test_files, meta_file = ["train"], ["test"], "meta"
        meta = {"fine_label_names": ["apple", "bear", "cup"], "coarse_label_names": ["x"]}
    folder.mkdir(parents=True)
    batches: dict[str, list[dict]] = {"train": [], "test": []}
    for split, files in (("train", train_files), ("test", test_files)):
        for file in files:
            batch = _cifar_batch(
                2 if split == "train" else 3, labels_key, rng, bytes_keys=bytes_keys
            )
            with (folder / file).open("wb") as handle:
                pickle.dump(batch, handle, protocol=2)
            batches[split].append(batch)
    encoded_meta = {
        (k.encode() if bytes_keys else k): (
            [n.encode() if bytes_keys else n for n in v] if isinstance(v, list) else v
        )
        for k, v in meta.items()
    }
    with (folder / meta_file).open("wb") as handle:
        pickle.dump(encoded_meta, handle, protocol=2)
    return batches


def write_png(
    path: Path, size: tuple[int, int] = (6, 4), mode: str = "RGB", value: int = 0
) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    color: Any = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, size, color).save(path)


def assert_statistics_match(splits: Splits) -> None:
    """The fast (pixel-count) statistics equal the obvious float64 computation."""
    x = splits.train_x.double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), correction=0)
    assert splits.mean == pytest.approx(mean.tolist(), rel=1e-6)
    assert splits.std == pytest.approx(std.tolist(), rel=1e-6)


class _Exploit:
    """Unpickles into ``os.system("touch MARKER")`` with a plain unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------------------------------------
# Names


def test_list_datasets_names() -> None:
    assert list_datasets() == ["cifar10", "cifar100", "digits", "fashion-mnist", "mnist"]


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'fashion-mnist'") as info:
        load_dataset("fashon-mnist")
    assert "folder:PATH" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_name_is_case_and_underscore_insensitive(tmp_path: Path) -> None:
    make_idx_folder(tmp_path)
    assert load_dataset("Fashion_MNIST", tmp_path).name == "fashion-mnist"


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_range_and_split(digits: Splits) -> None:
    assert digits.train_x.shape == (1347, 1, 8, 8)
    assert digits.test_x.shape == (450, 1, 8, 8)
    assert digits.train_x.dtype == torch.float32
    assert digits.train_y.dtype == torch.int64
    assert digits.train_y.shape == (1347,)
    assert float(digits.train_x.min()) >= 0.0
    assert float(digits.train_x.max()) == 1.0
    assert digits.classes == tuple(str(i) for i in range(10))
    assert digits.num_classes == 10
    assert digits.input_shape == (1, 8, 8)
    # Stratified: every class is in the test split in about its share (1797 / 10 * 0.25).
    counts = torch.bincount(digits.test_y, minlength=10)
    assert int(counts.min()) >= 43
    assert int(counts.max()) <= 47


def test_first_n_training_images(digits: Splits) -> None:
    """``NAME[:N]``: the first N training images, the whole test split, statistics of the N."""
    head = load_dataset("digits[:100]")
    assert head.name == "digits[:100]" and len(head.train_y) == 100
    assert torch.equal(head.train_x, digits.train_x[:100])
    assert torch.equal(head.test_y, digits.test_y)
    std, mean = torch.std_mean(digits.train_x[:100], dim=(0, 2, 3), correction=0)
    assert head.mean == pytest.approx(tuple(mean.tolist()))
    assert head.std == pytest.approx(tuple(std.tolist()))
    assert load_dataset("DIGITS[:1347]").name == "digits[:1347]"
    for bad in ("digits[:0]", "digits[:2000]", "digits[:ten]"):
        with pytest.raises(InvalidSettingsError, match="whole number from 1 to the 1347"):
            load_dataset(bad)


def test_digits_is_deterministic(digits: Splits) -> None:
    again = load_dataset("digits")
    assert torch.equal(digits.train_x, again.train_x)
    assert torch.equal(digits.train_y, again.train_y)
    assert torch.equal(digits.test_x, again.test_x)
    assert torch.equal(digits.test_y, again.test_y)


def test_splits_statistics_and_datasets(digits: Splits) -> None:
    flat = digits.train_x.double().flatten()
    assert digits.mean[0] == pytest.approx(float(flat.mean()), rel=1e-5)
    assert digits.std[0] == pytest.approx(float(flat.std(correction=0)), rel=1e-5)
    train, test = digits.train(), digits.test()
    assert isinstance(train, TensorDataset)
    assert len(train) == 1347
    assert len(test) == 450
    x, y = train[0]
    assert x.shape == (1, 8, 8)
    assert int(y) == int(digits.train_y[0])


def test_splits_validates_everything_at_once() -> None:
    with pytest.raises(InvalidSettingsError) as info:
        Splits(
            name="bad",
            train_x=torch.full((3, 1, 2, 2), 2.0),
            train_y=torch.tensor([0, 1, 5]),
            test_x=torch.zeros(2, 3, 2, 2),
            test_y=torch.tensor([0, 1]),
            classes=("a", "b"),
            mean=(0.5,),
            std=(0.0,),
        )
    message = str(info.value)
    assert "must be in [0, 1]" in message
    assert "2 classes" in message
    assert "same (C, H, W)" in message
    assert "must be positive" in message


# ---------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_round_trip(tmp_path: Path, suffix: str) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / f"images{suffix}", images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"images{suffix}", ndim=3), images)
    labels = np.array([3, 1], dtype=np.uint8)
    write_idx(tmp_path / f"labels{suffix}", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / f"labels{suffix}", ndim=1), labels)


def test_read_idx_refuses_wrong_magic(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels.gz", np.array([1, 2], dtype=np.uint8))
    with pytest.raises(InvalidSettingsError, match=r"magic number 2049; expected 2051"):
        read_idx(tmp_path / "labels.gz", ndim=3)
    (tmp_path / "junk").write_bytes(b"\x12\x34\x56\x78rest")
    with pytest.raises(InvalidSettingsError, match="magic number 305419896"):
        read_idx(tmp_path / "junk", ndim=1)


def test_read_idx_refuses_truncated_and_bad_gzip(tmp_path: Path) -> None:
    write_idx(tmp_path / "images", np.zeros((4, 3, 3), dtype=np.uint8))
    data = (tmp_path / "images").read_bytes()
    (tmp_path / "short").write_bytes(data[:-5])
    with pytest.raises(InvalidSettingsError, match=r"shape \(4, 3, 3\).*truncated"):
        read_idx(tmp_path / "short", ndim=3)
    (tmp_path / "broken.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InvalidSettingsError, match="corrupt or truncated"):
        read_idx(tmp_path / "broken.gz", ndim=3)


@pytest.mark.parametrize("layout", ["", "fashion-mnist", "FashionMNIST/raw"])
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_data_dir_layouts(tmp_path: Path, layout: str, gz: bool) -> None:
    arrays = make_idx_folder(tmp_path / layout, gz=gz)
    splits = load_dataset("fashion-mnist", tmp_path)
    assert splits.train_x.shape == (12, 1, 6, 5)
    assert splits.test_x.shape == (5, 1, 6, 5)
    assert splits.classes[0] == "T-shirt/top"
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255
    torch.testing.assert_close(splits.train_x[:, 0], expected)
    assert splits.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert_statistics_match(splits)


def test_mnist_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_idx_folder(tmp_path / "data" / "MNIST" / "raw")
    monkeypatch.setenv(
        "AMNESIAC_DATA", os.pathsep.join([str(tmp_path / "x"), str(tmp_path / "data")])
    )
    splits = load_dataset("mnist")
    assert splits.name == "mnist"
    assert splits.classes == tuple(str(i) for i in range(10))
    assert len(splits.train_y) == 12


def test_idx_files_that_do_not_fit_together(tmp_path: Path) -> None:
    make_idx_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 11], dtype=np.uint8))
    with pytest.raises(InvalidSettingsError) as info:
        load_dataset("mnist", tmp_path)
    assert "5 images but t10k-labels-idx1-ubyte.gz has 3 labels" in str(info.value)
    assert "label 11" in str(info.value)


def test_missing_dataset_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert str(tmp_path / "nowhere" / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message
    assert "--download" in message
    assert isinstance(info.value, FileNotFoundError)


def test_download_uses_torchvision_into_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets

    calls: list[tuple[str, bool, bool]] = []

    class FakeFashionMNIST:  # Writes what torchvision would, without a network.
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            make_idx_folder(Path(root) / "FashionMNIST" / "raw", gz=False)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    splits = load_dataset("fashion-mnist", tmp_path / "dl", download=True)
    assert len(splits.train_y) == 12
    assert calls
    assert all(root == str(tmp_path / "dl") and download for root, _, download in calls)


def test_failed_download_is_dataset_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets

    def offline(root: str, train: bool, download: bool) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetNotFoundError, match="could not download mnist"):
        load_dataset("mnist", tmp_path, download=True)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_real_fashion_mnist_files() -> None:
    splits = load_dataset("fashion-mnist", FASHION_DIR)
    assert splits.train_x.shape == (60000, 1, 28, 28)
    assert splits.test_x.shape == (10000, 1, 28, 28)
    assert splits.train_x.dtype == torch.float32
    assert splits.train_y.dtype == torch.int64
    assert torch.bincount(splits.train_y).tolist() == [6000] * 10
    assert 0.2 < splits.mean[0] < 0.4


# ---------------------------------------------------------------------------------------------
# CIFAR


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar_on_disk_format(tmp_path: Path, name: str, bytes_keys: bool) -> None:
    batches = make_cifar(tmp_path, name, bytes_keys=bytes_keys)
    splits = load_dataset(name, tmp_path)
    n_train = 10 if name == "cifar10" else 2
    assert splits.train_x.shape == (n_train, 3, 32, 32)
    assert splits.test_x.shape == (3, 3, 32, 32)
    assert splits.classes == (
        ("airplane", "automobile", "bird") if name == "cifar10" else ("apple", "bear", "cup")
    )
    first = batches["train"][0]
    data_key = b"data" if bytes_keys else "data"
    labels_key = "labels" if name == "cifar10" else "fine_labels"
    labels_key_typed: Any = labels_key.encode() if bytes_keys else labels_key
    # Rows are channel-major (1024 red, 1024 green, 1024 blue values), so (3, 32, 32) directly.
    expected = torch.from_numpy(first[data_key][0].reshape(3, 32, 32)).float() / 255
    torch.testing.assert_close(splits.train_x[0], expected)
    assert splits.train_y[:2].tolist() == first[labels_key_typed]
    assert_statistics_match(splits)


def test_cifar_folder_given_directly(tmp_path: Path) -> None:
    make_cifar(tmp_path, "cifar10")
    assert len(load_dataset("cifar10", tmp_path / "cifar-10-batches-py").train_y) == 10


def test_cifar_refuses_malicious_pickle(tmp_path: Path) -> None:
    make_cifar(tmp_path, "cifar10")
    marker = tmp_path / "pwned"
    with (tmp_path / "cifar-10-batches-py" / "data_batch_3").open("wb") as handle:
        pickle.dump({b"data": _Exploit(marker), b"labels": [0]}, handle, protocol=2)
    with pytest.raises(AmnesiacError, match=r"refusing to load .*data_batch_3.*system"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_cifar_refuses_codecs_beyond_latin1(tmp_path: Path) -> None:
    make_cifar(tmp_path, "cifar100")
    # A protocol-2 pickle that calls _codecs.encode("x", "rot13"): only latin-1 is allowed.
    payload = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    (tmp_path / "cifar-100-python" / "test").write_bytes(payload)
    with pytest.raises(InvalidSettingsError, match="only \\(str, 'latin1'\\)"):
        load_dataset("cifar100", tmp_path)


def test_cifar_truncated_file(tmp_path: Path) -> None:
    make_cifar(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InvalidSettingsError, match="corrupt or truncated"):
        load_dataset("cifar10", tmp_path)


def test_cifar_wrong_content(tmp_path: Path) -> None:
    make_cifar(tmp_path, "cifar10")
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 10), dtype=np.uint8), b"labels": [0, 9]}, handle)
    with pytest.raises(InvalidSettingsError) as info:
        load_dataset("cifar10", tmp_path)
    assert "expected 3072" in str(info.value)
    assert "labels must be in [0, 2]" in str(info.value)


def test_cifar_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python/train") as info:
        load_dataset("cifar100", tmp_path)
    assert "apt-get" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# folder:PATH


def test_folder_single_is_split_80_20_stratified(tmp_path: Path) -> None:
    for label in ("cat", "dog"):
        for i in range(5):
            write_png(tmp_path / "pets" / label / f"{i}.png", value=40 * i)
    splits = load_dataset(f"folder:{tmp_path / 'pets'}")
    assert splits.classes == ("cat", "dog")
    assert splits.train_x.shape == (8, 3, 4, 6)
    assert splits.test_x.shape == (2, 3, 4, 6)
    assert sorted(splits.test_y.tolist()) == [0, 1]
    again = load_dataset(f"folder:{tmp_path / 'pets'}")
    assert torch.equal(splits.train_x, again.train_x)
    assert torch.equal(splits.test_y, again.test_y)


def test_folder_train_and_val_keep_grayscale(tmp_path: Path) -> None:
    for split, count in (("train", 3), ("val", 1)):
        for label in ("a", "b"):
            for i in range(count):
                write_png(tmp_path / split / label / f"{i}.png", mode="L", value=255)
    splits = load_dataset("folder:" + str(tmp_path))
    assert splits.train_x.shape == (6, 1, 4, 6)
    assert splits.test_x.shape == (2, 1, 4, 6)
    assert float(splits.train_x.max()) == 1.0


def test_folder_relative_to_data_dir(tmp_path: Path) -> None:
    for label in ("a", "b"):
        for i in range(5):
            write_png(tmp_path / "imgs" / label / f"{i}.png")
    assert len(load_dataset("folder:imgs", tmp_path).train_y) == 8


def test_folder_images_of_different_size(tmp_path: Path) -> None:
    for label in ("a", "b"):
        for i in range(5):
            write_png(tmp_path / label / f"{i}.png")
    write_png(tmp_path / "b" / "big.png", size=(9, 9))
    with pytest.raises(InvalidSettingsError, match=r"big\.png is \(3, 9, 9\).*Resize"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_classes_must_match(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "a" / "0.png")
    write_png(tmp_path / "train" / "b" / "0.png")
    write_png(tmp_path / "test" / "a" / "0.png")
    with pytest.raises(InvalidSettingsError, match="differ"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no images found"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    write_png(tmp_path / "tiny" / "a" / "0.png")
    write_png(tmp_path / "tiny" / "b" / "0.png")
    with pytest.raises(InvalidSettingsError, match="cannot split the 2 images"):
        load_dataset(f"folder:{tmp_path / 'tiny'}")


# ---------------------------------------------------------------------------------------------
# as_tensors


class _ListDataset(Dataset):
    def __init__(self, items: list[tuple[Any, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.items[index]


def test_as_tensors_accepts_datasets_and_pairs() -> None:
    x = torch.rand(5, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 1, 0], dtype=torch.int32)
    from_dataset = as_tensors(TensorDataset(x, y))
    from_pair = as_tensors((x.numpy(), y.numpy()))
    from_items = as_tensors(_ListDataset([(x[i], int(y[i])) for i in range(5)]))
    from_subset = as_tensors(Subset(TensorDataset(x, y), [3, 1]))
    for got_x, got_y in (from_dataset, from_pair, from_items):
        assert got_x.dtype == torch.float32
        assert got_y.dtype == torch.int64
        torch.testing.assert_close(got_x, x)
        assert got_y.tolist() == y.tolist()
    assert from_subset[1].tolist() == [1, 1]
    torch.testing.assert_close(from_subset[0], x[[3, 1]])


def test_as_tensors_adds_channel_dimension() -> None:
    x, _ = as_tensors((torch.rand(3, 8, 8), torch.tensor([0, 1, 2])))
    assert x.shape == (3, 1, 8, 8)


def test_as_tensors_reports_every_problem() -> None:
    with pytest.raises(InvalidSettingsError) as info:
        as_tensors((torch.full((3, 1, 2, 2), 255.0), torch.tensor([0.0, 1.0])), name="retain")
    message = str(info.value)
    assert "retain has 3 images but 2 labels" in message
    assert "labels have dtype torch.float32" in message
    assert "must be in [0, 1]" in message
    assert "normalization inside the model" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ((torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64)), "is empty"),
        ((torch.zeros(2, 4), torch.tensor([0, 1])), "expected (N, C, H, W)"),
        ((torch.zeros(2, 1, 2, 2), torch.tensor([0, -1])), "labels contain -1"),
        ((torch.full((1, 1, 2, 2), float("nan")), torch.tensor([0])), "NaN"),
        (TensorDataset(torch.zeros(2, 1, 2, 2)), "expected exactly two"),
        ("images.npy", "expected a torch Dataset"),
        (_ListDataset([(torch.zeros(1, 2, 2), 0.5)]), "expected an integer class index"),
    ],
)
def test_as_tensors_errors(data: Any, expected: str) -> None:
    with pytest.raises(InvalidSettingsError) as info:
        as_tensors(data)
    assert expected in str(info.value)


# ---------------------------------------------------------------------------------------------
# Forget sets: properties


@st.composite
def labels_and_forget(draw: st.DrawFn) -> tuple[torch.Tensor, list[int]]:
    n = draw(st.integers(1, 300))
    labels = torch.tensor(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    forget = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    return labels, forget


@given(labels_and_forget())
def test_forget_and_retain_are_disjoint_and_complete(case: tuple[torch.Tensor, list[int]]) -> None:
    labels, given_forget = case
    n = len(labels)
    forget = parse_forget(given_forget, labels)
    retain = retain_indices(n, forget)
    assert forget.tolist() == given_forget  # Order kept.
    assert forget.dtype == retain.dtype == torch.int64
    assert len(forget) + len(retain) == n
    assert set(forget.tolist()).isdisjoint(retain.tolist())
    assert sorted(forget.tolist() + retain.tolist()) == list(range(n))
    assert retain.tolist() == sorted(retain.tolist())


@given(n=st.integers(1, 500), data=st.data(), seed=st.integers(0, 2**32))
def test_random_spec_is_deterministic_and_in_range(n: int, data: st.DataObject, seed: int) -> None:
    k = data.draw(st.integers(1, n))
    labels = torch.zeros(n, dtype=torch.int64)
    forget = parse_forget(f"random:{k}:{seed}", labels)
    assert len(forget) == k
    assert len(set(forget.tolist())) == k
    assert int(forget.min()) >= 0
    assert int(forget.max()) < n
    assert torch.equal(forget, parse_forget(f"random:{k}:{seed}", labels))
    reference = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]
    assert torch.equal(forget, reference)


def test_random_spec_seed_defaults_to_zero() -> None:
    labels = torch.zeros(100, dtype=torch.int64)
    assert torch.equal(parse_forget("random:10", labels), parse_forget("random:10:0", labels))
    assert not torch.equal(parse_forget("random:10:0", labels), parse_forget("random:10:1", labels))


@given(case=labels_and_forget(), data=st.data())
def test_class_spec_draws_only_that_class(
    case: tuple[torch.Tensor, list[int]], data: st.DataObject
) -> None:
    labels, _ = case
    label = data.draw(st.sampled_from(sorted(set(labels.tolist()))))
    available = int((labels == label).sum())
    k = data.draw(st.integers(1, available))
    forget = parse_forget(f"class:{label}:{k}:3", labels)
    assert len(forget) == k
    assert len(set(forget.tolist())) == k
    assert (labels[forget] == label).all()
    assert torch.equal(forget, parse_forget(f"class:{label}:{k}:3", labels))


@settings(max_examples=30)
@given(labels_and_forget(), st.sampled_from([".txt", ".npy", ".csv"]), st.booleans())
def test_forget_files_round_trip(
    case: tuple[torch.Tensor, list[int]], suffix: str, as_path: bool
) -> None:
    labels, indices = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"forget{suffix}"
        if suffix == ".txt":
            path.write_text("# forget set\n\n" + "\n".join(f"{i}  # row" for i in indices) + "\n")
        elif suffix == ".npy":
            np.save(path, np.array(indices, dtype=np.int64))
        else:
            path.write_text("label,index\n" + "".join(f"x,{i}\n" for i in indices))
        got = parse_forget(path if as_path else str(path), labels)
    assert got.dtype == torch.int64
    assert got.tolist() == indices


@given(labels_and_forget(), st.data())
def test_duplicates_are_named(case: tuple[torch.Tensor, list[int]], data: st.DataObject) -> None:
    labels, indices = case
    repeated = data.draw(st.sampled_from(indices))
    with pytest.raises(InvalidForgetSetError, match=rf"duplicated index: {repeated} \(2 times\)"):
        parse_forget([*indices, repeated], labels)


@given(n=st.integers(1, 1000), extra=st.integers(0, 10**20))
def test_out_of_range_index_is_named(n: int, extra: int) -> None:
    labels = torch.zeros(n, dtype=torch.int64)
    bad = n + extra
    with pytest.raises(InvalidForgetSetError) as info:
        parse_forget(torch.tensor([0, bad]) if bad < 2**63 else [0, bad], labels)
    assert f"forget index {bad} is outside the training set of size {n}" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Forget sets: bad inputs


def test_style_guide_example_message() -> None:
    labels = torch.zeros(60000, dtype=torch.int64)
    with pytest.raises(
        InvalidForgetSetError, match="forget index 60001 is outside the training set of size 60000"
    ):
        parse_forget([1, 60001], labels)


def test_all_problems_are_reported_at_once() -> None:
    labels = torch.zeros(10, dtype=torch.int64)
    with pytest.raises(InvalidForgetSetError) as info:
        parse_forget([1, 1, 12, -3, 2.5, True], labels)
    message = str(info.value)
    assert "element 4: 2.5" in message
    assert "element 5: True" in message
    assert "12, -3" in message
    assert "duplicated index: 1" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ([], "is empty"),
        ("random:0", "K is 0"),
        ("random:-4", "K is -4"),
        ("random:11", "K is 11 but the training set has only 10 examples"),
        ("random:x:1", "K 'x' in 'random:x:1' is not an integer"),
        ("random:3:-1", "SEED is -1"),
        ("random:1:2:3", "expected random:K[:SEED]"),
        ("class:1:5", "K is 5 but class 1 has only 3 examples"),
        ("class:7:1", "class 7 has no training examples; the training labels are 0, 1"),
        ("class:1", "expected class:C:K[:SEED]"),
        ("rnd:3", "malformed forget spec 'rnd:3'"),
        ("missing.txt", "'missing.txt' does not exist"),
        ("missing", "neither a forget spec nor an existing .txt, .npy or .csv file"),
        (torch.tensor([0.0, 1.0]), "dtype torch.float32; they must be integers"),
        (torch.tensor([True, False]), "booleans (a mask?)"),
        (np.zeros((2, 2), dtype=np.int64), "expected a 1-D array"),
        ({1, 2}, "cannot be a set"),
    ],
)
def test_bad_forget_specs(spec: Any, expected: str) -> None:
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 0, 0, 0])
    with pytest.raises(InvalidForgetSetError) as info:
        parse_forget(spec, labels)
    assert expected in str(info.value)


def test_bad_forget_files(tmp_path: Path) -> None:
    labels = torch.zeros(10, dtype=torch.int64)
    cases: dict[str, tuple[str, str]] = {
        "forget.txt": ("3\n4\n1.5\n\n# c\nabc\n", "line 3 of forget.txt: '1.5' is not an integer"),
        "empty.txt": ("# nothing\n\n", "is empty"),
        "noindex.csv": ("id,label\n1,2\n", "needs a header row with an 'index' column"),
        "cells.csv": ("index\n1\n\n2\nfoo\n", "line 5 of cells.csv: 'foo' is not an integer"),
        "forget.json": ("[1, 2]", "has extension '.json'"),
    }
    for file, (content, expected) in cases.items():
        path = tmp_path / file
        path.write_text(content)
        with pytest.raises(InvalidForgetSetError) as info:
            parse_forget(path, labels)
        assert expected in str(info.value), file
    np.save(tmp_path / "float.npy", np.array([1.0, 2.0]))
    with pytest.raises(InvalidForgetSetError, match="dtype float64"):
        parse_forget(tmp_path / "float.npy", labels)
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidForgetSetError, match="without pickle"):
        parse_forget(tmp_path / "objects.npy", labels)
    with pytest.raises(InvalidForgetSetError, match="is a folder"):
        parse_forget(tmp_path, labels)


def test_many_bad_lines_are_summarized(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("\n".join(["x"] * 20))
    with pytest.raises(InvalidForgetSetError, match="and 15 more lines"):
        parse_forget(path, torch.zeros(5, dtype=torch.int64))


def test_retain_indices_validates() -> None:
    assert retain_indices(3, torch.zeros(0, dtype=torch.int64)).tolist() == [0, 1, 2]
    with pytest.raises(InvalidForgetSetError, match="outside the training set of size 3"):
        retain_indices(3, torch.tensor([3]))
    with pytest.raises(InvalidForgetSetError, match="duplicated"):
        retain_indices(3, torch.tensor([1, 1]))
    with pytest.raises(InvalidSettingsError, match="non-negative integer"):
        retain_indices(-1, torch.tensor([0]))


def test_forget_spec_help_lists_every_form() -> None:
    text = forget_spec_help()
    for form in ("random:K[:SEED]", "class:C:K[:SEED]", ".txt", ".npy", ".csv"):
        assert form in text


@pytest.mark.parametrize("module", ["datasets", "forget", "tensors", "__init__"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    name = "amnesiac.data" if module == "__init__" else f"amnesiac.data.{module}"
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
