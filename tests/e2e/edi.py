#!/usr/bin/env python3
"""EDI files for tests/e2e/run_edi.sh, and an independent reader of what arrived.

  edi.py gen x12|edifact FILE MB IDS   writes a file of about MB megabytes of interchanges
                                        (X12 850s; EDIFACT ORDERS with release characters in
                                        their data) and the ids of its sets/messages to IDS
  edi.py check [--any-order] x12|edifact IDS PAYLOAD...
                                        reads every payload as interchanges (counts and control
                                        number pairs checked) and checks that together they hold
                                        every id of IDS exactly once, in order (X12 TA1s, which
                                        may only come before an interchange's first GS, count
                                        as "ISA13/TA1/TA101")

The reader is written here, not taken from patchdrop: it reads the ISA at its fixed width and
the UNA's six characters, and counts everything itself.
"""
import random
import sys

# Element separator, component separator, terminator, repetition separator, line break.
X12_DELIMS = [("*", ">", "~", "^", "\n"), ("|", ":", "~", "{", ""), ("^", "\\", "'", "}", "\r\n")]


def gen(kind, path, mb, ids_path):
    rnd = random.Random(850 if kind == "x12" else 96)
    make = x12_interchange if kind == "x12" else edifact_interchange
    out, ids, size, ctl, ic = [], [], 0, 0, 0
    while size < mb * 1000000:
        ic += 1
        text, ctl = make(rnd, ic, ctl, ids)
        out.append(text)
        size += len(text)
    with open(path, "w", newline="") as f:
        f.write("".join(out))
    with open(ids_path, "w") as f:
        f.write("\n".join(ids) + "\n")


def x12_interchange(rnd, ic, ctl, ids):
    """Interchange IC: 1 to 4 groups of 1 to 60 850s; their ids go to IDS."""
    el, comp, term, rep, eol = X12_DELIMS[ic % len(X12_DELIMS)]
    t = term + eol
    isa = el.join(["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "ACMERETAIL".ljust(15), "ZZ",
                   "PATCHWORKSWH".ljust(15), "261130", "0915", rep, "00501", "%09d" % ic, "0",
                   "P", comp]) + t
    parts = [isa]
    groups = rnd.randint(1, 4)
    for _ in range(groups):
        ctl += 1
        gctl = str(ctl)
        parts.append(el.join(["GS", "PO", "ACMERETAIL", "PATCHWORKSWH", "20261130", "0915",
                              gctl, "X", "005010"]) + t)
        sets = rnd.randint(1, 60)
        for _ in range(sets):
            ctl += 1
            sctl = "%04d" % (ctl % 10000)
            body = [el.join(["BEG", "00", "SA", "PO-%d" % ctl, "", "20261130"]),
                    el.join(["N1", "ST", "ACME STORE %d" % rnd.randint(1, 99), "92", "0017"])]
            for line in range(rnd.randint(1, 8)):
                body.append(el.join(["PO1", str(line + 1), str(rnd.randint(1, 99)), "EA",
                                     "%.2f" % (rnd.random() * 50), "", "VP",
                                     "SKU%d%s%d" % (line, comp, rnd.randint(0, 9))]))
            body.append(el.join(["CTT", str(len(body) - 2)]))
            parts.append(el.join(["ST", "850", sctl]) + t)
            parts.extend(s + t for s in body)
            parts.append(el.join(["SE", str(len(body) + 2), sctl]) + t)
            ids.append("%d/%s/%s" % (ic, gctl, sctl))
        parts.append(el.join(["GE", str(sets), gctl]) + t)
    parts.append(el.join(["IEA", str(groups), "%09d" % ic]) + t)
    return "".join(parts), ctl


def edifact_interchange(rnd, ic, ctl, ids):
    """Interchange IC: messages in 0, 1 or 3 groups, release characters in data."""
    una = ic % 2 == 0
    comp, el, rel, term = (":", "+", "?", "'") if ic % 3 else ("|", "^", "!", "~")
    if comp != ":":
        una = True
    eol = "\n" if ic % 4 else ""
    t = term + eol

    def esc(s):
        return "".join(rel + c if c in (comp, el, rel, term) else c for c in s)

    parts = []
    if una:
        parts.append("UNA" + comp + el + "." + rel + " " + term + eol)
    parts.append(el.join(["UNB", "UNOC" + comp + "3", "5012345000008" + comp + "14",
                          "5098765000004" + comp + "14", "261130" + comp + "0915",
                          "IC%d" % ic]) + t)
    groups = rnd.choice([0, 0, 1, 3])
    total = 0
    for _ in range(max(groups, 1)):
        gid = "-"
        if groups:
            ctl += 1
            gid = "G%d" % ctl
            parts.append(el.join(["UNG", "ORDERS", "ACME", "PW", "261130" + comp + "0915", gid,
                                  "UN", "D" + comp + "96A"]) + t)
        msgs = rnd.randint(1, 40)
        for _ in range(msgs):
            ctl += 1
            ref = "M%d" % ctl
            segs = [el.join(["BGM", "220", esc("PO-%d'1" % ctl), "9"]),
                    el.join(["NAD", "BY", "5012345000008" + comp + comp + "9", "",
                             esc("O'NEIL+SONS? LTD: 50% OFF")])]
            for line in range(rnd.randint(1, 10)):
                segs.append(el.join(["LIN", str(line + 1), "", "50123456789%02d" % line
                                     + comp + "EN"]))
                segs.append(el.join(["QTY", "21" + comp + str(rnd.randint(1, 99))]))
                segs.append(el.join(["IMD", "F", "", comp * 3 + esc("MUG ?+'BLUE':%d" % line)]))
            parts.append(el.join(["UNH", ref, "ORDERS" + comp + "D" + comp + "96A" + comp
                                  + "UN"]) + t)
            parts.extend(s + t for s in segs)
            parts.append(el.join(["UNT", str(len(segs) + 2), ref]) + t)
            ids.append("IC%d/%s/%s" % (ic, gid, ref))
        total += msgs
        if groups:
            parts.append(el.join(["UNE", str(msgs), gid]) + t)
    parts.append(el.join(["UNZ", str(groups if groups else total), "IC%d" % ic]) + t)
    return "".join(parts), ctl


class Bad(Exception):
    pass


def skip_blank(text, i):
    """Past the line breaks and blanks between segments."""
    while i < len(text) and text[i] in "\r\n \t":
        i += 1
    return i


def segments(text, i, term, rel):
    """The next segment from I (line breaks before it skipped) and where the one after starts;
    a terminator after an odd number of release characters is data."""
    i = skip_blank(text, i)
    if i >= len(text):
        return None, i
    j = text.find(term, i)
    while j >= 0 and rel:
        k = j
        while k > i and text[k - 1] == rel:
            k -= 1
        if (j - k) % 2 == 0:
            break
        j = text.find(term, j + 1)
    if j < 0:
        raise Bad("no terminator after %r" % text[i:i + 30])
    return text[i:j], j + 1


def split_el(seg, el, rel):
    if not rel or rel not in seg:
        return seg.split(el)
    out, cur, k = [], [], 0
    while k < len(seg):
        c = seg[k]
        if c == rel and k + 1 < len(seg):
            cur.append(seg[k:k + 2])
            k += 2
            continue
        if c == el:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        k += 1
    out.append("".join(cur))
    return out


def want(cond, what):
    if not cond:
        raise Bad(what)


def read_set(text, i, el, term, rel, trailer, ctl):
    """The segments of a set or message after its ST or UNH, up to TRAILER (SE, UNT), whose
    count and control number are checked; returns where the next segment starts."""
    count = 1
    while True:
        seg, i = segments(text, i, term, rel)
        want(seg is not None, "%s %s not closed" % (trailer, ctl))
        e = split_el(seg, el, rel)
        count += 1
        if e[0] == trailer:
            want(e[1] == str(count) and e[2] == ctl, "%s %r: %d segments" % (trailer, seg, count))
            return i


def read_all(text, one):
    """The ids of every interchange in TEXT, each read by ONE(text, i, ids) from I to its end."""
    ids, i = [], 0
    while True:
        i = skip_blank(text, i)
        if i >= len(text):
            return ids
        i = one(text, i, ids)


def x12_read(text, i, ids):
    want(text.startswith("ISA", i) and len(text) - i >= 106, "no ISA at %d" % i)
    el, term = text[i + 3], text[i + 105]
    isa = split_el(text[i:i + 105], el, None)
    ictl, groups, i = isa[13], 0, i + 106
    while True:
        seg, i = segments(text, i, term, None)
        want(seg is not None, "interchange %s not closed" % ictl)
        e = split_el(seg, el, None)
        if e[0] == "IEA":
            want(e[1] == str(groups) and e[2] == ictl, "IEA %r: %d groups, %s" % (seg, groups, ictl))
            return i
        if e[0] == "TA1":
            want(groups == 0, "TA1 after a group in %s" % ictl)
            ids.append("%d/TA1/%s" % (int(ictl), e[1]))
            continue
        want(e[0] == "GS", "GS expected, got %r" % seg[:20])
        gctl, sets, groups = e[6], 0, groups + 1
        while True:
            seg, i = segments(text, i, term, None)
            e = split_el(seg, el, None)
            if e[0] == "GE":
                want(e[1] == str(sets) and e[2] == gctl, "GE %r: %d sets, %s" % (seg, sets, gctl))
                break
            want(e[0] == "ST", "ST expected, got %r" % seg[:20])
            sctl = e[2]
            i = read_set(text, i, el, term, None, "SE", sctl)
            ids.append("%d/%s/%s" % (int(ictl), gctl, sctl))
            sets += 1


def edifact_read(text, i, ids):
    comp, el, rel, term = ":", "+", "?", "'"
    if text.startswith("UNA", i):
        comp, el, rel, term = text[i + 3], text[i + 4], text[i + 6], text[i + 8]
        i += 9
    seg, i = segments(text, i, term, rel)
    e = split_el(seg, el, rel)
    want(e[0] == "UNB", "UNB expected, got %r" % seg[:20])
    ictl, groups, msgs, has_groups = e[5], 0, 0, None
    while True:
        seg, i = segments(text, i, term, rel)
        want(seg is not None, "interchange %s not closed" % ictl)
        e = split_el(seg, el, rel)
        if e[0] == "UNZ":
            want(e[1] == str(groups if has_groups else msgs) and e[2] == ictl, "UNZ %r" % seg)
            return i
        gid, in_group = "-", e[0] == "UNG"
        want(has_groups in (None, in_group), "groups mixed in %s" % ictl)
        has_groups = in_group
        if in_group:
            gid, gmsgs, groups = e[5], 0, groups + 1
            seg, i = segments(text, i, term, rel)
            e = split_el(seg, el, rel)
        while True:
            if in_group and e[0] == "UNE":
                want(e[1] == str(gmsgs) and e[2] == gid, "UNE %r" % seg)
                break
            want(e[0] == "UNH", "UNH expected, got %r" % seg[:20])
            ref = e[1]
            i = read_set(text, i, el, term, rel, "UNT", ref)
            ids.append("%s/%s/%s" % (ictl, gid, ref))
            msgs += 1
            if not in_group:
                break
            gmsgs += 1
            seg, i = segments(text, i, term, rel)
            e = split_el(seg, el, rel)


def check(kind, ids_path, payloads, any_order=False):
    with open(ids_path) as f:
        expect = f.read().split()
    place = {v: k for k, v in enumerate(expect)}
    chunks = []
    for p in payloads:
        with open(p, newline="") as f:
            text = f.read()
        try:
            got = read_all(text, x12_read if kind == "x12" else edifact_read)
        except (Bad, IndexError) as e:
            print("%s: not a valid %s chunk: %s" % (p, kind, e))
            return 1
        if not got:
            print("%s: no sets" % p)
            return 1
        chunks.append((place.get(got[0], -1), got))
    chunks.sort()
    seen = [s for _, got in chunks for s in got]
    if any_order:
        seen, expect = sorted(seen), sorted(expect)
    if seen != expect:
        extra = len(seen) - len(set(seen))
        print("sets: %d arrived (%d repeated), %d expected; first difference at %d" % (
            len(seen), extra, len(expect),
            next((k for k, (a, b) in enumerate(zip(seen, expect)) if a != b), min(len(seen), len(expect)))))
        return 1
    print("%d chunks, %d sets, all once and in order" % (len(chunks), len(seen)))
    return 0


def main():
    if sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
        return 0
    if sys.argv[2] == "--any-order":
        return check(sys.argv[3], sys.argv[4], sys.argv[5:], True)
    return check(sys.argv[2], sys.argv[3], sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
