"""What a rule returns: its result, and the exceptions that say it could not judge."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

NO_ISSUES, ISSUES, ERROR = "NoIssuesFound", "IssuesFound", "Error"


@dataclass
class RuleResult:
    rule: str
    status: str
    message: str
    step: int | None = None  # the training step (smdebug train mode step) where it fired
    time: float | None = None  # seconds since the job started, where it fired
    epoch: int | None = None
    values: dict = field(default_factory=dict)
    kind: str = ""
    parameters: dict = field(default_factory=dict)
    recommendation: str | None = None
    actions: list = field(default_factory=list)
    evaluated_at: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        where = []
        if self.epoch is not None:
            where.append(f"epoch {self.epoch}")
        if self.step is not None:
            where.append(f"step {self.step}")
        if self.time is not None:
            where.append(f"{self.time:.1f} s")
        return f"{self.rule}: {self.status}" + (f" ({', '.join(where)})" if where else "") + f": {self.message}"


class RuleError(Exception):
    """The rule cannot be evaluated (its data is missing): the result is Error with this reason."""


class TooLittleData(Exception):
    """The job gave the rule too little data to judge (a loop shorter than one sampling interval, say): the
    result is NoIssuesFound saying so, not an Error (the rule did not fail)."""


def no_issues(message: str, **values) -> RuleResult:
    return RuleResult("", NO_ISSUES, message, values=values)


def issues(message: str, step=None, time=None, epoch=None, **values) -> RuleResult:
    return RuleResult("", ISSUES, message, step=step, time=time, epoch=epoch, values=values)
