"""Every reader on a tiny synthetic tree of its layout, the errors on bad trees, and the recipes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from danet.assets import CONFIGS_DIR, bundled_configs
from danet.data import DATASETS, DataError, build_dataset
from danet.data.base import IGNORE_INDEX, SegmentationDataset
from danet.data.classes import color_map
from danet.training.config import TrainConfig

H, W = 16, 24
CONFIGS = CONFIGS_DIR  # inside the package, so that recipes travel with the wheel


def write_image(path: Path, size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(path.name)).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_mask(path: Path, values: Sequence[int], mode: str = "L") -> np.ndarray:
    """A mask whose pixels cycle through ``values``; 'P' saves a palette PNG like VOC's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.resize(np.asarray(values, np.uint8), (H, W))
    image = Image.fromarray(labels, "L")
    if mode == "P":
        image = Image.fromarray(labels, "P")
        image.putpalette([c for rgb in color_map(256) for c in rgb])
    image.save(path)
    return labels.astype(np.int64)


def expected(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    return np.vectorize(lambda v: mapping.get(int(v), v))(labels)


def check_meta(dataset: SegmentationDataset, num_classes: int) -> None:
    assert dataset.num_classes == num_classes
    assert len(dataset.class_names) == len(set(dataset.class_names)) == num_classes
    assert len(dataset.palette) == num_classes
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in dataset.palette)


def check_item(dataset: SegmentationDataset, index: int, mask: np.ndarray) -> None:
    image, got = dataset[index]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, mask)


# --- the layouts -----------------------------------------------------------------------------


def cityscapes_tree(root: Path) -> dict[str, np.ndarray]:
    masks = {}
    for split, city, frame in [
        ("train", "aachen", "aachen_000000_000019"),
        ("train", "aachen", "aachen_000001_000019"),
        ("train", "bremen", "bremen_000000_000019"),
        ("val", "lindau", "lindau_000000_000019"),
    ]:
        write_image(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png")
        gt = root / "gtFine" / split / city
        masks[frame] = write_mask(gt / f"{frame}_gtFine_labelIds.png", [7, 0, 26, 33, 1, 24])
        write_mask(gt / f"{frame}_gtFine_instanceIds.png", [100, 0])  # not read: wrong suffix
    return masks


def test_cityscapes(tmp_path: Path) -> None:
    masks = cityscapes_tree(tmp_path)
    train, val = (
        build_dataset("cityscapes", tmp_path, "train"),
        DATASETS["cityscapes"](tmp_path, "val"),
    )
    assert (len(train), len(val)) == (3, 1)
    check_meta(train, 19)
    assert train.palette[0] == (128, 64, 128) and train.class_names[13] == "car"
    assert train.pairs[2][0].name == "bremen_000000_000019_leftImg8bit.png"
    assert all(mask.name.endswith("_gtFine_labelIds.png") for _, mask in train.pairs)
    mapping = {7: 0, 0: 255, 26: 13, 33: 18, 1: 255, 24: 11}
    check_item(train, 0, expected(masks["aachen_000000_000019"], mapping))


def test_cityscapes_rejects_label_ids_above_33(tmp_path: Path) -> None:
    cityscapes_tree(tmp_path)
    path = tmp_path / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"
    write_mask(path, [7, 40])
    with pytest.raises(DataError, match=r"\[40\]") as err:
        build_dataset("cityscapes", tmp_path, "val")[0]
    assert str(path) in str(err.value)


def voc_tree(root: Path) -> dict[str, np.ndarray]:
    ids = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"]}
    ids["trainaug"] = [*ids["train"], "2008_000002"]
    masks = {}
    for split, names in ids.items():
        lists = root / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True, exist_ok=True)
        (lists / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
        for name in names:
            write_image(root / "JPEGImages" / f"{name}.jpg")
            if split != "trainaug":
                masks[name] = write_mask(
                    root / "SegmentationClass" / f"{name}.png", [0, 15, 255, 20], mode="P"
                )
            masks[f"aug/{name}"] = write_mask(root / "SegmentationClassAug" / f"{name}.png", [1, 2])
    return masks


def test_voc(tmp_path: Path) -> None:
    masks = voc_tree(tmp_path)
    train, aug = build_dataset("voc", tmp_path, "train"), build_dataset("voc", tmp_path, "trainaug")
    assert (len(train), len(build_dataset("voc", tmp_path, "val")), len(aug)) == (2, 1, 3)
    check_meta(train, 21)
    assert train.palette[15] == (192, 128, 128) and train.class_names[15] == "person"
    check_item(train, 0, masks["2007_000032"])  # palette indices are the labels, 255 kept
    assert aug.pairs[0][1].parent.name == "SegmentationClassAug"
    check_item(aug, 2, masks["aug/2008_000002"])


def test_voc_reads_deeplab_style_list_lines(tmp_path: Path) -> None:
    voc_tree(tmp_path)
    (tmp_path / "ImageSets/Segmentation/trainaug.txt").write_text(
        "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n\n"
    )
    assert len(build_dataset("voc", tmp_path, "trainaug")) == 1


def test_voc_rejects_labels_outside_classes(tmp_path: Path) -> None:
    voc_tree(tmp_path)
    write_mask(tmp_path / "SegmentationClass/2007_000033.png", [0, 30], mode="P")
    with pytest.raises(DataError, match=r"label values \[30\]") as err:
        build_dataset("voc", tmp_path, "val")[0]
    assert "2007_000033.png" in str(err.value) and "\n" not in str(err.value)


def test_context(tmp_path: Path) -> None:
    lists = tmp_path / "ImageSets" / "SegmentationContext"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2008_000002\n2008_000003\n")
    (lists / "val.txt").write_text("2008_000008\n")
    masks = {}
    for name in ("2008_000002", "2008_000003", "2008_000008"):
        write_image(tmp_path / "JPEGImages" / f"{name}.jpg")
        masks[name] = write_mask(
            tmp_path / "SegmentationClassContext" / f"{name}.png", [0, 59, 255, 7]
        )
    train = build_dataset("context", tmp_path, "train")
    assert (len(train), len(build_dataset("context", tmp_path, "val"))) == (2, 1)
    check_meta(train, 60)
    assert train.class_names[0] == "background"
    check_item(train, 1, masks["2008_000003"])
    write_mask(tmp_path / "SegmentationClassContext/2008_000008.png", [0, 60])
    with pytest.raises(DataError, match=r"\[60\]"):
        build_dataset("context", tmp_path, "val")[0]


def test_ade20k(tmp_path: Path) -> None:
    masks = {}
    for folder, names in {"training": ["00000001", "00000002"], "validation": ["00000001"]}.items():
        for n in names:
            write_image(tmp_path / "images" / folder / f"ADE_{folder}_{n}.jpg")
            masks[f"{folder}/{n}"] = write_mask(
                tmp_path / "annotations" / folder / f"ADE_{folder}_{n}.png", [0, 1, 150, 12]
            )
    train, val = (
        build_dataset("ade20k", tmp_path, "train"),
        build_dataset("ade20k", tmp_path, "val"),
    )
    assert (len(train), len(val)) == (2, 1)
    check_meta(train, 150)
    assert train.palette[0] == (120, 120, 120) and train.class_names[0] == "wall"
    check_item(train, 0, expected(masks["training/00000001"], {0: 255, 1: 0, 150: 149, 12: 11}))
    write_mask(tmp_path / "annotations/validation/ADE_validation_00000001.png", [1, 151])
    with pytest.raises(DataError, match=r"\[151\]"):
        val[0]


def test_cocostuff(tmp_path: Path) -> None:
    masks = {}
    for folder, names in {
        "train2017": ["000000000009", "000000000025"],
        "val2017": ["139"],
    }.items():
        for n in names:
            write_image(tmp_path / "images" / folder / f"{n}.jpg")
            masks[n] = write_mask(
                tmp_path / "annotations" / folder / f"{n}_labelTrainIds.png", [0, 170, 255]
            )
            write_mask(tmp_path / "annotations" / folder / f"{n}.png", [250])  # raw: not read
    train = build_dataset("cocostuff", tmp_path, "train")
    assert (len(train), len(build_dataset("cocostuff", tmp_path, "val"))) == (2, 1)
    check_meta(train, 171)
    assert train.class_names[0] == "person" and train.class_names[-1] == "wood"
    check_item(train, 1, masks["000000000025"])
    write_mask(tmp_path / "annotations/val2017/139_labelTrainIds.png", [171])
    with pytest.raises(DataError, match=r"\[171\]"):
        build_dataset("cocostuff", tmp_path, "val")[0]


def folder_tree(
    root: Path, classes: str = "road 128 64 128\nsky\n\ntraffic light 250 170 30\n"
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(classes)
    for split, names in {"train": ["a", "b"], "val": ["c"]}.items():
        for n in names:
            write_image(root / "images" / split / f"{n}.jpg")
            write_mask(root / "masks" / split / f"{n}.png", [0, 1, 2, 255])


def test_folder(tmp_path: Path) -> None:
    folder_tree(tmp_path)
    train = build_dataset("folder", tmp_path, "train")
    assert (len(train), len(build_dataset("folder", tmp_path, "val"))) == (2, 1)
    check_meta(train, 3)
    assert train.class_names == ("road", "sky", "traffic light")
    assert train.palette == ((128, 64, 128), color_map(3)[1], (250, 170, 30))
    check_item(train, 0, np.resize(np.array([0, 1, 2, 255]), (H, W)))
    write_mask(tmp_path / "masks/val/c.png", [0, 3])
    with pytest.raises(DataError, match=r"\[3\] are outside the 3 classes") as err:
        build_dataset("folder", tmp_path, "val")[0]
    assert "c.png" in str(err.value)


@pytest.mark.parametrize(
    ("classes", "message"),
    [("", "no class names"), ("a\nb\na\n", "appears twice"), ("road 1 2 300\n", "not 0-255")],
)
def test_folder_bad_classes_file(tmp_path: Path, classes: str, message: str) -> None:
    folder_tree(tmp_path, classes)
    with pytest.raises(DataError, match=message) as err:
        build_dataset("folder", tmp_path, "train")
    assert "classes.txt" in str(err.value)


def test_camvid_on_a_synthetic_segnet_tree(tmp_path: Path) -> None:
    for split, names in {
        "train": ["0001TP_006690", "0001TP_006720"],
        "val": ["0016E5_07959"],
    }.items():
        for n in names:
            write_image(tmp_path / split / f"{n}.png")
            write_mask(tmp_path / f"{split}annot" / f"{n}.png", [0, 10, 11, 3])
    train = build_dataset("camvid", tmp_path, "train")
    assert (len(train), len(build_dataset("camvid", tmp_path, "trainval"))) == (2, 3)
    check_meta(train, 11)
    check_item(train, 1, np.resize(np.array([0, 10, IGNORE_INDEX, 3]), (H, W)))


# --- bad trees --------------------------------------------------------------------------------


def test_image_and_mask_of_different_sizes(tmp_path: Path) -> None:
    folder_tree(tmp_path)
    write_image(tmp_path / "images/val/c.jpg", size=(H + 1, W))
    with pytest.raises(DataError, match="mask is 24x16 but image c.jpg is 24x17") as err:
        build_dataset("folder", tmp_path, "val")[0]
    assert str(tmp_path / "masks/val/c.png") in str(err.value)


def test_empty_split(tmp_path: Path) -> None:
    folder_tree(tmp_path)
    (tmp_path / "images" / "test").mkdir()
    (tmp_path / "masks" / "test").mkdir()
    with pytest.raises(DataError, match="split 'test' is empty"):
        build_dataset("folder", tmp_path, "test")
    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("\n\n")
    with pytest.raises(DataError, match="val.txt: split list is empty"):
        build_dataset("voc", tmp_path, "val")


def test_missing_split(tmp_path: Path) -> None:
    folder_tree(tmp_path)
    with pytest.raises(DataError, match="folder not found") as err:
        build_dataset("folder", tmp_path, "test")
    assert str(tmp_path / "images" / "test") in str(err.value)
    voc_tree(tmp_path / "voc")
    with pytest.raises(DataError, match=r"test.txt: split list not found; .*'train', 'trainaug'"):
        build_dataset("voc", tmp_path / "voc", "test")
    with pytest.raises(DataError, match="dataset folder not found"):
        build_dataset("ade20k", tmp_path / "nowhere", "train")
    with pytest.raises(DataError, match="unknown ADE20K split 'test'; valid: train, val"):
        build_dataset("ade20k", tmp_path, "test")


def test_image_without_mask_and_listed_file_missing(tmp_path: Path) -> None:
    folder_tree(tmp_path)
    write_image(tmp_path / "images/train/orphan.jpg")
    with pytest.raises(DataError, match="orphan.jpg: no label mask orphan.*"):
        build_dataset("folder", tmp_path, "train")
    voc_tree(tmp_path / "voc")
    (tmp_path / "voc/JPEGImages/2007_000033.jpg").unlink()
    with pytest.raises(DataError, match=r"2007_000033.jpg: missing \(listed as '2007_000033' in"):
        build_dataset("voc", tmp_path / "voc", "val")


def test_two_files_for_one_sample(tmp_path: Path) -> None:
    folder_tree(tmp_path)
    write_image(tmp_path / "images/val/c.png")
    with pytest.raises(DataError, match="same name"):
        build_dataset("folder", tmp_path, "val")


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(DataError) as err:
        build_dataset("kitti", "/tmp", "train")
    message = str(err.value)
    assert "'kitti'" in message
    for name in ("ade20k", "camvid", "cityscapes", "cocostuff", "context", "folder", "voc"):
        assert name in message


# --- recipes ----------------------------------------------------------------------------------


def test_every_recipe_loads() -> None:
    files = sorted(CONFIGS.glob("*.yaml"))
    names = {f.stem for f in files}
    assert {"camvid", "cityscapes", "voc", "context", "ade20k", "cocostuff"} <= names
    for path in files:
        cfg = TrainConfig.from_file(path)
        assert cfg.dataset in DATASETS, path
        assert cfg.iters is not None or cfg.epochs is not None, f"{path}: no schedule"


def test_recipe_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "camvid" in bundled_configs()
    assert TrainConfig.from_file("camvid") == TrainConfig.from_file(CONFIGS / "camvid.yaml")
    (tmp_path / "mine.yaml").write_text("dataset: voc\niters: 3\n")
    assert TrainConfig.from_file("mine.yaml").iters == 3  # a path still works
    with pytest.raises(FileNotFoundError, match="not a bundled recipe.*camvid"):
        TrainConfig.from_file("kitti")


def test_cityscapes_recipe_is_the_papers() -> None:
    cfg = TrainConfig.from_file(CONFIGS / "cityscapes.yaml")
    assert cfg.backbone.startswith("resnet101") and cfg.output_stride == 8
    assert (cfg.crop_size, cfg.batch_size, cfg.epochs, cfg.lr) == ([768, 768], 8, 240, 0.003)
    assert cfg.input_size == [1024, 2048] and cfg.scale_range == [0.5, 2.0]
