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
    # systemd/ (the unit templates the installer renders) travels inside the installer package.
    packages=find_packages(include=["altkraft_onprem", "altkraft_onprem.*"]) + installer_packages
    + ["altkraft_installer.systemd"],
    package_dir={"altkraft_installer": "installer", "altkraft_installer.systemd": "systemd"},
)
