#!/usr/bin/env python3
"""Chaos test helper: makes a folder of mixed files with numbered records, and afterwards
checks what patchdrop-mock received against the files, the receipts and the error files.

  chaos.py make DIR SEED COUNT      write COUNT files into DIR (and DIR.expect.json)
  chaos.py verify DROP RECORD KILLS CONCURRENCY
"""
import glob
import json
import os
import random
import re
import sys

REC = re.compile(rb"R\d+-\d+")


def make(d, seed, count):
    rnd = random.Random(seed)
    expect = {}
    for i in range(count):
        kind = rnd.choice(["xml", "json", "csv", "txt", "ndjson"])
        nrec = rnd.choice([1, 3, 10, 40, 200, 600])
        name = f"f{i:04d}.{kind}"
        ids = [f"R{i}-{n}" for n in range(nrec)]
        pad = lambda: "x" * rnd.randint(0, 60)
        if kind == "xml":
            body = '<?xml version="1.0"?>\n<Orders source="chaos">\n' + "".join(
                f'  <Order id="{r}"><Note>{pad()}</Note></Order>\n' for r in ids) + "</Orders>\n"
        elif kind == "json":
            body = "[" + ",\n".join(json.dumps({"id": r, "pad": pad()}) for r in ids) + "]\n"
        elif kind == "csv":
            body = "id,note\n" + "".join(f'{r},"{pad()}, with a comma"\n' for r in ids)
        elif kind == "ndjson":
            body = "".join(json.dumps({"id": r, "pad": pad()}) + "\n" for r in ids)
        else:
            body = "".join(f"{r} {pad()}\n" for r in ids)
        outcome = "archive"
        if rnd.random() < 0.03:
            # A record too big for any request: the file must be refused whole.
            body = body.replace(ids[-1], ids[-1] + " " + "y" * 9000, 1)
            outcome = "failed"
        elif rnd.random() < 0.03:
            body = body.encode().replace(ids[0].encode(), ids[0].encode() + b"\xff").decode("latin1")
            outcome = "failed"
        data = body.encode("latin1") if outcome == "failed" and "\xff" in body else body.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        expect[name] = {"outcome": outcome, "ids": ids}
    with open(d.rstrip("/") + ".expect.json", "w") as f:
        json.dump(expect, f)


def verify(drop, rec, kills, concurrency):
    expect = json.load(open(drop.rstrip("/") + ".expect.json"))
    problems = []
    requests = [json.loads(l) for l in open(os.path.join(rec, "requests.jsonl")) if l.strip()]
    by_run = {}
    for r in requests:
        if r.get("status") == 200 and r.get("payload_file"):
            by_run[str(r["flow_run_id"])] = r
    own = drop.rstrip("/") + ".pd"  # the watch's work_dir (write_conf puts it beside the drop)
    archive = os.path.join(own, "archive")
    failed = os.path.join(own, "failed")
    referenced = set()
    chunks_by_file = {}
    records = 0
    for name, e in sorted(expect.items()):
        places = [p for p in (os.path.join(drop, name), os.path.join(own, "work", name),
                              os.path.join(archive, name), os.path.join(failed, name)) if os.path.exists(p)]
        want = os.path.join(archive if e["outcome"] == "archive" else failed, name)
        if places != [want]:
            problems.append(f"{name}: expected only in {want}, found in {places}")
            continue
        if e["outcome"] == "failed":
            if not os.path.exists(want + ".error.json"):
                problems.append(f"{name}: no error file")
            continue
        receipt = json.load(open(want + ".receipt.json"))
        got = []
        prev_end = None
        for c in receipt["chunks"]:
            run = by_run.get(str(c["flow_run_id"]))
            if not run:
                problems.append(f"{name}: chunk {c['index']} names run {c['flow_run_id']}, which the emulator did not accept")
                continue
            if run["body_bytes"] != c["body_bytes"]:
                problems.append(f"{name}: chunk {c['index']} body {c['body_bytes']} bytes, emulator saw {run['body_bytes']}")
            if prev_end is not None and c["start"] != prev_end:
                problems.append(f"{name}: chunk {c['index']} starts at {c['start']}, previous ended at {prev_end}")
            prev_end = c["end"]
            referenced.add(run["payload_file"])
            data = open(os.path.join(rec, run["payload_file"]), "rb").read()
            chunks_by_file.setdefault(name, []).append(data)
            got += [m.decode() for m in REC.findall(data)]
        if got != e["ids"]:
            problems.append(f"{name}: records differ ({len(got)} received in receipts' chunks, {len(e['ids'])} in the file)")
        records += len(got)
    # Payloads no receipt names were sent again after a kill: each must be a chunk that was in flight,
    # i.e. equal to a chunk some receipt names.
    all_chunks = {d for cs in chunks_by_file.values() for d in cs}
    extra = [r["payload_file"] for r in by_run.values() if r["payload_file"] not in referenced]
    for p in extra:
        data = open(os.path.join(rec, p), "rb").read()
        if data not in all_chunks:
            problems.append(f"{p}: sent but in no receipt, and not a repeat of a delivered chunk")
    limit = kills * (2 * concurrency)
    if len(extra) > limit:
        problems.append(f"{len(extra)} repeated chunks for {kills} kills (at most {limit} can be in flight)")
    print(f"chaos: {len(expect)} files, {records} records checked, {len(by_run)} payloads accepted, "
          f"{len(extra)} repeated after kills ({kills} kills), {len(problems)} problems")
    for p in problems[:30]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(verify(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
