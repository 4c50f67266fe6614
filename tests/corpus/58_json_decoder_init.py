"""A json.JSONDecoder made over and over (json.loads with object_hook makes one per call): a checkpoint inside
its __init__ finds it without the settings its C scanner reads (`strict`) and without a scanner yet; it is
restored as it was, and the resumed __init__ makes the scanner. Also decoders at rest, with their settings."""
import collections
import json


def hook(d):
    return collections.OrderedDict(sorted(d.items()))


def main(inp):
    lenient = json.JSONDecoder(strict=False, object_pairs_hook=list)
    n = 0
    keys = []
    for i in range(inp["n"]):
        doc = json.loads('{"b": [1, 2], "a": %d}' % i, object_hook=hook)
        n += len(doc["b"]) + doc["a"] % 3
        if i % 1000 == 0:
            keys.append(list(doc))
            n += len(lenient.decode('{"s": "tab\there", "k": %d}' % i))
    d = json.JSONDecoder(parse_int=str)
    return [n, keys[:3], d.decode("[1, 22, 333]"), lenient.decode('{"x": "a\tb"}')]
