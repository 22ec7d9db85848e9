"""The name check (``feedback_mta.names``): false positives on real names, recall on bot names.

    python bench/names.py                 # measure (Faker; names-dataset too if installed)
    python bench/names.py --train         # rebuild feedback_mta/quality/data/name_trigrams.json

Real names come from Faker's person providers (every first and last name of its ~85 locales)
and, when the ``names-dataset`` package is installed (``pip install names-dataset``, 55 MB),
the 1,000 most common first and last names of each of its 105 countries. The model is
trained on the names whose CRC32 is even and measured on the others, so no measured real
name was seen in training; the shipped model is then trained on all of them.

Bot names come from ``bench/bot_names.py`` (every category the issue names).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bot_names  # noqa: E402
from real_names import dataset_names, faker_names  # noqa: E402

from feedback_mta.quality import names  # noqa: E402

MODEL_FILE = ROOT / "feedback_mta" / "quality" / "data" / "name_trigrams.json"


def held_out(name: str) -> bool:
    return zlib.crc32(name.encode()) % 2 == 1


def train(rows) -> names.TrigramModel:
    return names.TrigramModel.train(w for _, _, n in rows for w in names.latin_words(n))


def measure(real: dict[str, list], bots: list[tuple[str, str, str]]) -> dict:
    result = {}
    for source, rows in real.items():
        hits = collections.Counter()
        per_locale = collections.Counter()
        locale_hits = collections.Counter()
        examples = []
        for locale, kind, name in rows:
            per_locale[locale] += 1
            reasons = names.check(name, "") if kind == "first" else names.check("", name)
            if reasons:
                hits[reasons[0]] += 1
                locale_hits[locale] += 1
                if len(examples) < 40:
                    examples.append(f"{locale}:{name}:{reasons[0]}")
        total = sum(per_locale.values())
        # The same name in both fields (Ahmed Ahmed, Thomas Thomas) must pass too.
        doubled = sum(1 for _, _, name in rows if names.check(name, name))
        result[source] = {"names": total, "locales": len(per_locale),
                          "false_positives": sum(hits.values()),
                          "fp_rate": sum(hits.values()) / total if total else 0.0,
                          "by_reason": dict(hits), "doubled_fp_rate": doubled / total,
                          "worst_locales": locale_hits.most_common(8),
                          "examples": examples}
    caught = collections.Counter()
    per_category = collections.Counter()
    missed = []
    for category, first, last in bots:
        per_category[category] += 1
        if names.check(first, last):
            caught[category] += 1
        elif len(missed) < 30:
            missed.append(f"{category}: {first!r} {last!r}")
    result["bots"] = {"pairs": len(bots), "recall": sum(caught.values()) / len(bots),
                      "by_category": {c: round(caught[c] / per_category[c], 4)
                                      for c in per_category},
                      "missed": missed}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="rebuild the shipped model")
    parser.add_argument("--bots", type=int, default=18000, help="bot name pairs to generate")
    parser.add_argument("--max-rank", type=int, default=1000,
                        help="names-dataset: names up to this rank per country")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    fk = faker_names()
    nd_train = dataset_names(5000)
    if args.train:
        model = train([*fk, *nd_train])
        MODEL_FILE.parent.mkdir(exist_ok=True)
        MODEL_FILE.write_text(json.dumps({
            "about": "letter trigram counts of real first and last names: Faker's person "
                     "providers and, when installed, names-dataset (rank <= 5000 per country);"
                     " built by bench/names.py --train",
            "names": len(fk) + len(nd_train),
            "trigrams": dict(sorted(model.trigrams.items()))}, separators=(",", ":")) + "\n")
        print(f"wrote {MODEL_FILE} ({len(model.trigrams)} trigrams from "
              f"{len(fk) + len(nd_train)} names)")
        return

    # Held out: the model only knows the even half; measure on the odd half.
    model = train([r for r in [*fk, *nd_train] if not held_out(r[2])])
    names.model = lambda: model
    nd = [r for r in dataset_names(args.max_rank) if held_out(r[2])]
    real = {"faker": [r for r in fk if held_out(r[2])]}
    if nd:
        real["names-dataset"] = nd
    bots = bot_names.generate(args.bots, seed=11)
    start = time.perf_counter()
    result = measure(real, bots)
    checks = sum(len(v) for v in real.values()) + len(bots)
    result["speed_us_per_check"] = round((time.perf_counter() - start) / checks * 1e6, 1)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    for source, r in result.items():
        if source in ("bots", "speed_us_per_check"):
            continue
        print(f"{source}: {r['false_positives']} false positives in {r['names']} real names "
              f"from {r['locales']} locales = {r['fp_rate']:.4%}  by reason {r['by_reason']}; "
              f"as both first and last name: {r['doubled_fp_rate']:.4%}")
        print(f"  worst locales {r['worst_locales']}")
        print(f"  e.g. {r['examples'][:25]}")
    b = result["bots"]
    print(f"bots: recall {b['recall']:.2%} of {b['pairs']} pairs; {b['by_category']}")
    print(f"  missed e.g. {b['missed'][:20]}")
    print(f"speed: {result['speed_us_per_check']} us per check")


if __name__ == "__main__":
    main()
