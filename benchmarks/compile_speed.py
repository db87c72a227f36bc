"""Would `torch.compile` speed up generator training on this CPU? Eager and compiled steps, timed in one run.

    python -m benchmarks.compile_speed [--steps 10] [--layers 8]

The step is `imgen train generator`'s (the same objective, bf16 autocast where
the CPU has it, AdamW) on fixed random inputs of the default batch (32
examples, 8 of them with the detail loss), for a generator of the bundled
width (d192) and `--layers` blocks. The compiled objective is
`torch.compile(GeneratorObjective(model))` (inductor); its first steps
compile, and their time is reported apart. Both models start from the same
weights, and the ratio of their best step times is the figure: timings of two
separate runs would differ by more than the effect on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import write_result
from benchmarks.train_speed import benchmark_gpt, training_step
from imgen.generator_train import GeneratorObjective, GeneratorTrainConfig
from imgen.model import Generator


def best_seconds(step, steps: int) -> float:
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()

    config = GeneratorTrainConfig()
    gpt = benchmark_gpt(config, "small", args.layers)
    torch.manual_seed(0)
    eager_model = Generator(gpt).train()
    compiled_model = Generator(gpt).train()
    compiled_model.load_state_dict(eager_model.state_dict())
    eager = training_step(GeneratorObjective(eager_model), eager_model, config, gpt)
    compiled = training_step(torch.compile(GeneratorObjective(compiled_model)), compiled_model, config, gpt)

    start = time.perf_counter()
    first_losses = (eager(), compiled())  # the compiled one compiles here
    compile_s = time.perf_counter() - start
    compiled()  # a second call may compile again (guards on the optimizer's state)
    eager_s, compiled_s = best_seconds(eager, args.steps), best_seconds(compiled, args.steps)
    result = {
        "layers": args.layers,
        "threads": torch.get_num_threads(),
        "first_loss_eager": round(first_losses[0], 5),
        "first_loss_compiled": round(first_losses[1], 5),
        "first_steps_s": round(compile_s, 1),
        "eager_step_s": round(eager_s, 3),
        "compiled_step_s": round(compiled_s, 3),
        "speedup_compiled": round(eager_s / compiled_s, 2),
        "samples_per_s_eager": round(config.batch_size / eager_s, 1),
        "samples_per_s_compiled": round(config.batch_size / compiled_s, 1),
    }
    path = write_result("compile_speed", result)
    print(
        f"eager {result['eager_step_s']} s/step, compiled {result['compiled_step_s']} s/step: "
        f"{result['speedup_compiled']}x (first steps with compilation {result['first_steps_s']} s) -> {path}"
    )


if __name__ == "__main__":
    main()
