import pytest

from classifier.training import hyperparameters as H


def test_strings_are_parsed_with_types():
    hp = H.parse({"lr": "1e-3", "freeze_backbone": "False", "augment": "True", "batch_size": "64.0",
                  "num_workers": "auto"})
    assert hp.lr == pytest.approx(0.001) and isinstance(hp.lr, float)
    assert hp.freeze_backbone is False and hp.augment is True
    assert hp.batch_size == 64 and isinstance(hp.batch_size, int)
    assert hp.num_workers == "auto"
    assert hp.model_name == "resnet50" and hp.pretrained is True  # defaults fill the rest


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(H.HyperparameterError) as error:
        H.parse({"batch-size": "32"})
    assert "batch-size" in str(error.value) and "batch_size" in str(error.value) and "lr" in str(error.value)


def test_sagemaker_keys_are_ignored():
    hp = H.parse({"_tuning_objective_metric": "valid_loss", "sagemaker_program": "train.py", "lr": "0.1"})
    assert hp.lr == 0.1 and "sagemaker_program" not in hp


@pytest.mark.parametrize("name,value", [("lr", "-1"), ("batch_size", "0"), ("epochs", "abc"), ("epochs", "2.5"),
                                        ("freeze_backbone", "maybe"), ("optimizer", "rmsprop"), ("lr", "nan"),
                                        ("model_name", "vgg16"), ("label_smoothing", "1"), ("crop_scale", "0"),
                                        ("crop_scale", "1.5")])
def test_bad_values_are_named(name, value):
    with pytest.raises(H.HyperparameterError) as error:
        H.parse({name: value})
    assert f"{name}={value!r}" in str(error.value)


def test_toolkit_argv_is_parsed_strictly():
    hp = H.parse_args(["--augment", "False", "--epochs", "3", "--lr=0.01"])
    assert hp.augment is False and hp.epochs == 3 and hp.lr == 0.01
    with pytest.raises(H.HyperparameterError, match="no value"):
        H.parse_args(["--epochs"])
    with pytest.raises(H.HyperparameterError, match="unknown"):
        H.parse_args(["--epoch", "3"])


def test_every_hyperparameter_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name in H.SPECS if f"`{name}`" not in readme]
    assert not missing, f"README lacks {missing}"
