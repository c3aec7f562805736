import dataclasses

import pytest

from classifier.training import hyperparameters as H
from scripts import REPO_ROOT, hyperparameter_docs


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


def test_every_hyperparameter_is_in_one_docs_table_with_its_meaning():
    listed = [name for tables in hyperparameter_docs.TABLES.values() for names in tables.values() for name in names]
    assert sorted(listed) == sorted(H.SPECS)  # each once
    assert not [name for name, spec in H.SPECS.items() if not spec.help or not spec.rule], "help and rule for each"


def test_the_docs_tables_are_what_specs_give():
    stale = [path for path, (text, new) in hyperparameter_docs.updated_pages().items() if text != new]
    assert not stale, (f"{', '.join(str(path.relative_to(REPO_ROOT)) for path in stale)}: the hyperparameter "
                       f"table differs from SPECS; run `make docs`")


def test_make_docs_rewrites_only_the_table_and_check_names_the_fix(tmp_path, monkeypatch, capsys):
    for page in hyperparameter_docs.TABLES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((REPO_ROOT / page).read_text())
    monkeypatch.setitem(H.SPECS, "dropout", dataclasses.replace(H.SPECS["dropout"], help="a new meaning"))
    page = tmp_path / "docs" / "training.md"
    before = page.read_text()
    assert hyperparameter_docs.main(["--check"], root=tmp_path) == 1
    assert "docs/training.md: the hyperparameter table differs from SPECS; run `make docs`" in capsys.readouterr().err
    assert page.read_text() == before  # --check writes nothing
    assert hyperparameter_docs.main([], root=tmp_path) == 0
    after = page.read_text()
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert changed == ["| `dropout` | `0.5` | >= 0 and < 1 | a new meaning |"]
    assert len(after.splitlines()) == len(before.splitlines())
    assert hyperparameter_docs.main(["--check"], root=tmp_path) == 0


def test_a_missing_marker_is_named():
    with pytest.raises(ValueError, match="hyperparameters:training end"):
        hyperparameter_docs.rewrite("x\n" + hyperparameter_docs.begin_marker("training") + "\n", "training", ["lr"])
