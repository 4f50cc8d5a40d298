#!/usr/bin/env python3
"""Runs one of the course demos and checks its output independently.

usage: demo_check.py NAME DEMO [DEMO ARGS...]
       demo_check.py --generate-gradient-descent FILE

gradient-descent: the eta= and w(...) lines must equal, byte for byte, the
  committed tests/expected/gradient-descent.txt, and that file must equal a
  float64 computation done here (so neither can drift silently).
linear-regression, apartment: exit status 0 and the lines that say the
  checks held (the demos check themselves; this repeats the key numbers).
quiz: the final a, b within 1e-3 of (1, -1).
graph-basics: every line but the device equals tests/expected/graph-basics.txt.
lenet5, mnist-mlp, mnist-convnet, fashion-mlp, fashion-cnn (run with
  --fast --out DIR): exit 0, the summary says the fast target was reached,
  and loss.svg, accuracy.svg (well-formed SVG with a curve), confusion.png
  and predictions.png (PNG signature, chunk CRCs, IHDR size, IDAT inflates
  to exactly the rows the header promises) exist in DIR.
logic: the AND and XNOR truth tables exactly as the course's, the trained
  XOR table 0 1 1 0 and its loss below 0.01.
Exit status 0 pass, 1 fail (77, "skip", when the device is missing).
"""
import os
import re
import subprocess
import sys


def gradient_descent_lines():
    """The course's example 1 in float64, printed as the course prints it."""
    lines = []
    for eta in (0.4, 0.01, 0.1):
        lines.append("eta=%g" % eta)
        w = 5.0
        for i in range(11):
            lines.append("w(%d)=%f E(w(%d))=%f" % (i, w, i, 3.0 * (w - 2.0) ** 2 + 5.0))
            w = w - eta * (6.0 * (w - 2.0))
    return "\n".join(lines) + "\n"


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    if p.returncode == 2 and "cannot open the device" in p.stderr:
        sys.exit(77)
    return p.returncode, p.stdout


def check_png(path):
    """A whole, valid PNG: every chunk's CRC, and IDAT inflating to
    height rows of (1 filter byte + width * bytes per pixel)."""
    import struct
    import zlib
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("%s: not a PNG" % path)
    pos, idat, ihdr, end = 8, b"", None, False
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(kind + body) & 0xffffffff != crc:
            fail("%s: bad CRC in %s" % (path, kind))
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            end = True
        pos += 12 + length
    if not ihdr or not end:
        fail("%s: no IHDR or IEND" % path)
    w, h, depth, colour = ihdr[:4]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour, 1)
    if len(zlib.decompress(idat)) != h * (1 + w * channels * depth // 8):
        fail("%s: pixel data does not match %dx%d" % (path, w, h))


def check_svg(path):
    import xml.etree.ElementTree as ET
    root = ET.parse(path).getroot()
    if not root.tag.endswith("svg") or \
            not any(e.tag.endswith("path") for e in root.iter()):
        fail("%s: not an SVG chart" % path)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    if sys.argv[1] == "--generate-gradient-descent":
        with open(sys.argv[2], "w") as f:
            f.write(gradient_descent_lines())
        return
    name, cmd = sys.argv[1], sys.argv[2:]
    classifiers = ("lenet5", "mnist-mlp", "mnist-convnet", "fashion-mlp",
                   "fashion-cnn")
    if name in classifiers:
        import tempfile
        outdir = tempfile.mkdtemp(prefix="kiln-demo-")
        cmd = cmd + ["--fast", "--out", outdir]
    rc, out = run(cmd)
    if rc != 0:
        fail("%s exited with %d" % (name, rc))
    if name == "gradient-descent":
        if "precision: f32" in out:
            print("f32 device: the course's float64 digits are not expected")
            return
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "expected", "gradient-descent.txt")) as f:
            expected = f.read()
        if expected != gradient_descent_lines():
            fail("tests/expected/gradient-descent.txt differs from float64")
        got = "".join(l + "\n" for l in out.splitlines()
                      if l.startswith("eta=") or l.startswith("w("))
        if got != expected:
            fail("output differs from tests/expected/gradient-descent.txt")
    elif name == "linear-regression":
        for line in ("loss fell every step: yes", "PASS"):
            if line not in out:
                fail("missing '%s'" % line)
        m = re.search(r"^final\s+W=(\S+) b=(\S+)", out, re.M)
        if not m or abs(float(m.group(1)) - 0.1) > 0.01 or \
                abs(float(m.group(2)) - 0.3) > 0.01:
            fail("W, b not within 0.01 of 0.1, 0.3")
    elif name == "apartment":
        if "all weights 1: E=287.524 " not in out:
            fail("first error is not 287.524")
        if not re.search(r"reached the optimum .*: yes", out):
            fail("the optimum was not reached")
    elif name == "quiz":
        m = re.search(r"^found a=(\S+) b=(\S+)", out, re.M)
        if not m or abs(float(m.group(1)) - 1) > 1e-3 or \
                abs(float(m.group(2)) + 1) > 1e-3:
            fail("(a, b) not within 1e-3 of (1, -1)")
    elif name in classifiers:
        if not re.search(r"^  target [0-9.]+ %: reached$", out, re.M):
            fail("the fast variant did not reach its accuracy target")
        for pic in ("loss.svg", "accuracy.svg"):
            check_svg(os.path.join(outdir, pic))
        for pic in ("confusion.png", "predictions.png"):
            check_png(os.path.join(outdir, pic))
        import shutil
        shutil.rmtree(outdir)
    elif name == "graph-basics":
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "expected", "graph-basics.txt")) as f:
            expected = f.read()
        got = "".join(l + "\n" for l in out.splitlines()
                      if not l.startswith("device:"))
        if got != expected:
            fail("output differs from tests/expected/graph-basics.txt")
    elif name == "logic":
        tables = re.findall(r"^   (\d)  (\d) -> \S+ \((\d)\)$", out, re.M)
        bits = "".join(t[2] for t in tables)
        if bits != "0001" + "1001" + "0110":
            fail("truth tables AND, XNOR, XOR read %s" % bits)
        losses = re.findall(r"^  step +\d+  loss (\S+)$", out, re.M)
        if not losses or float(losses[-1]) > 0.01:
            fail("XOR loss did not fall below 0.01")
    else:
        fail("unknown demo " + name)
    print("demo check passed")


if __name__ == "__main__":
    main()
