"""`gcis-label`: the MONAI Label 0.8.5 server command for the gCIS app, runnable under pydicom 3.

``gcis-label start_server`` takes the same arguments as ``monailabel start_server`` and
differs in three ways:

- It installs :mod:`gcis.compat.pydicom3` before MONAI Label is imported. Plain
  ``monailabel start_server`` cannot start under pydicom 3, because uvicorn imports
  ``monailabel.app``, and with it pydicom-seg, before the app's ``main.py`` runs.
- It serves ``gcis.label_server:app`` instead of ``monailabel.app:app``. That attribute
  installs the same alias and then returns MONAI Label's FastAPI app, so uvicorn worker
  processes (``--workers N``) and the app's training and scoring subprocesses get the fix too.
- ``--host`` defaults to 127.0.0.1 instead of 0.0.0.0, so the server is reachable only from
  this machine unless the user names another address.

Only the ``start_server`` sub-command is offered; MONAI Label's ``apps``, ``datasets`` and
``plugins`` sub-commands download from the internet and are not needed here.
"""

from __future__ import annotations

import ipaddress
import logging
import sys

from gcis.compat.pydicom3 import install_pydicom_seg_support

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
UVICORN_APP = f"{__name__}:app"


def __getattr__(name: str):
    """Return MONAI Label's FastAPI app as ``app``, importing it only after the pydicom alias exists."""
    if name == "app":
        install_pydicom_seg_support()
        from monailabel.app import app as fastapi_app

        return fastapi_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_loopback(host: str) -> bool:
    """Return True for addresses that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_main():
    """Return MONAI Label's command-line ``Main`` with this project's defaults and program name."""
    install_pydicom_seg_support()
    from monailabel.main import Main

    class LabelServerMain(Main):
        def args_start_server(self, parser):
            super().args_start_server(parser)
            parser.set_defaults(host=DEFAULT_HOST, uvicorn_app=UVICORN_APP)

        def args_parser(self, name="gcis-label"):
            return super().args_parser(name)

        def action_start_server(self, args):
            if not is_loopback(args.host):
                logger.warning(
                    "serving on %s makes the server reachable from other machines; turn on MONAI Label's "
                    "authentication (MONAI_LABEL_AUTH_ENABLE=true) first, as docs/label.md describes",
                    args.host,
                )
            super().action_start_server(args)

    return LabelServerMain(actions=("start_server",))


def main() -> None:
    """Run ``gcis-label`` with the arguments of ``sys.argv``."""
    build_main().run()


if __name__ == "__main__":
    sys.exit(main())
