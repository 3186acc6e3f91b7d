"""``python -m danet`` (and ``torchrun -m danet``) runs the CLI."""

import sys

from danet.cli import main

sys.exit(main())
