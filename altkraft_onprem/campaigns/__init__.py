"""Campaigns: scheduling, lifecycle, the delivery ledger."""


def tracking_targets(conn, campaign_id: int, version_id: int):
    """(link index, URL with the campaign's UTM marks): what tracking's click endpoint uses."""
    from .service import tracking_targets as targets

    return targets(conn, campaign_id, version_id)
