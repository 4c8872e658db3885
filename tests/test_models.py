"""The architecture registry: every model honours the fixed interface on 1- and 3-channel inputs of 8-32 px."""

import pytest
import torch

from opc_core.models import MODELS, count_parameters, create_model, list_models

SHAPES = [(1, 8), (1, 28), (3, 32)]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("channels,size", SHAPES)
def test_interface(name, channels, size):
    torch.manual_seed(0)
    model = create_model(name, channels, 7, size).eval()
    x = torch.randn(3, channels, size, size)
    f = model.features(x)
    assert f.shape == (3, model.feature_dim)
    logits = model(x)
    assert logits.shape == (3, 7)
    torch.testing.assert_close(model.head(f), logits)
    blocks = model.features_at(x)
    assert list(blocks)[-2:] == ["features", "logits"]
    assert set(model.block_names) | {"logits"} == set(blocks)
    for name_, t in blocks.items():
        assert t.dim() == 2 and t.shape[0] == 3, name_
    torch.testing.assert_close(blocks["features"], f)


def test_registry_lists_required_models():
    assert {"cnn_small", "resnet18", "vit_tiny"} <= set(list_models())


def test_cnn_small_is_about_100k_parameters():
    n = count_parameters(create_model("cnn_small", 1, 10, 28))
    assert 80_000 <= n <= 130_000


def test_unknown_and_duplicate_names():
    with pytest.raises(KeyError, match="cnn_small"):
        create_model("nope", 1, 10, 28)
    with pytest.raises(ValueError):
        MODELS.add("cnn_small", MODELS.get("cnn_small"))


@pytest.mark.parametrize("kwargs", [dict(in_channels=2), dict(image_size=4), dict(num_classes=1)])
def test_bad_shapes_are_refused(kwargs):
    args = dict(in_channels=1, num_classes=10, image_size=28) | kwargs
    with pytest.raises(ValueError):
        create_model("cnn_small", **args)


def test_features_at_selected_and_unknown():
    model = create_model("cnn_small", 1, 10, 8).eval()
    x = torch.randn(2, 1, 8, 8)
    out = model.features_at(x, ["block2"], pooled=False)
    assert list(out) == ["block2"] and out["block2"].dim() == 4
    with pytest.raises(KeyError, match="block1"):
        model.features_at(x, ["nope"])
