"""The model host: the one object that owns a device's diffusion models and runs them.

A process that renders (a render worker, a CLI or flow run) creates one host per device and
passes it along; nothing about loaded models lives at module level. The host loads a pipeline
once and keeps the last few (interleaved campaigns with different models do not reload), keeps
each LoRA loaded as a named adapter and switches between them without reading files again,
optionally compiles the UNet and VAE decoder, and splits a batch that runs out of GPU memory.

It is safe to share between threads by construction: its two entry points, ``generate`` and
``use`` (``with host.use(ref, dtype, lora) as pipeline:``, for callers that run a pipeline
themselves, as retouching does), hold its lock for the whole call, and everything else is
private. Like InvokeAI's model manager, a model is used only inside such a block.
"""

from __future__ import annotations

import gc
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers import DiffusionPipeline
from visuels._internal.hashing import sha256_json
from visuels._internal.json_text import read_json
from visuels._internal.logs import quiet_third_party_logs
from visuels.errors import EXIT_ENVIRONMENT, ModelError, first_line
from visuels.inputs.model_refs import DemoModelRef, DiffusersFolderRef, HubRef, LoraWeights, ModelRef, SingleFileRef
from visuels.inputs.weight_files import pickle_allowed, weights_variant
from visuels.models.devices import choose_dtype
from visuels.models.families import FAMILIES, family_of_pipeline
from visuels.models.float8 import FLOAT8, refresh_float8, to_float8
from visuels.models.generation import GeneratedPicture, decline, generate
from visuels.models.instruct import PROCESSOR_CLASSES, processor_from_folder
from visuels.models.reference import controlnet_class, hub_snapshot, model_components, model_folder
from visuels.models.spec import GenerationJob, batch_signature, generation_identity

log = logging.getLogger(__name__)

REGROW_AFTER = 50  # calls at a reduced batch size before the full size is tried again


def _denoiser(pipeline: DiffusionPipeline) -> torch.nn.Module:
    unet = getattr(pipeline, "unet", None)
    return unet if unet is not None else pipeline.transformer


class GpuMemoryError(ModelError):
    """Even a single picture does not fit in the device's memory: the machine, not the input."""

    exit_code = EXIT_ENVIRONMENT


def _pipeline_class(folder: Path, source: str) -> type[DiffusionPipeline]:
    index = read_json(folder / "model_index.json")
    class_name = index.get("_class_name", "")
    pipeline_class = getattr(diffusers, class_name, None)
    if pipeline_class is None:
        raise ModelError(
            source,
            "model",
            "unsupported pipeline class '{class_name}' in {folder}",
            class_name=class_name,
            folder=folder,
        )
    return pipeline_class


def _with_single_file_transformer(
    pipeline_class: type[DiffusionPipeline], ref: SingleFileRef, folder: Path, dtype: torch.dtype
) -> DiffusionPipeline:
    """A 2026 family from its transformer's single file (as BFL and ComfyUI share them: diffusers
    converts the original layer names) and the rest of its diffusers folder (VAE, text encoders)."""
    index = read_json(folder / "model_index.json")
    transformer_class = getattr(diffusers, index["transformer"][1])
    transformer = transformer_class.from_single_file(
        ref.path, config=str(folder), subfolder="transformer", local_files_only=True, torch_dtype=dtype
    )
    return pipeline_class.from_pretrained(
        folder,
        transformer=transformer,
        dtype=dtype,
        local_files_only=True,
        use_safetensors=not pickle_allowed(),
        variant=weights_variant(
            (path for path in model_components(folder) if path.name != "transformer"), half=dtype != torch.float32
        ),
    )


def _edit_processor(folder: Path, index: dict, source: str) -> dict:
    """An edit model's processor, read without torchvision (``visuels.models.instruct``), to give
    ``from_pretrained``; nothing for other models."""
    processor = index.get("processor")
    if isinstance(processor, list) and processor[-1] in PROCESSOR_CLASSES:
        return {"processor": processor_from_folder(folder / "processor", source)}
    return {}


def load_from_files(ref: ModelRef, dtype: torch.dtype, source: str = "model") -> DiffusionPipeline:
    """Read a pipeline from its files (on the CPU); never from the network unless a hub id allows it.
    Files that do not make the model they claim to (a transformer's file given with an SD config,
    a checkpoint without its text encoder) are one line naming them, whatever the loader raised."""
    quiet_third_party_logs()  # no loading bars
    folder = model_folder(ref)
    # Named by its files: a render worker does not know which campaign asked for it.
    named = ref.path if isinstance(ref, SingleFileRef) else (folder or getattr(ref, "id", source))
    try:
        pipeline = _read_pipeline(ref, folder, dtype, source)
    except (ModelError, MemoryError, torch.OutOfMemoryError):
        raise  # said already, or the machine's limit (exit 3), not the files'
    except Exception as exc:  # the loaders raise what their code meets in a foreign file: any type
        if isinstance(ref, SingleFileRef):
            raise ModelError(
                named,
                None,
                "cannot load it as the model its config folder {folder} describes: {value}",
                folder=folder,
                value=_loader_said(exc),
            ) from None
        raise ModelError(named, None, "cannot load model: {value}", value=_loader_said(exc)) from None
    for name, component in pipeline.components.items():
        missing = next((weight for weight, value in _tensors(component) if value.is_meta), None)
        if missing is not None:  # diffusers leaves a weight its files lack without data
            raise ModelError(
                named, None, "its files hold no weights for {component}.{weight}", component=name, weight=missing
            )
    _read_hidden_states_only(pipeline)
    return pipeline


# Pipelines that read their language model's hidden states only, never its next-token logits.
_HIDDEN_STATES_READERS = {
    "Flux2KleinPipeline": "Qwen3ForCausalLM",
    "QwenImagePipeline": "Qwen2_5_VLForConditionalGeneration",
    "QwenImageEditPipeline": "Qwen2_5_VLForConditionalGeneration",  # its vision tower stays, under the head
    "QwenImageEditPlusPipeline": "Qwen2_5_VLForConditionalGeneration",
}


def _read_hidden_states_only(pipeline: DiffusionPipeline) -> None:
    """FLUX.2 klein and Qwen-Image (its edit models too) encode a prompt with a language model and
    read its hidden layers: its vocabulary projection (152k logits per token, 512 tokens) is work
    nothing reads, so the pipeline is given the model under that head, the same weights."""
    encoder = getattr(pipeline, "text_encoder", None)
    if _HIDDEN_STATES_READERS.get(type(pipeline).__name__) == type(encoder).__name__:
        pipeline.register_modules(text_encoder=encoder.model)


def _label(pipeline: DiffusionPipeline) -> str:
    """The family people know a loaded pipeline by (its class where visuels has no name for it)."""
    family = family_of_pipeline(type(pipeline).__name__)
    return family.label if family is not None else type(pipeline).__name__


def _loader_said(exc: BaseException, room: int = 160) -> str:
    """What a loader's exception says, in as many of its first sentences as fit in ``room``
    characters (the first always): diffusers goes on with advice about its own arguments
    (``ignore_mismatched_sizes=True``…), which a user of visuels cannot give."""
    sentences = " ".join(first_line(exc).split()).split(". ")  # "Cannot load  because": a name left empty
    said = sentences[0]
    for sentence in sentences[1:]:
        if len(said) + 2 + len(sentence) > room:
            return said.rstrip(".")
        said = f"{said}. {sentence}"
    return said


@contextmanager
def _loader_quiet() -> Iterator[None]:
    """A LoRA load without its loaders' chatter: diffusers logs the whole error of a file that does
    not fit (a line per weight) before raising it, said here in one line instead; peft warns at
    every adapter after the first, as a style LoRA with its speed LoRA always has."""
    logger = logging.getLogger("diffusers.loaders.peft")
    disabled, logger.disabled = logger.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)
            yield
    finally:
        logger.disabled = disabled


def _drop_adapter(pipeline: DiffusionPipeline, name: str) -> None:
    """Take out what a failed LoRA load left of adapter ``name``, so the pipeline is as before."""
    if any(name in names for names in pipeline.get_list_adapters().values()):
        pipeline.delete_adapters(name)


def _tensors(component: object) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(component, torch.nn.Module):
        yield from component.named_parameters()
        yield from component.named_buffers()


def _read_pipeline(ref: ModelRef, folder: Path | None, dtype: torch.dtype, source: str) -> DiffusionPipeline:
    if isinstance(ref, (DemoModelRef, DiffusersFolderRef)):
        assert folder is not None
        index = read_json(folder / "model_index.json")
        extra = {"safety_checker": None} if "safety_checker" in index else {}
        extra["variant"] = weights_variant(model_components(folder), half=dtype != torch.float32)
        # safetensors only, unless pickle was allowed (describe_model refused it before).
        extra["use_safetensors"] = not pickle_allowed()
        extra |= _edit_processor(folder, index, source)
        return _pipeline_class(folder, source).from_pretrained(folder, dtype=dtype, local_files_only=True, **extra)
    if isinstance(ref, SingleFileRef):
        assert folder is not None
        pipeline_class = _pipeline_class(folder, source)
        family = family_of_pipeline(pipeline_class.__name__)
        if family is not None and family.denoiser == "transformer":
            return _with_single_file_transformer(pipeline_class, ref, folder, dtype)
        # Without a local config, from_single_file fetches one from the hub: never at run time.
        return pipeline_class.from_single_file(ref.path, config=str(folder), local_files_only=True, dtype=dtype)
    assert isinstance(ref, HubRef)
    snapshot = hub_snapshot(ref, source)  # what describe_model read: the revision's commit
    index = read_json(snapshot / "model_index.json")
    return DiffusionPipeline.from_pretrained(
        ref.id,
        revision=ref.revision,
        dtype=dtype,
        use_safetensors=not pickle_allowed(),
        variant=weights_variant(model_components(snapshot), half=dtype != torch.float32),
        **_edit_processor(snapshot, index, source),
    )


@dataclass
class _Fit:
    """The batch size that fits a model and batch shape since an out-of-memory error."""

    size: int
    calls: int = 0  # calls that fitted since


@dataclass
class _Hosted:
    """A loaded pipeline and the LoRA state the host keeps for it."""

    pipeline: DiffusionPipeline
    adapters: dict[str, str] = field(default_factory=dict)  # LoRA path -> adapter name
    lora: LoraWeights | None = None
    fused: bool = False
    pristine: dict[str, torch.Tensor] = field(default_factory=dict)  # base weights a fused LoRA changed
    compiled: bool = False
    float8: bool = False  # the denoiser's linear layers multiply in FP8 (visuels.models.float8)


class ModelHost:
    """Owns one device's models: load, keep, LoRA, compile, generate (one call at a time)."""

    def __init__(
        self,
        device: torch.device,
        keep_models: int = 1,
        compile_models: bool = False,
        fuse_lora: bool | None = None,
    ) -> None:
        self.device = device
        self.keep_models = keep_models
        self.compile_models = compile_models
        # Fusing folds the LoRA into the weights (no extra work per step) and keeps a compiled
        # graph valid when the LoRA changes; on a CPU switching unfused adapters is cheaper.
        self.fuse_lora = device.type == "cuda" if fuse_lora is None else fuse_lora
        self._models: OrderedDict[str, _Hosted] = OrderedDict()
        self._controlnet: tuple[tuple[str, torch.dtype], torch.nn.Module] | None = None  # the last one used
        # Per model and batch shape, the largest batch known to fit after an out-of-memory error,
        # and how many calls have fitted since; after REGROW_AFTER the full size is tried again.
        self._fitting: dict[tuple, _Fit] = {}
        self.loads = 0  # how many times a model was read from disk (tests and benchmarks count them)
        self._lock = threading.Lock()  # one model call at a time on this device

    @staticmethod
    def model_key(ref: ModelRef, dtype: torch.dtype) -> str:
        # The native size changes the jobs' sizes, not the weights: one loaded copy serves both.
        return sha256_json({"ref": ref.model_dump(mode="json", exclude={"native_size"}), "dtype": str(dtype)})

    @contextmanager
    def use(self, ref: ModelRef, dtype: torch.dtype, lora: LoraWeights | None) -> Iterator[DiffusionPipeline]:
        """The pipeline for ``ref`` in ``dtype`` with ``lora``, for this block alone: no other
        thread uses the device until it ends."""
        with self._lock:
            yield self._pipeline(ref, dtype, lora)

    def _pipeline(self, ref: ModelRef, dtype: torch.dtype, lora: LoraWeights | None) -> DiffusionPipeline:
        """The pipeline for ``ref`` in ``dtype`` with ``lora`` (or none) applied: loaded once, then kept."""
        key = self.model_key(ref, dtype)
        hosted = self._models.get(key)
        if hosted is None:
            while len(self._models) >= self.keep_models:
                self._models.popitem(last=False)  # the least recently used goes first
                # PEFT layers and hooks hold reference cycles: collect them before freeing memory.
                gc.collect()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            log.info("loading model %s on %s (%s)", ref.kind, self.device, dtype)
            pipeline = load_from_files(ref, self._weights_dtype(dtype)).to(self.device)
            pipeline.set_progress_bar_config(disable=True)
            hosted = _Hosted(pipeline=pipeline, float8=dtype == FLOAT8)
            if hosted.float8:
                to_float8(_denoiser(pipeline))
            self.loads += 1
            self._models[key] = hosted
        self._models.move_to_end(key)
        self._use_lora(hosted, lora)
        if self.compile_models and not hosted.compiled:
            self._compile(hosted)
        return hosted.pipeline

    def _weights_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype weights load in: FP8 layers keep the device's own precision beside their FP8 copy."""
        return choose_dtype(self.device) if dtype == FLOAT8 else dtype

    def _controlnet_model(self, path: str, dtype: torch.dtype) -> torch.nn.Module:
        """The ControlNet of a folder, loaded once and kept while campaigns use it."""
        dtype = self._weights_dtype(dtype)
        if self._controlnet is not None and self._controlnet[0] == (path, dtype):
            return self._controlnet[1]
        self._controlnet = None  # the previous one goes before the next is read
        log.info("loading ControlNet %s on %s (%s)", path, self.device, dtype)
        name = controlnet_class(Path(path))
        if name not in {family.controlnet for family in FAMILIES}:  # never an arbitrary class from a file
            raise ModelError(path, "photos.controlnet", "not a ControlNet visuels knows: {value}", value=name)
        try:
            model = getattr(diffusers, name).from_pretrained(
                path,
                torch_dtype=dtype,
                local_files_only=True,
                use_safetensors=not pickle_allowed(),
                variant=weights_variant([Path(path)], half=dtype != torch.float32),
            )
        except (MemoryError, torch.OutOfMemoryError):
            raise
        except Exception as exc:  # as for a model: whatever the loader meets in a foreign folder
            raise ModelError(
                path, "photos.controlnet", "cannot load ControlNet: {value}", value=_loader_said(exc)
            ) from None
        self._controlnet = ((path, dtype), model.to(self.device))
        return self._controlnet[1]

    def _use_lora(self, hosted: _Hosted, lora: LoraWeights | None) -> None:
        """Make ``lora`` (and its speed LoRA) the pipeline's only active LoRAs; each file is read once per pipeline."""
        if lora == hosted.lora:
            return
        pipeline = hosted.pipeline
        if hosted.fused:
            self._unfuse(hosted)
        # From here until the new LoRA is set, the pipeline holds no known LoRA state: a failure
        # leaves it so, and the next call sets its LoRA from scratch instead of trusting a stale one.
        hosted.lora = None
        if lora is None:
            if hosted.adapters:
                pipeline.disable_lora()
            return
        names = [self._adapter(hosted, weights) for weights in lora.applied()]
        pipeline.enable_lora()
        pipeline.set_adapters(names, adapter_weights=[weights.scale for weights in lora.applied()])
        hosted.lora = lora
        if self.fuse_lora:
            self._fuse(hosted, names)

    @staticmethod
    def _adapter(hosted: _Hosted, weights: LoraWeights) -> str:
        """The adapter name of a LoRA file in this pipeline; its file read the first time only."""
        name = hosted.adapters.get(weights.path)
        if name is None:
            name = f"lora{len(hosted.adapters)}"
            try:
                with _loader_quiet():
                    hosted.pipeline.load_lora_weights(weights.path, adapter_name=name)
            except (MemoryError, torch.OutOfMemoryError):
                raise
            except Exception as exc:  # a file for another model: shapes that differ, names it lacks…
                _drop_adapter(hosted.pipeline, name)  # half injected: the next LoRA takes this name
                # torch's load_state_dict says "size mismatch" once per weight; transformers' loading
                # of a text encoder's, "ignore_mismatched_sizes" after a table it logged
                if "size mismatch" in str(exc) or "ignore_mismatched_sizes" in str(exc):
                    raise ModelError(
                        weights.path,
                        "lora",
                        "its weights' shapes are not this model's ({family}): a LoRA made for another model?",
                        family=_label(hosted.pipeline),
                    ) from None
                if "not found in the base model" in str(exc):  # peft: layers named that this model lacks
                    raise ModelError(
                        weights.path,
                        "lora",
                        "it names layers this model ({family}) does not have: a LoRA made for another model?",
                        family=_label(hosted.pipeline),
                    ) from None
                if isinstance(exc, KeyError):  # a down projection whose up one is not in the file
                    raise ModelError(
                        weights.path, "lora", "{name} is missing: the LoRA file is incomplete", name=exc.args[0]
                    ) from None
                if "Could not automatically infer state dict type" in str(exc):  # kohya's, some projections only
                    raise ModelError(
                        weights.path,
                        "lora",
                        "cannot load LoRA weights: diffusers cannot tell the layout of its text encoder weights",
                    ) from None
                raise ModelError(
                    weights.path, "lora", "cannot load LoRA weights: {value}", value=_loader_said(exc)
                ) from None
            applied = hosted.pipeline.get_list_adapters()
            if not any(name in names for names in applied.values()):
                # diffusers only warns when no weight names a layer of this model: say it.
                raise ModelError(
                    weights.path,
                    "lora",
                    "none of its weights names a layer of this model ({family}): a LoRA made for another model?",
                    family=_label(hosted.pipeline),
                )
            hosted.adapters[weights.path] = name
        return name

    def _lora_layers(self, hosted: _Hosted) -> dict[str, torch.nn.Module]:
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = {}
        for component in ("unet", "transformer", "text_encoder", "text_encoder_2"):
            module = getattr(hosted.pipeline, component, None)
            if module is None:
                continue
            for name, layer in module.named_modules():
                if isinstance(layer, BaseTunerLayer):
                    layers[f"{component}.{name}"] = layer
        return layers

    def _fuse(self, hosted: _Hosted, names: list[str]) -> None:
        for layer_name, layer in self._lora_layers(hosted).items():
            if layer_name not in hosted.pristine:
                hosted.pristine[layer_name] = layer.get_base_layer().weight.detach().clone()
        hosted.pipeline.fuse_lora(adapter_names=names, lora_scale=1.0)
        hosted.fused = True
        if hosted.float8:  # the LoRA is fused before quantizing
            refresh_float8(_denoiser(hosted.pipeline))

    def _unfuse(self, hosted: _Hosted) -> None:
        """Unfuse, then restore the exact base weights: subtracting in half precision is not exact."""
        hosted.pipeline.unfuse_lora()
        with torch.no_grad():
            for layer_name, layer in self._lora_layers(hosted).items():
                if layer_name in hosted.pristine:
                    layer.get_base_layer().weight.copy_(hosted.pristine[layer_name])
        hosted.fused = False
        if hosted.float8:
            refresh_float8(_denoiser(hosted.pipeline))

    def _compile(self, hosted: _Hosted) -> None:
        """Compile the denoiser (UNet or transformer) and the VAE decoder in place, for static
        shapes (once per batch shape); the convolutions of UNets and VAEs run channels-last."""
        pipeline = hosted.pipeline
        denoiser = _denoiser(pipeline)
        # A transformer's text lengths and masks may break its graph in places: breaks allowed.
        for module, whole in ((denoiser, denoiser is getattr(pipeline, "unet", None)), (pipeline.vae.decoder, True)):
            if any(isinstance(layer, torch.nn.Conv2d) for layer in module.modules()):
                module.to(memory_format=torch.channels_last)
            module.compile(fullgraph=whole, dynamic=False)
        hosted.compiled = True

    def generate(
        self,
        ref: ModelRef,
        dtype: torch.dtype,
        lora: LoraWeights | None,
        jobs: Sequence[GenerationJob],
        pad_to: int | None = None,
        noise_key: int | None = None,
    ) -> list[np.ndarray]:
        """The jobs' pictures (H×W×3 uint8): ``generate_pictures`` without the key visuals."""
        return [picture.pixels for picture in self.generate_pictures(ref, dtype, lora, jobs, pad_to, noise_key)]

    def generate_pictures(
        self,
        ref: ModelRef,
        dtype: torch.dtype,
        lora: LoraWeights | None,
        jobs: Sequence[GenerationJob],
        pad_to: int | None = None,
        noise_key: int | None = None,
    ) -> list[GeneratedPicture]:
        """The jobs' pictures, one model call per batch; on out-of-memory, halve and go on.

        A picture that several jobs share (the same commune, audience and format in several
        languages; a key visual's formats) is generated once. A job of a key_visual campaign gets
        its key visual declined to its format (``generation.decline``), and keeps the key visual.
        ``pad_to``: fill short batches up to this size with copies of their last job (results
        dropped), so a compiled model sees one shape. Each job has its own generator, so neither
        padding nor splitting changes a picture. ``noise_key``: the watermark key the starting
        noise is marked under (``generation.generate``).
        """
        with self.use(ref, dtype, lora) as pipeline:
            identities = [generation_identity(job) for job in jobs]
            distinct: dict[tuple, GenerationJob] = {}
            for identity, job in zip(identities, jobs, strict=True):
                distinct.setdefault(identity, job)
            first_passes = self._first_passes(pipeline, ref, dtype, list(distinct.values()), pad_to, noise_key)
            by_identity = dict(zip(distinct, first_passes, strict=True))
            key_visuals = [by_identity[identity] for identity in identities]
            declined = decline(pipeline, jobs, key_visuals)
            return [
                GeneratedPicture(pixels, key_visual if job.key_visual is not None else None)
                for job, pixels, key_visual in zip(jobs, declined, key_visuals, strict=True)
            ]

    def _first_passes(
        self,
        pipeline: DiffusionPipeline,
        ref: ModelRef,
        dtype: torch.dtype,
        jobs: Sequence[GenerationJob],
        pad_to: int | None,
        noise_key: int | None,
    ) -> list[np.ndarray]:
        photo = jobs[0].photo
        controlnet = self._controlnet_model(photo.controlnet_path, dtype) if photo and photo.controlnet_path else None
        fitting = (self.model_key(ref, dtype), batch_signature(jobs[0]))
        fit = self._fitting.get(fitting)
        limit = fit.size if fit else len(jobs)
        pad = min(pad_to, limit) if pad_to else 0
        pending = [list(jobs[start : start + limit]) for start in range(0, len(jobs), limit)]
        pictures: list[np.ndarray] = []
        while pending:
            chunk = pending.pop(0)
            padded = chunk + [chunk[-1]] * (pad - len(chunk))
            result = self._try_generate(pipeline, padded, controlnet, noise_key)
            if result is not None:
                pictures += result[: len(chunk)]
                continue
            # Here, outside the except clause, the failed call's frames and activations are freed.
            if len(chunk) == 1:
                raise GpuMemoryError(str(self.device), "batch_size", "one picture does not fit in GPU memory")
            gc.collect()
            torch.cuda.empty_cache()
            half = (len(chunk) + 1) // 2
            fit = _Fit(size=min(half, fit.size if fit else half))
            self._fitting[fitting] = fit
            pad = 0  # a new, smaller shape: never pad back up to the one that failed
            log.warning("out of GPU memory with %d pictures per call: going on with %d", len(chunk), half)
            pending[:0] = [chunk[:half], chunk[half:]]
        if fit is not None:
            fit.calls += 1
            if fit.calls >= REGROW_AFTER:  # the memory may have been another job's: try the full size again
                del self._fitting[fitting]
        return pictures

    @staticmethod
    def _try_generate(
        pipeline: DiffusionPipeline,
        jobs: list[GenerationJob],
        controlnet: torch.nn.Module | None,
        noise_key: int | None,
    ) -> list[np.ndarray] | None:
        try:
            return generate(pipeline, jobs, controlnet, noise_key)
        except torch.cuda.OutOfMemoryError:
            return None
