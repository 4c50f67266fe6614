"""Pillow: draw shapes on each image with ImageDraw (a drawing context held in a local to the end of the loop),
then kernel, blur, unsharp, enhance, posterize, equalize and median filters, a point() with a Python lambda and
ImageChops differences; digests of the pixels. Before the drawing context could be saved, every checkpoint of
`main` waited for it to return."""
import hashlib
import os

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def digest(im):
    return hashlib.sha256(im.tobytes()).hexdigest()[:16]


def main(inp):
    out = []
    for name in inp["images"]:
        with Image.open(os.path.join(DATA, "face", name)) as src:
            im = src.convert("RGB")
        im = ImageOps.contain(im, (inp["size"], inp["size"]))
        d = ImageDraw.Draw(im)
        w, h = im.size
        for i in range(inp["shapes"]):
            x0, y0 = (i * 37) % w, (i * 53) % h
            d.rectangle([x0, y0, x0 + 20, y0 + 12], outline=(i % 255, 80, 200), width=2)
            d.line([(0, i % h), (w - 1, (i * 7) % h)], fill=(255, 255 - i % 255, 0))
            d.ellipse([x0 / 2, y0 / 2, x0 / 2 + 9, y0 / 2 + 9], fill=(0, i % 200, 40))
        g = ImageOps.grayscale(im)
        edges = g.filter(ImageFilter.Kernel((3, 3), [-1, -1, -1, -1, 8, -1, -1, -1, -1], 1, 0))
        thr = edges.point(lambda v: 255 if v > 40 else 0)
        blur = im.filter(ImageFilter.GaussianBlur(2)).filter(ImageFilter.UnsharpMask(3, 120, 2))
        enh = ImageEnhance.Contrast(ImageEnhance.Color(blur).enhance(1.4)).enhance(0.8)
        diff = ImageChops.difference(im, enh)
        post = ImageOps.posterize(ImageOps.autocontrast(enh, cutoff=2), 3)
        eq = ImageOps.equalize(g)
        mf = g.filter(ImageFilter.MedianFilter(5))
        hist = thr.histogram()
        out.append(
            {
                "size": list(im.size),
                "edges": digest(thr),
                "lit": hist[255],
                "post": digest(post),
                "diff": list(diff.getextrema()),
                "eq": digest(eq),
                "mf": digest(mf),
            }
        )
    return out
