"""``python -m danet.cli`` (and ``torchrun -m danet.cli``) runs the CLI, as ``python -m danet``."""

import sys

from danet.cli.entry import main

sys.exit(main())
