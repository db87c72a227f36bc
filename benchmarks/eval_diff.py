"""Is run A better than run B? A paired comparison of two `imgen eval` runs of the same suite.

    python -m benchmarks.eval_diff RUN_A/results.json RUN_B/results.json

Prints both overall scores on the images both runs measured, the difference
A - B with its standard error (prompts as the independent units, see
`imgen.eval.compare.paired_standard_error`), and how many images the two runs judged differently. Runs scored
by different judge versions are refused: their scores are not comparable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import write_result
from imgen.eval.compare import compare, judge_version, read_outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="results.json of run A")
    parser.add_argument("b", help="results.json of run B")
    args = parser.parse_args()
    versions = judge_version(args.a), judge_version(args.b)
    if versions[0] != versions[1]:
        parser.error(f"A was scored by judge {versions[0]} and B by judge {versions[1]}; re-run the older one")
    result = compare(read_outcomes(args.a), read_outcomes(args.b))
    runs = {"run_a": Path(args.a).parent.name, "run_b": Path(args.b).parent.name}  # folder names, not paths
    path = write_result("eval_diff", {**runs, **vars(result)})
    print(
        f"A {result.a:.3f}  B {result.b:.3f}  A - B {result.difference:+.3f} ± {result.standard_error:.3f} "
        f"(SE over prompts; {result.images} paired images, {result.disagreements} judged differently) -> {path}"
    )


if __name__ == "__main__":
    main()
