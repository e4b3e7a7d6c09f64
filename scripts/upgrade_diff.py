import re, sys
def blocks(path):
    s = open(path).read()
    parts = re.split(r'(?=/\* <begin connected objects> \*/)', s)
    out = []
    for p in parts:
        p = p.split('/* </end connected objects> */')[0] if '/* </end connected objects> */' in p else p
        body = "\n".join(l for l in p.split("\n") if not l.startswith("-- src/") and not l.startswith("/* <begin"))
        out.append(body.strip())
    return out
old = blocks(sys.argv[1]); new = blocks(sys.argv[2])
oldset = set(old)
removed = [b for b in old if b not in set(new)]
print("REMOVED/CHANGED blocks:", len(removed), file=sys.stderr)
for b in removed: print("----\n" + b[:300], file=sys.stderr)
added = [b for b in new if b not in oldset]
print("ADDED blocks:", len(added), file=sys.stderr)
print("\n\n".join(added))
