"""When an EventBridge schedule rule fires: `rate(...)` and `cron(...)` as AWS defines them.

rate(value unit): "A rate expression starts when you create the scheduled event rule, and then it runs on a
defined schedule" (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html): it fires
at creation + k x rate, k >= 1; the unit is minute/hour/day, singular for 1 and plural otherwise.
cron(minutes hours day-of-month month day-of-week year), in UTC, minute precision
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html): `, - * /` in every
field, `?` in day-of-month or day-of-week, `L` (last day of the month; `nL` the month's last weekday n),
`n#k` (the k-th weekday n of the month); day-of-week 1-7 is SUN-SAT. The `W` wildcard (nearest weekday) is
not emulated: an expression using it raises ValueError.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_SEARCH_DAYS = 366 * 5


@dataclass(frozen=True)
class Rate:
    seconds: int

    def next_after(self, after: datetime, created: datetime) -> datetime:
        elapsed = (after - created).total_seconds()
        runs = max(0, int(elapsed // self.seconds)) + 1
        return created + timedelta(seconds=runs * self.seconds)


def _numbers(field: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for item in field.upper().split(","):
        part, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = names.get(first) or int(first), names.get(last) or int(last)
        else:
            start = names.get(part) or int(part)
            end = high if step != 1 else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"cron field {field!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    day_field: str
    months: frozenset[int]
    weekday_field: str
    years: frozenset[int]

    @classmethod
    def parse(cls, body: str) -> Cron:
        fields = body.split()
        if len(fields) != 6:
            raise ValueError(f"cron expressions have six fields: cron({body})")
        minute, hour, day, month, weekday, year = fields
        if "W" in day.upper():
            raise ValueError("the W (nearest weekday) wildcard is not emulated")
        if (day == "?") == (weekday == "?"):
            raise ValueError("one of day-of-month and day-of-week must be ?")
        return cls(
            frozenset(_numbers(minute, 0, 59, {})),
            frozenset(_numbers(hour, 0, 23, {})),
            day.upper(),
            frozenset(_numbers(month, 1, 12, {k.upper(): v for k, v in _MONTHS.items()})),
            weekday.upper(),
            frozenset(_numbers(year, 1970, 2199, {})),
        )

    def _day_matches(self, day: datetime) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        aws_weekday = (day.weekday() + 1) % 7 + 1
        if self.day_field != "?":
            if self.day_field == "L":
                return day.day == last
            return day.day in _numbers(self.day_field, 1, 31, {})
        field = self.weekday_field
        if field.endswith("L") and field != "L":
            wanted = _DAYS.get(field[:-1]) or int(field[:-1])
            return aws_weekday == wanted and day.day + 7 > last
        if "#" in field:
            weekday_text, nth = field.split("#", 1)
            wanted = _DAYS.get(weekday_text) or int(weekday_text)
            return aws_weekday == wanted and (day.day - 1) // 7 + 1 == int(nth)
        return aws_weekday in _numbers("7" if field == "L" else field, 1, 7, _DAYS)

    def next_after(self, after: datetime) -> datetime | None:
        start = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if day.year > 2199:
                return None
            if day.year in self.years and day.month in self.months and self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = day.replace(hour=hour, minute=minute)
                        if moment >= start:
                            return moment
            day += timedelta(days=1)
        return None


def parse(expression: str) -> Rate | Cron:
    """A rule's ScheduleExpression; ValueError for one AWS would refuse or this emulation cannot run."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"{expression}: the unit is singular for 1 and plural otherwise")
        return Rate(value * _UNIT_SECONDS[unit.rstrip("s")])
    if text.startswith("cron(") and text.endswith(")"):
        return Cron.parse(text[5:-1])
    raise ValueError(f"not a schedule expression: {expression}")


def next_run(expression: str, after: datetime, created: datetime) -> datetime | None:
    """The first instant strictly after `after` at which a rule created at `created` fires."""
    schedule = parse(expression)
    if isinstance(schedule, Rate):
        return schedule.next_after(after, created)
    return schedule.next_after(after)
