"""The exceptions of kms_reencrypt, importable from one public module.

They are also importable from ``kms_reencrypt`` itself. See
``kms_reencrypt._exceptions`` for the tree.
"""

from ._exceptions import *  # noqa: F403
from ._exceptions import __all__ as __all__
