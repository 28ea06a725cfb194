"""Package discovery. Metadata and dependencies live in pyproject.toml.

The installer's source folder is `installer/`, shipped as `altkraft_installer` so that it
does not shadow the `installer` package on PyPI.
"""
import warnings

from setuptools import find_namespace_packages, find_packages, setup

# An editable install (`pip install -e .`, what `make run` does) of packages that are not all
# importable from one folder goes through an import hook, and setuptools announces that with a
# warning on every install ("Editable installation. Please be careful with folders in your
# working directory..."). Ours are apart on purpose (installer/ ships as altkraft_installer,
# systemd/ inside it), the hook is the right mechanism for them, and there is nothing for the
# person installing to do: the notice is not shown.
warnings.filterwarnings("ignore", message="Editable installation")

installer_packages = [
    "altkraft_installer" + name[len("installer"):]
    for name in find_packages(include=["installer", "installer.*"])
]

setup(
    # Namespace discovery lists the data folders (templates, static, translations) as packages
    # too, which is how setuptools wants package data declared.
    # systemd/ (the unit templates the installer renders) travels inside the installer package.
    packages=find_namespace_packages(include=["altkraft_onprem", "altkraft_onprem.*"],
                                     exclude=["*.__pycache__"]) + installer_packages
    + ["altkraft_installer.systemd"],
    package_dir={"altkraft_installer": "installer", "altkraft_installer.systemd": "systemd"},
)
