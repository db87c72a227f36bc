"""Speed and quality benchmarks; each writes a JSON result under benchmarks/results/."""
