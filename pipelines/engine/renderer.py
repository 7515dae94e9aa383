"""The staged renderer: GPU stage -> bounded queue -> CPU worker processes.

    plan's jobs -> batches -> ModelHost.generate (this thread, one device)
                -> [VISUELS_FORMAT_ON_DEVICE: crop, resample, grade on the device: engine.device_format]
                -> at most ``max_in_flight`` pictures waiting -> CpuStage (post-process, mark,
                   write, record each file in its own transaction)

Each batch is claimed in the database before it is generated (``visuels.engine.claims``), so calls
rendering the same campaign at once split its jobs. The GPU stage submits a batch's pictures
and goes on to the next batch at once; it waits only when ``max_in_flight`` pictures are already
queued or being finished (back-pressure, so memory stays bounded). Results are collected in
submission order. A failure in either stage fails the call and names the job; what was exported
before it stays recorded. One renderer serves a whole process (a render worker, a CLI or flow
run): several threads may call ``render`` at once, and the model host lets one of them use the
device at a time, so one call's CPU tail overlaps the next call's generation.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from visuels._internal.i18n import counted
from visuels.config import settings
from visuels.engine.claims import JobClaims
from visuels.engine.cpu_stage import CpuStage, ExportTarget
from visuels.engine.device_format import DeviceFormatter
from visuels.engine.export import ExportedFile
from visuels.errors import ExportError, OperationalError, VisuelsError
from visuels.inputs.charter import load_charter
from visuels.inputs.model_refs import LoraWeights, ModelRef
from visuels.models.devices import DeviceName, DtypeName, choose_device, choose_dtype, default_cpu_workers
from visuels.models.host import ModelHost
from visuels.planning.jobs import RenderJob, batches
from visuels.postprocess.chain import Formatted

log = logging.getLogger(__name__)

WAIT_POLL_S = 1.0
WAIT_WITHOUT_PROGRESS_S = 1800.0  # another run that renders nothing for this long is stuck, not slow


class RenderStoppedError(OperationalError):
    """The run this render belongs to stopped (another of its chunks failed): nothing more is started."""


def _never_stop() -> str | None:
    return None


@dataclass(frozen=True)
class _Work:
    """What every batch of one ``render`` call shares."""

    model: ModelRef
    dtype: torch.dtype
    lora: LoraWeights | None
    target: ExportTarget
    batch_size: int
    claims: JobClaims
    keep_going: Callable[[], str | None]
    formatter: DeviceFormatter | None = None  # where pictures are formatted on the rendering device

    def picture_for(self, job: RenderJob, pixels: np.ndarray) -> np.ndarray | Formatted:
        """What the CPU stage starts from: the generated picture, or the job's picture formatted on the device."""
        return self.formatter.format(job, pixels) if self.formatter else pixels

    def stop_if_asked(self) -> None:
        reason = self.keep_going()
        if reason is not None:
            raise RenderStoppedError(
                self.target.output_root, None, "stopped before its next batch: {reason}", reason=reason
            )


class Renderer:
    """A model host and a CPU stage; create one per process and close it at the end."""

    def __init__(
        self, host: ModelHost, cpu: CpuStage, max_in_flight: int | None = None, format_on_device: bool = False
    ) -> None:
        self.host = host
        self.cpu = cpu
        self.max_in_flight = max_in_flight
        # Crop, resample and grade on the host's device (engine.device_format): the same pictures.
        self.format_on_device = format_on_device

    @classmethod
    def for_device(
        cls, device: DeviceName = "auto", cpu_workers: int = 0, compile_models: bool = False, keep_models: int = 2
    ) -> Renderer:
        """The usual set-up: ``cpu_workers`` 0 picks a number for the device."""
        chosen = choose_device(device)
        workers = cpu_workers or default_cpu_workers(chosen)
        if chosen.type == "cpu":
            # The model and the workers share the cores; oversubscribed, both slow down (the demo
            # on 2 cores: 62.9 s with 2 torch threads beside a worker, 49.7 s with 1).
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - workers))
        host = ModelHost(chosen, keep_models=keep_models if chosen.type == "cuda" else 1, compile_models=compile_models)
        return cls(host, CpuStage(workers), format_on_device=settings().format_on_device)

    def render(
        self,
        model: ModelRef,
        precision: DtypeName,
        lora: LoraWeights | None,
        jobs: list[RenderJob],
        target: ExportTarget,
        batch_size: int,
        claims: JobClaims | None = None,
        keep_going: Callable[[], str | None] | None = None,
        gpu_slot: Callable[[], AbstractContextManager] = nullcontext,
    ) -> list[ExportedFile]:
        """Generate, finish and record ``jobs``; return what this call exported, in batch order.

        Each batch is claimed before it is generated (with ``claims``, the caller's, which may
        hold some of these jobs already): jobs another call is rendering (another run of the
        campaign, another machine) are left to it and waited for at the end, so every job is
        done when this returns, and none was rendered twice. ``precision`` "auto" is resolved here,
        for this machine's device. ``keep_going``, asked before each batch, returns why to stop
        (the run failed elsewhere), or None to go on. ``gpu_slot`` (the pool's GPU limit) is held
        while rendering only, never while waiting for another call's pictures: that call may be
        waiting for a slot itself, holding the claims on them.
        """
        exported: list[ExportedFile] = []
        owned = JobClaims(target.database_url, target.output_root) if claims is None else nullcontext(claims)
        dtype = choose_dtype(self.host.device, precision)
        with owned as claims:
            # Export records a file only while this call's claim on its job holds (the fence).
            fenced = target.model_copy(update={"claim_owner": claims.owner, "dtype": str(dtype).removeprefix("torch.")})
            formatter = (
                DeviceFormatter(self.host.device, load_charter(target.charter_path)) if self.format_on_device else None
            )
            work = _Work(model, dtype, lora, fenced, batch_size, claims, keep_going or _never_stop, formatter)

            with gpu_slot():
                not_mine = self._render_claimed(work, jobs, exported)
            waited = claims.unfinished(not_mine)
            if waited:
                log.info("%s rendered by another run: waiting for them", counted(len(waited), "picture"))
            last_progress = time.monotonic()
            while waited:
                time.sleep(WAIT_POLL_S)
                claims.check()
                work.stop_if_asked()
                # Read-only first: claim only jobs whose owner's lease lapsed (a dead run's).
                still = claims.unfinished(waited)
                free = claims.claimable(still)
                if free:
                    with gpu_slot():
                        self._render_claimed(work, free, exported)
                    still = claims.unfinished(still)
                if len(still) < len(waited):
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > WAIT_WITHOUT_PROGRESS_S:
                    raise ExportError(
                        still[0].relative_path,
                        None,
                        "another run holds it and has finished nothing for {value:.0f} minutes: stop "
                        "that run, then run this one again",
                        value=WAIT_WITHOUT_PROGRESS_S / 60,
                    )
                waited = still
        return exported

    def _render_claimed(self, work: _Work, jobs: list[RenderJob], exported: list[ExportedFile]) -> list[RenderJob]:
        """Render the jobs of ``jobs`` this call can claim, batch by batch, adding them to ``exported``;
        return the others. Whatever happens, it returns or raises only once no picture it started
        is still being finished: its claims are released after it, never under a worker's feet."""
        limit = self.max_in_flight or 2 * work.batch_size + max(1, self.cpu.workers)
        in_flight: deque[tuple[RenderJob, Future[ExportedFile]]] = deque()
        not_claimed: list[RenderJob] = []

        def collect_oldest() -> None:
            job, future = in_flight.popleft()
            try:
                exported.append(future.result())
            except BrokenProcessPool:  # the stage starts a fresh pool on its next picture
                raise ExportError(job.relative_path, None, "a CPU worker process died while finishing it") from None
            except VisuelsError:
                raise
            except Exception as exc:
                raise ExportError(job.relative_path, None, "could not be finished: {exc}", exc=str(exc)) from exc

        pad_to = work.batch_size if self.host.compile_models else None
        try:
            for batch in batches(jobs, work.batch_size):
                work.stop_if_asked()
                mine = {job.key for job in work.claims.take(batch)}
                not_claimed += [job for job in batch if job.key not in mine]
                claimed = [job for job in batch if job.key in mine]
                if not claimed:
                    continue
                pictures = self.host.generate_pictures(
                    work.model,
                    work.dtype,
                    work.lora,
                    claimed,
                    pad_to=pad_to,
                    noise_key=work.target.signing.watermark.value,
                )
                in_flight.extend(
                    (job, self.cpu.submit(work.target, job, work.picture_for(job, picture.pixels), picture.key_visual))
                    for job, picture in zip(claimed, pictures, strict=True)
                )
                while in_flight and (len(in_flight) > limit or in_flight[0][1].done()):
                    collect_oldest()
            while in_flight:
                collect_oldest()
        finally:
            for _job, future in in_flight:
                future.cancel()  # not started yet: dropped
            wait([future for _job, future in in_flight])  # started: finished (and recorded) before we go
        return not_claimed

    def close(self) -> None:
        self.cpu.close()
