"""Speed and memory benchmarks, as ratios (audio seconds per second, peak memory): run each as
`python -m bench.perf.<name>`."""
