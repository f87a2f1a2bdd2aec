"""What a quote loader found wrong with a source, and what its policy did about it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from sim.bars import IntraBarPath

EXAMPLE_ROWS = 10

BadQuotePolicy = Literal["drop", "repair", "refuse"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProblemRows(_Config):
    count: Annotated[int, Field(ge=0)] = 0
    rows: tuple[int, ...] = Field(
        default=(), description=f"the first {EXAMPLE_ROWS} line numbers with the problem"
    )

    def describe(self) -> str:
        if not self.count:
            return "0"
        more = ", ..." if self.count > len(self.rows) else ""
        return f"{self.count} (lines {', '.join(map(str, self.rows))}{more})"


class GapReport(_Config):
    threshold_minutes: float
    count: Annotated[int, Field(ge=0)]
    longest_minutes: float = Field(
        description="the longest stretch of open market without a quote, a gap or not"
    )
    rows: tuple[int, ...] = Field(
        description=f"line of the first quote after each of the first {EXAMPLE_ROWS} gaps"
    )


class DataQualityReport(_Config):
    """What was wrong with a source, judged on its rows as read, and what the policy did.

    `rows_used` counts rows of which at least one quote was kept; `quotes_used` counts the
    quotes replayed (one per bar at its close, the path's ticks along a bridge, one per
    tick). `crossed` counts rows, `crossed_quotes` the
    crossed quotes within them. Printing the report gives a summary a person can read.
    """

    symbol: str
    files: tuple[str, ...]
    policy: BadQuotePolicy
    intra_bar: IntraBarPath | None
    rows_read: Annotated[int, Field(ge=0)]
    rows_used: Annotated[int, Field(ge=0)]
    quotes_used: Annotated[int, Field(ge=0)]
    crossed: ProblemRows
    crossed_quotes: Annotated[int, Field(ge=0)]
    missing: ProblemRows
    non_positive: ProblemRows
    duplicates: ProblemRows
    out_of_order: ProblemRows
    gaps: GapReport | None = Field(description="None when nothing is replayed to measure")

    def problems(self) -> dict[str, ProblemRows]:
        """The problems a policy acts on, by name."""
        return {
            "crossed": self.crossed,
            "missing": self.missing,
            "non_positive": self.non_positive,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
        }

    def __str__(self) -> str:
        lines = [
            f"{self.symbol}: {' + '.join(self.files)}",
            f"  policy {self.policy}"
            + (f", intra-bar path {self.intra_bar}" if self.intra_bar else ""),
            f"  rows read {self.rows_read}, used {self.rows_used}; quotes used {self.quotes_used}",
        ]
        for name, problem in self.problems().items():
            extra = f"; {self.crossed_quotes} crossed quotes in them" if name == "crossed" else ""
            lines.append(f"  {name:<13}{problem.describe()}{extra}")
        gaps = self.gaps
        if gaps is None:
            lines.append(f"  {'gaps':<13}not measured: nothing is replayed")
        else:
            found = ProblemRows(count=gaps.count, rows=gaps.rows).describe()
            lines.append(
                f"  {'gaps':<13}{found} longer than {gaps.threshold_minutes:g} min of open"
                f" market; longest quiet stretch {gaps.longest_minutes:.2f} min"
            )
        return "\n".join(lines)
