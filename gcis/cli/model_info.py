"""`gcis model-info`: parameter counts of a network size preset."""

from __future__ import annotations

import json

from gcis.checkpoint import count_parameters
from gcis.network import NUM_AP_MODULES, GCISNet, load_preset, preset_names
from gcis.prompts import DEFAULT_TEXT_ENCODER, TextEncoder


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("model-info", help="print parameter counts of a network preset")
    parser.add_argument("--preset", default="paper", choices=preset_names(), help="network size preset")
    parser.add_argument(
        "--text-encoder",
        default=DEFAULT_TEXT_ENCODER,
        help="local Hugging Face text model folder, or the default packaged encoder",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(run=run)


def describe(preset: str, text_encoder: str) -> dict:
    """Return the parameter counts of one preset with the given text encoder."""
    encoder = TextEncoder(text_encoder)
    config = load_preset(preset, prompt_dim=encoder.dim)
    model = GCISNet(config)

    ap_params = [count_parameters(ap) for ap in model.ap_modules]
    pathway_params = [count_parameters(ap.pathways[0]) for ap in model.ap_modules]
    router_params = [count_parameters(ap.router) for ap in model.ap_modules]
    encoder_params = count_parameters(model.encoder)
    decoder_params = count_parameters(model) - encoder_params
    shared = count_parameters(model.stem) + count_parameters(model.deconvs)
    head_per_task = model.head.generator.out_features
    return {
        "preset": preset,
        "config": config.to_dict(),
        "encoder_params": encoder_params,
        "decoder_params": decoder_params,
        "ap_modules": NUM_AP_MODULES,
        "sub_pathways": config.sub_pathways,
        "ap_module_params": ap_params,
        "sub_pathway_params": pathway_params,
        "router_params": router_params,
        "stem_and_deconv_params": shared,
        "head_generator_params": count_parameters(model.head),
        "total_params": count_parameters(model),
        "task_model_params": encoder_params + shared + sum(pathway_params) + head_per_task,
        "text_encoder": {"name": encoder.name, "params": encoder.num_parameters(), "dim": encoder.dim},
    }


def run(args) -> int:
    info = describe(args.preset, args.text_encoder)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"preset {info['preset']}: {info['config'].get('description', '')}")
    print(f"  image encoder (3D Swin): {info['encoder_params']:>12,}")
    print(f"  decoder (all AP modules, stem, deconvolutions, head): {info['decoder_params']:>12,}")
    for k, (ap, pathway) in enumerate(zip(info["ap_module_params"], info["sub_pathway_params"]), start=1):
        print(f"    AP module {k}: {ap:>12,}  ({info['sub_pathways']} sub-pathways of {pathway:,})")
    print(f"  full network: {info['total_params']:>12,}")
    print(f"  one pruned task network: {info['task_model_params']:>12,}")
    text = info["text_encoder"]
    print(f"  text encoder {text['name']}: {text['params']:>12,} (embedding dim {text['dim']})")
    return 0
