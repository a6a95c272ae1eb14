#!/usr/bin/env python3
"""The generator's request mix as a wrk script, to compare the load generator's CPU time per
request with wrk's on the same requests through the same balancer.

    python3 harness/bench/wrk_mix.py http://127.0.0.1:PORT --weights S,F,P,T > /tmp/mix.lua
    /usr/bin/time -f '%U %S' wrk -t1 -c32 -d20s -s /tmp/mix.lua http://127.0.0.1:PORT

S, F, P, T are the counts of `pypi_simple`, `pypi_file`, `cran_packages` and `cran_tarball`
requests of a harness run (its summary.json `requests`), so wrk sends the kinds in the run's
proportions: project pages as PEP 691 JSON, the newest wheel of each, `PACKAGES.rds`, and R
source tarballs, for packages drawn from what the target serves. Loopback targets only.
"""

import argparse
import gzip
import json
import random
import re
import sys
import urllib.parse
import urllib.request

JSON = "application/vnd.pypi.simple.v1+json"


def get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--weights", required=True, help="pypi_simple,pypi_file,cran_packages,cran_tarball")
    parser.add_argument("--pypi-repo", default="pypi")
    parser.add_argument("--cran-repo", default="cran")
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    host = urllib.parse.urlparse(args.base).hostname
    if not host or not host.startswith("127."):
        sys.exit("wrk_mix: loopback targets only")
    rng = random.Random(args.seed)
    base = args.base.rstrip("/")
    weights = [int(w) for w in args.weights.split(",")]

    root = get(f"{base}/{args.pypi_repo}/latest/simple/").decode()
    projects = re.findall(r'href="([^"]+)/"', root)
    simple, files = [], []
    for project in rng.sample(projects, min(args.sample, len(projects))):
        path = f"/{args.pypi_repo}/latest/simple/{project.rsplit('/', 1)[-1]}/"
        simple.append((path, JSON))
        page = json.loads(get(base + path, JSON))
        wheels = [f["url"] for f in page["files"] if f["filename"].endswith(".whl")]
        if wheels:
            url = urllib.parse.urljoin(base + path, wheels[-1])
            files.append((urllib.parse.urlparse(url).path, "*/*"))
    contrib = f"/{args.cran_repo}/latest/src/contrib"
    index = gzip.decompress(get(f"{base}{contrib}/PACKAGES.gz")).decode()
    entries = re.findall(r"^Package: (\S+)\nVersion: (\S+)$", index, re.M)
    tarballs = [
        (f"{contrib}/{name}_{version}.tar.gz", "*/*")
        for name, version in rng.sample(entries, min(args.sample, len(entries)))
    ]
    kinds = [simple, files, [(f"{contrib}/PACKAGES.rds", "*/*")], tarballs]
    total = sum(weights)
    requests = []
    for kind, weight in zip(kinds, weights):
        count = round(1000 * weight / total)
        requests += [kind[i % len(kind)] for i in range(count)]
    rng.shuffle(requests)
    print("local requests = {")
    for path, accept in requests:
        print(f'  wrk.format("GET", "{path}", {{ ["Accept"] = "{accept}" }}),')
    print("}")
    print("local i = 0")
    print("request = function()\n  i = i % #requests + 1\n  return requests[i]\nend")


if __name__ == "__main__":
    main()
