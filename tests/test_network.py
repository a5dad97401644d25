"""Network structure, routing, multi-task decoding and pruning on the tiny preset."""

from __future__ import annotations

import pytest
import torch

from gcis.network import NUM_AP_MODULES, GCISNet, balance_loss, load_preset, prune
from gcis.network.gcis_net import build_encoder


def random_prompts(count: int, dim: int = 16, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(count, dim, generator=generator), dim=-1)


def random_image(size: int = 32, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 1, size, size, size, generator=generator)


def test_paper_encoder_parameter_count():
    encoder = build_encoder(load_preset("paper"))
    count = sum(p.numel() for p in encoder.parameters())
    assert abs(count - 8.06e6) / 8.06e6 < 0.01


def test_paper_preset_shape():
    config = load_preset("paper")
    assert config.sub_pathways == 6
    assert len(config.decoder_channels) == NUM_AP_MODULES
    assert config.roi_size == (128, 128, 128)


def test_model_has_seven_ap_modules(tiny_net):
    assert len(tiny_net.ap_modules) == 7
    assert all(len(ap.pathways) == 6 for ap in tiny_net.ap_modules)


def test_output_shape(tiny_net):
    with torch.inference_mode():
        logits = tiny_net(random_image(), random_prompts(3))
    assert logits.shape == (1, 3, 32, 32, 32)


def test_routing_deterministic_at_inference(tiny_net):
    prompts = random_prompts(8)
    first = tiny_net.route(prompts).indices
    second = tiny_net.route(prompts).indices
    assert torch.equal(first, second)
    assert first.shape == (8, NUM_AP_MODULES)


def test_inference_output_repeatable(tiny_net):
    image, prompts = random_image(), random_prompts(2)
    with torch.inference_mode():
        first = tiny_net(image, prompts)
        second = tiny_net(image, prompts)
    assert torch.equal(first, second)


def test_multi_task_equals_one_at_a_time(tiny_net):
    image, prompts = random_image(), random_prompts(6)
    with torch.inference_mode():
        together = tiny_net(image, prompts)
        separate = torch.cat([tiny_net(image, prompts[i : i + 1]) for i in range(6)], dim=1)
    assert (together - separate).abs().max().item() < 1e-4


def test_shared_prefixes_run_once(tiny_net):
    prompts = torch.cat([random_prompts(1)] * 3 + [random_prompts(1, seed=7)])
    routes = tiny_net.route(prompts)
    calls = []
    hooks = [
        pathway.register_forward_hook(lambda module, inputs, output: calls.append(module))
        for ap in tiny_net.ap_modules
        for pathway in ap.pathways
    ]
    with torch.inference_mode():
        tiny_net(random_image(), prompts)
    for hook in hooks:
        hook.remove()
    distinct = sum(len({routes.prefix(t, k + 1) for t in range(4)}) for k in range(NUM_AP_MODULES))
    assert len(calls) == distinct
    assert len(calls) < 4 * NUM_AP_MODULES


def test_pruned_equals_full(tiny_net):
    image, prompt = random_image(), random_prompts(1)[0]
    pruned = prune(tiny_net, prompt)
    with torch.inference_mode():
        full = tiny_net(image, prompt.unsqueeze(0))
        single = pruned(image)
    assert (full - single).abs().max().item() < 1e-5


def test_pruned_is_smaller(tiny_net):
    pruned = prune(tiny_net, random_prompts(1)[0])
    full_count = sum(p.numel() for p in tiny_net.parameters())
    pruned_count = sum(p.numel() for p in pruned.parameters())
    assert pruned_count < full_count
    assert len(pruned.pathways) == NUM_AP_MODULES


def test_training_gates_carry_router_gradient(tiny_config):
    torch.manual_seed(0)
    net = GCISNet(tiny_config).train()
    logits = net(random_image(), random_prompts(2))
    logits.mean().backward()
    router_grads = [ap.router.linear.weight.grad for ap in net.ap_modules]
    assert all(grad is not None for grad in router_grads)
    assert any(grad.abs().sum() > 0 for grad in router_grads)


def test_training_gates_are_exactly_one(tiny_config):
    net = GCISNet(tiny_config).train()
    routes = net.route(random_prompts(5))
    assert torch.equal(routes.gates, torch.ones_like(routes.gates))


def test_small_ap_inputs_stay_float32():
    from gcis.network.pathways import FULL_PRECISION_VOXELS, AutomaticPathwayModule

    module = AutomaticPathwayModule(in_channels=8, out_channels=8, sub_pathways=2, prompt_dim=4)
    small = torch.randn(1, 8, 2, 2, 2)
    large = torch.randn(1, 8, 8, 8, 8)
    assert small.shape[2:].numel() < FULL_PRECISION_VOXELS <= large.shape[2:].numel()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module.run_pathway(0, small).dtype == torch.float32
        assert module.run_pathway(0, large).dtype == torch.bfloat16
    assert module.run_pathway(0, large).dtype == torch.float32


def test_routing_logits_stay_float32(tiny_net):
    prompts = random_prompts(3)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = tiny_net.routing_logits(prompts)

    assert logits.dtype == torch.float32
    assert torch.equal(logits, tiny_net.routing_logits(prompts))


def test_balance_loss_range():
    uniform = torch.eye(6) * 10
    collapsed = torch.zeros(6, 6)
    collapsed[:, 0] = 10
    assert balance_loss(uniform).item() == pytest.approx(1.0, abs=1e-2)
    assert balance_loss(collapsed).item() == pytest.approx(6.0, abs=1e-2)


def test_image_size_not_multiple_of_32(tiny_net):
    with pytest.raises(ValueError, match="multiple of 32"):
        tiny_net(torch.zeros(1, 1, 30, 32, 32), random_prompts(1))


def test_prompt_dim_mismatch(tiny_net):
    with pytest.raises(ValueError, match="prompt embeddings of shape"):
        tiny_net(random_image(), torch.zeros(1, 5))


def test_invalid_config_value():
    with pytest.raises(ValueError, match="feature_size=10"):
        load_preset("tiny", feature_size=10)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        load_preset("huge")


def test_unknown_config_key():
    with pytest.raises(ValueError, match="unknown network config keys"):
        load_preset("tiny", colour="red")


# Decoder widening

WIDER_TINY = (32, 24, 16, 16, 16, 8, 8)
FULL_RESOLUTION_WIDER_TINY = (16, 12, 8, 8, 8, 16, 16)


@pytest.mark.parametrize("channels", [WIDER_TINY, FULL_RESOLUTION_WIDER_TINY])
def test_widened_decoder_keeps_logits(tiny_net, channels):
    from gcis.network.widening import widen_decoder

    image, prompts = random_image(), random_prompts(3)
    wider = widen_decoder(tiny_net, channels).eval()

    with torch.inference_mode():
        before = tiny_net(image, prompts)
        after = wider(image, prompts)
    assert wider.config.decoder_channels == channels
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def test_widened_decoder_keeps_routes(tiny_net):
    from gcis.network.widening import widen_decoder

    prompts = random_prompts(8)
    wider = widen_decoder(tiny_net, WIDER_TINY).eval()

    assert torch.equal(tiny_net.route(prompts).indices, wider.route(prompts).indices)
    assert sum(p.numel() for p in wider.parameters()) > sum(p.numel() for p in tiny_net.parameters())


def test_widening_noise_separates_copies(tiny_net):
    from gcis.network.widening import widen_decoder

    wider = widen_decoder(tiny_net, WIDER_TINY, noise=0.05, seed=3)
    weight = wider.ap_modules[0].pathways[0][0].conv1.conv.weight

    # Channels 0 and 1 are the two copies of the trained channel 0.
    assert not torch.equal(weight[0], weight[1])
    assert torch.allclose(weight[0], weight[1], atol=0.5 * float(weight.std()))


def test_widening_rejects_width_not_multiple(tiny_net):
    from gcis.network.widening import widen_decoder

    with pytest.raises(ValueError, match="AP module 2 is invalid: it must be a multiple"):
        widen_decoder(tiny_net, (16, 18, 8, 8, 8, 8, 8))


def test_widening_rejects_changed_residual_layers(tiny_net):
    from gcis.network.widening import widen_decoder

    # The seventh module's input would become 16 channels wide and its output 8, which adds a projection.
    with pytest.raises(ValueError, match="change the layers of the network"):
        widen_decoder(tiny_net, (16, 12, 8, 8, 8, 16, 8))
