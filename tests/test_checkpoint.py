import pytest
import torch
from torch import nn

from compress.checkpoint import load_checkpoint, save_checkpoint
from compress.models import build_model


def _shrink(model):
    """Hand-prune VGG's conv1_1 to 3 filters (and conv1_2's inputs): a model in non-default shapes."""
    c1, c2 = model.conv1_1, model.conv1_2
    new1 = nn.Conv2d(3, 3, 3, padding=1)
    new1.weight.data, new1.bias.data = c1.weight.data[:3].clone(), c1.bias.data[:3].clone()
    new2 = nn.Conv2d(3, c2.out_channels, 3, padding=1)
    new2.weight.data, new2.bias.data = c2.weight.data[:, :3].clone(), c2.bias.data.clone()
    model.conv1_1, model.conv1_2 = new1, new2
    return model


def test_round_trip_of_a_pruned_shape_model(tmp_path):
    model = _shrink(build_model("vgg16", width=0.25)).eval()
    path = save_checkpoint(model, tmp_path / "m.pt", "vgg16", 0.25, meta={"round": 2})
    torch.load(path, weights_only=True)  # loads without pickled code
    loaded, meta = load_checkpoint(path, "vgg16")
    x = torch.randn(4, 3, 32, 32)
    assert loaded.conv1_1.out_channels == 3 and meta == {"round": 2}
    assert torch.equal(loaded.eval()(x), model(x))


def test_wrong_architecture_is_a_clear_error(tmp_path):
    path = save_checkpoint(build_model("vgg16", width=0.125), tmp_path / "v.pt", "vgg16", 0.125)
    with pytest.raises(ValueError, match="holds a 'vgg16' model, not 'resnet18'"):
        load_checkpoint(path, "resnet18")


def test_corrupt_or_missing_checkpoint(tmp_path):
    path = save_checkpoint(build_model("resnet18", width=0.125), tmp_path / "r.pt", "resnet18", 0.125)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    save_checkpoint(build_model("resnet18", width=0.125), tmp_path / "r.pt", "resnet18", 0.125)
    assert [p.name for p in tmp_path.iterdir()] == ["r.pt"]
