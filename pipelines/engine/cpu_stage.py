"""The CPU stage of rendering: from a generated picture to a marked, recorded file, per job.

``finish_picture`` post-processes (format, palette, label, logo, text), assesses compliance,
marks, writes and records one picture. ``CpuStage`` runs it in a pool of worker processes so
that the GPU stage never waits for it, or inline when asked for no workers (tests, debugging).

This module never imports torch: spawned worker processes start in about a second.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict
from visuels._internal.allocator import keep_freed_memory
from visuels._internal.liveness import is_gone
from visuels.engine.export import ExportedFile, export_picture
from visuels.errors import CampaignError, ExportError, VisuelsError
from visuels.inputs.charter import Charter, load_charter
from visuels.marking.keys import SigningFiles
from visuels.marking.mark import MarkingContext
from visuels.planning.jobs import RenderJob
from visuels.postprocess.chain import Formatted, postprocess
from visuels.postprocess.compliance import assess
from visuels.record.database import Database

log = logging.getLogger(__name__)

ORPHAN_CHECK_S = 1.0  # how soon a worker notices that the process that made its pool is gone


class ExportTarget(BaseModel):
    """Where and how a plan's pictures are exported: small, sent with every picture."""

    model_config = ConfigDict(frozen=True)

    output_root: Path
    charter_path: Path
    database_url: str
    signing: SigningFiles
    model_description: str
    model_licence: str | None = None  # the model's licence id, recorded with every picture
    licence_override: str | None = None  # the campaign's recorded reason, where the licence refuses publication
    run_id: str | None = None
    claim_owner: str | None = None  # whose claims must still hold for a file to be recorded (visuels.engine.claims)
    dtype: str = ""  # what the rendering machine resolved the plan's precision to, recorded with each file


@dataclass
class WorkerResources:
    """What one process keeps between pictures: loaded charters, open databases."""

    charters: dict[Path, Charter] = field(default_factory=dict)
    databases: dict[str, Database] = field(default_factory=dict)

    def charter(self, path: Path) -> Charter:
        if path not in self.charters:
            self.charters[path] = load_charter(path)
        return self.charters[path]

    def database(self, url: str) -> Database:
        if url not in self.databases:
            self.databases[url] = Database(url)
        return self.databases[url]

    def close(self) -> None:
        for database in self.databases.values():
            database.close()


def finish_picture(
    resources: WorkerResources,
    target: ExportTarget,
    job: RenderJob,
    pixels: np.ndarray | Formatted,
    key_visual: np.ndarray | None = None,
) -> ExportedFile:
    """Post-process, assess, mark, write and record one generated picture, or one the rendering
    device formatted already (``key_visual``: the picture it was declined from, recorded as its
    C2PA ingredient)."""
    charter = resources.charter(target.charter_path)
    if job.charter_hash != charter.hash:
        raise CampaignError(target.charter_path, None, "the charter changed since the campaign was planned")
    template = charter.template(job.layout, job.format)
    if job.template_hash is not None and (template is None or template.sha256 != job.template_hash):
        raise CampaignError(target.charter_path, "templates", "a template changed since the campaign was planned")
    result = postprocess(
        pixels if isinstance(pixels, Formatted) else Image.fromarray(pixels),
        charter,
        job.width,
        job.height,
        job.language,
        job.commune_name,
        job.headline,
        job.call_to_action,
        template,
        edited=job.photo is not None,  # made from a commune's photo: "modifiée"
    )
    marking = MarkingContext(
        creator=charter.spec.creator,
        model=target.model_description,
        signing=target.signing,
        run_id=target.run_id,
        disclose_prompt=charter.spec.disclose_prompt,
        model_licence=target.model_licence,
        licence_override=target.licence_override,
    )
    database = resources.database(target.database_url)
    compliance = assess(result, charter)
    return export_picture(
        result.image,
        job,
        target.output_root,
        compliance,
        marking,
        database,
        target.claim_owner,
        target.dtype,
        key_visual=key_visual,
    )


# A worker process's resources. ProcessPoolExecutor gives a task function no other way to reach
# state that lives as long as its process (torch's DataLoader workers keep theirs the same way).
_process_resources: WorkerResources | None = None


def _start_worker(owner: int) -> None:
    global _process_resources
    _process_resources = WorkerResources()
    keep_freed_memory()  # each picture reuses the last one's memory instead of faulting it in again
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    import cv2

    cv2.setNumThreads(1)  # one core per worker process: the pool is the parallelism
    threading.Thread(target=_exit_when_orphaned, args=(owner,), daemon=True, name="orphan-watch").start()


def _exit_when_orphaned(owner: int) -> None:
    """A killed owner cannot shut its pool down: then its workers stop by themselves.

    The owner is the process that made the pool, not this one's parent: a worker's parent is the
    fork server, which lives as long as any worker does (each holds its "alive" pipe), so watching
    the parent would keep both running for ever after the owner was killed.
    """
    while not is_gone(owner):
        time.sleep(ORPHAN_CHECK_S)
    os._exit(0)


def _clean_process_context() -> multiprocessing.context.BaseContext:
    """Worker processes that share nothing with this one: never a fork of a process holding CUDA.

    A fork server started with only this module imported forks each worker in milliseconds
    (spawn, where there is none, starts an interpreter per worker). Either way a worker imports
    the parent's main module, as multiprocessing does: entry points keep their imports light
    (visuels.flows.render_batches imports the model libraries only where it makes a renderer).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _finish_in_worker(
    target: ExportTarget, job: RenderJob, pixels: np.ndarray | Formatted, key_visual: np.ndarray | None
) -> ExportedFile:
    assert _process_resources is not None, "runs only in a worker started by CpuStage"
    try:
        return finish_picture(_process_resources, target, job, pixels, key_visual)
    except VisuelsError:
        raise
    except Exception as exc:
        # Sent back as an error every process can rebuild (an exception that cannot be unpickled
        # would break the whole pool); the full traceback goes to this worker's log.
        log.exception("finishing %s failed", job.relative_path)
        raise ExportError(
            job.relative_path, None, "could not be finished: {kind}: {exc}", kind=type(exc).__name__, exc=str(exc)
        ) from None


class CpuStageClosedError(RuntimeError):
    """A picture submitted after the stage was closed: a bug in the caller, never silently served."""


class CpuStage:
    """A pool of ``workers`` processes finishing pictures; with 0 workers, it finishes them inline.

    Several threads may submit at once (a render worker runs two chunks). When a worker process
    dies, the pool it belonged to is broken: the next submit replaces that pool, and only that
    one, so a thread still holding the broken pool never shuts down the fresh one another thread
    made. ``close`` stops the pool, and the fork server with it when no other pool of this process
    still uses it; a closed stage refuses new pictures.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._inline = WorkerResources()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise CpuStageClosedError("a picture was submitted to a closed CPU stage")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=_clean_process_context(),
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def submit(
        self,
        target: ExportTarget,
        job: RenderJob,
        pixels: np.ndarray | Formatted,
        key_visual: np.ndarray | None = None,
    ) -> Future[ExportedFile]:
        if self.workers == 0:
            if self._closed:
                raise CpuStageClosedError("a picture was submitted to a closed CPU stage")
            future: Future[ExportedFile] = Future()
            try:
                future.set_result(finish_picture(self._inline, target, job, pixels, key_visual))
            except Exception as exc:
                future.set_exception(exc)
            return future
        pool = self._executor()
        try:
            return pool.submit(_finish_in_worker, target, job, pixels, key_visual)
        except BrokenProcessPool:
            self._drop_pool(pool, wait=False)  # a worker died earlier: that run failed; this one gets a fresh pool
            return self._executor().submit(_finish_in_worker, target, job, pixels, key_visual)

    def _drop_pool(self, broken: ProcessPoolExecutor | None, wait: bool) -> None:
        """Forget the pool if it is still ``broken`` (None: whichever it is), and shut it down."""
        with self._lock:
            if broken is not None and self._pool is not broken:
                return  # another thread replaced it already: the current pool is a fresh one
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop_pool(None, wait=True)
        self._inline.close()
        _stop_idle_fork_server()


def _stop_idle_fork_server() -> None:
    """Stop this process's fork server once no worker of any pool is left: it would otherwise wait
    for the interpreter to exit. multiprocessing has no public call for it; its ``_stop`` is what
    its own tests use, and it waits for the server to end (safe only when no worker holds it)."""
    if multiprocessing.active_children():
        return
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None:
        server._stop()
