"""Package discovery. Metadata and dependencies live in pyproject.toml.

The installer's source folder is `installer/`, shipped as `altkraft_installer` so that it
does not shadow the `installer` package on PyPI.
"""
from setuptools import find_packages, setup

installer_packages = [
    "altkraft_installer" + name[len("installer"):]
    for name in find_packages(include=["installer", "installer.*"])
]

setup(
    packages=find_packages(include=["altkraft_onprem", "altkraft_onprem.*"]) + installer_packages,
    package_dir={"altkraft_installer": "installer"},
)
