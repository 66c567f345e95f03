"""Legacy import path of anchorscad-utils' process manager, served by procexec.

``anchorscad_lib`` and ``anchorscad_lib.utils`` are namespace packages here (no
``__init__.py``), so this module can sit beside the other anchorscad-utils modules.
Everything is ``procexec.compat``'s: see docs/migrating.md.
"""

from procexec import compat as _compat
from procexec.compat import *  # noqa: F403

__all__ = _compat.__all__
__getattr__ = _compat.__getattr__  # DEFAULT_MAX_JOBS, computed on first use
