"""Sending domains and keys, the Settings page, DNS and blocklist checks, compliance, warm-up, pre-send checks."""
