"""Active-learning strategy that serves the unlabelled image the current weights are least sure about."""

from __future__ import annotations

import logging
from typing import Any, Dict

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from lib.scoring.uncertainty import SCORE_KEY, VERSION_KEY
from lib.weights import GCISWeights

logger = logging.getLogger(__name__)


class GCISUncertainty(Strategy):
    """Pick the unlabelled image with the highest ``gcis_uncertainty`` score of the active weights.

    Scores come from the ``gcis_uncertainty`` scoring method (``POST /scoring/gcis_uncertainty``),
    which MONAI Label also runs at start-up and after training unless
    MONAI_LABEL_AUTO_UPDATE_SCORING is false. Images without a score for the active weights
    rank after all scored images, in id order. The response's ``scored`` field reports which case applied.
    """

    def __init__(self, weights: GCISWeights):
        super().__init__("Unlabelled image with the highest gCIS uncertainty (mean sigmoid entropy)")
        self.weights = weights

    def __call__(self, request: Dict[str, Any], datastore: Datastore):
        images = sorted(datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels")))
        if not images:
            return None

        version = self.weights.version()
        scored = {}
        for image_id in images:
            info = datastore.get_image_info(image_id)
            if info.get(VERSION_KEY) == version and SCORE_KEY in info:
                scored[image_id] = float(info[SCORE_KEY])

        if scored:
            image_id = max(scored, key=lambda key: (scored[key], key))
            logger.info("uncertainty strategy picked %s (score %.4f of %d scored images)", image_id, scored[image_id], len(scored))
            return {"id": image_id, SCORE_KEY: scored[image_id], "scored": True}

        logger.warning(
            "no unlabelled image has an uncertainty score for the active weights; serving %s. "
            "Run POST /scoring/gcis_uncertainty to compute the scores", images[0],
        )
        return {"id": images[0], SCORE_KEY: None, "scored": False}
