"""altkraft-install: turns a bare Linux host into a running ALTKRAFT appliance."""
