"""The shop event as it travels on the ``events`` topic.

Wire format: one JSON object per Kafka record, keyed by ``session_id``::

    {"event_id": "9f0c…", "type": "addtobasket", "ts": 1764380000123,
     "session_id": "s-…", "user_id": "u-…", "product_id": "p-017",
     "product_name": "Espresso cups (set of 4)", "category": "Cups & glasses", "price": 24.9,
     "quantity": 2}

``ts`` is event time in epoch milliseconds, ``price`` the unit price in the shop's currency,
``product_name`` and ``category`` optional.
"""
from __future__ import annotations

from typing import NamedTuple

PRODUCTVIEW = "productview"
ADDTOBASKET = "addtobasket"
REMOVEFROMBASKET = "removefrombasket"
PURCHASE = "purchase"
EVENT_TYPES: tuple[str, ...] = (PRODUCTVIEW, ADDTOBASKET, REMOVEFROMBASKET, PURCHASE)
# Product ids and names are kept in the statistics, so their size bounds the snapshot's.
MAX_PRODUCT_ID_CHARS = 64  # printable ASCII
MAX_PRODUCT_NAME_CHARS = 64  # printable text
MAX_CATEGORY_CHARS = 32  # printable ASCII; "" is "no category"
OTHER_CATEGORY = "(other)"  # where the statistics count categories past their limit: no event may name it


def is_product_id(value: object) -> bool:
    return (type(value) is str and 0 < len(value) <= MAX_PRODUCT_ID_CHARS
            and value.isascii() and value.isprintable())


def is_product_name(value: object) -> bool:
    return type(value) is str and len(value) <= MAX_PRODUCT_NAME_CHARS and value.isprintable()


def is_category(value: object) -> bool:
    return (type(value) is str and len(value) <= MAX_CATEGORY_CHARS
            and value.isascii() and value.isprintable() and value != OTHER_CATEGORY)


class Event(NamedTuple):
    event_id: str
    type: str
    ts: int
    session_id: str
    user_id: str
    product_id: str
    product_name: str
    price_cents: int
    quantity: int
    category: str = ""
