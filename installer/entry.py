"""Entry point of the one-file `altkraft-install` binary (PyInstaller)."""
from altkraft_installer.cli import main

if __name__ == "__main__":
    main()
