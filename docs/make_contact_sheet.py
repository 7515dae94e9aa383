"""Draw docs/contact-sheet.jpg (the README's picture) from a `visuels demo` output folder.

    .venv/bin/python docs/make_contact_sheet.py OUTPUTS [docs/contact-sheet.jpg]

One row per commune of the demo (Sète, Castelnau-d'Estrétefonds, Collioure), one picture per
format of the built-in layout, each a different audience and language, scaled to one height.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COMMUNES = {"sete": "Sète", "castelnau-d-estretefonds": "Castelnau-d'Estrétefonds", "collioure": "Collioure"}
FORMATS = ("instagram_square", "story", "web_banner", "poster_a3")
PICKED = ("visitors-en", "residents-oc", "visitors-fr", "investors-fr")  # an audience-language per format
ROW_HEIGHT, GAP, TITLE, CAPTION = 240, 18, 40, 40
BACKGROUND, INK = (246, 244, 240), (29, 53, 87)


def main() -> None:
    outputs = Path(sys.argv[1]) / "ete-2027-vivre-en-solane"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent / "contact-sheet.jpg"
    font_path = Path(__file__).resolve().parents[1] / "brand_assets" / "solane" / "fonts" / "DejaVuSans-Bold.ttf"
    title, caption = ImageFont.truetype(str(font_path), 19), ImageFont.truetype(str(font_path), 13)
    rows = []
    for folder, name in COMMUNES.items():
        pictures = []
        for format_name, picked in zip(FORMATS, PICKED, strict=True):
            path = next((outputs / folder / format_name).glob(f"{picked}-*.png"))
            with Image.open(path) as picture:
                width = round(picture.width * ROW_HEIGHT / picture.height)
                scaled = picture.convert("RGB").resize((width, ROW_HEIGHT), Image.Resampling.LANCZOS)
            pictures.append((scaled, format_name, picked))
        rows.append((name, pictures))
    width = GAP + max(sum(p.width + GAP for p, _, _ in pictures) for _, pictures in rows)
    sheet = Image.new("RGB", (width, len(rows) * (TITLE + ROW_HEIGHT + CAPTION) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    top = GAP // 2
    for name, pictures in rows:
        draw.text((GAP, top + 8), name, font=title, fill=INK)
        left = GAP
        for picture, format_name, picked in pictures:
            sheet.paste(picture, (left, top + TITLE))
            words = f"{format_name.replace('_', ' ')}\n{picked}"
            draw.multiline_text((left, top + TITLE + ROW_HEIGHT + 4), words, font=caption, fill=(80, 80, 80))
            left += picture.width + GAP
        top += TITLE + ROW_HEIGHT + CAPTION
    sheet.save(target, quality=85, optimize=True)
    print(f"{target}: {sheet.width}x{sheet.height}")


if __name__ == "__main__":
    main()
