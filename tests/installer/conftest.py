from tests.installer.dns_server import dns_server  # noqa: F401  (fixture)
