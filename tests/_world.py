"""Sizes of tiny simulated worlds for tests (``simulate.sizes``)."""


def tiny_sizes(foundation: int, downstream: int, external: int) -> dict:
    """``simulate.sizes`` with these records per corpus, about 6 records to 5 patients."""
    return {name: {"patients": max(1, round(n * 5 / 6)), "records": n}
            for name, n in (("foundation", foundation), ("downstream", downstream), ("external", external))}
