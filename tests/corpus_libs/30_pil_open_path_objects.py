"""Pillow opening images named by path objects of the program's own (an `os.PathLike` whose `__fspath__` checks the
file against a catalog of the data folder: size, and a digest of its head computed in Python), after one image
opened by a plain path. `open` takes `PIL.Image.ID` as its local `formats`, calls `os.fspath` (C, which calls
`__fspath__`: a checkpoint requested there is taken as it returns), and only then loads the plugin of the file's
extension, which registers itself in `ID`: resumed with a copy of `ID` as it was, `open` raised
`UnidentifiedImageError` for the first PNG, as `19_face_locations.py` once did when a checkpoint fell between those
lines."""
import os

from PIL import Image

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "face")


def digest(data):
    return sum(i * x for i, x in enumerate(data)) % 1000003


class Catalog:
    """File names with their size and the digest of their first `head` bytes."""

    def __init__(self, names, head):
        self.entries, self.head = {}, head
        for name in names:
            with open(os.path.join(DATA, name), "rb") as f:
                data = f.read()
            self.entries[name] = (len(data), digest(data[:head]))


class DataPath(os.PathLike):
    def __init__(self, catalog, name):
        self.catalog, self.name = catalog, name

    def __fspath__(self):
        # The catalog is checked against the file each time the path is used.
        size, check = self.catalog.entries[self.name]
        path = os.path.join(DATA, self.name)
        with open(path, "rb") as f:
            data = f.read()
        if len(data) != size or digest(data[: self.catalog.head]) != check:
            raise FileNotFoundError(path)
        return path


def main(inp):
    out = []
    with Image.open(os.path.join(DATA, inp["by_path"])) as im:
        out.append([inp["by_path"], im.format, im.mode, list(im.size)])
    catalog = Catalog(inp["names"], inp["head"])
    for name in inp["names"]:
        with Image.open(DataPath(catalog, name)) as im:
            out.append([name, im.format, im.mode, list(im.size), im.getpixel((7, 9))])
    return out
