"""Pillow: open and decode the face images (JPEG, PNG), convert, resize, crop, rotate, filter, histogram and
statistics, encode to PNG in memory; `rounds` times over."""
import hashlib
import io
import os

from PIL import Image, ImageFilter, ImageOps, ImageStat

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def main(inp):
    out = []
    for name in inp["images"] * inp["rounds"]:
        with Image.open(os.path.join(DATA, "face", name)) as im:
            im.draft("RGB", (im.width // 2, im.height // 2))
            im = im.convert("RGB")
        small = im.resize((160, int(160 * im.height / im.width)), Image.Resampling.LANCZOS)
        grey = ImageOps.grayscale(small)
        edges = grey.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.GaussianBlur(1.5))
        rot = small.rotate(17, resample=Image.Resampling.BICUBIC, expand=True)
        box = small.crop((10, 10, 90, 90)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        stat = ImageStat.Stat(small)
        buf = io.BytesIO()
        edges.save(buf, format="PNG")
        out.append({
            "name": name,
            "size": list(im.size),
            "small": list(small.size),
            "mean": [round(m, 6) for m in stat.mean],
            "hist": grey.histogram()[::16],
            "edges": hashlib.sha256(edges.tobytes()).hexdigest()[:16],
            "rot": [list(rot.size), hashlib.sha256(rot.tobytes()).hexdigest()[:16]],
            "box": box.getpixel((5, 5)),
            "png": len(buf.getvalue()),
            "extrema": grey.getextrema(),
        })
    return out
