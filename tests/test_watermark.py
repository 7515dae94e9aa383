"""The invisible watermark: exact payload after each attack family, no payload on unmarked pictures."""

import hashlib
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import cv2
import numpy as np
import pytest
from PIL import Image
from visuels.inputs.charter import Charter, load_charter
from visuels.marking.framing import picture_boxes
from visuels.marking.mark import LOSSY_QUALITY, EncodedFile
from visuels.marking.watermark import (
    AMPLITUDE,
    FLAT_SHARE,
    MAX_ATTEMPTS,
    detect,
    embed,
    embed_readable,
    read_as_embedded,
)
from visuels.marking.watermark_keys import DEMO_KEY
from visuels.marking.xmp import DigitalSourceType, xmp_packet
from visuels.postprocess.label import draw_ai_label

from tests.helpers import SAMPLE_CHARTER_DIR
from tests.watermark_attacks import (
    ATTACKS,
    REFERENCES,
    blown_up_noise,
    chain_output,
    encode,
    page_screenshot,
    pink_noise,
    psnr,
    street_photograph,
    unmarked_pictures,
)

PAYLOAD = 0xC0FFEE_5EA_B10B_5
# The demo key: the pattern these hosts and attacks were measured with. Robustness varies a little
# from key to key (benchmarks/watermark.py --keys measures random 128-bit keys: RESULTS.md).
KEY = DEMO_KEY
PINNED_MARK = "868e4042d9ef7ee75d95dc55abd677fbe831d134bc207bb6ba995501bcfdfb6e"  # version 1, as written since issue 4
# The same pattern, at 0.6 of its amplitude where the picture is flat (perceptual masking, 2026-12-06).
PINNED_MASKED_MARK = "fec83f985a2b8fe94a0b5d91b788be23454b89d59b84423b66e255714dcc4bd4"
FAMILIES = {
    "geometry": [
        name for name in ATTACKS if name.startswith(("rotate ", "resize", "scale", "crop ")) and "+ " not in name
    ],
    "flip": ["flip horizontal"],
    "compression": ["jpeg q50 4:2:0", "jpeg q30 4:2:0", "jpeg q20 4:2:0", "webp q40", "png -> jpeg -> webp"],
    "filters": ["blur σ1.0", "blur σ1.5", "unsharp mask", "median 3x3"],
    "colour": [
        name for name in ATTACKS if name.startswith(("brightness", "contrast", "gamma", "saturation", "greyscale"))
    ],
    "overlays": [name for name in ATTACKS if name.startswith("20% overlay")],
    "chains": [name for name in ATTACKS if " + " in name],
}


@pytest.fixture(scope="module")
def charter() -> Charter:
    return load_charter(SAMPLE_CHARTER_DIR)


# Beyond the design on 1/f noise, a host with detail at every scale (benchmarks/RESULTS.md gives
# how far each gets): turned by 10 degrees, cropped to fill (64 % of its area left) or on a border
# (lost at -10° since the label moved to the top right and changed this host), or cropped to a
# quarter of its area. The two other hosts must survive them.
HARD_ON_1F_NOISE = {
    "rotate +10° crop",
    "rotate -10° crop",
    "rotate +10° border",
    "rotate -10° border",
    "crop 25% area centre",
    "crop 25% area top-left",
    "crop 25% area bottom-right",
}


@pytest.fixture(scope="module")
def outputs(charter: Charter) -> dict[str, np.ndarray]:
    photo = Image.open(SAMPLE_CHARTER_DIR / "photos" / "34301-sete" / "stand-in-harbour.jpg")
    return {
        "illustration 1080x1080": chain_output(charter, Image.open(REFERENCES[1]), 1080, 1080),
        "photo 1080x1350": chain_output(charter, photo, 1080, 1350),
        "1/f noise 1920x1080": chain_output(charter, pink_noise(1080, 1920, seed=4), 1920, 1080),
    }


@pytest.fixture(scope="module")
def marked(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: embed(image, PAYLOAD, KEY) for name, image in outputs.items()}


def test_every_attack_belongs_to_a_family() -> None:
    listed = [name for names in FAMILIES.values() for name in names]
    assert sorted(listed) == sorted(name for name in ATTACKS if name != "none")


def test_marking_is_invisible_enough(outputs: dict[str, np.ndarray], marked: dict[str, np.ndarray]) -> None:
    for name, image in outputs.items():
        assert psnr(image, marked[name]) >= 38.0


@pytest.mark.parametrize(
    "family",
    [pytest.param(name, marks=pytest.mark.slow) if name in ("geometry", "chains") else name for name in FAMILIES],
)
def test_exact_payload_after_each_attack_of_a_family(marked: dict[str, np.ndarray], family: str) -> None:
    lost = []
    for attack in ["none", *FAMILIES[family]]:
        for name, image in marked.items():
            if name.startswith("1/f") and attack in HARD_ON_1F_NOISE:
                continue
            found = detect(ATTACKS[attack](image), KEY)
            if found.payload != PAYLOAD:
                lost.append(f"{name}: {attack}")
    assert lost == []


@pytest.mark.parametrize(
    "degrees", [3, pytest.param(-5, marks=pytest.mark.slow), pytest.param(10, marks=pytest.mark.slow)]
)
def test_a_turned_picture_is_found_turned_by_its_angle(marked: dict[str, np.ndarray], degrees: int) -> None:
    for name, image in marked.items():
        for attack in (f"rotate {degrees:+d}° crop", f"rotate {degrees:+d}° border"):
            if attack in ATTACKS and not (name.startswith("1/f") and attack in HARD_ON_1F_NOISE):
                found = detect(ATTACKS[attack](image), KEY)
                assert found.payload == PAYLOAD and abs(found.rotation - degrees) < 0.4, (attack, found)


def test_a_flipped_picture_is_found_flipped(marked: dict[str, np.ndarray]) -> None:
    for image in marked.values():
        assert not detect(image, KEY).flipped
        for mirrored in (image[:, ::-1], image[::-1]):
            found = detect(np.ascontiguousarray(mirrored), KEY)
            assert found.payload == PAYLOAD and found.flipped
        turned = detect(np.ascontiguousarray(np.rot90(image)), KEY)
        assert turned.payload == PAYLOAD and turned.quarter_turns == 1 and not turned.flipped


@pytest.mark.parametrize(("shown_share", "phone"), [(0.22, False), (0.3, False), (1.0, True)])
def test_a_screenshot_of_a_post_showing_the_picture_small_is_found_where_it_is_shown(
    marked: dict[str, np.ndarray], outputs: dict[str, np.ndarray], shown_share: float, phone: bool
) -> None:
    """The public checks what they saw: a screenshot of a page where the picture takes a fifth of
    the width, text around it. Its tiles were too small to search on the whole screenshot: "no mark"."""
    for name in ("illustration 1080x1080", "1/f noise 1920x1080"):
        found = detect(page_screenshot(marked[name], shown_share, phone), KEY)
        assert found.payload == PAYLOAD and found.within is not None, name
        assert found.attempts <= MAX_ATTEMPTS
        unmarked = detect(page_screenshot(outputs[name], shown_share, phone), KEY)
        assert unmarked.payload is None and unmarked.attempts <= MAX_ATTEMPTS
    # A picture with no page around it is searched again only in its halves and quarters, where
    # the pictures of a collage would be.
    boxes = picture_boxes(cv2.cvtColor(outputs["1/f noise 1920x1080"], cv2.COLOR_RGB2GRAY).astype(np.float32))
    assert sorted(boxes) == sorted(
        (left, top, right, bottom)
        for left, right in ((0, 960), (960, 1920), (0, 1920))
        for top, bottom in ((0, 540), (540, 1080), (0, 1080))
        if (left, right, top, bottom) != (0, 1920, 0, 1080)
    )


@pytest.mark.parametrize("layout", ["side by side", "grid of 4", "grid of 9 with gutters"])
def test_pictures_in_a_collage_are_found_in_their_cell(outputs: dict[str, np.ndarray], layout: str) -> None:
    """Campaign pictures shown together: side by side in a newsletter, four posted as one, nine in a
    profile's grid. Each keeps its mark, but the search over the whole upload folded the different
    marks together and read none: "no mark". Unmarked, a collage reads nothing."""
    columns, rows, gutter = {"side by side": (2, 1, 0), "grid of 4": (2, 2, 0), "grid of 9 with gutters": (3, 3, 6)}[
        layout
    ]
    cell = 1080 // columns
    hosts = [
        outputs["illustration 1080x1080"],
        outputs["photo 1080x1350"][135:1215],
        outputs["1/f noise 1920x1080"][:, 420:1500],
    ]
    payloads = [PAYLOAD + number for number in range(columns * rows)]

    def collage(pictures: list[np.ndarray]) -> np.ndarray:
        canvas = np.full((cell * rows, cell * columns, 3), 255, np.uint8)
        for index, picture in enumerate(pictures):
            top, left = (index // columns) * cell + gutter, (index % columns) * cell + gutter
            shown = cv2.resize(picture, (cell - 2 * gutter, cell - 2 * gutter), interpolation=cv2.INTER_AREA)
            canvas[top : top + cell - 2 * gutter, left : left + cell - 2 * gutter] = shown
        return encode(canvas, "JPEG", quality=85)

    hosted = [hosts[index % len(hosts)] for index in range(columns * rows)]
    found = detect(collage([embed(host, payload, KEY) for host, payload in zip(hosted, payloads, strict=True)]), KEY)
    assert found.payload in payloads and found.within is not None and found.attempts <= MAX_ATTEMPTS
    unmarked = detect(collage(hosted), KEY)
    assert unmarked.payload is None and unmarked.attempts <= MAX_ATTEMPTS


@pytest.mark.parametrize("shown_share", [0.2, 0.45])
def test_a_poster_photographed_in_the_street_is_found_where_it_is(
    marked: dict[str, np.ndarray], outputs: dict[str, np.ndarray], shown_share: float
) -> None:
    """The public photographs a poster in the street, turned a little away: no page is around it
    to frame, and its tiles were too small to search on the whole photograph: "no mark"."""
    name = "illustration 1080x1080"
    photo, (left, top, right, bottom) = street_photograph(marked[name], shown_share, keystone=0.03)
    found = detect(photo, KEY)
    assert found.payload == PAYLOAD and found.within is not None and found.attempts <= MAX_ATTEMPTS
    inside_left, inside_top, inside_right, inside_bottom = found.within
    assert max(left, inside_left) < min(right, inside_right) and max(top, inside_top) < min(bottom, inside_bottom)
    unmarked = detect(street_photograph(outputs[name], shown_share, keystone=0.03)[0], KEY)
    assert unmarked.payload is None and unmarked.attempts <= MAX_ATTEMPTS


@pytest.mark.parametrize("far_side", ["left", "bottom"])
def test_a_poster_photographed_at_an_angle_is_found_straightened(
    marked: dict[str, np.ndarray], outputs: dict[str, np.ndarray], far_side: str
) -> None:
    """A poster photographed from a few steps to one side, its far side 20 % shorter, then cropped
    to it on the phone: its tiles shrink across it beyond what one period fits. Straightened as if
    seen at an angle from each side, it is found, and the result says so; unmarked, nothing is."""
    name = "illustration 1080x1080"
    turns = {"left": 0, "bottom": 1}[far_side]  # the street photograph's far side is its left
    poster = np.ascontiguousarray(np.rot90(marked[name], -turns))
    photo, (left, top, right, bottom) = street_photograph(poster, 0.3, keystone=0.1)
    cropped = np.ascontiguousarray(np.rot90(photo[top:bottom, left:right], turns))
    found = detect(cropped, KEY)
    assert found.payload == PAYLOAD and found.attempts <= MAX_ATTEMPTS
    assert found.keystone is not None and found.keystone.far_side == far_side
    assert str(found.geometry()).endswith("at an angle")
    plain = np.ascontiguousarray(np.rot90(outputs[name], -turns))
    photo, (left, top, right, bottom) = street_photograph(plain, 0.3, keystone=0.1)
    unmarked = detect(np.ascontiguousarray(np.rot90(photo[top:bottom, left:right], turns)), KEY)
    assert unmarked.payload is None and unmarked.attempts <= MAX_ATTEMPTS


def test_the_mark_written_is_the_one_files_already_carry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files marked before must still verify: the pattern written for a payload is pinned (a
    change to it needs a version, and a detector that reads both). Masking changed its amplitude
    on flat parts, not the pattern: files marked at the full amplitude read as before."""
    flat = np.full((300, 400, 3), 128, dtype=np.uint8)
    masked = embed(flat, PAYLOAD, DEMO_KEY)
    monkeypatch.setattr("visuels.marking.watermark.FLAT_SHARE", 1.0)  # no masking: as marked before it
    unmasked = embed(flat, PAYLOAD, DEMO_KEY)
    assert hashlib.sha256(unmasked.tobytes()).hexdigest() == PINNED_MARK
    assert detect(unmasked, DEMO_KEY).payload == PAYLOAD
    assert hashlib.sha256(masked.tobytes()).hexdigest() == PINNED_MASKED_MARK
    assert np.abs(masked.astype(int) - 128).max() == np.ceil(AMPLITUDE * FLAT_SHARE)  # less on a flat picture


def test_a_mark_that_does_not_read_back_is_written_again_stronger(charter: Charter) -> None:
    """A textured picture whose texture opposes enough of one key's coded bits that its mark does
    not decode even untouched (this key was the one of 400 random keys that failed on it): marked
    again 1.5 times as strong, it reads back, after the exports' JPEG too. Other pictures and keys
    keep the usual mark, to the byte."""
    picture = chain_output(charter, pink_noise(540, 720, seed=7), 720, 540)
    key, payload = 126514724312030807647575512133354482235, 0x0123_4567_89AB_CDEF
    assert read_as_embedded(embed(picture, payload, key), key) is None
    marked, strength = embed_readable(picture, payload, key)
    assert strength == (1.5, 0.0)
    assert detect(marked, key).payload == payload
    assert detect(encode(marked, "JPEG", quality=LOSSY_QUALITY), key).payload == payload
    usual, strength = embed_readable(picture, payload, KEY)
    assert strength == (1.0, 0.0) and np.array_equal(usual, embed(picture, payload, KEY))


def test_a_busy_picture_that_drowns_even_twice_the_mark_is_marked_stronger_where_busy(charter: Charter) -> None:
    """Blown-up noise at 1024 px: its 8-pixel blocks fall on the pattern's chips, and most keys'
    marks did not read back even at twice the usual strength (29 of 40, benchmarks/RESULTS.md):
    such files left with a mark nobody could read. The extra goes where the picture is busy only."""
    picture = chain_output(charter, blown_up_noise(1024, 8, seed=7), 1024, 1024)
    assert read_as_embedded(embed(picture, PAYLOAD, KEY, 2.0), KEY) is None
    marked, strength = embed_readable(picture, PAYLOAD, KEY)
    assert strength is not None and strength[1] > 0
    assert detect(marked, KEY).payload == PAYLOAD
    assert detect(encode(marked, "JPEG", quality=LOSSY_QUALITY), KEY).payload == PAYLOAD

    half_flat = np.asarray(blown_up_noise(1024, 8, seed=6)).copy()
    half_flat[:, :512] = 128
    extra = embed(half_flat, PAYLOAD, KEY, 2.0, textured=2.0).astype(int) - embed(half_flat, PAYLOAD, KEY, 2.0)
    assert np.abs(extra[:, :400]).max() == 0  # away from the noise, flat grey keeps twice the pattern
    assert np.abs(extra[:, 600:]).mean() > 5  # on the noise, about twice as much again


def test_a_lossy_export_reads_its_mark_back_from_what_its_file_decodes_to(charter: Charter) -> None:
    """A busy picture whose mark read back on its pixels but not once saved as the exports' JPEG
    (2 of 150 keys on blown-up noise): the file left with a mark nobody could read. The read-back
    now decodes what the file holds, and marks again more strongly where that loses it."""
    picture = chain_output(charter, blown_up_noise(1080, 8, seed=1), 1080, 1080)
    key, payload = 0x66CDB0EE532412DE3F802D0B3FB1F632, 0x70CF96F935BFED12
    marked, strength = embed_readable(picture, payload, key)
    assert strength == (1.0, 0.0) and detect(encode(marked, "JPEG", quality=LOSSY_QUALITY), key).payload is None
    stored = EncodedFile("jpeg", 72, xmp_packet(DigitalSourceType.generated, "Région Solane", "visuels"))
    marked, strength = embed_readable(picture, payload, key, stored)
    assert strength is not None and strength > (1.0, 0.0)
    assert stored.decoded.shape == picture.shape and detect(stored.decoded, key).payload == payload
    with Image.open(io.BytesIO(stored.encoded)) as written:  # the bytes kept are the last encoding's
        assert np.array_equal(np.asarray(written.convert("RGB")), stored.decoded)


def test_survives_the_label_drawn_over_it(charter: Charter, outputs: dict[str, np.ndarray]) -> None:
    marked = embed(outputs["illustration 1080x1080"], PAYLOAD, KEY)
    labelled, _ = draw_ai_label(Image.fromarray(marked), charter, "en")
    assert detect(np.asarray(labelled), KEY).payload == PAYLOAD


def test_another_key_reads_nothing(outputs: dict[str, np.ndarray]) -> None:
    marked = embed(outputs["illustration 1080x1080"], PAYLOAD, 1234)
    assert detect(marked, 1234).payload == PAYLOAD
    assert detect(marked, KEY).payload is None and detect(marked, 0x5EC12E7_0F_7E57).payload is None


def test_payload_must_be_64_bits(outputs: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        embed(outputs["illustration 1080x1080"], 2**64, KEY)


@pytest.mark.slow
@pytest.mark.timeout(600)  # half a minute of both cores here; more where the machine is shared
def test_no_payload_on_unmarked_pictures() -> None:
    """With a CRC-32 and at most MAX_ATTEMPTS decodings, the false-positive rate is at most
    MAX_ATTEMPTS * 2**-32 per picture (7.0e-9). 48 pictures, 6 of each kind, guard against a
    kind of content that would read as a mark (a systematic false positive, not the rate): none
    may give a payload. The rate itself is measured on 10,000 by
    benchmarks/watermark_false_positives.py, and `visuels detect` on 1,000 with three keys by
    benchmarks/detect_false_claims.py (0 found each, benchmarks/RESULTS.md)."""
    # Spread over the cores (detect is single-threaded numpy): the same detections, sooner.
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        detections = list(pool.map(partial(detect, key=KEY), unmarked_pictures(48), chunksize=4))
    assert max(detection.attempts for detection in detections) <= MAX_ATTEMPTS  # the bound's premise
    assert [index for index, detection in enumerate(detections) if detection.payload is not None] == []
