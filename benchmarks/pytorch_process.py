"""The official PyTorch PoseNet (``pytorch_posenet.py``) timed in a child process of its own.

Shared by the races against PyTorch (``train_step_vs_pytorch.py``,
``inference_vs_pytorch.py``): no TensorFlow threads or allocator beside
PyTorch, and its glibc malloc told to keep freed memory (see
``train_step_vs_pytorch.py``'s docstring for why that is the fair race).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tf_hourglass.model import HOURGLASS_PRESETS

HERE = Path(__file__).resolve().parent


class PyTorchSteps:
    """The official PoseNet's training steps (``kind="train"``) or forward passes (``"infer"``), one per call.

    Args:
        python: the interpreter with torch (default: this one).
        passive_threads: OMP_WAIT_POLICY=PASSIVE, so that PyTorch's OpenMP
            threads sleep instead of spinning at each barrier. On a machine
            shared with other jobs, a spinning thread whose partner lost its
            core stalls the forward pass: hg2 took 3.0 s per image with
            spinning threads on our busy 2-core VM, 0.2 s with passive ones.
    """

    def __init__(
        self, preset, batch_size, threads, keep_freed_memory, kind="train", python=None, passive_threads=False
    ):
        config = HOURGLASS_PRESETS[preset]
        shape = (config["num_stacks"], config["filters"], config["depth"], config["input_shape"][0])
        env = dict(os.environ)
        if keep_freed_memory:
            # 32 MiB is the largest mmap threshold glibc accepts on 64-bit machines.
            env.update(MALLOC_TRIM_THRESHOLD_=str(2**34), MALLOC_MMAP_THRESHOLD_=str(32 * 2**20))
        if passive_threads:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        self.process = subprocess.Popen(
            [
                python or sys.executable,
                str(HERE / "pytorch_posenet.py"),
                *map(str, shape),
                str(batch_size),
                str(threads),
                kind,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.version = self._read_line()

    def _read_line(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the PyTorch process ended (exit code {self.process.wait()}); see its error above"
            )
        return line.strip()

    def step(self):
        """Runs one step and returns its time in seconds, as measured in the child."""
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        return float(self._read_line())

    def close(self):
        self.process.stdin.close()
        self.process.wait()
