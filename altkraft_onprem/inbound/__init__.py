"""Inbound mail: what comes back — bounces, complaints (FBL/ARF), mailto unsubscribes, DMARC
reports. Each way in stores the raw message first (intake.py); a job parses, attributes and
classifies it (pipeline.py) and applies the outcome (service.py). This domain sits above the
others and calls them downward; none of them imports it."""
