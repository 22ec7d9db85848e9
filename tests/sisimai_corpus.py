"""Sisimai's public corpus against its own expectations (``fixtures/sisimai/table.csv``):
how often ``parse`` agrees, as figures. Used by ``test_sisimai_corpus`` (floors that must
not fall) and ``bench/parse_vs_sisimai.py --corpus`` (the figures beside Sisimai's)."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent / "fixtures" / "sisimai"
EML = HERE / "eml"
#: Sisimai's reasons that are no bounce (the delivery report of a success, an auto-reply,
#: a feedback-loop report).
NOT_BOUNCES = {"delivered": "auto_reply", "vacation": "auto_reply", "feedback": "complaint"}


@dataclass(frozen=True)
class Expected:
    file: str
    index: int
    status: str
    replycode: str
    reason: str
    hard: bool
    recipient: str


def table() -> dict[str, list[Expected]]:
    """Expectations per file, in recipient order."""
    rows: dict[str, list[Expected]] = defaultdict(list)
    with (HERE / "table.csv").open(newline="") as source:
        for r in csv.DictReader(source):
            rows[r["file"]].append(Expected(r["file"], int(r["index"]), r["status"],
                                            r["replycode"], r["reason"], r["hard"] == "1",
                                            r["recipient"]))
    return dict(rows)


def kind_of(rows: list[Expected]) -> str:
    return NOT_BOUNCES.get(rows[0].reason, "bounce")


@dataclass
class Agreement:
    """Counts of agreement, each as (agreed, out of), with the files that missed."""

    kind: list[int] = field(default_factory=lambda: [0, 0])
    address: list[int] = field(default_factory=lambda: [0, 0])
    hard: list[int] = field(default_factory=lambda: [0, 0])
    reason: list[int] = field(default_factory=lambda: [0, 0])
    complaints: list[int] = field(default_factory=lambda: [0, 0])
    not_bounces: list[int] = field(default_factory=lambda: [0, 0])
    missed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def figures(self) -> dict[str, str]:
        def pct(pair: list[int]) -> str:
            return f"{pair[0]}/{pair[1]} ({100 * pair[0] / max(pair[1], 1):.1f}%)"
        return {"bounce kind": pct(self.kind), "bounced address": pct(self.address),
                "hard/soft": pct(self.hard), "reason": pct(self.reason),
                "complaints": pct(self.complaints),
                "not called bounces": pct(self.not_bounces)}


def agreement(results: dict[str, dict], expected: dict[str, list[Expected]]) -> Agreement:
    """How ``parse``'s rows (by file name) agree with Sisimai's expectations."""
    out = Agreement()
    for name, rows in sorted(expected.items()):
        got = results.get(name, {})
        want = kind_of(rows)
        if want == "bounce":
            ok = got.get("kind") == "bounce"
            out.kind[0] += ok
            out.kind[1] += 1
            if not ok:
                out.missed["bounce kind"].append(name)
                out.reason[1] += len(rows)  # no reason, no hard or soft from a bounce not read
                out.hard[1] += len(rows)
                continue
            bounced = got.get("bounces") or []
            # The address we sent to, or the one an alias expanded it to (Sisimai reports
            # the latter; ``parse`` gives both).
            ours = set(got.get("recipients") or ()) | {
                b["final_recipient"] for b in bounced if b.get("final_recipient")}
            for row in rows:
                if row.recipient:
                    out.address[0] += row.recipient in ours
                    out.address[1] += 1
                mine = next((b for b in bounced if row.recipient in (
                    b["address"], b.get("final_recipient"))), None) or (
                    bounced[row.index - 1] if len(bounced) >= row.index else None)
                agreed = mine is not None and mine["reason"] == row.reason
                out.reason[0] += agreed
                out.reason[1] += 1
                if not agreed:
                    out.missed["reason"].append(f"{name}#{row.index}")
                # Hard or soft, per bounced recipient (a bounce may hold both).
                same = mine is not None and mine["hard"] is row.hard
                out.hard[0] += same
                out.hard[1] += 1
                if not same:
                    out.missed["hard/soft"].append(f"{name}#{row.index}")
        elif want == "complaint":
            # Sisimai's "feedback" covers opt-out reports too, which we call unsubscribes.
            out.complaints[0] += got.get("kind") in ("complaint", "unsubscribe")
            out.complaints[1] += 1
        else:
            out.not_bounces[0] += got.get("kind") != "bounce"
            out.not_bounces[1] += 1
    return out
