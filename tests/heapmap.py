"""heapmap.py - reads what mymalloc_heapmap() wrote, for tests/heapmap.c.

    heapmap.py svg FILE    parse the SVG (xml.etree) and print what it holds
    heapmap.py png FILE RRGGBB...   decode the PNG rsvg-convert made of it and
                           say which of these colours it shows

Prints KEY=VALUE lines; exits 1 (with a line "error=...") when the file is not
well-formed XML or not a PNG it can decode.
"""
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

SVG = "{http://www.w3.org/2000/svg}"


def classes(element):
    return (element.get("class") or "").split()


def svg(path):
    root = ET.parse(path).getroot()
    if root.tag != SVG + "svg":
        raise ValueError("root element is %s, not svg" % root.tag)
    print("width=%s" % root.get("width"))
    print("height=%s" % root.get("height"))
    desc = root.find(SVG + "desc")
    for word in (desc.text or "").split():
        if "=" in word:
            print("desc.%s" % word)
    header = [t.text or "" for t in root.findall(SVG + "text")]
    for line in header:
        if line.startswith("fragmentation: "):
            print("fragmentation=%s" % line.split()[1])
    print("header_lines=%d" % len(header))

    groups = {g.get("id"): g for g in root.iter(SVG + "g") if g.get("id")}
    legend = groups.get("legend")
    if legend is not None:
        print("legend_classes=%s" % ",".join(c for r in legend.iter(SVG + "rect") for c in classes(r)))
        print("legend_labels=%s" % "|".join(t.text or "" for t in legend.iter(SVG + "text")))
    area = groups.get("map")
    if area is None:
        raise ValueError("no <g id=\"map\">")
    counts, widths, outside = {}, {}, 0
    for rect in area.iter(SVG + "rect"):
        names = classes(rect)
        x, width = int(rect.get("x")), int(rect.get("width"))
        if x < 140 or x + width > 140 + 1024 or width < 1:
            outside += 1
        for name in names:
            if name == "k":
                continue
            widths[name] = widths.get(name, 0) + width
            if "k" not in names:
                counts[name] = counts.get(name, 0) + 1
    for name in "uvcdftmnxy":
        print("rects.%s=%d" % (name, counts.get(name, 0)))
        print("pixels.%s=%d" % (name, widths.get(name, 0)))
    print("rects_outside=%d" % outside)
    titles = [t.text or "" for t in area.iter(SVG + "text") if "h" in classes(t)]
    print("sections=%d" % len(titles))
    for i, title in enumerate(titles):
        print("section.%d=%s" % (i, title))


def unfilter(raw, width, height, bpp):
    """The scanlines of a non-interlaced PNG, filters undone."""
    stride = width * bpp
    rows, prev, pos = [], bytearray(stride), 0
    for _ in range(height):
        kind = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if kind == 0:
            rows.append(line)
            prev = line
            continue
        if kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
            rows.append(line)
            prev = line
            continue
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            upleft = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else upleft
                line[i] = (line[i] + pred) & 255
            elif kind != 0:
                raise ValueError("unknown PNG filter %d" % kind)
        rows.append(line)
        prev = line
    return rows


def png(path, wanted):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG signature")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    print("png.width=%d" % width)
    print("png.height=%d" % height)
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        raise ValueError("PNG depth %d colour type %d interlace %d not handled" % (depth, colour, interlace))
    bpp = 4 if colour == 6 else 3
    print("png.bpp=%d" % bpp)
    raw = zlib.decompress(idat)
    print("png.bytes=%d" % len(raw))
    seen = set()
    for line in unfilter(raw, width, height, bpp):
        for i in range(0, len(line), bpp):
            seen.add(bytes(line[i:i + 3]))
    print("png.colours=%d" % len(seen))
    for colour in wanted:
        print("png.has.%s=%d" % (colour, bytes.fromhex(colour) in seen))


def main():
    try:
        if sys.argv[1] == "svg":
            svg(sys.argv[2])
        else:
            png(sys.argv[2], sys.argv[3:])
    except Exception as e:  # any failure to read it is the finding
        print("error=%s: %s" % (type(e).__name__, e))
        return 1
    return 0


sys.exit(main())
