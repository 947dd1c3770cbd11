"""Cluster membership as held in the log (dissertation chapter 4)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Configuration:
    voters: frozenset[str] = frozenset()
    # Dissertation §4.2.1: learners receive the log but neither vote nor
    # count towards a majority until they have caught up.
    learners: frozenset[str] = frozenset()

    @property
    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    def to_json(self) -> str:
        return json.dumps(
            {"voters": sorted(self.voters), "learners": sorted(self.learners)},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Configuration:
        data = json.loads(text)
        return cls(frozenset(data["voters"]), frozenset(data.get("learners", ())))
