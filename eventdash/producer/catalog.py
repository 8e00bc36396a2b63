"""The simulated shop's fixed product catalog (id, name, unit price)."""
from __future__ import annotations

from typing import NamedTuple


class Product(NamedTuple):
    product_id: str
    name: str
    price: float
    popularity: float


_ITEMS = [
    ("Espresso cups (set of 4)", 24.90), ("Pour-over kettle", 59.00), ("Burr grinder", 129.00),
    ("Oat milk frother", 34.50), ("Stoneware mug", 12.00), ("Cold brew bottle", 19.90),
    ("Tea infuser", 8.50), ("Moka pot 6-cup", 39.00), ("Coffee scale", 27.99),
    ("Single-origin beans 250 g", 14.50), ("Decaf beans 250 g", 13.50), ("Chai blend 100 g", 9.90),
    ("Glass teapot", 32.00), ("Milk jug 350 ml", 16.00), ("Travel tumbler", 24.00),
    ("Cleaning tablets", 7.99), ("Paper filters (100)", 5.49), ("Dripper stand", 44.00),
    ("Knock box", 21.00), ("Tamper 58 mm", 29.00), ("Barista apron", 35.00),
    ("Syrup: vanilla", 6.90), ("Syrup: caramel", 6.90), ("Biscotti tin", 11.50),
    ("Matcha whisk", 18.00), ("Matcha 30 g", 22.00), ("Water filter jug", 27.50),
    ("Coffee canister", 23.00), ("Latte glasses (set of 2)", 17.00), ("Gift card 25", 25.00),
]

CATALOG: tuple[Product, ...] = tuple(
    # Zipf-like popularity: a few products draw most of the views, as in real shops.
    Product(f"p-{i + 1:03d}", name, price, 1.0 / (i + 1) ** 0.8)
    for i, (name, price) in enumerate(_ITEMS)
)
