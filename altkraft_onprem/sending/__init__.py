"""Sending: the campaign's sender processes (sender.py, fanout.py), the message each recipient
gets (compose.py) and its web copy (webview.py). Above tracking, whose signed links it mints;
campaigns' send run reaches it through extensions.CAMPAIGN_SENDERS."""
