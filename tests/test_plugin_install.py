"""The plugins under plugins/ install the way a user installs them:
``pip install plugins/<name>`` into a fresh environment makes their
components usable by name, with no other step.

The fresh environment is a new venv that sees this environment's packages
(pricetune, torch, transformers) through a ``.pth`` file, so nothing is
downloaded: pip installs the plugins into it offline (``--no-deps
--no-build-isolation``; setuptools comes from this environment). Then a
subprocess in that venv lists the components (``pricetune plugins --json``)
and fits forecasters that name them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import runpy
import site
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = {
    "pricetune-example": {"example-mlp", "example-mean-pool", "example-head-only"},
    "pricetune-tstransformers": {
        "patchtst",
        "patchtsmixer",
        "timesfm",
        "chronos",
        "chronos-bolt",
    },
}


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("setuptools") is None,
        reason="building the plugins offline needs setuptools here",
    ),
    pytest.mark.skipif(
        any(_installed(name) for name in PLUGINS),
        reason="the plugins are installed here already (tox -e plugins): that "
        "environment is itself the fresh install",
    ),
]


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A new venv with the plugins pip-installed into it; returns its python."""
    root = tmp_path_factory.mktemp("fresh-venv")
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root)
    python = root / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parents = [*site.getsitepackages(), site.getusersitepackages()]
    # addsitedir also runs this environment's .pth files (editable installs)
    lines = [f"import site; site.addsitedir({path!r})" for path in parents]
    Path(purelib, "_pricetune_parent_env.pth").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)  # the plugins must come from the install
    installer = runpy.run_path(str(ROOT / "plugins" / "install.py"))
    assert set(installer["PACKAGES"]) == set(PLUGINS)
    installer["install"](
        ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"],
        general=["--python", str(python)],
        env=env,
    )
    return python, env


def _run(fresh_env, code: str) -> str:
    python, env = fresh_env
    result = subprocess.run(
        [str(python), "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        cwd=fresh_env[0].parent,  # not the repository: no source tree on the path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_installed_plugins_are_listed_by_pricetune_plugins(fresh_env):
    output = _run(
        fresh_env,
        "import sys; from pricetune.cli import main; "
        "sys.exit(main(['plugins', '--json']))",
    )
    listed = json.loads(output)
    assert listed["broken"] == []
    for distribution, names in PLUGINS.items():
        rows = [r for r in listed["components"] if r["distribution"] == distribution]
        assert {row["name"] for row in rows} == names
        assert {row["version"] for row in rows} == {"0.1.0"}
        # the code comes from the installed copy, not from plugins/ here
    locations = _run(
        fresh_env,
        """
        import pricetune_example, pricetune_tstransformers
        print(pricetune_example.__file__)
        print(pricetune_tstransformers.__file__)
        """,
    )
    for location in locations.split():
        assert "site-packages" in location and str(ROOT / "plugins") not in location


def test_a_forecaster_fits_with_the_installed_components_by_name(fresh_env):
    output = _run(
        fresh_env,
        """
        import numpy as np
        from pricetune import FineTunedPriceForecaster
        from pricetune.datasets import load_brent

        y = load_brent("monthly")
        for params in [
            dict(backbone="example-mlp", head="example-mean-pool",
                 strategy="example-head-only"),
            dict(backbone="patchtst", strategy="layernorm", head="quantile",
                 backbone_kwargs={"d_model": 16, "num_attention_heads": 2}),
        ]:
            forecaster = FineTunedPriceForecaster(
                **params, context_length=16, patch_length=4, max_epochs=1,
                n_ensemble=1, random_state=0, verbose=0,
            ).fit(y, fh=[1, 2, 3])
            assert np.isfinite(forecaster.predict().to_numpy()).all()
            print(type(forecaster.model_.backbone).__module__)
        """,
    )
    assert output.split() == [
        "pricetune_example.components",
        "pricetune_tstransformers.backbones",
    ]
