"""The danet command: train, eval, predict, attention, export, demo, inspect, convert, explore,
weights.

Each command parses its flags and calls one library function. Bad input ends with a one-line
error that names the culprit and exit status 2 (``--debug`` shows the traceback). Building the
parser loads no torch: the choices come from :mod:`danet.options` and the other light modules,
and each command imports what it runs.

- :mod:`~danet.cli.arguments`: argument types and the flag groups several commands share;
- :mod:`~danet.cli.parser`: ``build_parser`` and each command's parser (``train``'s flags come
  from the recipe's schema in :mod:`~danet.cli.train_flags`);
- :mod:`~danet.cli.preflight`: the checks before a command runs (no torch);
- :mod:`~danet.cli.models`: how a command opens its model (``--checkpoint``, ``--backend``,
  ``--device``);
- :mod:`~danet.cli.commands`: the ``run_<command>`` handlers;
- :mod:`~danet.cli.errors`: the one error line, library names said as flags, warnings on stderr;
- :mod:`~danet.cli.entry`: ``main``.
"""

from danet.cli.arguments import DEFAULT_CHECKPOINT
from danet.cli.commands import (
    COMMANDS,
    calibration_line,
    run_attention,
    run_convert,
    run_demo,
    run_eval,
    run_explore,
    run_export,
    run_inspect,
    run_predict,
    run_train,
    run_weights,
)
from danet.cli.entry import main
from danet.cli.errors import EXPECTED_ERRORS, FLAGS, flag_names, say_library_warnings
from danet.cli.models import backend_of, opened_model, say_device, settings_from, torch_model
from danet.cli.parser import build_parser

__all__ = [
    "COMMANDS",
    "DEFAULT_CHECKPOINT",
    "EXPECTED_ERRORS",
    "FLAGS",
    "backend_of",
    "build_parser",
    "calibration_line",
    "flag_names",
    "main",
    "opened_model",
    "run_attention",
    "run_convert",
    "run_demo",
    "run_eval",
    "run_explore",
    "run_export",
    "run_inspect",
    "run_predict",
    "run_train",
    "run_weights",
    "say_device",
    "say_library_warnings",
    "settings_from",
    "torch_model",
]
