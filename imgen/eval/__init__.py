"""Evaluation: fixed benchmark prompts, a pixel-only judge, and a suite runner with reports.

The world that trains the bundled model is also its examiner: `prompts` holds
versioned suites built from held-out combinations, `judge` checks a picture
against a prompt's meaning from its pixels alone (and `check_judge` checks the
judge on ground truth and near misses), and `runner` measures any image
generator on a suite and writes JSON and HTML reports.

    from imgen.eval import run_suite
    report = run_suite(generate, "quick", images_per_prompt=4, out_dir="eval-out")
    print(report.overall, report.categories)
"""

from imgen.eval.judge import Check, Verdict, check_judge, judge
from imgen.eval.prompts import CATEGORIES, SUITE_VERSION, SUITES, EvalPrompt, suite
from imgen.eval.runner import ImageResult, Report, run_suite, write_report

__all__ = [
    "CATEGORIES",
    "SUITES",
    "SUITE_VERSION",
    "Check",
    "EvalPrompt",
    "ImageResult",
    "Report",
    "Verdict",
    "check_judge",
    "judge",
    "run_suite",
    "suite",
    "write_report",
]
