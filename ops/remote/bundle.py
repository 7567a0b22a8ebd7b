"""The application bundle: the project's `ops/` and `app/` packages as one deterministic tarball.

Replicas on every node import `app.serve_gpt_oss` (and the head renders the Serve config with `ops`), so the
same code must be on every node. The tarball is byte-for-byte reproducible (sorted entries, zeroed times and
owners, gzip without a timestamp), so its sha256 is a content hash: a node whose installed bundle has that
hash gets nothing uploaded. Bundles install into `REMOTE_DIR/bundles/<sha256>/`, an immutable path that the
Serve config puts on PYTHONPATH; a new hash therefore rolls the replicas, an unchanged one leaves them alone.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ops", "app")
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp")


@dataclass(frozen=True)
class Bundle:
    path: Path  # the local tarball
    sha256: str
    size: int
    files: int


def _members(root: Path) -> list[Path]:
    out = []
    for pkg in PACKAGES:
        for p in sorted((root / pkg).rglob("*")):
            rel = p.relative_to(root)
            if any(part in _SKIP_DIRS for part in rel.parts) or p.suffix in _SKIP_SUFFIXES or not p.is_file():
                continue
            out.append(p)
    return out


def build(cache_dir: Path | None = None, root: Path = PROJECT_ROOT) -> Bundle:
    """Build (or reuse) the tarball of ops/ and app/; its name is its sha256."""
    from ops.tiny_model import cache_root

    files = _members(root)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in files:
            info = tarfile.TarInfo(str(p.relative_to(root)))
            data = p.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
    digest = hashlib.sha256(blob).hexdigest()
    cache = cache_dir or cache_root() / "bundles"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"gpt-oss-ops-{digest[:16]}.tar.gz"
    if not path.is_file() or path.stat().st_size != len(blob):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
    return Bundle(path=path, sha256=digest, size=len(blob), files=len(files))


def remote_bundle_dir(remote_dir: str, digest: str) -> str:
    return f"{remote_dir}/bundles/{digest}"


# Runs on each node (`python -c STATE_SCRIPT REMOTE_DIR`): make the directories, report the installed hash.
STATE_SCRIPT = r"""
import json, os, sys
root = sys.argv[1]
for d in ("bundles", "uploads", "config"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
try:
    current = open(os.path.join(root, "bundle.sha256")).read().strip()
except OSError:
    current = None
complete = bool(current) and os.path.isfile(os.path.join(root, "bundles", current, ".complete"))
print(json.dumps({"current": current, "complete": complete}))
"""

# Runs on each node after the upload (`python -c INSTALL_SCRIPT REMOTE_DIR SHA256 UPLOADED_FILE`): verify the
# upload, unpack it beside its final place, move it in, then point bundle.sha256 at it (each step atomic, so a
# crash at any point leaves either the old bundle or the new one, never half of one).
# Unpacks regular files and directories only, inside the destination: tarfile's "data" filter where the node's
# Python has it (3.12, and 3.11.4 on), the same checks by hand where it does not (Debian 12's 3.11.2).
SAFE_EXTRACT = r"""
def safe_extract(tar, dest):
    if hasattr(tarfile, "data_filter"):
        return tar.extractall(dest, filter="data")
    root = os.path.realpath(dest)
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(dest, m.name))
        if not (m.isfile() or m.isdir()) or os.path.isabs(m.name) or not target.startswith(root + os.sep):
            raise SystemExit("refusing archive member %r" % m.name)
    tar.extractall(dest)
"""

INSTALL_SCRIPT = r"""
import hashlib, os, shutil, sys, tarfile, tempfile
""" + SAFE_EXTRACT + r"""root, digest, upload = sys.argv[1:4]
h = hashlib.sha256()
with open(upload, "rb") as fh:
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
if h.hexdigest() != digest:
    os.unlink(upload)
    sys.exit("uploaded bundle is incomplete or corrupt (sha256 %s, expected %s); re-run to upload it again"
             % (h.hexdigest(), digest))
final = os.path.join(root, "bundles", digest)
if not os.path.isfile(os.path.join(final, ".complete")):
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=os.path.join(root, "bundles"))
    with tarfile.open(upload) as tar:
        safe_extract(tar, tmp)
    open(os.path.join(tmp, ".complete"), "w").write(digest + "\n")
    os.chmod(tmp, 0o755)
    try:
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another node sharing this filesystem installed it first
        if not os.path.isfile(os.path.join(final, ".complete")):
            raise
pointer = os.path.join(root, ".bundle.sha256.%d" % os.getpid())
open(pointer, "w").write(digest + "\n")
os.replace(pointer, os.path.join(root, "bundle.sha256"))
os.unlink(upload)
print(final)
"""


def python_argv(settings, script: str, *args: str) -> list[str]:
    return [settings.remote_python, "-c", script, *args]


# Called after each chunk the SFTP upload writes (bytes sent, total). A seam for progress display.
ChunkCallback = Callable[[int, int], Any]


def _after_chunk(host: str, sent: int, total: int) -> None:
    """Hook run after every uploaded chunk; does nothing. (Tests replace it to cut the connection mid-upload.)"""


def upload(conn, settings, bundle: Bundle, *, progress: ChunkCallback | None = None) -> str:
    """Put the tarball on the node (SFTP, to a part file) and install it; returns the bundle directory."""
    from ops.remote.connection import run, with_retries

    remote_dir = settings.remote_dir_for(conn.host)
    part = f"{remote_dir}/uploads/{bundle.sha256}.{conn.host}.part"

    def put(c):
        sftp = c.sftp()

        def cb(sent: int, total: int) -> None:
            if progress:
                progress(sent, total)
            _after_chunk(c.host, sent, total)

        with open(bundle.path, "rb") as fh:
            sftp.putfo(fh, part, file_size=bundle.size, callback=cb, confirm=True)

    with_retries(conn, settings, put)
    result = run(conn, settings, python_argv(settings, INSTALL_SCRIPT, remote_dir, bundle.sha256, part),
                 what="installing the app bundle")
    return result.stdout.strip()


def states(conns: dict[str, Any], settings) -> dict[str, dict[str, Any]]:
    """The installed bundle hash on each node (and the directories made), all nodes at once."""
    from ops.remote.connection import fanout

    res = fanout(conns, settings, lambda h: python_argv(settings, STATE_SCRIPT, settings.remote_dir_for(h)),
                 what="reading the installed bundle")
    return {h: json.loads(r.stdout.strip().splitlines()[-1]) for h, r in res.items()}


def sync(conns: dict[str, Any], settings, bundle: Bundle,
         progress: Callable[[str, int, int], Any] | None = None) -> tuple[list[str], list[str]]:
    """Make every node hold `bundle`. Returns (hosts uploaded to, hosts already up to date).

    Uploads run in parallel, one thread per node that needs the bundle.
    """
    from concurrent.futures import ThreadPoolExecutor

    state = states(conns, settings)
    need = [h for h, s in state.items() if not (s.get("complete") and s.get("current") == bundle.sha256)]
    done = [h for h in conns if h not in need]
    if not need:
        return [], done
    with ThreadPoolExecutor(max_workers=len(need)) as pool:
        futures = {h: pool.submit(upload, conns[h], settings, bundle,
                                  progress=(lambda s, t, h=h: progress(h, s, t)) if progress else None)
                   for h in need}
        for f in futures.values():
            f.result()
    return need, done


# Runs on each node after a tree upload (`python -c TREE_SCRIPT DEST SHA256 UPLOADED_FILE`): verify, unpack beside
# the destination, mark it complete with the hash, move it in (a node sharing the filesystem may win the race).
TREE_SCRIPT = r"""
import hashlib, os, shutil, sys, tarfile, tempfile
""" + SAFE_EXTRACT + r"""dest, digest, upload = sys.argv[1:4]
h = hashlib.sha256()
with open(upload, "rb") as fh:
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
if h.hexdigest() != digest:
    os.unlink(upload)
    sys.exit("uploaded tree is incomplete or corrupt (sha256 %s, expected %s); re-run to upload it again"
             % (h.hexdigest(), digest))
parent = os.path.dirname(dest)
os.makedirs(parent, exist_ok=True)
tmp = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
with tarfile.open(upload) as tar:
    safe_extract(tar, tmp)
open(os.path.join(tmp, ".tree.sha256"), "w").write(digest + "\n")
os.chmod(tmp, 0o755)
try:
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.rename(tmp, dest)
except OSError:
    shutil.rmtree(tmp, ignore_errors=True)
    if open(os.path.join(dest, ".tree.sha256")).read().strip() != digest:
        raise
os.unlink(upload)
print(dest)
"""


def tree_archive(directory: Path, cache_dir: Path | None = None) -> Bundle:
    """A deterministic tar.gz of `directory` (sorted, zeroed times and owners), named by its sha256."""
    from ops.tiny_model import cache_root

    raw = io.BytesIO()
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in files:
            info = tarfile.TarInfo(str(p.relative_to(directory)))
            data = p.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
    digest = hashlib.sha256(blob).hexdigest()
    cache = cache_dir or cache_root() / "bundles"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"tree-{digest[:16]}.tar.gz"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
    return Bundle(path=path, sha256=digest, size=len(blob), files=len(files))


def sync_tree(conns: dict[str, Any], settings, archive: Bundle, dest: str) -> list[str]:
    """Make `dest` on every node hold the archive's tree (one node after the other, so nodes that share a
    filesystem find it there); returns the nodes it was uploaded to."""
    from ops.remote.connection import run, with_retries

    sent = []
    for host, conn in conns.items():
        have = run(conn, settings, ["cat", f"{dest}/.tree.sha256"], check=False, what="reading a tree's hash")
        if have.exited == 0 and have.stdout.strip() == archive.sha256:
            continue
        remote_dir = settings.remote_dir_for(host)
        run(conn, settings, python_argv(settings, STATE_SCRIPT, remote_dir), what="preparing the upload")
        part = f"{remote_dir}/uploads/{archive.sha256}.{host}.part"

        def put(c, part=part):
            with open(archive.path, "rb") as fh:
                c.sftp().putfo(fh, part, file_size=archive.size, confirm=True)

        with_retries(conn, settings, put)
        run(conn, settings, python_argv(settings, TREE_SCRIPT, dest, archive.sha256, part), what="unpacking a tree")
        sent.append(host)
    return sent
