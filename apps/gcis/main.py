"""MONAI Label app for gCIS: automatic and prompted CT segmentation, fine-tuning and active learning.

Start it with ``gcis-label start_server --app apps/gcis --studies DIR --conf models gcis``
(docs/label.md lists every ``--conf`` key). The app reads local folders of NIfTI/NRRD CTs and
DICOMweb servers, and never downloads anything: it uses no MONAI bundle loader, model-zoo
listing or dcmqi download.
"""

from gcis.compat.pydicom3 import install_pydicom_seg_support

# MONAI Label imports pydicom-seg, which needs this under pydicom 3. The gcis-label server has
# installed it already; training and scoring subprocesses import this file before MONAI Label.
install_pydicom_seg_support()

import logging  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Dict  # noqa: E402

from dicomweb_client.session_utils import create_session_from_user_pass  # noqa: E402
from fastapi import HTTPException  # noqa: E402
from monailabel.config import settings  # noqa: E402
from monailabel.datastore.dicom import DICOMwebClientX  # noqa: E402
from monailabel.interfaces.app import MONAILabelApp  # noqa: E402
from monailabel.interfaces.config import TaskConfig  # noqa: E402
from monailabel.interfaces.datastore import Datastore  # noqa: E402
from monailabel.interfaces.tasks.infer_v2 import InferTask  # noqa: E402
from monailabel.interfaces.tasks.scoring import ScoringMethod  # noqa: E402
from monailabel.interfaces.tasks.strategy import Strategy  # noqa: E402
from monailabel.interfaces.tasks.train import TrainTask  # noqa: E402
from monailabel.tasks.activelearning.first import First  # noqa: E402
from monailabel.tasks.activelearning.random import Random  # noqa: E402

import gcis  # noqa: E402
from gcis.catalogue import load_catalogue  # noqa: E402
from lib.configs.gcis import GCIS  # noqa: E402
from lib.datastores.dicomweb import GCISDicomWebDatastore  # noqa: E402
from lib.datastores.local import GCISLocalDatastore  # noqa: E402

logger = logging.getLogger(__name__)

# Model name (the --conf models value) -> its configuration class.
MODEL_CONFIGS = {"gcis": GCIS}


class GCISApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]):
        names = [name.strip() for name in conf.get("models", "all").split(",") if name.strip()]
        unknown = [name for name in names if name != "all" and name not in MODEL_CONFIGS]
        if unknown or not names:
            raise ValueError(f"--conf models {conf.get('models')!r} names unknown models {unknown}; "
                             f"available: all, {', '.join(MODEL_CONFIGS)}")

        self.models: Dict[str, TaskConfig] = {}
        for name, config_class in MODEL_CONFIGS.items():
            if name in names or "all" in names:
                config = config_class()
                config.init(name, os.path.join(app_dir, "model"), conf, None)
                self.models[name] = config
        self.catalogue = load_catalogue()

        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="gCIS",
            description="General CT segmentation: one prompt-routed network for many structures",
            version=gcis.__version__,
        )

    # Datastores

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            self.studies = self.studies.rstrip("/").strip()
            return self.init_remote_datastore()
        logger.info("local datastore %s", self.studies)
        return GCISLocalDatastore(
            self.studies,
            extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
            catalogue=load_catalogue(),
        )

    def init_remote_datastore(self) -> Datastore:
        """Connect to a DICOMweb server, without MONAI Label's dcmqi download."""
        kind = settings.MONAI_LABEL_DATASTORE.lower()
        if kind not in ("", "dicom", "dicomweb"):
            raise ValueError(f"MONAI_LABEL_DATASTORE={kind!r} is not supported by this app; use a folder or DICOMweb")
        username = settings.MONAI_LABEL_DICOMWEB_USERNAME or settings.MONAI_LABEL_DATASTORE_USERNAME
        password = settings.MONAI_LABEL_DICOMWEB_PASSWORD or settings.MONAI_LABEL_DATASTORE_PASSWORD
        session = create_session_from_user_pass(username, password) if username and password else None
        client = DICOMwebClientX(
            url=self.studies,
            session=session,
            qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
            wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
            stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX,
        )
        cache_path = (settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or settings.MONAI_LABEL_DATASTORE_CACHE_PATH).strip()
        logger.info("DICOMweb datastore %s (cache %s)", self.studies, cache_path or "~/.cache/monailabel/dicom")
        return GCISDicomWebDatastore(
            client=client,
            search_filter=settings.MONAI_LABEL_DICOMWEB_SEARCH_FILTER,
            cache_path=cache_path or None,
            fetch_by_frame=settings.MONAI_LABEL_DICOMWEB_FETCH_BY_FRAME,
            catalogue=load_catalogue(),
        )

    # Tasks

    def init_infers(self) -> Dict[str, InferTask]:
        infers: Dict[str, InferTask] = {}
        for config in self.models.values():
            infers.update(config.infer())
        logger.info("infer tasks: %s", ", ".join(infers))
        return infers

    def init_trainers(self) -> Dict[str, TrainTask]:
        return {name: config.trainer() for name, config in self.models.items()}

    def init_strategies(self) -> Dict[str, Strategy]:
        strategies: Dict[str, Strategy] = {"random": Random(), "first": First()}
        for config in self.models.values():
            strategies.update(config.strategy())
        return strategies

    def init_scoring_methods(self) -> Dict[str, ScoringMethod]:
        methods: Dict[str, ScoringMethod] = {}
        for config in self.models.values():
            methods.update(config.scoring_method())
        return methods

    # Requests: unknown names get 404 and image paths are checked. MONAI Label itself would respond
    # with 500, or read any file on the server that a request names.

    def infer(self, request, datastore=None):
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(status_code=404, detail=f"model {model!r} not found; available: {', '.join(self._infers)}")
        request = dict(request)
        image = request.get("image")
        if isinstance(image, str):
            request["image"] = self._checked_image(image, datastore or self.datastore())
        return super().infer(request, datastore)

    def _checked_image(self, image: str, datastore: Datastore) -> str:
        """Return the image to pass on: a datastore id, or a file that the server itself saved."""
        if not image:
            raise HTTPException(status_code=400, detail="no image given; pass a datastore image id")
        if os.path.isabs(image) or os.sep in image:
            if self._is_server_file(image):
                return image
            raise HTTPException(status_code=400, detail=f"image {image!r} is a path; pass an image id of the datastore")

        uri = datastore.get_image_uri(image)
        if not uri:
            raise HTTPException(status_code=404, detail=f"image {image!r} not found in the datastore")
        # An id that is also a path relative to the server's working folder would be read as that path.
        return uri if os.path.exists(image) else image

    def _is_server_file(self, path: str) -> bool:
        """Return True for an upload that the /infer endpoint saved, or an image of an infer session."""
        resolved = Path(path).resolve()
        if not resolved.is_file():
            return False
        if resolved.parent == Path(tempfile.gettempdir()).resolve():
            return True
        return self._sessions is not None and Path(self._sessions.store_path).resolve() in resolved.parents

    def train(self, request):
        model = request.get("model")
        if model not in self._trainers:
            raise HTTPException(status_code=404, detail=f"train task {model!r} not found; available: {', '.join(self._trainers)}")
        return super().train(request)

    def next_sample(self, request):
        strategy = request.get("strategy") or "random"
        if strategy not in self._strategies:
            raise HTTPException(
                status_code=404, detail=f"strategy {strategy!r} not found; available: {', '.join(self._strategies)}"
            )
        return super().next_sample(request)

    def scoring(self, request, datastore=None):
        method = request.get("method")
        if method not in self._scoring_methods:
            raise HTTPException(
                status_code=404, detail=f"scoring method {method!r} not found; available: {', '.join(self._scoring_methods)}"
            )
        return super().scoring(request, datastore)
