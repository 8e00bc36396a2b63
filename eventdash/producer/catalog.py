"""The simulated shop's fixed product catalog (id, name, category, unit price)."""
from __future__ import annotations

from typing import NamedTuple


class Product(NamedTuple):
    product_id: str
    name: str
    category: str
    price: float
    popularity: float


CUPS, BREWING, COFFEE, TEA, CARE, PANTRY, GIFTS = (
    "Cups & glasses", "Brewing", "Coffee", "Tea", "Care & storage", "Pantry", "Gifts")
_ITEMS = [
    ("Espresso cups (set of 4)", CUPS, 24.90), ("Pour-over kettle", BREWING, 59.00),
    ("Burr grinder", BREWING, 129.00), ("Oat milk frother", BREWING, 34.50), ("Stoneware mug", CUPS, 12.00),
    ("Cold brew bottle", BREWING, 19.90), ("Tea infuser", TEA, 8.50), ("Moka pot 6-cup", BREWING, 39.00),
    ("Coffee scale", BREWING, 27.99), ("Single-origin beans 250 g", COFFEE, 14.50),
    ("Decaf beans 250 g", COFFEE, 13.50), ("Chai blend 100 g", TEA, 9.90), ("Glass teapot", TEA, 32.00),
    ("Milk jug 350 ml", BREWING, 16.00), ("Travel tumbler", CUPS, 24.00), ("Cleaning tablets", CARE, 7.99),
    ("Paper filters (100)", BREWING, 5.49), ("Dripper stand", BREWING, 44.00), ("Knock box", CARE, 21.00),
    ("Tamper 58 mm", BREWING, 29.00), ("Barista apron", GIFTS, 35.00), ("Syrup: vanilla", PANTRY, 6.90),
    ("Syrup: caramel", PANTRY, 6.90), ("Biscotti tin", PANTRY, 11.50), ("Matcha whisk", TEA, 18.00),
    ("Matcha 30 g", TEA, 22.00), ("Water filter jug", CARE, 27.50), ("Coffee canister", CARE, 23.00),
    ("Latte glasses (set of 2)", CUPS, 17.00), ("Gift card 25", GIFTS, 25.00),
]

CATALOG: tuple[Product, ...] = tuple(
    # Zipf-like popularity: a few products draw most of the views, as in real shops.
    Product(f"p-{i + 1:03d}", name, category, price, 1.0 / (i + 1) ** 0.8)
    for i, (name, category, price) in enumerate(_ITEMS)
)
