"""Threads and long runs: one codec shared by a web service's worker threads, and thousands of files
coded in one process (issue 41).

- One ``Codec``, 4 threads, 200 encodes and decodes at once (small crops of scikit-image's photos in
  every colour mode, at various qualities): byte-identical files and pixel-identical images to the
  same work done serially, and no deadlock (every future has a deadline; on a miss the threads'
  stacks are in the failure). For each CPU engine installed, and the same for the Pillow plugin
  (``save`` to a BytesIO with format "VAE", ``Image.open`` + ``load``) from 4 threads.
- The long run: 2,000 encode/decode cycles of varied small sizes and modes in one fresh
  process, through ``vaecodec.compress``/``decompress``; after the first 100 cycles (which start
  with the largest size, so the warm-up holds the peak a steady process has) the peak RSS grows by
  at most 5 % to the end, and the open file descriptors, Python threads and OS threads are as many
  at the end as after cycle 100. It took 35 s here (OpenVINO; 2 cores, one training), so it is
  not marked slow. Run it alone, with its figures printed, with:

      python -m pytest tests/test_concurrency.py -k thousand -s
      python tests/test_concurrency.py long-run 2000             # the child itself, figures as JSON
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
from PIL import Image
from skimage import data

import vaecodec
from vaecodec.engine import installed

THREADS = 4
JOBS = 200
DEADLINE = 600  # seconds for all the jobs: training often shares this project's two cores
ENGINES = ["onnxruntime"] + (["openvino"] if installed("openvino") else [])


def small_images(count: int, seed: int = 41) -> list[tuple[Image.Image, float]]:
    """``count`` (image, quality) pairs: crops of 48x64 to 96x128 of four photos, in RGB, L, RGBA
    and LA in turn, at qualities from 0 to 100 (fractions too)."""
    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    images = []
    for k in range(count):
        photo = photos[k % len(photos)]
        height, width = int(rng.integers(48, 97)), int(rng.integers(64, 129))
        top, left = int(rng.integers(0, photo.shape[0] - height)), int(rng.integers(0, photo.shape[1] - width))
        image = Image.fromarray(np.ascontiguousarray(photo[top : top + height, left : left + width]))
        mode = ("RGB", "L", "RGBA", "LA")[k % 4]
        if mode.startswith("L"):
            image = image.convert("L")
        if mode.endswith("A"):
            image.putalpha(Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)))
        images.append((image, round(float(rng.uniform(0, 100)), 2)))
    return images


Job = Callable[[], object]


def mixed_jobs(encode: Callable[[Image.Image, float], bytes], decode: Callable[[bytes], Image.Image]) -> list[Job]:
    """JOBS jobs, encodes and decodes alternating; the decodes read files coded beforehand."""
    images = small_images(JOBS)
    files = [encode(image, quality) for image, quality in images[1::2]]
    jobs: list[Job] = []
    for k, (image, quality) in enumerate(images):
        if k % 2 == 0:
            jobs.append(lambda image=image, quality=quality: encode(image, quality))
        else:
            jobs.append(lambda data=files[k // 2]: pixels(decode(data)))
    return jobs


def pixels(image: Image.Image) -> tuple[str, tuple[int, int], bytes]:
    return image.mode, image.size, image.tobytes()


def stacks() -> str:
    """Every thread's stack: what a deadlocked pool was doing."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(f"--- {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
                     for ident, frame in sys._current_frames().items())


def run_threaded(jobs: Sequence[Job]) -> list[object]:
    """The jobs on THREADS threads at once; fails, with the threads' stacks, past DEADLINE."""
    pool = ThreadPoolExecutor(THREADS, thread_name_prefix="coder")
    start = threading.Barrier(THREADS)

    def first(job: Job) -> object:  # the first THREADS jobs wait for each other: all run at once
        start.wait(timeout=DEADLINE)
        return job()

    futures: list[Future] = [pool.submit(first if k < THREADS else lambda job: job(), job) for k, job in enumerate(jobs)]
    deadline = time.monotonic() + DEADLINE
    try:
        return [future.result(timeout=max(deadline - time.monotonic(), 0)) for future in futures]
    except FutureTimeout:
        pytest.fail(f"{THREADS} threads did not finish {len(jobs)} jobs in {DEADLINE} s: a deadlock?\n{stacks()}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def assert_same_results(serial: list[object], threaded: list[object]) -> None:
    different = [k for k, (a, b) in enumerate(zip(serial, threaded)) if a != b]
    assert len(serial) == len(threaded) == JOBS and not different, f"jobs {different} differ from the serial run's"


@pytest.mark.parametrize("engine", ENGINES)
def test_one_codec_from_four_threads_codes_what_it_codes_serially(engine: str) -> None:
    codec = vaecodec.Codec(engine=engine)
    jobs = mixed_jobs(lambda image, quality: codec.compress(image, quality), codec.decompress)
    serial = [job() for job in jobs]
    assert_same_results(serial, run_threaded(jobs))


def test_the_pillow_plugin_from_four_threads_codes_what_it_codes_serially() -> None:
    def save(image: Image.Image, quality: float) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="VAE", quality=quality)
        return buffer.getvalue()

    def open_and_load(data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "VAE"
            image.load()
            return image.copy()

    jobs = mixed_jobs(save, open_and_load)
    serial = [job() for job in jobs]
    assert_same_results(serial, run_threaded(jobs))


# -- the long run -------------------------------------------------------------------------------

CYCLES = 2000
WARMUP = 100
LARGEST = (160, 224)  # height, width of the largest image of the long run


def process_figures() -> dict[str, int]:
    """Peak and current RSS (KiB), open file descriptors, Python threads and OS threads of this process."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"peak_rss_kib": int(status["VmHWM"].split()[0]), "rss_kib": int(status["VmRSS"].split()[0]),
            "fds": len(os.listdir("/proc/self/fd")), "python_threads": threading.active_count(),
            "os_threads": int(status["Threads"])}


def long_run(cycles: int) -> dict[str, object]:
    """``cycles`` encode/decode cycles of varied sizes, modes and qualities through the one-call API;
    the process's figures before the loop, after WARMUP cycles and at the end."""
    rng = np.random.default_rng(2000)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.camera()]
    figures = {"cycles": cycles, "before": process_figures()}
    started = time.monotonic()
    for cycle in range(cycles):
        height, width = LARGEST if cycle == 0 else (int(rng.integers(8, LARGEST[0] + 1)),
                                                    int(rng.integers(8, LARGEST[1] + 1)))
        photo = photos[int(rng.integers(len(photos)))]
        top, left = int(rng.integers(0, photo.shape[0] - height)), int(rng.integers(0, photo.shape[1] - width))
        image = Image.fromarray(np.ascontiguousarray(photo[top : top + height, left : left + width]))
        mode = ("RGB", "L", "RGBA", "LA")[int(rng.integers(4))]
        image = image.convert(mode)
        coded = vaecodec.compress(image, quality=float(rng.uniform(0, 100)))
        decoded = vaecodec.decompress(coded)
        if (decoded.size, decoded.mode) != (image.size, mode):
            raise AssertionError(f"cycle {cycle}: a {image.size} {mode} image decoded to {decoded.size} {decoded.mode}")
        if cycle + 1 == WARMUP:
            figures["after_warmup"] = process_figures()
    figures["end"] = process_figures()
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


def test_two_thousand_cycles_in_one_process_leak_nothing() -> None:
    started = time.monotonic()
    child = subprocess.run([sys.executable, __file__, "long-run", str(CYCLES)], capture_output=True, text=True,
                           timeout=3600)
    assert child.returncode == 0, child.stderr[-3000:]
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    warm, end = figures["after_warmup"], figures["end"]
    growth = end["peak_rss_kib"] / warm["peak_rss_kib"] - 1
    print(f"\nlong run: {figures['cycles']} cycles in {figures['seconds']} s ({time.monotonic() - started:.0f} s with "
          f"the process's start); peak RSS {warm['peak_rss_kib'] / 1024:.1f} MiB after {WARMUP} cycles, "
          f"{end['peak_rss_kib'] / 1024:.1f} MiB at the end ({100 * growth:+.2f} %); RSS at the end "
          f"{end['rss_kib'] / 1024:.1f} MiB; fds {figures['before']['fds']} before, {warm['fds']} after {WARMUP}, "
          f"{end['fds']} at the end; Python threads {figures['before']['python_threads']}/{warm['python_threads']}/"
          f"{end['python_threads']}; OS threads {figures['before']['os_threads']}/{warm['os_threads']}/"
          f"{end['os_threads']}")
    assert growth <= 0.05, f"peak RSS grew by {100 * growth:.1f} % after the first {WARMUP} cycles"
    assert end["fds"] == warm["fds"], "file descriptors leaked"
    assert end["python_threads"] == warm["python_threads"], "Python threads leaked"
    assert end["os_threads"] == warm["os_threads"], "OS threads leaked"


if __name__ == "__main__" and sys.argv[1:2] == ["long-run"]:
    print(json.dumps(long_run(int(sys.argv[2]))))
