"""C-ECHO (Verification, PS3.4 A) on every listener."""

from __future__ import annotations

import logging

from dimse.statuses import SUCCESS

logger = logging.getLogger(__name__)


def handle_echo(event) -> int:
    """Answer Success to a C-ECHO-RQ."""
    logger.info("c-echo calling_aet=%s", event.assoc.requestor.ae_title)
    return SUCCESS
