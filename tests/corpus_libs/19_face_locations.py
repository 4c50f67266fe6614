"""face_recognition (dlib): load_image_file (PIL decoding a JPEG/PNG) and HOG face_locations on small images."""
import os

import face_recognition

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def main(inp):
    out = []
    for name in inp["images"]:
        img = face_recognition.load_image_file(os.path.join(DATA, "face", name))
        boxes = face_recognition.face_locations(img, number_of_times_to_upsample=inp["upsample"], model="hog")
        marks = face_recognition.face_landmarks(img, boxes, model="small")
        out.append([name, list(img.shape), sorted(list(b) for b in boxes), [sorted(m) for m in marks], [m.get("nose_tip", [])[:2] for m in marks]])
    return out
