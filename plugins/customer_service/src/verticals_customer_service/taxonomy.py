"""The default customer-service intent taxonomy (an online shop's support desk).

These are the labels of the starter data in ``examples/customer_service/``. Training on your own data
replaces them: the intents are whatever your training file's labels are.
"""

from __future__ import annotations

DEFAULT_INTENTS: tuple[str, ...] = (
    "cancel_order",
    "change_address",
    "complaint",
    "delete_account",
    "payment_issue",
    "refund_status",
    "reset_password",
    "return_item",
    "shipping_options",
    "talk_to_agent",
    "track_order",
    "update_payment_method",
)
