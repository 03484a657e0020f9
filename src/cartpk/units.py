"""Conversions between the units circulating CAR-T are reported in.

- **cells/µL blood** (flow cytometry; axi-cel, ZUMA-1);
- **transgene copies/µg genomic DNA** (qPCR; tisagenlecleucel, liso-cel, cilta-cel);
- **whole-body cells** (what the mechanistic model tracks).

Assumptions, each a keyword argument so that a user can change it:

1. A diploid human nucleated cell holds about 6.6 pg of DNA, so 1 µg gDNA comes from about
   1.5e5 nucleated cells (``DNA_UG_PER_CELL = 6.6e-6``; textbook constant, not a CAR-T-specific
   calibration, see ``docs/units.md``).
2. Each CAR+ cell carries ``vcn`` transgene copies (vector copy number; product-specific, 1–3).
3. The nucleated cells whose DNA is extracted are the endogenous white cells per µL (``wbc``)
   plus the CAR-T themselves. After lymphodepletion ``wbc`` is low (about 1000–3000/µL) and
   changes over time, so copies/µg is *not* proportional to cells/µL over a whole time course.
4. Blood volume ``blood_volume_ul`` = 5e6 µL (5 L); the whole body holds ``1 / blood_fraction``
   times the CAR-T found in blood (Kimmel 2021 uses 1 % in blood, doi:10.1098/rspb.2021.0229).
"""

from __future__ import annotations

DNA_UG_PER_CELL = 6.6e-6  # µg genomic DNA per diploid nucleated cell
BLOOD_VOLUME_UL = 5e6  # µL in 5 L of blood


def cells_per_ul_to_copies_per_ug(cells_per_ul, *, wbc=1000.0, vcn=1.0):
    """CAR+ cells/µL -> transgene copies/µg gDNA (``wbc``: endogenous nucleated cells/µL)."""
    return cells_per_ul * vcn / ((wbc + cells_per_ul) * DNA_UG_PER_CELL)


def copies_per_ug_to_cells_per_ul(copies_per_ug, *, wbc=1000.0, vcn=1.0):
    """Transgene copies/µg gDNA -> CAR+ cells/µL (inverse of the above; needs
    ``copies_per_ug < vcn / DNA_UG_PER_CELL``, i.e. fewer CAR+ cells than nucleated cells)."""
    fraction = copies_per_ug * DNA_UG_PER_CELL / vcn
    return fraction * wbc / (1 - fraction)


def cells_per_ul_to_whole_body(
    cells_per_ul, *, blood_volume_ul=BLOOD_VOLUME_UL, blood_fraction=1.0
):
    """CAR+ cells/µL blood -> CAR+ cells in the body (``blood_fraction``: share of the body's
    CAR-T that circulate; 1.0 counts blood only, Kimmel 2021 uses 0.01)."""
    return cells_per_ul * blood_volume_ul / blood_fraction


def whole_body_to_cells_per_ul(cells, *, blood_volume_ul=BLOOD_VOLUME_UL, blood_fraction=1.0):
    """CAR+ cells in the body -> CAR+ cells/µL blood (inverse of the above)."""
    return cells * blood_fraction / blood_volume_ul
