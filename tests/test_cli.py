"""The command line: ``pricetune plugins`` and ``pricetune demo``; and that
``import pricetune`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from pricetune.cli import main
from pricetune.demo import interval_coverage


def test_plugins_lists_every_builtin(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    header, *lines = out.strip().splitlines()
    assert header.split()[:4] == ["kind", "name", "distribution", "version"]
    listed = {(line.split()[0], line.split()[1]) for line in lines}
    for kind, names in {
        "backbone": ["minilm", "hf", "lstm", "gru", "none"],
        "head": ["linear", "quantile"],
        "strategy": ["full", "frozen", "layernorm", "lora"],
    }.items():
        for name in names:
            assert (kind, name) in listed


def test_plugins_lists_the_mlp_lstm_gru_and_student_t_heads(capsys):
    assert main(["plugins"]) == 0
    listed = {tuple(line.split()[:2]) for line in capsys.readouterr().out.splitlines()}
    for name in ["mlp", "lstm", "gru", "student_t"]:
        assert ("head", name) in listed


def test_plugins_lists_the_peft_adapter_and_gradual_strategies(capsys):
    assert main(["plugins"]) == 0
    listed = {tuple(line.split()[:2]) for line in capsys.readouterr().out.splitlines()}
    for name in ["adalora", "ia3", "prefix", "adapter", "gradual"]:
        assert ("strategy", name) in listed


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    minilm = next(c for c in data["components"] if c["name"] == "minilm")
    assert minilm["distribution"] == "pricetune"
    assert minilm["class"].endswith("MiniLMBackbone")
    assert isinstance(data["broken"], list)


def test_interval_coverage_counts_actuals_inside():
    index = pd.period_range("2020-01", periods=4, freq="M")
    columns = pd.MultiIndex.from_product([["y"], [0.8], ["lower", "upper"]])
    interval = pd.DataFrame(
        [[0, 2], [0, 2], [0, 2], [0, 2]], index=index, columns=columns
    )
    actual = pd.Series([1.0, 3.0, -1.0, 2.0], index=index)
    assert interval_coverage(actual, interval) == 0.5


def test_demo_quick_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    assert main(["demo", "--quick", "--no-progress", "--output", str(plot)]) == 0
    out = capsys.readouterr().out
    for model in ["pricetune (3 x lstm)", "Naive (no change)", "AutoARIMA"]:
        assert model in out
    assert "MASE" in out and "sMAPE %" in out and "80% coverage" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table_lines = [line for line in out.splitlines() if line.startswith("pricetune (")]
    mase, smape, coverage = (float(v) for v in table_lines[0].split()[-4:-1])
    assert 0 < mase < 20 and 0 < smape < 200 and 0 <= coverage <= 1


def test_the_demo_names_its_model_by_backbone_and_strategy():
    from pricetune import FineTunedPriceForecaster
    from pricetune.demo import _label

    assert _label(FineTunedPriceForecaster()) == "3 x lstm"
    assert _label(FineTunedPriceForecaster(n_ensemble=1)) == "lstm"
    lora = FineTunedPriceForecaster(backbone="minilm", strategy="lora", n_ensemble=1)
    assert _label(lora) == "minilm + lora"


def test_import_pricetune_does_not_import_torch():
    code = (
        "import sys, pricetune, pricetune.datasets, pricetune.plugins; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'sktime') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_unknown_command_fails():
    with pytest.raises(SystemExit):
        main(["fly"])
