#!/usr/bin/env python3
"""Regenerate the public-holiday reference fixtures used by `tests/core/holidays.rs`.

How to run (from the crate root, /work/main):

    pip install holidays==0.109
    python3 scripts/holiday_reference.py                # writes tests/fixtures/holidays/<CC>.json
    python3 scripts/holiday_reference.py --summary-out /tmp/holiday_reference_2026.txt

python-holidays is ONLY needed to regenerate these fixtures. CI and `cargo test`
never run Python: the generated JSON files are checked in and read by the Rust
integration test `tests/core/holidays.rs`, which compares them with the holidays that
Ventana computes from `jurisdictions/*.toml` (known, justified differences are
listed in `tests/fixtures/holidays/differences.toml`).

What is written, per country, to `tests/fixtures/holidays/<CC>.json`:

    {"source": "python-holidays 0.109", "country": "PE", "years": [2024, 2035],
     "holidays": {"2024-01-01": "Año Nuevo", ...}}

* national holidays only: no subdivision (`subdiv`) is passed;
* the default category only (`public`): no bank/government/optional days;
* names in the country's own language when python-holidays offers it
  (`es` for every country here), else its default language;
* dates sorted, limited to the years 2024-2035 inclusive (an "observed" day
  moved across New Year is dropped if it falls outside that range);
* two holidays on one date are joined by "; " (python-holidays' own format).

The United States is deliberately not generated: Ventana's US file has no
holidays (Regulation F has no holiday ban), so there is nothing to compare.

The output is deterministic (sorted keys, fixed version, no timestamps): running
the script twice gives byte-identical files. The script refuses to run with any
other python-holidays version, so that a regeneration is a deliberate change.
It also prints a human-readable summary of one year (default 2026) to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import holidays

PINNED_VERSION = "0.109"
FIRST_YEAR = 2024
LAST_YEAR = 2035
# US is deliberately absent: Ventana's US file has no holidays (Regulation F).
COUNTRIES = ["PE", "MX", "CO", "CL", "EC", "AR", "PA", "BO", "PY", "UY", "CR", "GT"]
# The local language to ask for, if python-holidays supports it for the country.
LOCAL_LANGUAGE = {cc: "es" for cc in COUNTRIES}

CRATE_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = CRATE_ROOT / "tests" / "fixtures" / "holidays"

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def country_calendar(cc: str) -> dict[date, str]:
    """Date -> name of the national public holidays of `cc`, FIRST_YEAR..LAST_YEAR."""
    cls = holidays.country_holidays(cc).__class__
    supported = getattr(cls, "supported_languages", ()) or ()
    wanted = LOCAL_LANGUAGE.get(cc)
    language = wanted if wanted in supported else getattr(cls, "default_language", None)
    calendar = holidays.country_holidays(
        cc,
        years=range(FIRST_YEAR, LAST_YEAR + 1),
        language=language,
        categories=(holidays.PUBLIC,),
    )
    return {
        day: name
        for day, name in sorted(calendar.items())
        if FIRST_YEAR <= day.year <= LAST_YEAR
    }


def fixture_text(cc: str, calendar: dict[date, str]) -> str:
    document = {
        "source": f"python-holidays {PINNED_VERSION}",
        "country": cc,
        "years": [FIRST_YEAR, LAST_YEAR],
        "holidays": {day.isoformat(): name for day, name in sorted(calendar.items())},
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def summary_text(calendars: dict[str, dict[date, str]], year: int) -> str:
    lines = [
        f"python-holidays {PINNED_VERSION}: national public holidays in {year} "
        "(category 'public', no subdivisions, Spanish names)",
        "",
    ]
    for cc, calendar in calendars.items():
        days = [(d, n) for d, n in calendar.items() if d.year == year]
        lines.append(f"== {cc} ({len(days)} dates)")
        for day, name in days:
            lines.append(f"  {day.isoformat()} {WEEKDAYS[day.weekday()]}  {name}")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--summary-year", type=int, default=2026)
    parser.add_argument("--summary-out", type=Path, help="also write the summary to this file")
    args = parser.parse_args()

    if holidays.__version__ != PINNED_VERSION:
        sys.exit(
            f"python-holidays {holidays.__version__} is installed; the fixtures are pinned to "
            f"{PINNED_VERSION}: pip install holidays=={PINNED_VERSION}"
        )

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    calendars = {}
    for cc in COUNTRIES:
        calendars[cc] = country_calendar(cc)
        path = OUT_DIR / f"{cc}.json"
        path.write_text(fixture_text(cc, calendars[cc]), encoding="utf-8")
        print(f"wrote {path.relative_to(CRATE_ROOT)} ({len(calendars[cc])} dates)", file=sys.stderr)

    summary = summary_text(calendars, args.summary_year)
    print(summary)
    if args.summary_out:
        args.summary_out.write_text(summary + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
