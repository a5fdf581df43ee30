"""Numbers a user hands the tool: finite and within stated bounds, or one clear error.

>>> bounded("--min-run-time", 0.3, low=0, high=60, low_open=True, unit=" seconds")
0.3

``argparse``'s ``type=float`` accepts ``inf`` and ``nan``, and ``type=int`` any size; a check
such as ``value > 0`` lets ``inf`` through (a timing block that never ends) and ``nan``
compares false with everything. :func:`bounded` states the interval and refuses anything
outside it, ``nan`` and the infinities included, with one :class:`~rvqvae.errors.UserError`:
``--min-run-time must be a finite number in (0, 60] seconds, got inf``.
"""

from __future__ import annotations

from rvqvae.errors import UserError


def bounded(name: str, value, *, low: float, high: float, integer: bool = False,
            low_open: bool = False, unit: str = "", why: str = ""):
    """``value`` unchanged when it is a finite number (an integer with ``integer``) in
    ``[low, high]`` (``(low, high]`` with ``low_open``); else a :class:`UserError` naming
    ``name``, the interval (in ``unit``), the value and, when given, ``why`` the bound is there.
    """
    kind = "an integer" if integer else "a finite number"
    interval = f"{'(' if low_open else '['}{_number(low)}, {_number(high)}]{unit}"
    number = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    # nan fails both comparisons and the infinities one: no isfinite (which overflows on
    # huge ints) needed
    if not number or not ((low < value) if low_open else (low <= value)) or not value <= high:
        raise UserError(f"{name} must be {kind} in {interval}, got {_shown(value)}"
                        + (f" ({why})" if why else ""))
    return value


def _shown(value) -> str:
    """``repr(value)``, a huge one shortened to its head and its length."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} characters)"


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)
