import threading, time
def main(inp):
    stop = []
    t = threading.Thread(target=lambda: time.sleep(2), name="helper")
    t.start()
    s = 0
    for i in range(3000000):
        s += i
    t.join()
    return s
