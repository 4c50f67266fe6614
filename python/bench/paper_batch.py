

def main(inp):
    """A batch of requests to a session workload in one run (`microlambda-bench paper`, appended to the module
    of examples/paper/): the session opened on inp["opening"] by inp["entry"] and sent inp["requests"] one after
    another, as examples/paper/local.py drives it; returns every reply, the opening's first."""
    import inspect

    opened = globals()[inp["entry"]](inp["opening"])
    replies = []
    if inspect.isgenerator(opened):
        replies.append(next(opened))
        for request in inp["requests"]:
            replies.append(opened.send(request))
    else:
        replies.append(None)
        for request in inp["requests"]:
            replies.append(opened.handle(request))
    return replies
