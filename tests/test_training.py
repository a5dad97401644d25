"""Datalists, the partial-label loss, crops, training resume and few-shot adaptation on the tiny preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gcis.data.datalist import build_datalist, load_datalist
from gcis.training.dataset import CachedCase, CropSampler
from gcis.training.loss import masked_dice_bce

OPENKBP_NAMES = {1: "Brainstem", 2: "SpinalCord", 3: "RightParotid", 4: "LeftParotid", 5: "Esophagus", 6: "Larynx", 7: "Mandible"}


@pytest.fixture(scope="module")
def openkbp_items(shared_data):
    folder = shared_data / "openkbp" / "validation-pats"
    items = build_datalist(folder, folder, OPENKBP_NAMES, "*_ct.nii.gz", "*_oar_label.nii.gz")
    return items


def test_datalist_pairs_openkbp(openkbp_items):
    assert len(openkbp_items) == 33
    assert openkbp_items[0]["labels"]["1"] == "brainstem"


def test_datalist_skips_uncontoured(openkbp_items):
    partial = [item for item in openkbp_items if len(item["annotated"]) < 7]
    assert partial, "some OpenKBP validation cases lack an organ"
    assert all(len(item["labels"]) == 7 for item in partial)


def test_datalist_unknown_task(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"training": [{"image": "a.nii.gz", "label": "b.nii.gz", "labels": {"1": "kidny"}}]}))
    with pytest.raises(ValueError, match="kidny"):
        load_datalist(path)


def test_datalist_missing_section(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"training": []}))
    with pytest.raises(ValueError, match="no section 'validation'"):
        load_datalist(path, "validation")


def test_loss_ignores_unannotated_task():
    logits = torch.zeros(1, 2, 4, 4, 4)
    targets = torch.zeros(1, 2, 4, 4, 4)
    targets[0, 1] = 1.0
    only_first = masked_dice_bce(logits, targets, torch.tensor([[1.0, 0.0]]))
    both = masked_dice_bce(logits, targets, torch.tensor([[1.0, 1.0]]))
    first_alone = masked_dice_bce(logits[:, :1], targets[:, :1], torch.tensor([[1.0]]))
    assert only_first.item() == pytest.approx(first_alone.item())
    assert both.item() != pytest.approx(only_first.item())


def test_loss_nothing_annotated_is_zero():
    loss = masked_dice_bce(torch.zeros(1, 1, 2, 2, 2, requires_grad=True), torch.ones(1, 1, 2, 2, 2), torch.zeros(1, 1))
    assert loss.item() == 0.0


def test_loss_pools_dice_over_batch():
    # Crop 0 contains the organ and crop 1 does not. Confident, correct logits in both
    # give a loss near 0, where a per-crop Dice would score the empty crop apart.
    targets = torch.zeros(2, 1, 8, 8, 8)
    targets[0, 0, :2, :2, :2] = 1.0
    logits = torch.where(targets > 0, 12.0, -12.0)
    loss = masked_dice_bce(logits, targets, torch.ones(2, 1))
    assert loss.item() < 1e-3


def test_loss_masks_unannotated_crop():
    targets = torch.zeros(2, 1, 8, 8, 8)
    targets[0, 0, :2, :2, :2] = 1.0
    logits = torch.where(targets > 0, 12.0, -12.0)
    logits[1] = 12.0
    masked = masked_dice_bce(logits, targets, torch.tensor([[1.0], [0.0]]))
    counted = masked_dice_bce(logits, targets, torch.ones(2, 1))
    assert masked.item() < 1e-3
    assert counted.item() > 1.0


def test_crop_sampler_pads_small_case():
    case = CachedCase("c", np.ones((10, 20, 20), np.float32), np.ones((10, 20, 20), np.int16), {1: "liver"}, ["liver"])
    image, label = CropSampler((32, 32, 32), seed=0).sample(case)
    assert image.shape == (32, 32, 32)
    assert label.shape == (32, 32, 32)
    assert label.sum() == 10 * 20 * 20


def test_crop_sampler_task_weights_favour_a_task():
    label = np.zeros((40, 40, 40), np.int16)
    label[2:6, 2:6, 2:6] = 1
    label[30:34, 30:34, 30:34] = 2
    case = CachedCase("c", np.zeros_like(label, np.float32), label, {1: "larynx", 2: "mandible"}, ["larynx", "mandible"])
    sampler = CropSampler((16, 16, 16), foreground_fraction=1.0, seed=0, task_weights={"larynx": 9.0})
    tasks = [sampler.draw(case)[2] for _ in range(400)]
    assert 0.8 < tasks.count("larynx") / len(tasks) < 0.97

    image, crop_label, task = sampler.draw(case)
    assert (crop_label == case.task_value(task)).any()


def test_crop_sampler_reports_no_task_for_uniform_crops():
    case = CachedCase("c", np.zeros((8, 8, 8), np.float32), np.ones((8, 8, 8), np.int16), {1: "liver"}, ["liver"])
    assert CropSampler((8, 8, 8), foreground_fraction=0.0, seed=0).draw(case)[2] is None


def test_parse_task_weights_names_the_bad_item():
    from gcis.cli.train import parse_task_weights

    assert parse_task_weights(["esophagus=2", "larynx = 1.5"]) == {"esophagus": 2.0, "larynx": 1.5}
    with pytest.raises(SystemExit, match="'esophagus'"):
        parse_task_weights(["esophagus"])
    with pytest.raises(SystemExit, match="'larynx=-1'"):
        parse_task_weights(["larynx=-1"])
    with pytest.raises(SystemExit, match="'larynx=nan'"):
        parse_task_weights(["larynx=nan"])


def write_datalist(path, items_train, items_val):
    path.write_text(json.dumps({"training": items_train, "validation": items_val}))
    return path


def test_trainer_resumes_from_last(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:2], openkbp_items[2:3])
    train, val = load_datalist(datalist, "training"), load_datalist(datalist, "validation")
    settings = TrainingSettings(preset="tiny", epochs=2, steps_per_epoch=1, max_tasks_per_step=2)

    first = GCISTrainer(settings, train, val, tmp_path / "run")
    first.settings.epochs = 1
    first.run()
    assert first.step == 1

    resumed = GCISTrainer(TrainingSettings(preset="tiny", epochs=2, steps_per_epoch=1, max_tasks_per_step=2),
                          train, val, tmp_path / "run", resume=True)
    resumed.run()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert resumed.step == 2
    assert [record["epoch"] for record in history] == [1, 2]


def test_centre_task_decoded_first(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    train = load_datalist(datalist, "training")
    settings = TrainingSettings(
        preset="tiny", batch_size=1, max_tasks_per_step=1, foreground_fraction=1.0,
        task_weights={"esophagus": 1000.0}, centre_task_first=True,
    )
    trainer = GCISTrainer(settings, train, [], tmp_path / "run")
    trainer.build()
    decoded = [trainer.sample_batch()[3] for _ in range(5)]
    assert decoded == [["esophagus"]] * 5

    settings.task_weights = {"appendix": 2.0}
    with pytest.raises(ValueError, match="appendix"):
        GCISTrainer(settings, train, [], tmp_path / "other").build()


def test_finished_run_returns_without_reading_cases(tmp_path, openkbp_items, monkeypatch):
    from gcis.training import trainer as trainer_module
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], openkbp_items[1:2])
    train, val = load_datalist(datalist, "training"), load_datalist(datalist, "validation")
    settings = dict(preset="tiny", epochs=1, steps_per_epoch=1, max_tasks_per_step=2)
    GCISTrainer(TrainingSettings(**settings), train, val, tmp_path / "run").run()
    best = (tmp_path / "run" / "best.pt").read_bytes()
    history = (tmp_path / "run" / "history.json").read_text()

    def no_reading(case, preprocessing):
        raise AssertionError(f"case {case.image} was read by a finished run")

    monkeypatch.setattr(trainer_module, "cache_case", no_reading)
    rerun = GCISTrainer(TrainingSettings(**settings), train, val, tmp_path / "run", resume=True)
    rerun.run()

    assert rerun.finished and rerun.step == 1
    assert (tmp_path / "run" / "best.pt").read_bytes() == best
    assert (tmp_path / "run" / "history.json").read_text() == history


def test_copy_encoder_into_wider_decoder(tiny_checkpoint_file):
    from gcis.checkpoint import load_checkpoint, new_checkpoint
    from gcis.training.trainer import copy_encoder

    source, _ = load_checkpoint(tiny_checkpoint_file)
    widened = new_checkpoint("tiny", source.embeddings, seed=1, decoder_channels=[16, 16, 12, 12, 12, 12, 12], sub_pathways=1)
    copy_encoder(tiny_checkpoint_file, widened, torch.device("cpu"))

    source_encoder = source.model.encoder.state_dict()
    assert all(torch.equal(source_encoder[k], v) for k, v in widened.model.encoder.state_dict().items())
    assert not torch.equal(source.model.stem.state_dict()["conv1.conv.weight"][:8],
                           widened.model.stem.state_dict()["conv1.conv.weight"][:8])


def test_copy_encoder_rejects_other_encoder(tiny_checkpoint_file):
    from gcis.checkpoint import load_checkpoint, new_checkpoint
    from gcis.training.trainer import copy_encoder

    source, _ = load_checkpoint(tiny_checkpoint_file)
    other_depths = new_checkpoint("tiny", source.embeddings, depths=[2, 2, 2, 2])
    with pytest.raises(ValueError, match="depths"):
        copy_encoder(tiny_checkpoint_file, other_depths, torch.device("cpu"))


def test_adapt_leaves_full_model_unchanged(tmp_path, openkbp_items, tiny_checkpoint_file):
    from gcis.checkpoint import load_checkpoint
    from gcis.training.adapt import AdaptSettings, adapt_task

    checkpoint, _ = load_checkpoint(tiny_checkpoint_file)
    before = {k: v.clone() for k, v in checkpoint.model.state_dict().items()}
    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], openkbp_items[1:2])
    train, val = load_datalist(datalist, "training"), load_datalist(datalist, "validation")
    model, report = adapt_task(
        checkpoint, "mandible", checkpoint.embeddings.get("mandible")[0], train, val, AdaptSettings(steps=2, batch_size=1)
    )
    assert report["train_cases"] == 1
    assert report["val_dice_after"] is not None
    assert all(torch.equal(before[k], v) for k, v in checkpoint.model.state_dict().items())
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_bf16_step_keeps_float32_weights(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    settings = TrainingSettings(preset="tiny", epochs=1, steps_per_epoch=1, max_tasks_per_step=2, precision="bf16")
    trainer = GCISTrainer(settings, load_datalist(datalist, "training"), [], tmp_path / "run")
    trainer.build()

    loss = trainer.train_step()

    assert np.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_unknown_precision_rejected(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    trainer = GCISTrainer(TrainingSettings(preset="tiny", precision="fp16"), load_datalist(datalist, "training"), [],
                          tmp_path / "run")

    with pytest.raises(ValueError, match="invalid precision 'fp16'.*fp32, bf16"):
        trainer.build()


def test_non_finite_gradient_step_skipped(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    trainer = GCISTrainer(TrainingSettings(preset="tiny", epochs=1, steps_per_epoch=2, max_tasks_per_step=2),
                          load_datalist(datalist, "training"), [], tmp_path / "run")
    trainer.build()
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    weight = trainer.model.head.generator.weight
    hook = weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))

    trainer.train_step()

    hook.remove()
    assert trainer.skipped_steps == 1
    assert all(torch.equal(before[name], value) for name, value in trainer.model.state_dict().items())


def test_frozen_routes_keep_router_weights(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    settings = TrainingSettings(preset="tiny", epochs=1, steps_per_epoch=2, max_tasks_per_step=2,
                                routing_noise_until=0.0, freeze_routes=True)
    trainer = GCISTrainer(settings, load_datalist(datalist, "training"), [], tmp_path / "run")
    trainer.build()
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}

    trainer.train_step()
    trainer.train_step()

    after = trainer.model.state_dict()
    routers = [name for name in before if ".router." in name]
    assert routers
    assert all(torch.equal(before[name], after[name]) for name in routers)
    assert any(not torch.equal(before[name], after[name]) for name in before if name not in routers)


def test_frozen_routes_reject_routing_noise(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    settings = TrainingSettings(preset="tiny", routing_noise_until=0.5, freeze_routes=True)
    trainer = GCISTrainer(settings, load_datalist(datalist, "training"), [], tmp_path / "run")

    with pytest.raises(ValueError, match="routing-noise-until 0"):
        trainer.build()


def test_widen_decoder_needs_init_weights(tmp_path, openkbp_items):
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    settings = TrainingSettings(preset="tiny", widen_decoder=(32, 24, 16, 16, 16, 8, 8))
    trainer = GCISTrainer(settings, load_datalist(datalist, "training"), [], tmp_path / "run")

    with pytest.raises(ValueError, match="needs init_weights"):
        trainer.build()


def test_widened_fine_tuning_saves_wider_network(tmp_path, openkbp_items, tiny_checkpoint_file):
    from gcis.checkpoint import load_checkpoint
    from gcis.training.trainer import GCISTrainer, TrainingSettings

    datalist = write_datalist(tmp_path / "list.json", openkbp_items[:1], [])
    settings = TrainingSettings(preset="tiny", epochs=1, steps_per_epoch=2, max_tasks_per_step=2,
                                routing_noise_until=0.0, freeze_routes=True, init_weights=str(tiny_checkpoint_file),
                                widen_decoder=(32, 24, 16, 16, 16, 8, 8))

    GCISTrainer(settings, load_datalist(datalist, "training"), [], tmp_path / "run").run()

    checkpoint, state = load_checkpoint(tmp_path / "run" / "last.pt", "cpu")
    assert checkpoint.model.config.decoder_channels == (32, 24, 16, 16, 16, 8, 8)
    assert state["step"] == 2
