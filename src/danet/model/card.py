"""Model cards: what a bundled model was trained on and how well it does, read from a file.

Each bundled model's folder holds ``card.json`` beside ``config.json``. ``danet demo``, the
explorer and the README's models table say what they say about a model from it, so no claim
about a model is written in code. The fields:

- ``dataset``: the data set's name (``"CamVid"``);
- ``train_splits``: the splits the weights were trained on (``["train", "val"]``);
- ``recipe``: the recipe and how it departs from the paper, in words;
- ``iterations``: training iterations;
- ``code_version``: the commit the model was trained from;
- ``figures``: measured figures, each ``{"split", "metric", "value", "model", "source"}`` where
  ``model`` is ``"this"`` (these weights) or a sentence naming the other run (the same recipe
  on train only, for a model whose own evaluation split is training data). A figure of these
  weights is held out when its split is not in ``train_splits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import danet.assets as assets
from danet.model.checkpoint import resolve
from danet.utils.textfile import read_json

CARD_NAME = "card.json"
MAX_CARD_BYTES = 1 << 20


@dataclass(frozen=True)
class Figure:
    """One measured figure: ``value`` of ``metric`` on ``split``, of ``model`` ("this": these
    weights; otherwise which run), recorded in ``source``."""

    split: str
    metric: str
    value: float
    model: str
    source: str

    @property
    def of_this_model(self) -> bool:
        """Whether the figure was measured on these weights (not on a sibling run)."""
        return self.model == "this"


@dataclass(frozen=True)
class ModelCard:
    """What a bundled model was trained on, how, and its measured figures."""

    name: str
    dataset: str
    train_splits: tuple[str, ...]
    recipe: str
    iterations: int
    code_version: str
    figures: tuple[Figure, ...]

    def trained_on(self, split: str) -> bool:
        """Whether ``split`` (``"val"``, ...) is training data for this model."""
        return split in self.train_splits

    @property
    def splits_text(self) -> str:
        """The training data in words: ``"CamVid train+val"``, ``"CamVid train only"``."""
        only = " only" if len(self.train_splits) == 1 else ""
        return f"{self.dataset} {'+'.join(self.train_splits)}{only}"

    def held_out(self, figure: Figure) -> bool:
        """Whether ``figure`` is a held-out figure: its split was not trained on by its run."""
        return not figure.of_this_model or not self.trained_on(figure.split)

    def figure_text(self, figure: Figure) -> str:
        """One figure in words, saying whose it is and whether it is held out."""
        what = f"{figure.split} {figure.metric} {figure.value:.2f}"
        if not figure.of_this_model:
            return f"{what} from {figure.model} (held out)"
        if self.trained_on(figure.split):
            return f"{what} (training data: {self.name} trained on {figure.split})"
        return f"{what} (held out)"

    def on_split(self, split: str) -> str:
        """A sentence on whether ``split``'s images are held out for this model, with the
        figure that is held out."""
        data = f"{self.dataset} {split} images"
        if self.trained_on(split):
            held = [f for f in self.figures if self.held_out(f)]
            best = f"; the held-out figure: {self.figure_text(held[0])}" if held else ""
            return (
                f"{self.name} trained on {self.splits_text}, so {data} are training data for "
                f"it{best}"
            )
        own = [f for f in self.figures if f.of_this_model and f.split == split]
        whole = f"; on the whole split: {self.figure_text(own[0])}" if own else ""
        return f"{self.name} trained on {self.splits_text}, so {data} are held out for it{whole}"

    @property
    def summary(self) -> str:
        """One line: the data, the length of training and the figures."""
        figures = "; ".join(self.figure_text(f) for f in self.figures)
        return (
            f"{self.name}: trained on {self.splits_text}, {self.iterations} iterations, code "
            f"{self.code_version}. {figures}"
        )


def _require(data: dict[str, Any], key: str, kind: type, origin: Path) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{origin}: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def read_card(path: str | Path, name: str | None = None) -> ModelCard:
    """Read and check a ``card.json``; a malformed one is a ValueError naming the file and key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model card")
    data = read_json(path, MAX_CARD_BYTES, "model card")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a model card must be a JSON object")
    splits = _require(data, "train_splits", list, path)
    if not splits or not all(isinstance(s, str) and s for s in splits):
        raise ValueError(f"{path}: 'train_splits' must be a non-empty list of split names")
    figures = []
    for item in _require(data, "figures", list, path):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: each of 'figures' must be an object, got {item!r}")
        value = item.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{path}: a figure's 'value' must be a number, got {value!r}")
        figures.append(
            Figure(
                split=_require(item, "split", str, path),
                metric=_require(item, "metric", str, path),
                value=float(value),
                model=_require(item, "model", str, path),
                source=_require(item, "source", str, path),
            )
        )
    iterations = _require(data, "iterations", int, path)
    if iterations < 1:
        raise ValueError(f"{path}: 'iterations' must be >= 1, got {iterations}")
    return ModelCard(
        name=name or path.parent.name,
        dataset=_require(data, "dataset", str, path),
        train_splits=tuple(splits),
        recipe=_require(data, "recipe", str, path),
        iterations=iterations,
        code_version=_require(data, "code_version", str, path),
        figures=tuple(figures),
    )


def model_card(name: str) -> ModelCard | None:
    """The card of the bundled model ``name``, or None when ``name`` is not a bundled model
    with a card (a run folder, a user's model)."""
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        return None
    folder = assets.bundled_model_dir(name)
    try:
        if resolve(name) != folder:  # a model folder of that name in the working directory
            return None
    except FileNotFoundError:
        return None
    path = folder / CARD_NAME
    return read_card(path, name) if path.is_file() else None
