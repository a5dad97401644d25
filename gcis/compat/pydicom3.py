"""Let pydicom-seg 0.4.1 import under pydicom 3.

pydicom-seg 0.4.1 (the last release) imports ``pydicom._storage_sopclass_uids``, a private
module of pydicom 2 that pydicom 3.0 removed: its storage SOP class UIDs now live in
``pydicom.uid``. MONAI Label 0.8.5 imports pydicom-seg at start-up (through
``monailabel.datastore.utils.convert``), so without this alias MONAI Label fails with
``ModuleNotFoundError: No module named 'pydicom._storage_sopclass_uids'``.

:func:`install_pydicom_seg_support` registers an alias module that contains every UID constant
of ``pydicom.uid``. It must run before anything imports pydicom-seg; the ``gcis-label``
command (``gcis.label_server``) and the MONAI Label app's ``main.py`` call it first.
With pydicom 2, where the real module exists, it does nothing.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types

logger = logging.getLogger(__name__)

REMOVED_MODULE = "pydicom._storage_sopclass_uids"


def install_pydicom_seg_support() -> bool:
    """Register ``pydicom._storage_sopclass_uids`` as an alias of pydicom 3's UID constants.

    Returns True when the alias was installed by this call, False when the module already
    exists (pydicom 2, or an earlier call). Safe to call any number of times.
    """
    if REMOVED_MODULE in sys.modules:
        return False
    import pydicom
    import pydicom.uid

    if importlib.util.find_spec(REMOVED_MODULE) is not None:
        return False

    alias = types.ModuleType(REMOVED_MODULE, "Alias of the UID constants of pydicom.uid (installed by gcis.compat).")
    for name, value in vars(pydicom.uid).items():
        if isinstance(value, pydicom.uid.UID):
            setattr(alias, name, value)
    sys.modules[REMOVED_MODULE] = alias
    pydicom._storage_sopclass_uids = alias
    logger.debug("installed %s as an alias of pydicom.uid for pydicom-seg", REMOVED_MODULE)
    return True
