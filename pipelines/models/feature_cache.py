"""Features reused across denoising steps: for a UNet, after DeepCache (Ma, Fang and Wang, CVPR
2024), the deep blocks' features; for a transformer, diffusers' First Block Cache.

Adjacent denoising steps produce nearly the same high-level features in a UNet's deep blocks; the
shallow path (the input convolution, the first down block, the last up block and the skip
connection between them) carries the detail that changes. Every ``interval`` steps the whole UNet
runs and what its deep blocks return is kept; the steps between run only the shallow path and
reuse the kept outputs: the deep blocks' work once every ``interval`` steps. (DeepCache's uniform
schedule, its skip branch at the shallowest level.)

A full step runs whenever the UNet's input changes shape (guidance stopping early halves the
batch; a new pass starts at another size): kept features are never reused at another shape.
Against a compiled UNet it runs eager (see ``feature_cache``): on a GPU, measure it against the
compiled full steps before keeping it (benchmarks/gpu_render.py).

First Block Cache (ParaAttention's, as diffusers' hooks build it; an adaptive cousin of TeaCache)
runs a transformer's first block on every step and the others only when that block's output has
moved, in mean absolute terms, by more than ``threshold`` of its size since they last ran; in
between they return what they added then. Its decision is taken over the whole batch, so a
picture would depend on the pictures beside it: ``generation.generate`` runs such jobs one per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


class FeatureCache:
    """Which UNet calls run whole, and the deep blocks' outputs of the last one that did."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.calls = 0
        self.full = True
        self.shape: torch.Size | None = None
        self.kept: dict[int, object] = {}
        self.deep_runs = 0  # how many UNet calls ran the deep blocks (a measure for tests and benchmarks)

    def begin_call(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        """A UNet call starts: run whole on every ``interval``-th call and on a new input shape."""
        sample = args[0] if args else kwargs["sample"]
        self.full = self.calls % self.interval == 0 or sample.shape != self.shape
        if self.full:
            self.calls, self.shape = 0, sample.shape
            self.deep_runs += 1
        self.calls += 1

    def run(self, index: int, forward: Callable, args: tuple, kwargs: dict) -> object:
        """A deep block's output: computed and kept on a full call, the kept one otherwise."""
        if self.full:
            self.kept[index] = forward(*args, **kwargs)
        return self.kept[index]


def deep_blocks(unet: torch.nn.Module) -> list[torch.nn.Module]:
    """The blocks a cached step skips: every down block but the first, the middle block, every up
    block but the last (their outputs reach the last up block only through the kept features)."""
    middle = [unet.mid_block] if unet.mid_block is not None else []
    return [*unet.down_blocks[1:], *middle, *unet.up_blocks[:-1]]


@contextmanager
def feature_cache(unet: torch.nn.Module, interval: int) -> Iterator[FeatureCache]:
    """Within the block, ``unet``'s deep features are computed every ``interval`` calls and reused
    in between; afterwards the UNet is as it was."""
    cache = FeatureCache(interval)
    blocks = deep_blocks(unet)
    for index, block in enumerate(blocks):
        # An instance attribute shadows the class's forward for this block alone; removed after.
        block.forward = lambda *args, _index=index, _forward=block.forward, **kwargs: cache.run(
            _index, _forward, args, kwargs
        )
    hook = unet.register_forward_pre_hook(cache.begin_call, with_kwargs=True)
    # A compiled UNet (the host's --compile) runs eagerly here: which blocks run changes from call
    # to call with Python state that a compiled graph cannot hold. Its compiled code is kept for after.
    compiled = unet.__dict__.pop("_compiled_call_impl", None)
    try:
        yield cache
    finally:
        if compiled is not None:
            unet._compiled_call_impl = compiled
        hook.remove()
        for block in blocks:
            del block.forward


@contextmanager
def first_block_cache(transformer: torch.nn.Module, threshold: float) -> Iterator[None]:
    """Within the block, ``transformer`` runs under First Block Cache at ``threshold``; afterwards
    it is as it was (the pipeline's ``cache_context`` keeps the prompt's and the negative prompt's
    passes apart)."""
    from diffusers.hooks import FirstBlockCacheConfig

    # The blocks the cache hooks, in FLUX.1's and Qwen-Image's lists. With one there is nothing
    # after the first to skip: the pictures are those of the model run in full, as the cache would
    # give, and diffusers' hook fails on it (a test-shaped model).
    blocks = sum(len(getattr(transformer, name, ())) for name in ("transformer_blocks", "single_transformer_blocks"))
    if blocks < 2:
        yield
        return
    transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    try:
        yield
    finally:
        transformer.disable_cache()
