#!/usr/bin/env python3
"""Writes small, real package files for the node's tests: wheels, sdists and R source tarballs,
plus deliberately broken variants. Usage:
  mkpkg.py wheel  OUTDIR NAME VERSION [DEP ...]
  mkpkg.py sdist  OUTDIR NAME VERSION [DEP ...]
  mkpkg.py rpkg   OUTDIR NAME VERSION [IMPORT ...]
  mkpkg.py raw-wheel OUTDIR FILENAME METANAME METAVERSION   (metadata may contradict the file name)
  mkpkg.py traversal-sdist OUTDIR NAME VERSION               (a member escapes the archive)
MKPKG_PAD=N adds N random bytes to a wheel; MKPKG_ZEROS=N adds a member of N zero bytes to any
package (it compresses to almost nothing: a decompression bomb). Prints the path written."""
import base64, hashlib, io, os, sys, tarfile, zipfile


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def metadata(name, version, deps):
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             f"Summary: test package {name}", "Requires-Python: >=3.8"]
    lines += [f"Requires-Dist: {d}" for d in deps]
    return "\n".join(lines) + "\n\n"


def wheel_bytes(file_name, meta_name, meta_version, deps, module):
    dist = f"{file_name.split('-')[0]}-{file_name.split('-')[1]}.dist-info"
    files = {
        f"{module}/__init__.py": f"VALUE = {meta_version!r}\n".encode(),
        f"{module}/pad.bin": os.urandom(int(os.environ.get("MKPKG_PAD", "0"))),
        f"{dist}/METADATA": metadata(meta_name, meta_version, deps).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: mkpkg\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if zeros():
        files[f"{module}/zeros.bin"] = zeros()
    record = [record_line(p, d) for p, d in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            z.writestr(p, d)
    return buf.getvalue()


def zeros():
    return bytes(int(os.environ.get("MKPKG_ZEROS", "0")))


def tar_gz(members):
    if zeros():
        members = list(members) + [(f"{members[0][0].split('/')[0]}/zeros.bin", zeros())]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for path, data in members:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    kind, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    if kind == "wheel":
        name, version, deps = sys.argv[3], sys.argv[4], sys.argv[5:]
        stem = name.replace("-", "_")
        fname = f"{stem}-{version}-py3-none-any.whl"
        data = wheel_bytes(fname, name, version, deps, stem)
    elif kind == "raw-wheel":
        fname, meta_name, meta_version = sys.argv[3], sys.argv[4], sys.argv[5]
        data = wheel_bytes(fname, meta_name, meta_version, [], "mod")
    elif kind == "sdist":
        name, version, deps = sys.argv[3], sys.argv[4], sys.argv[5:]
        stem = name.replace("-", "_")
        root = f"{stem}-{version}"
        fname = f"{root}.tar.gz"
        pyproject = (f'[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
                     f'[project]\nname = "{name}"\nversion = "{version}"\nrequires-python = ">=3.8"\n'
                     f'dependencies = {deps!r}\n').replace("'", '"')
        data = tar_gz([
            (f"{root}/PKG-INFO", metadata(name, version, deps).encode()),
            (f"{root}/pyproject.toml", pyproject.encode()),
            (f"{root}/{stem}/__init__.py", f"VALUE = {version!r}\n".encode()),
        ])
    elif kind == "traversal-sdist":
        name, version = sys.argv[3], sys.argv[4]
        root = f"{name}-{version}"
        fname = f"{root}.tar.gz"
        data = tar_gz([
            (f"{root}/PKG-INFO", metadata(name, version, []).encode()),
            ("../../evil.py", b"print('escaped')\n"),
        ])
    elif kind == "rpkg":
        name, version, imports = sys.argv[3], sys.argv[4], sys.argv[5:]
        fname = f"{name}_{version}.tar.gz"
        desc = [f"Package: {name}", f"Version: {version}", f"Title: Test Package {name}",
                f"Description: A test package called {name}.",
                "Authors@R: person('Test', 'Author', email = 'test@example.org', role = c('aut', 'cre'))",
                "License: MIT + file LICENSE", "Encoding: UTF-8", "NeedsCompilation: no"]
        if imports:
            desc.append("Imports: " + ", ".join(imports))
        fn = "hello_" + name.replace(".", "_")
        body = f"{fn} <- function() {{\n"
        for imp in imports:
            body += f"  {imp}::hello_{imp.replace('.', '_')}()\n"
        body += f"  \"{name} {version}\"\n}}\n"
        namespace = f"export({fn})\n" + "".join(f"importFrom({i}, hello_{i.replace('.', '_')})\n" for i in imports)
        data = tar_gz([
            (f"{name}/DESCRIPTION", ("\n".join(desc) + "\n").encode()),
            (f"{name}/NAMESPACE", namespace.encode()),
            (f"{name}/LICENSE", b"YEAR: 2026\nCOPYRIGHT HOLDER: test\n"),
            (f"{name}/R/{name}.R", body.encode()),
        ])
    else:
        sys.exit(f"unknown kind {kind}")
    path = os.path.join(out, fname)
    with open(path, "wb") as f:
        f.write(data)
    print(path)


if __name__ == "__main__":
    main()
