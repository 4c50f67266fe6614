"""Pillow opening images from a stream of the program's own (a reader that verifies the data's Adler-32 in
Python on its first read), after one image opened by its path. The first `Image.open` of a stream with no file
name loads PIL's common plugins (`preinit`), which register themselves in `PIL.Image.ID`, the list `open` holds
as its local `formats` from before that load to the loop over it; a checkpoint in between (in the reader's
`read`) must bring `formats` back as the restoring process's own `Image.ID`, not as a copy of what it held then,
or the PNG plugin registered after the restore is not in it and `open` raises UnidentifiedImageError."""
import os

from PIL import Image

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def adler32(data):
    a, b = 1, 0
    for x in data:
        a = (a + x) % 65521
        b = (b + a) % 65521
    return (b << 16) | a


class CheckedReader:
    """A read-only binary stream over `data`, which it checks against `expected` when first read."""

    def __init__(self, data, expected):
        self.data, self.expected, self.pos, self.checked = data, expected, 0, False

    def read(self, n=-1):
        if not self.checked:
            if adler32(self.data) != self.expected:
                raise OSError("corrupt stream")
            self.checked = True
        end = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else len(self.data) + pos)
        return self.pos

    def tell(self):
        return self.pos


def main(inp):
    out = []
    with Image.open(os.path.join(DATA, "face", inp["by_path"])) as im:
        out.append([inp["by_path"], im.format, im.mode, list(im.size)])
    for name in inp["streams"]:
        with open(os.path.join(DATA, "face", name), "rb") as f:
            data = f.read()
        with Image.open(CheckedReader(data, adler32(data))) as im:
            out.append([name, im.format, im.mode, list(im.size)])
    return out
