"""Draw the sample charter's logos and reference images (Région Solane, a fictitious region), and
stand-ins for commune photos: no real photo can ship with the project, so these are drawn by
code, credited as such in their photos.yaml, and only show the photo path working.

Run from the repository root: ``python brand_assets/make_sample_assets.py``. The outputs are
committed; this script is kept so they can be re-drawn or changed. Deterministic.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).parent / "solane"
FONT = HERE / "fonts" / "DejaVuSans-Bold.ttf"
TRIGGER = "slnstyle"

BLEU_MER = (27, 79, 114)
TERRE_CUITE = (192, 88, 58)
OLIVIER = (107, 127, 58)
SOLEIL = (242, 177, 52)
SABLE = (244, 233, 216)
ARDOISE = (43, 43, 43)
CIEL = (168, 208, 222)
WHITE = (255, 255, 255)

SIZE = 512


def draw_logo(sun: tuple[int, int, int], wave: tuple[int, int, int], word: tuple[int, int, int]) -> Image.Image:
    """A sun over a wave, then the region's name. Transparent background."""
    scale = 4  # draw large, then reduce: smooth anti-aliased edges
    width, height = 660 * scale, 200 * scale
    logo = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    cx, cy, radius = 100 * scale, 92 * scale, 62 * scale
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*sun, 255))
    for top in (124 * scale, 156 * scale):
        draw.rounded_rectangle((20 * scale, top, 180 * scale, top + 20 * scale), radius=10 * scale, fill=(*wave, 255))
    font = ImageFont.truetype(str(FONT), 96 * scale)
    draw.text((210 * scale, 100 * scale), "SOLANE", font=font, fill=(*word, 255), anchor="lm")
    return logo.resize((660, 200), Image.Resampling.LANCZOS)


def hills(draw: ImageDraw.ImageDraw, rng: random.Random, base: int, colours: list[tuple[int, int, int]]) -> None:
    for index, colour in enumerate(colours):
        top = base + index * 40
        points = [(0, SIZE)]
        for x in range(0, SIZE + 64, 64):
            points.append((x, top + rng.randint(-30, 30)))
        points.append((SIZE, SIZE))
        draw.polygon(points, fill=colour)


def sky_and_sun(draw: ImageDraw.ImageDraw, rng: random.Random, horizon: int) -> None:
    draw.rectangle((0, 0, SIZE, horizon), fill=CIEL)
    x, y, r = rng.randint(80, 430), rng.randint(60, max(70, horizon - 90)), rng.randint(30, 55)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=SOLEIL)


def sea(draw: ImageDraw.ImageDraw, rng: random.Random, horizon: int) -> None:
    draw.rectangle((0, horizon, SIZE, SIZE), fill=BLEU_MER)
    for _ in range(9):
        x, y = rng.randint(0, SIZE - 80), rng.randint(horizon + 20, SIZE - 20)
        draw.rounded_rectangle((x, y, x + rng.randint(40, 110), y + 6), radius=3, fill=CIEL)


def village(draw: ImageDraw.ImageDraw, rng: random.Random, ground: int) -> None:
    x = rng.randint(10, 60)
    while x < SIZE - 60:
        width, height = rng.randint(50, 90), rng.randint(50, 110)
        draw.rectangle((x, ground - height, x + width, ground), fill=SABLE)
        draw.polygon(
            [(x - 8, ground - height), (x + width // 2, ground - height - 35), (x + width + 8, ground - height)],
            fill=TERRE_CUITE,
        )
        draw.rectangle((x + width // 3, ground - 30, x + width // 3 + 14, ground), fill=ARDOISE)
        x += width + rng.randint(6, 24)


def vineyard(draw: ImageDraw.ImageDraw, rng: random.Random, top: int) -> None:
    draw.rectangle((0, top, SIZE, SIZE), fill=SABLE)
    for row in range(8):
        y = top + 18 + row * ((SIZE - top) // 8)
        draw.line((0, y, SIZE, y + rng.randint(-10, 10)), fill=OLIVIER, width=9)


def mountains(draw: ImageDraw.ImageDraw, rng: random.Random, base: int) -> None:
    x = -40
    while x < SIZE:
        width = rng.randint(160, 260)
        peak = base - rng.randint(120, 220)
        draw.polygon([(x, base), (x + width // 2, peak), (x + width, base)], fill=BLEU_MER)
        draw.polygon(
            [(x + width // 2 - 25, peak + 40), (x + width // 2, peak), (x + width // 2 + 25, peak + 40)], fill=WHITE
        )
        x += width - 60
    draw.rectangle((0, base, SIZE, SIZE), fill=OLIVIER)


SCENES = [
    ("sea", "the sea at noon with a yellow sun and small waves"),
    ("sea-village", "a village of terracotta roofs above the sea"),
    ("hills", "rolling olive-green hills under a pale sky"),
    ("village", "village houses with terracotta roofs on sand-coloured walls"),
    ("vineyard", "rows of vines on a sandy plain under the sun"),
    ("mountains", "blue mountains with snowy peaks above green pastures"),
    ("sea-hills", "green hills sloping down to a deep blue sea"),
    ("village-hills", "a hill village with terracotta roofs among olive trees"),
    ("vineyard-hills", "vineyard rows at the foot of green hills"),
    ("mountains-village", "a mountain village below blue peaks"),
    ("sea-evening", "a calm blue sea with a large yellow sun on the horizon"),
    ("hills-village-sea", "roofs, hills and a strip of sea in flat colours"),
]


def draw_scene(kind: str, seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (SIZE, SIZE), SABLE)
    draw = ImageDraw.Draw(image)
    horizon = rng.randint(200, 280)
    sky_and_sun(draw, rng, horizon)
    if "mountains" in kind:
        mountains(draw, rng, horizon + 80)
    if "sea" in kind:
        sea(draw, rng, horizon)
    if "hills" in kind:
        hills(draw, rng, horizon + (60 if "sea" in kind else 10), [OLIVIER, (86, 104, 46)])
    if "vineyard" in kind:
        vineyard(draw, rng, horizon + 60)
    if "village" in kind:
        village(draw, rng, SIZE - 40 if "sea" not in kind else horizon + 10)
    return image


# Stand-in photos: (commune folder, file, what it shows, seed).
STAND_INS = [
    ("34301-sete", "stand-in-harbour.jpg", "harbour", 1),
    ("34301-sete", "stand-in-hill.jpg", "hill", 2),
    ("66053-collioure", "stand-in-bay.jpg", "bay", 3),
]
PHOTO_SIZE = (768, 512)


def draw_stand_in_photo(kind: str, seed: int) -> Image.Image:
    """A photo-like scene: graded sky, sea with glints, a hillside, quays and houses, sensor noise."""
    rng = random.Random(seed)
    width, height = PHOTO_SIZE
    horizon = int(height * (0.42 if kind != "hill" else 0.55))
    rows = np.linspace(0.0, 1.0, horizon)[:, None, None]
    sky = (1 - rows) * np.array([110, 160, 215]) + rows * np.array([205, 225, 238])
    image = np.zeros((height, width, 3))
    image[:horizon] = sky
    sea_rows = np.linspace(0.0, 1.0, height - horizon)[:, None, None]
    image[horizon:] = (1 - sea_rows) * np.array([40, 105, 150]) + sea_rows * np.array([20, 60, 95])
    picture = Image.fromarray(image.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    # The hill behind the town (Mont Saint-Clair, the slopes round a bay).
    peak = rng.randint(width // 3, 2 * width // 3)
    ridge = [(0, horizon), (peak, horizon - rng.randint(90, 150)), (width, horizon - rng.randint(10, 40))]
    draw.polygon([*ridge, (width, horizon), (0, horizon)], fill=(88, 110, 70))
    for _ in range(60 if kind == "hill" else 25):  # pines and scrub
        x, y = rng.randint(0, width), rng.randint(horizon - 110, horizon)
        r = rng.randint(4, 10)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(60, 85, 50))
    # Houses along the water, lit from the left.
    x = rng.randint(0, 30)
    ground = horizon + (40 if kind == "harbour" else 15)
    while x < width:
        w, h = rng.randint(28, 60), rng.randint(30, 80)
        wall = rng.choice([(232, 210, 170), (222, 180, 140), (240, 228, 200), (205, 150, 110)])
        draw.rectangle((x, ground - h, x + w, ground), fill=wall)
        draw.rectangle((x + w - 8, ground - h, x + w, ground), fill=tuple(int(c * 0.8) for c in wall))
        draw.polygon([(x - 3, ground - h), (x + w // 2, ground - h - 12), (x + w + 3, ground - h)], fill=(170, 80, 55))
        for wy in range(ground - h + 10, ground - 8, 16):
            draw.rectangle((x + 6, wy, x + 12, wy + 8), fill=(60, 50, 45))
        x += w + rng.randint(0, 6)
    draw.rectangle((0, ground, width, ground + 8), fill=(150, 140, 125))  # the quay
    if kind == "bay":  # a bell tower at the end of the quay
        draw.rectangle((width - 120, ground - 140, width - 90, ground), fill=(200, 170, 130))
        draw.ellipse((width - 124, ground - 160, width - 86, ground - 125), fill=(190, 120, 90))
    for _ in range(12 if kind == "harbour" else 5):  # boats
        bx, by = rng.randint(0, width - 60), rng.randint(ground + 20, height - 30)
        draw.polygon([(bx, by), (bx + 50, by), (bx + 42, by + 12), (bx + 6, by + 12)], fill=(245, 245, 240))
        draw.line((bx + 25, by, bx + 25, by - 40), fill=(230, 230, 225), width=2)
    picture = picture.filter(ImageFilter.GaussianBlur(1.2))
    grain = np.random.default_rng(seed).normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(picture, dtype=np.float64) + grain, 0, 255).astype(np.uint8))


def write_stand_in_photos() -> None:
    folders: dict[str, list[tuple[str, str]]] = {}
    for folder, name, kind, seed in STAND_INS:
        target = HERE / "photos" / folder
        target.mkdir(parents=True, exist_ok=True)
        draw_stand_in_photo(kind, seed).save(target / name, quality=88)
        folders.setdefault(folder, []).append((name, kind))
    for folder, photos in folders.items():
        lines = ["# Stand-ins drawn by brand_assets/make_sample_assets.py: NOT photos of the commune.", "photos:"]
        for name, kind in photos:
            lines += [
                f"  - file: {name}",
                f"    author: visuels sample assets ({kind} drawn by code)",
                "    licence: CC0-1.0",
                "    date: 2026-11-23",
                "    stand_in: true",
            ]
        (HERE / "photos" / folder / "photos.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    logos = HERE / "logos"
    logos.mkdir(parents=True, exist_ok=True)
    draw_logo(SOLEIL, BLEU_MER, BLEU_MER).save(logos / "solane-colour.png")
    draw_logo(WHITE, WHITE, WHITE).save(logos / "solane-light.png")
    draw_logo(ARDOISE, ARDOISE, ARDOISE).save(logos / "solane-dark.png")
    references = HERE / "references"
    references.mkdir(parents=True, exist_ok=True)
    for index, (kind, caption) in enumerate(SCENES, start=1):
        stem = f"{index:02d}-{kind}"
        draw_scene(kind, seed=index).save(references / f"{stem}.png", optimize=True)
        (references / f"{stem}.txt").write_text(f"{TRIGGER} flat illustration, {caption}\n", encoding="utf-8")
    write_stand_in_photos()


if __name__ == "__main__":
    main()
