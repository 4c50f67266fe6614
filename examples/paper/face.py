"""Session workload (face), the paper's face app: each request is a camera frame; the session detects and
encodes the faces in it (face_recognition: dlib's HOG detector and ResNet encoder) and replies whether the face
is new compared with the last one it saw. State kept between requests: the last face's encoding.

Open with `"entry": "faces"` (input: the match tolerance, or null for 0.6). A request names a frame: an image
file of `tests/data/face/` ("obama2.jpg") or an index into FRAMES."""
import os

import face_recognition

# The test data: $MICROLAMBDA_DATA, else tests/data under the working directory (a node started from the
# repository), else the repository's tests/data beside this file (run in place).
DATA = next(
    d
    for d in (
        os.environ.get("MICROLAMBDA_DATA", ""),
        os.path.join(os.getcwd(), "tests", "data"),
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data"),
    )
    if d and os.path.isdir(os.path.join(d, "face"))
)
FRAMES = ["obama_small.jpg", "obama-480p.jpg", "biden.jpg", "obama2.jpg", "astronaut.png"]


def faces(tolerance):
    tolerance = 0.6 if tolerance is None else float(tolerance)
    last = None  # the encoding of the last face seen
    seen = 0
    frame = yield {"tolerance": tolerance}
    while True:
        name = FRAMES[frame % len(FRAMES)] if isinstance(frame, int) else os.path.basename(str(frame))
        img = face_recognition.load_image_file(os.path.join(DATA, "face", name))
        boxes = face_recognition.face_locations(img)
        encodings = face_recognition.face_encodings(img, boxes)
        del img
        reply = {"frame": name, "faces": len(encodings), "new": False, "distance": None}
        if encodings:
            enc = encodings[0]
            if last is not None:
                reply["distance"] = round(float(face_recognition.face_distance([last], enc)[0]), 6)
            reply["new"] = last is None or reply["distance"] > tolerance
            last = enc
            seen += 1
        reply["seen"] = seen
        frame = yield reply
