"""SageMaker Debugger's and Profiler's built-in rules, run by this project (during training and offline).

Each rule is a function `rule(data: JobData, **parameters) -> RuleResult`; its status is one of
NoIssuesFound, IssuesFound (with the step or time and the values that fired it) or Error (with the reason).
Names, parameters and defaults are SageMaker's (config.RULES).
"""
from __future__ import annotations

import logging
import time
import traceback

from .. import config
from . import profiler_rules, tensor_rules
from .results import (  # noqa: F401 - the rules' results, re-exported for the session, report and CLI
    ERROR,
    ISSUES,
    NO_ISSUES,
    RuleError,
    RuleResult,
    TooLittleData,
    issues,
    no_issues,
)

log = logging.getLogger(__name__)
FUNCTIONS = {**tensor_rules.RULES, **profiler_rules.RULES}


def evaluate(data, names: list[str], overrides: dict | None = None, stop_rules: list[str] = ()) -> list[RuleResult]:
    """Run the named rules on a job's data; a rule that raises ends as Error, never the caller."""
    results = []
    for name in names:
        info = config.RULES[name]
        params = config.parameters_for(name, overrides)
        try:
            result = FUNCTIONS[name](data, **params)
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
