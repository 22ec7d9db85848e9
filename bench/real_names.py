"""Real first and last names for measuring the name check (``bench/names.py``, tests).

Faker's person providers (a test dependency) hold every first and last name of ~85 locales;
the names-dataset package (optional, 55 MB) holds the most common names of 105 countries.
"""

from __future__ import annotations

import gzip
import importlib
import pickle
import pkgutil
from pathlib import Path


def faker_names() -> list[tuple[str, str, str]]:
    """(locale, first|last, name) for every name in Faker's person providers."""
    from faker.providers import person

    out = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
        for attr in dir(provider):
            for kind in ("first", "last"):
                value = getattr(provider, attr)
                if attr.startswith(f"{kind}_names") and isinstance(value, tuple | list | dict):
                    out.update((module.name, kind, n) for n in value if n.strip())
    return sorted(out)


def dataset_names(max_rank: int) -> list[tuple[str, str, str]]:
    """(country, first|last, name) for names ranked <= max_rank in some country, or []."""
    try:
        import names_dataset
    except ImportError:
        return []
    base = Path(names_dataset.__file__).parent / "v3"
    out = []
    for kind in ("first", "last"):
        with gzip.open(base / f"{kind}_names.pkl.gz") as fh:
            data = pickle.load(fh)
        for name, info in data.items():
            ranks = info.get("rank") or {}
            best = min(ranks, key=ranks.get, default=None)
            if best is not None and ranks[best] <= max_rank:
                out.append((best, kind, name))
    return out
