"""face_recognition: encode the faces of small images and match them: obama vs obama2 should match, biden not.
Large images are shrunk with PIL first, as a user would."""
import os

import face_recognition
import numpy as np
from PIL import Image

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def load_small(name, width):
    with Image.open(os.path.join(DATA, "face", name)) as im:
        im = im.convert("RGB")
        im.thumbnail((width, width))
        return np.array(im)


def main(inp):
    known = {}
    for name in inp["known"]:
        img = load_small(name, inp["width"])
        boxes = face_recognition.face_locations(img)
        enc = face_recognition.face_encodings(img, boxes, num_jitters=1, model="small")
        known[name] = enc[0] if enc else None
    names = [n for n in inp["known"] if known[n] is not None]
    out = {"found": names}
    for name in inp["unknown"]:
        img = load_small(name, inp["width"])
        encs = face_recognition.face_encodings(img)
        row = []
        for e in encs:
            d = face_recognition.face_distance([known[n] for n in names], e)
            m = face_recognition.compare_faces([known[n] for n in names], e, tolerance=0.6)
            row.append([[round(float(x), 6) for x in d], [bool(x) for x in m]])
        out[name] = row
    return out
