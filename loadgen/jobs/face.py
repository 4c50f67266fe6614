"""Face matching, in the manner of a face-recognition pipeline, on synthetic images.

A gallery of `gallery` identities is made with numpy from a seeded generator: each identity is a smooth 48 x 48
grayscale "face" (a few Gaussian blobs for eyes, nose and mouth at identity-specific places, on an oval). Each
of `probes` probes is a gallery face with a new pose (a shift of up to a pixel), lighting (gain and offset) and
noise. Every image goes through the same small fixed network: two 3x3 convolution + ReLU + 2x2 max-pooling
stages with seeded filters, then a seeded projection to a 128-d, L2-normalised embedding. Each probe is
matched to the nearest gallery embedding.

Input: {"probes": 100, "gallery": 20, "seed": 11}  (100 probes: well under a second).
Output: probes, correct matches, the first matched indices and rounded distances, and a checksum of all matches.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SIZE = 48


def make_face(rng):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    c = SIZE / 2.0
    img = 0.6 * np.exp(-(((yy - c) / (SIZE * 0.42)) ** 2 + ((xx - c) / (SIZE * 0.33)) ** 2) * 2.0)
    parts = [
        (c - 7 + rng.uniform(-2, 2), c - 8 + rng.uniform(-2, 2), 2.5),  # left eye
        (c - 7 + rng.uniform(-2, 2), c + 8 + rng.uniform(-2, 2), 2.5),  # right eye
        (c + 1 + rng.uniform(-2, 2), c + rng.uniform(-1, 1), 2.0),  # nose
        (c + 10 + rng.uniform(-2, 2), c + rng.uniform(-2, 2), 3.5),  # mouth
    ]
    for py, px, s in parts:
        img -= rng.uniform(0.3, 0.6) * np.exp(-(((yy - py) / s) ** 2 + ((xx - px) / (s * 1.4)) ** 2))
    return img


def variant(rng, face):
    dy, dx = int(rng.integers(-1, 2)), int(rng.integers(-1, 2))
    img = np.roll(np.roll(face, dy, axis=0), dx, axis=1)
    img = img * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    return img + rng.normal(0.0, 0.05, img.shape)


def conv_relu_pool(x, filters):
    """x: (C, H, W); filters: (F, C, 3, 3) -> (F, (H-2)//2, (W-2)//2)."""
    c, hh, ww = x.shape
    h, w = hh - 2, ww - 2
    win = sliding_window_view(x, (3, 3), axis=(1, 2))  # (C, H-2, W-2, 3, 3)
    cols = win.transpose(1, 2, 0, 3, 4).reshape(h * w, c * 9)
    f = filters.shape[0]
    y = np.maximum(cols @ filters.reshape(f, c * 9).T, 0.0).T.reshape(f, h, w)
    h2, w2 = h // 2, w // 2
    return y[:, : h2 * 2, : w2 * 2].reshape(f, h2, 2, w2, 2).max(axis=(2, 4))


def embed(img, net):
    f1, f2, proj = net
    x = img[None, :, :]
    x = (x - x.mean()) / (x.std() + 1e-9)
    x = conv_relu_pool(x, f1)
    x = conv_relu_pool(x, f2)
    e = proj @ x.reshape(-1)
    return e / (np.linalg.norm(e) + 1e-12)


def main(x):
    x = x or {}
    probes = int(x.get("probes", 100))
    gallery = max(1, int(x.get("gallery", 20)))
    rng = np.random.default_rng(int(x.get("seed", 11)))
    f1 = rng.normal(0.0, 1.0 / 3.0, (8, 1, 3, 3))
    f2 = rng.normal(0.0, 1.0 / np.sqrt(72.0), (16, 8, 3, 3))
    proj = rng.normal(0.0, 1.0 / np.sqrt(16 * 10 * 10), (128, 16 * 10 * 10))
    net = (f1, f2, proj)
    faces = [make_face(rng) for _ in range(gallery)]
    ref = np.stack([embed(face, net) for face in faces])
    correct = 0
    matches = []
    checksum = 0
    for p in range(probes):
        who = int(rng.integers(0, gallery))
        e = embed(variant(rng, faces[who]), net)
        d = np.sqrt(np.maximum(2.0 - 2.0 * (ref @ e), 0.0))
        best = int(np.argmin(d))
        dist = round(float(d[best]), 4)
        if best == who:
            correct += 1
        if len(matches) < 10:
            matches.append([best, dist])
        checksum = (checksum * 131 + best * 1009 + int(dist * 10000)) % 1000000007
    return {
        "probes": probes,
        "gallery": gallery,
        "correct": correct,
        "first": matches,
        "checksum": checksum,
    }
