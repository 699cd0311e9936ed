"""pip-install the plugin packages in this folder, as a user would.

    python plugins/install.py [pip install options...]

pip builds a local directory in place, and setuptools leaves an
``*.egg-info`` folder in its ``src/``, which registers the plugin's entry
point for anything that later puts ``src/`` on ``sys.path`` (pricetune's own
test run does). So each package is copied to a temporary folder first and
installed from there: the same ``pip install <directory>`` a user runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES = sorted(
    path.name for path in HERE.iterdir() if (path / "pyproject.toml").is_file()
)


def install(pip_options: list[str], general=(), env: dict | None = None) -> None:
    """``pip [general] install [pip_options] <clean copies of the packages>``."""
    with tempfile.TemporaryDirectory(prefix="pricetune-plugins-") as folder:
        copies = []
        for name in PACKAGES:
            copy = Path(folder) / name
            shutil.copytree(
                HERE / name,
                copy,
                ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"),
            )
            copies.append(str(copy))
        command = [sys.executable, "-m", "pip", *general, "install"]
        subprocess.run([*command, *pip_options, *copies], check=True, env=env)


if __name__ == "__main__":
    install(sys.argv[1:])
