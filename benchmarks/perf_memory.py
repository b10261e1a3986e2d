"""Peak memory of a contender of ``benchmarks/perf.py``: CUDA counters, or a fresh CPU process.

Peak memory is the most memory a call holds above what was held just before it. On CUDA
(:func:`cuda_peak`): ``torch.cuda.reset_peak_memory_stats``, then ``max_memory_allocated`` minus
the ``memory_allocated`` before the call. On the CPU each contender is measured in a fresh
process: a probe server (:func:`probe_server` starts ``perf.py --memory-probe-server`` once, with
``MALLOC_MMAP_THRESHOLD_=65536`` and ``MALLOC_TRIM_THRESHOLD_=0``, so that freed large buffers go
back to the OS and the resident set follows live memory) imports the libraries once and forks one
child per contender (:func:`serve_probes`), which runs perf.py's ``main`` with ``--memory-probe
SECTION:NAME``: it builds the model and the batch, calls the contender once to warm up, writes
``5`` to ``/proc/self/clear_refs`` (resetting VmHWM), reads VmRSS, calls the contender once more
and reports VmHWM minus that VmRSS (:func:`probe`; the kernel's counters are exact to a few
hundred KiB). Where ``/proc/self/clear_refs`` cannot be written, memory is null with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from benchmarks.perf_harness import Bench, Calls

PROBE_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def memory(bench: Bench, section: str, name: str, calls: Calls, batch: int, size) -> dict:
    """Peak memory of ``calls[name]`` ({"mib", "reason", "method"}); see the module docstring.

    On the CPU the probe rebuilds the call from ``section``, ``name``, ``batch`` and ``size``.
    """
    if bench.device.type == "cuda":
        return cuda_peak(bench, calls[name])
    if bench.probe is None:
        return {"mib": None, "reason": "no probe server", "method": None}
    where = ["--size", f"{size[0]}x{size[1]}", "--batch-size", str(batch)]
    return bench.probe([*bench.argv, *where, "--memory-probe", f"{section}:{name}"])


@contextlib.contextmanager
def probe_server(script: Path) -> Iterator[Callable[[list[str]], dict]]:
    """Yield ``measure(argv)``: the peak memory a fresh process running ``main(argv)`` reports.

    The server, started on the first request, is ``script`` (perf.py) with
    ``--memory-probe-server`` and the allocator settings of :data:`PROBE_ENV`; it imports the
    libraries once and forks a fresh child per request, so that a probe costs the model's
    construction, not the imports.
    """
    process: subprocess.Popen | None = None

    def measure(argv: list[str]) -> dict:
        nonlocal process
        if process is None:
            process = subprocess.Popen(
                [sys.executable, str(script), "--memory-probe-server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, **PROBE_ENV},
            )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(argv) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError as error:  # the server died (e.g. killed for memory)
            line, reason = "", f"the probe server failed: {error}"
        else:
            reason = f"the probe server exited with {process.poll()}"
        return json.loads(line) if line else {"mib": None, "reason": reason, "method": None}

    try:
        yield measure
    finally:
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # type: ignore[union-attr]
            process.wait()


def serve_probes(main: Callable[[list[str]], int]) -> int:
    """``--memory-probe-server``: per JSON argv on stdin, fork ``main(argv)``; relay its line."""
    with contextlib.suppress(ImportError):  # imported once here rather than in every child
        import segmentation_models_pytorch  # noqa: F401
    for line in sys.stdin:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns
            os.close(read_end)
            _run_probe_child(main, json.loads(line), write_end)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            answer = pipe.read().strip().splitlines()
        _, status = os.waitpid(pid, 0)
        if not answer:
            reason = f"the probe failed (wait status {status}); see its error above"
            answer = [json.dumps({"mib": None, "reason": reason, "method": None})]
        print(answer[-1], flush=True)
    return 0


def _run_probe_child(main: Callable[[list[str]], int], argv: list[str], fd: int) -> None:
    code = 1
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # only the pipe carries the answer
        with os.fdopen(fd, "w") as answer, contextlib.redirect_stdout(answer):
            code = main(argv)
    except BaseException:  # noqa: BLE001 - reported on stderr; the server answers for it
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def cuda_peak(bench: Bench, call: Callable[[], object]) -> dict:
    """Peak CUDA memory allocated by one call above what was allocated before it."""
    bench.sync()
    torch.cuda.reset_peak_memory_stats(bench.device)
    before = torch.cuda.memory_allocated(bench.device)
    with bench.context():
        result = call()
    bench.sync()
    peak = torch.cuda.max_memory_allocated(bench.device) - before
    del result
    return {"mib": peak / 2**20, "reason": None, "method": "cuda max_memory_allocated"}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def probe(bench: Bench, call: Callable[[], object]) -> dict:
    """In a fresh process: VmHWM - VmRSS around one call, after one warm-up call."""
    method = "VmHWM - VmRSS in a fresh process"
    with bench.context():
        call()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
    except OSError as error:
        reason = f"cannot reset the peak resident set via /proc/self/clear_refs: {error}"
        return {"mib": None, "reason": reason, "method": method}
    with bench.context():
        result = call()
    peak = _status_kib("VmHWM") - before
    del result
    return {"mib": peak / 1024, "reason": None, "method": method}
