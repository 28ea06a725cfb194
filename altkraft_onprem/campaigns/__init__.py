"""Campaigns: scheduling, lifecycle, split tests, the delivery ledger and its journal."""
