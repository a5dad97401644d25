"""The gCIS network: Swin encoder, prompt-routed Automatic Pathway decoder, pruning."""

from gcis.network.config import NUM_AP_MODULES, NetworkConfig, load_preset, preset_names
from gcis.network.gcis_net import GCISNet
from gcis.network.pruning import TaskSpecificNet, prune
from gcis.network.routing import Routes, balance_loss, routing_entropy

__all__ = [
    "NUM_AP_MODULES",
    "GCISNet",
    "NetworkConfig",
    "Routes",
    "TaskSpecificNet",
    "balance_loss",
    "load_preset",
    "preset_names",
    "prune",
    "routing_entropy",
]
