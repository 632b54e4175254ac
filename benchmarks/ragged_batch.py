"""One decode step for B contexts of different lengths: B single-row forwards vs one ragged
batch (the transformers backend's path for concurrent requests), on the embedded model.

Each of B cached prompts (random token ids, lengths 90..250) gets one more token: first
as B forwards of one row, then through ``TransformersBackend`` as one call whose sources
have different lengths (padded, masked). Prints seconds per step, the ratio, and the
largest log-prob difference between the two.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ragged_batch.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

LENGTHS = [90, 130, 170, 210, 250, 120, 160, 200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    from rainlm.backends.embedded import load_embedded_backend

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(100, 5000, n).tolist() for n in LENGTHS]
    print("| rows | singles ms | ragged batch ms | ratio | max abs log-prob diff |")
    print("| --- | --- | --- | --- | --- |")
    for rows in (1, 2, 4, 8):
        single_s, batch_s, diff = 0.0, 0.0, 0.0
        for rep in range(args.repeats + 1):  # the first round warms up, not timed
            tok = 42 + rep
            alone = load_embedded_backend(device="cpu")
            together = load_embedded_backend(device="cpu")
            alone.next_logprobs(prompts[:rows])
            together.next_logprobs(prompts[:rows])
            steps = [p + [tok] for p in prompts[:rows]]
            start = time.perf_counter()
            a = [alone.next_logprobs([s])[0].logprobs for s in steps]
            mid = time.perf_counter()
            b = [d.logprobs for d in together.next_logprobs(steps)]
            end = time.perf_counter()
            assert together.counters.batch_sizes[-1] == rows  # one forward for all rows
            if rep:
                single_s += mid - start
                batch_s += end - mid
                diff = max(diff, max(float(np.abs(x - y).max()) for x, y in zip(a, b)))
        print(f"| {rows} | {1000 * single_s / args.repeats:.1f} | {1000 * batch_s / args.repeats:.1f} "
              f"| {single_s / batch_s:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
