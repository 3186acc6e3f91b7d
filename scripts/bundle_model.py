"""Ship a trained run inside the package: fp16 safetensors + config.json under src/danet/models/NAME.

The model card (card.json) beside them is written by hand: the script says so.

Usage: python scripts/bundle_model.py RUN NAME
"""

from __future__ import annotations

import sys

import danet
from danet.assets import MODELS_DIR as BUNDLED_DIR
from danet.model.card import CARD_NAME


def main(run: str, name: str) -> None:
    """Load the run's model and write it, in half precision, as bundled model ``name``."""
    model = danet.load(run)
    folder = danet.save_model(model, BUNDLED_DIR / name, half=True)
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    print(f"{folder}: {size:.1f} MiB, config {model.config}")
    if size > 10:
        raise SystemExit(f"{folder} is {size:.1f} MiB, over the 10 MiB budget")
    card = folder / CARD_NAME
    if card.is_file():
        print(f"now edit {card}: it still describes the model that was there before")
    else:
        print(f"now write {card} (data, splits, recipe, iterations, code version, figures)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
