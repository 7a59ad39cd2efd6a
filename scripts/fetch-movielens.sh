#!/usr/bin/env bash
# Fetches MovieLens-100K from the PyPI wheel of recbole (which ships it as an example dataset) and
# converts it to `user,item,timestamp` CSV for `xingqu eval`. The data goes to a cache folder that
# is never committed: $XDG_CACHE_HOME/xingqu (default ~/.cache/xingqu). Prints the CSV's path.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/xingqu"
out="$cache/ml-100k.csv"
if [ ! -s "$out" ]; then
    mkdir -p "$cache"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    pip download -q --no-deps -d "$work" recbole >&2
    python3 - "$work" "$out" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/recbole-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    raw = z.read("recbole/dataset_example/ml-100k/ml-100k.inter").decode()
with open(sys.argv[2], "w") as f:
    f.write("user,item,timestamp\n")
    for line in raw.splitlines()[1:]:
        user, item, _rating, timestamp = line.split("\t")[:4]
        f.write(f"{user},{item},{timestamp}\n")
PY
fi
echo "$out"
