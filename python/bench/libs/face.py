"""Benchmark workload (face): detect and encode faces in camera frames with face_recognition (dlib, HOG) and
report whether each frame shows a new face, as the paper's face app does. Frames are decoded by PIL."""
import os

import face_recognition

# The test data: `data/` beside this file (where the benchmark puts it), else the repository's tests/data.
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = next(d for d in (os.path.join(HERE, "data"), os.path.join(HERE, "..", "..", "..", "tests", "data"))
            if os.path.isdir(d))

DIR = os.path.join(DATA, "face")
FRAMES = ["obama_small.jpg", "obama-480p.jpg", "biden.jpg", "obama2.jpg"]


def main(inp):
    last = None
    news = 0
    for i in range(inp["iters"]):
        img = face_recognition.load_image_file(os.path.join(DIR, FRAMES[i % len(FRAMES)]))
        boxes = face_recognition.face_locations(img)
        enc = face_recognition.face_encodings(img, boxes)
        if enc:
            if last is None or not face_recognition.compare_faces([last], enc[0])[0]:
                news += 1
            last = enc[0]
    return news
