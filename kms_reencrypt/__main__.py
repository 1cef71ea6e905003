"""``python -m kms_reencrypt`` runs the ``kms-reencrypt`` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
