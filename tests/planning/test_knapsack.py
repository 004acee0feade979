"""The knapsack keeps what mines unless a change gains more than measurement noise."""

from __future__ import annotations

from dualcap.planning.knapsack import STATUS_QUO_MARGIN, Item, solve


def test_equal_blocks_measured_a_per_cent_apart_do_not_swap() -> None:
    mining, asleep = Item(0, 700.0, 100.0), Item(1, 700.0, 101.0)  # room for one
    assert solve([mining, asleep], 700.0, prefer=frozenset({0})) == {0}


def test_a_clearly_better_block_still_takes_the_place() -> None:
    better = 100.0 * (1 + 2 * STATUS_QUO_MARGIN)
    mining, asleep = Item(0, 700.0, 100.0), Item(1, 700.0, better)
    assert solve([mining, asleep], 700.0, prefer=frozenset({0})) == {1}


def test_without_a_status_quo_the_best_is_chosen() -> None:
    assert solve([Item(0, 700.0, 100.0), Item(1, 700.0, 101.0)], 700.0) == {1}
