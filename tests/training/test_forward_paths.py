"""The fast CPU forward (channels_last, a few images per backbone call, threads beside the decoders:
classifier/runtime.py) gives the same features and predictions as one plain contiguous call.

Tolerance: the largest feature difference stays below 1e-4 of the features' largest magnitude (float32
kernels of another memory format and batch size sum in another order; measured ~2e-6)."""
import pytest
import torch

from classifier import runtime
from classifier.model import build_model, get_architecture
from classifier.observers import Observers
from classifier.training import feature_cache
from classifier.training.data import ImageDataset, scan_channel
from classifier.training.loop import Precision, evaluate

TOLERANCE = 1e-4


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 3 images, so that a test batch of 10 goes through the backbone in 4 calls."""
    monkeypatch.setattr(runtime, "forward_chunk", lambda image_size: 3)


def reference_features(model, images):
    """Today's path before this change: the contiguous model, the whole batch in one backbone call."""
    with torch.inference_mode():
        return model.backbone(model.normalize(images.contiguous()))


def close(a, b):
    return (a - b).abs().max().item() <= TOLERANCE * b.abs().max().item()


@pytest.mark.slow
def test_feature_pass_gives_the_features_of_one_plain_call(image_set, small_chunks):
    channel = scan_channel("valid", image_set / "valid")
    preprocessing = get_architecture("efficientnet_lite0").preprocessing(64)
    reference_model = build_model("efficientnet_lite0", len(channel.classes)).eval()
    images = torch.stack([ImageDataset(channel, preprocessing)[i][0] for i in range(len(channel))])
    expected = reference_features(reference_model, images)
    model = build_model("efficientnet_lite0", len(channel.classes))
    calls = []
    original = model.backbone.forward
    model.backbone.forward = lambda x: calls.append(len(x)) or original(x)
    features = feature_cache.compute_features(model, channel, preprocessing, batch_size=10, workers=0,
                                              device=torch.device("cpu"), progress=lambda line: None)
    assert features.shape == expected.shape
    assert close(features, expected)
    assert max(calls) == 3  # it did run in chunks
    assert model.backbone.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_evaluation_of_an_unfrozen_model_predicts_as_one_plain_call(image_set, small_chunks):
    channel = scan_channel("valid", image_set / "valid")
    preprocessing = get_architecture("efficientnet_lite0").preprocessing(64)
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", len(channel.classes), unfreeze_stages="all").eval()
    dataset = ImageDataset(channel, preprocessing)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor(channel.labels())
    with torch.inference_mode():
        expected = model.head(reference_features(model, images))
    loader = [(images[i:i + 10], labels[i:i + 10]) for i in range(0, len(images), 10)]
    result = evaluate(model.to(memory_format=torch.channels_last), loader, Precision(torch.device("cpu")),
                      Observers([]), channels_last=True)
    assert torch.equal(result.predictions, expected.argmax(dim=1))
    expected_loss = torch.nn.functional.nll_loss(expected, labels).item()
    assert abs(result.loss - expected_loss) <= TOLERANCE * max(1.0, abs(expected_loss))


@pytest.mark.slow
def test_training_mode_and_hooked_backbones_run_the_whole_batch_at_once(small_chunks):
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    model = build_model("resnet18", 3, pretrained=False, unfreeze_stages=1)
    calls = []
    model.backbone.register_forward_pre_hook(lambda module, inputs: calls.append(len(inputs[0])))
    model.train()(images)  # BatchNorm of the trained stage on batch statistics: never split
    assert calls == [10]
    calls.clear()
    with torch.inference_mode():
        model.eval()(images)  # a hook (the debugger's) on the backbone saves one tensor per call: not split
    assert calls == [10]
    calls.clear()
    frozen = build_model("resnet18", 3, pretrained=False)
    original = frozen.backbone.forward
    frozen.backbone.forward = lambda x: calls.append(len(x)) or original(x)
    frozen.train()(images)  # a frozen backbone is in eval mode even while the head trains: split
    assert calls == [3, 3, 3, 1]


def test_chunks_scale_with_the_image_area_and_the_forward_uses_every_core():
    assert runtime.forward_chunk(224) == runtime.CPU_CHUNK_IMAGES_AT_224
    assert runtime.forward_chunk(448) == max(1, round(runtime.CPU_CHUNK_IMAGES_AT_224 / 4))
    assert runtime.forward_chunk(112) == 4 * runtime.CPU_CHUNK_IMAGES_AT_224
    assert runtime.forward_chunk(1024) == 1
    assert runtime.forward_threads(cpus=2) == 2 and runtime.forward_threads() == runtime.cpu_count()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with runtime.threads_while_decoding(torch.device("cpu")):
        assert torch.get_num_threads() == runtime.cpu_count()
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)


def test_decoded_batches_decode_on_every_core_in_order_and_pass_errors_on():
    import threading

    decoders = set()

    def decode(index):
        decoders.add(threading.current_thread().name)
        return torch.full((3, 2, 2), index, dtype=torch.uint8)

    batches = list(runtime.decoded_batches(10, decode, batch_size=4, threads=2))
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert torch.equal(torch.cat(batches)[:, 0, 0, 0], torch.arange(10, dtype=torch.uint8))
    assert all(name.startswith("decode") for name in decoders)  # not the caller's thread

    def broken(index):
        if index == 6:
            raise ValueError("image 6 is corrupt")
        return decode(index)

    with pytest.raises(ValueError, match="image 6"):
        list(runtime.decoded_batches(10, broken, batch_size=4, threads=2))


@pytest.mark.slow
def test_a_trial_on_cached_features_decodes_only_the_images_missing_from_the_cache(opt_ml, image_set, tmp_path,
                                                                                  monkeypatch):
    """Trial start-up: the images whose features are cached were decoded by the pass that computed them."""
    from classifier.training import data
    from classifier.training.main import main
    from helpers import FAST_HP, args

    train = opt_ml.copy("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    preprocessing = get_architecture("efficientnet_lite0").preprocessing(int(FAST_HP["image_size"]))
    model = build_model("efficientnet_lite0", 4)
    channels = [scan_channel("train", train), scan_channel("valid", image_set / "valid")]
    key = feature_cache.model_key("efficientnet_lite0", runtime_weights(), preprocessing)
    feature_cache.build(tmp_path / "cache", key, channels, model, preprocessing, 16, 0, torch.device("cpu"))
    opt_ml.link("feature_cache", tmp_path / "cache")
    newcomer = train / sorted(p.name for p in train.iterdir())[0] / "new.jpg"
    newcomer.write_bytes(next((image_set / "test").rglob("*.jpg")).read_bytes())  # not in the cache
    checked = []
    original = data._check_image
    monkeypatch.setattr(data, "_check_image", lambda path: checked.append(path) or original(path))
    assert main(args({**FAST_HP, "epochs": "1"})) == 0, opt_ml.failure()
    assert checked == [newcomer]


def runtime_weights():
    from classifier.model import find_pretrained_weights

    return find_pretrained_weights(get_architecture("efficientnet_lite0"))
