"""Package discovery: every ``statarb_kit`` package found on disk, plus the shipped notebooks
(``notebooks/`` installed as ``statarb_kit.notebooks``). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["statarb_kit", "statarb_kit.*"]), "statarb_kit.notebooks"],
      package_dir={"statarb_kit.notebooks": "notebooks"})
