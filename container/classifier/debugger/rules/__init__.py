"""SageMaker Debugger's and Profiler's built-in rules, run by this project (during training and offline).

Each rule is a function `rule(data: JobData, **parameters) -> RuleResult`; its status is one of
NoIssuesFound, IssuesFound (with the step or time and the values that fired it) or Error (with the reason).
Names, parameters and defaults are SageMaker's (config.RULES).
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import asdict, dataclass, field

from .. import config

log = logging.getLogger(__name__)
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


def _functions() -> dict:
    from . import profiler_rules, tensor_rules

    return {**tensor_rules.RULES, **profiler_rules.RULES}


def evaluate(data, names: list[str], overrides: dict | None = None, stop_rules: list[str] = ()) -> list[RuleResult]:
    """Run the named rules on a job's data; a rule that raises ends as Error, never the caller."""
    functions = _functions()
    results = []
    for name in names:
        info = config.RULES[name]
        params = config.parameters_for(name, overrides)
        try:
            result = functions[name](data, **params)
        except RuleError as error:
            result = RuleResult(name, ERROR, str(error))
        except TooLittleData as error:
            result = RuleResult(name, NO_ISSUES, f"too little data to judge: {error}", values={"too_little_data": True})
        except Exception as error:
            log.warning("rule %s failed:\n%s", name, traceback.format_exc())
            result = RuleResult(name, ERROR, f"the rule failed: {type(error).__name__}: {error}")
        result.rule, result.kind, result.parameters = name, info.kind, params
        result.actions = ["StopTraining"] if name in stop_rules else []
        result.recommendation = info.recommendation if result.status == ISSUES else None
        result.evaluated_at = time.time()
        results.append(result)
    return results
