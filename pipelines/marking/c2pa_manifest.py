"""Signed C2PA manifests: created by an AI model, watermarked, with the watermark and the ISCC image
code as soft bindings.

Signing is the very last step of export: any later re-encoding invalidates the manifest.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import c2pa
from visuels._internal.json_text import loads
from visuels.errors import Text
from visuels.marking import iscc
from visuels.marking.keys import SigningError, SigningFiles, TimeStampError
from visuels.marking.xmp import DigitalSourceType

WATERMARK_ALGORITHM = "org.visuels.tiled-spread-spectrum.1"
WATERMARK_KEY_NAME = "key "  # the soft binding's name: "key <id>", the watermark key it was written with


INGREDIENT_LABEL = "original"
PHOTO_LABEL = "photo"
KEY_VISUAL_LABEL = "key_visual"
KEY_VISUAL_DESCRIPTION = "Key visual"  # how a reader tells the key visual from a photo (both inputTo)
MODEL_LABEL = "org.visuels.model"  # the model that made the picture and its licence
# Validation failures that say nothing of the file: its signer's certificate has expired since it
# signed (read without a time-stamp, against today), or is unknown to a reader given no anchors.
EXPIRED = "signingCredential.expired"
UNTRUSTED = "signingCredential.untrusted"


@dataclass(frozen=True)
class Ingredient:
    """A picture this one was made from: the original of an edit (its parent), or a photo that was
    input to the model, with its credit."""

    title: str
    data: bytes
    mime_type: str
    credit: str | None = None
    description: str | None = None  # what it was to this picture, when the title does not say


@dataclass(frozen=True)
class Provenance:
    """What the manifest says about how the picture was made (or edited, from ``parent``)."""

    title: str
    source_type: DigitalSourceType
    model: str
    model_hash: str
    lora_hash: str | None
    watermark_id: str
    watermark_key_id: str  # which of the deployment's keys wrote it (watermark_keys.key_id), never the key
    image_code: str  # the picture's ISCC image code (visuels.marking.iscc), the registered soft binding
    parent: Ingredient | None = None
    photo: Ingredient | None = None  # the commune photo the model started from
    key_visual: Ingredient | None = None  # the picture this format was declined from (cropped, outpainted)
    model_licence: str | None = None  # the model's licence id, where known
    licence_override: str | None = None  # why a model whose licence refuses publication was used


def _actions(provenance: Provenance, agent: str, software: str) -> list[dict]:
    watermarked = {"action": "c2pa.watermarked", "softwareAgent": {"name": "visuels", "version": software}}
    if provenance.parent is None:
        created = {
            "action": "c2pa.created",
            "digitalSourceType": provenance.source_type.value,
            "softwareAgent": {"name": agent, "version": software},
        }
        given = ((PHOTO_LABEL, provenance.photo), (KEY_VISUAL_LABEL, provenance.key_visual))
        inputs = [label for label, ingredient in given if ingredient is not None]
        if inputs:
            created["parameters"] = {"ingredientIds": inputs}
        if provenance.key_visual is not None:
            created["description"] = provenance.key_visual.description
        return [created, watermarked]
    # An edit: the original opened as the parent ingredient, then edited (by a person, an
    # inpainting model, or both: a composite with generated parts).
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": [INGREDIENT_LABEL]}}
    edited = {
        "action": "c2pa.edited",
        "digitalSourceType": provenance.source_type.value,
        "softwareAgent": {"name": agent, "version": software},
    }
    return [opened, edited, watermarked]


def manifest_definition(provenance: Provenance, mime_type: str) -> dict:
    """The manifest: what made the picture, and two soft bindings: the watermark's payload, and
    the picture's ISCC image code (``io.iscc.v0``, on the C2PA soft-binding list)."""
    software = version("visuels")
    lora = provenance.lora_hash[:12] if provenance.lora_hash else "none"
    agent = f"visuels {software}; model {provenance.model} ({provenance.model_hash[:12]}); LoRA {lora}"
    return {
        "claim_generator_info": [{"name": "visuels", "version": software}],
        "title": provenance.title,
        "format": mime_type,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": _actions(provenance, agent, software)}},
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": WATERMARK_ALGORITHM,
                    "blocks": [{"scope": {}, "value": provenance.watermark_id}],
                    "name": WATERMARK_KEY_NAME + provenance.watermark_key_id,
                },
            },
            {
                "label": "c2pa.soft-binding",
                "data": {"alg": iscc.ALGORITHM, "blocks": [{"scope": {}, "value": provenance.image_code}]},
            },
            *_model_assertion(provenance),
        ],
    }


def _model_assertion(provenance: Provenance) -> list[dict]:
    """The model and its licence, as a custom assertion (C2PA allows entity-specific labels):
    where no licence is known, none is claimed."""
    if provenance.model_licence is None:
        return []
    data = {"name": provenance.model, "hash": provenance.model_hash, "licence": provenance.model_licence}
    if provenance.licence_override is not None:
        data["licence_override"] = provenance.licence_override
    return [{"label": MODEL_LABEL, "data": data}]


@lru_cache(maxsize=4)
def _context(trust_anchors: str | None) -> c2pa.Context:
    settings: dict = {"version": 1, "builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def sign_asset(data: bytes, mime_type: str, provenance: Provenance, files: SigningFiles) -> bytes:
    """Return the picture ``data`` (PNG, JPEG or WebP) with an embedded, signed C2PA manifest."""
    info = c2pa.C2paSignerInfo(
        alg=b"es256",
        sign_cert=files.chain.read_bytes(),
        private_key=files.private_key.read_bytes(),
        ta_url=files.tsa_url.encode() if files.tsa_url else None,
    )
    try:
        signer = c2pa.Signer.from_info(info)
        builder = c2pa.Builder(json.dumps(manifest_definition(provenance, mime_type)), context=_context(None))
        if provenance.parent is not None:
            parent = provenance.parent
            ingredient = {"title": parent.title, "relationship": "parentOf", "label": INGREDIENT_LABEL}
            builder.add_ingredient(ingredient, parent.mime_type, io.BytesIO(parent.data))
        # inputTo: what went into the model (C2PA 2.1): the photo, with its credit; the key visual
        # a format was cropped or outpainted from.
        inputs = (
            (provenance.photo, PHOTO_LABEL, "Photo: {credit}"),
            (provenance.key_visual, KEY_VISUAL_LABEL, KEY_VISUAL_DESCRIPTION + ": {description}"),
        )
        for given, label, wording in inputs:
            if given is not None:
                described = wording.format(credit=given.credit, description=given.description)
                ingredient = {"title": given.title, "relationship": "inputTo", "label": label, "description": described}
                builder.add_ingredient(ingredient, given.mime_type, io.BytesIO(given.data))
        output = io.BytesIO()
        builder.sign(signer, mime_type, io.BytesIO(data), output)
    except c2pa.C2paError as exc:
        if files.tsa_url and (why := _time_stamp_failure(str(exc))):
            raise TimeStampError(
                "VISUELS_TSA_URL",
                None,
                "the time-stamp authority {url} gave no time-stamp ({why}): check that this machine reaches it,"
                " or unset VISUELS_TSA_URL and time-stamp the pictures later with `visuels timestamp`",
                url=files.tsa_url,
                why=why,
            ) from None
        raise SigningError(files.chain, None, "C2PA signing failed: {exc}", exc=str(exc)) from None
    return output.getvalue()


def _time_stamp_failure(message: str) -> Text | None:
    """Why a time-stamp authority gave none, where a C2PA signing error says it came from asking one
    (c2pa names the HTTP client's failure in its message); None: another failure."""
    status = re.search(r"status = (\d+)|HttpErrorResponse\((\d+)", message)
    if status:
        return Text("it answered HTTP {status}", status=status.group(1) or status.group(2))
    if "http resolver" in message or "HttpResolverError" in message:
        return Text("no answer")
    if "timestamp" in message.lower() or "time-stamp" in message.lower():
        return Text("its answer holds no time-stamp")
    if "decode error" in message:  # the keys were read before signing: what could not be decoded is its answer
        return Text("its answer could not be read")
    return None


def time_stamp(data: bytes, mime_type: str, title: str, files: SigningFiles) -> bytes:
    """``data`` (a signed picture) with an update manifest that adds an RFC 3161 time-stamp of its
    manifest (C2PA 2.2: a ``c2pa.time-stamp`` assertion; the update's own signature is stamped
    too), from the time-stamp authority ``files.tsa_url``. The picture's pixels and its manifest
    stay as they were: readers find them as the update's parent."""
    if not files.tsa_url:
        raise SigningError("VISUELS_TSA_URL", None, "no time-stamp authority: set VISUELS_TSA_URL")
    settings = {
        "version": 1,
        "builder": {
            "thumbnail": {"enabled": False},
            "auto_timestamp_assertion": {"enabled": True, "fetch_scope": "parent"},
        },
    }
    info = c2pa.C2paSignerInfo(
        alg=b"es256",
        sign_cert=files.chain.read_bytes(),
        private_key=files.private_key.read_bytes(),
        ta_url=files.tsa_url.encode(),
    )
    definition = {"claim_generator_info": [{"name": "visuels", "version": version("visuels")}], "title": title}
    try:
        builder = c2pa.Builder(
            json.dumps({**definition, "format": mime_type}),
            context=c2pa.Context(settings=c2pa.Settings.from_dict(settings)),
        )
        builder.set_intent(c2pa.C2paBuilderIntent.UPDATE)
        output = io.BytesIO()
        builder.sign(c2pa.Signer.from_info(info), mime_type, io.BytesIO(data), output)
    except c2pa.C2paError as exc:
        why = _time_stamp_failure(str(exc))
        if why is None:
            raise SigningError(files.chain, None, "time-stamping failed: {exc}", exc=str(exc)) from None
        raise TimeStampError(
            "VISUELS_TSA_URL",
            None,
            "the time-stamp authority {url} gave no time-stamp ({why}): check that this machine reaches it, then"
            " run again",
            url=files.tsa_url,
            why=why,
        ) from None
    return output.getvalue()


@dataclass(frozen=True)
class ManifestState:
    state: str  # Trusted, Valid, Invalid or missing
    soft_binding: str | None  # the watermark's payload the manifest names
    source_type: str | None
    edited_from: str | None = None  # the parent ingredient's title, for an edit
    photos: tuple[str, ...] = ()  # the input photos' descriptions (their credits)
    key_visual: str | None = None  # the key visual ingredient's description, for a declined format
    image_code: str | None = None  # the ISCC image code the manifest names (io.iscc.v0)
    watermark_key_id: str | None = None  # the watermark key the manifest names
    signer: str | None = None  # the signing certificate's subject (common name, organisation)
    signed_at: str | None = None  # the time-stamp authority's time, when the manifest has one
    model_licence: str | None = None  # the licence of the model that made it, as the manifest says
    failures: tuple[str, ...] = ()  # the validation failure codes of its active manifest

    @property
    def expired_only(self) -> bool:
        """Invalid only because its signer's certificate has expired since it signed, with no
        time-stamp to show it was valid then (C2PA readers check it against today): the file and
        its manifest are intact, as signed."""
        failures = set(self.failures)
        return self.state == "Invalid" and EXPIRED in failures and failures <= {EXPIRED, UNTRUSTED}


def _made_by(manifest: dict, manifests: dict) -> dict:
    """The manifest that says how the picture was made: ``manifest`` itself, or, for an update
    manifest (a later time-stamp: it only opens its parent), its parent's, and so on."""
    seen = set()
    while not _says_how_made(manifest):
        parents = [item for item in manifest.get("ingredients", []) if item.get("relationship") == "parentOf"]
        label = parents[0].get("active_manifest") if parents else None
        if label is None or label in seen or label not in manifests:
            return manifest
        seen.add(label)
        manifest = manifests[label]
    return manifest


def _says_how_made(manifest: dict) -> bool:
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            actions = assertion.get("data", {}).get("actions", [])
            if any(action.get("action") in ("c2pa.created", "c2pa.edited") for action in actions):
                return True
    return False


def read_manifest_state(path: Path, trust_anchors: Path | None) -> ManifestState:
    """The C2PA validation state of a file, with its soft binding and digital source type."""
    anchors = trust_anchors.read_text() if trust_anchors and trust_anchors.is_file() else None
    try:
        with c2pa.Reader(str(path), context=_context(anchors)) as reader:
            state = reader.get_validation_state() or "Invalid"
            store = loads(reader.json())
    except c2pa.C2paError as exc:
        text = str(exc)
        # No manifest, or a format C2PA cannot carry one in (BMP): missing, not broken.
        if any(reason in text for reason in ("ManifestNotFound", "JumbfNotFound", "NotSupported")) or (
            "not found" in text.lower()
        ):
            return ManifestState(state="missing", soft_binding=None, source_type=None)
        return ManifestState(state="Invalid", soft_binding=None, source_type=None)
    except ValueError:  # a manifest store whose assertions nest deeper than anything can read
        return ManifestState(state="Invalid", soft_binding=None, source_type=None)
    manifests = store.get("manifests", {})
    active = manifests.get(store.get("active_manifest", ""), {})
    signature = active.get("signature_info") or {}
    active = _made_by(active, manifests)
    soft_binding = source_type = edited_from = key_visual = image_code = key_id = licence = None
    photos = []
    for ingredient in active.get("ingredients", []):
        description = ingredient.get("description") or ingredient.get("title", "")
        if ingredient.get("relationship") == "parentOf":
            edited_from = ingredient.get("title")
        elif description.startswith(KEY_VISUAL_DESCRIPTION):
            key_visual = description
        elif ingredient.get("relationship") == "inputTo":
            photos.append(description)
    for assertion in active.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.soft-binding"):
            blocks = assertion.get("data", {}).get("blocks", [])
            value = blocks[0].get("value") if blocks else None
            if assertion.get("data", {}).get("alg") == iscc.ALGORITHM:
                image_code = value
            else:  # ours, the watermark's (older manifests name no algorithm we read otherwise)
                soft_binding = value
                name = str(assertion.get("data", {}).get("name") or "")
                key_id = name.removeprefix(WATERMARK_KEY_NAME) if name.startswith(WATERMARK_KEY_NAME) else None
        if assertion.get("label") == MODEL_LABEL:
            licence = assertion.get("data", {}).get("licence")
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                if action.get("action") in ("c2pa.created", "c2pa.edited"):
                    source_type = action.get("digitalSourceType")
    signer = ", ".join(part for part in (signature.get("common_name"), signature.get("issuer")) if part) or None
    return ManifestState(
        state=str(state),
        soft_binding=soft_binding,
        source_type=source_type,
        edited_from=edited_from,
        photos=tuple(photos),
        key_visual=key_visual,
        image_code=image_code,
        watermark_key_id=key_id,
        signer=signer,
        signed_at=signature.get("time"),
        model_licence=licence,
        failures=tuple(str(item.get("code")) for item in _failures(store)),
    )


def _failures(store: dict) -> list[dict]:
    """The validation failures of the active manifest (as c2pa 0.38 reports them; an older report's
    flat status list otherwise)."""
    results = store.get("validation_results")
    if isinstance(results, dict):
        return list((results.get("activeManifest") or {}).get("failure") or [])
    return [item for item in store.get("validation_status") or [] if isinstance(item, dict)]
