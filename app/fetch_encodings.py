#!/usr/bin/env python3
"""Fetch the tiktoken encodings harmony needs (o200k_base, cl100k_base), verified, for offline serving.

openai-harmony (and vLLM's gpt-oss path through it) loads `o200k_base.tiktoken` at the first request; without
network and without `TIKTOKEN_ENCODINGS_BASE` pointing at a local copy it fails with
`HarmonyError: error downloading or loading vocab file`. This script puts verified copies in a directory so
that variable can point there.

Standard library only: the image build (app/Dockerfile) runs it before any project dependency is installed,
and `ops encodings fetch` reuses the same functions. The URLs and SHA-256 digests are the ones tiktoken pins
in `tiktoken_ext/openai_public.py`.

    python3 app/fetch_encodings.py --dest DIR [--base-url URL]

`--base-url` (or the TIKTOKEN_ENCODINGS_MIRROR environment variable) names a mirror: an http(s) URL, a
file:// URL or a local directory holding the two files. Files already present with the right digest are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

OFFICIAL_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/"
MIRROR_ENV = "TIKTOKEN_ENCODINGS_MIRROR"
# file name -> SHA-256, as pinned by tiktoken_ext/openai_public.py (o200k_base, cl100k_base).
ENCODINGS: dict[str, str] = {
    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
_CHUNK = 1 << 16

Log = Callable[[str], None]


class FetchError(Exception):
    """A fetch that cannot complete; `fix` says what the user can do about it."""

    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.message = message
        self.fix = fix


class _Retryable(Exception):
    """A failure another attempt may cure (timeout, connection error, 5xx)."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def file_status(directory: str | os.PathLike, name: str) -> str:
    """'ok', 'missing' or 'bad-hash' for one encoding file in `directory`."""
    path = Path(directory) / name
    if not path.is_file():
        return "missing"
    return "ok" if sha256_file(path) == ENCODINGS[name] else "bad-hash"


def normalize_base_url(base_url: str | None) -> str:
    """The mirror as a URL ending in '/': the official host when unset, a local directory as file://."""
    base = (base_url or "").strip() or os.environ.get(MIRROR_ENV, "").strip() or OFFICIAL_BASE_URL
    if "://" not in base:
        p = Path(base).expanduser()
        if not p.is_dir():
            raise FetchError(f"mirror {base!r} is neither a URL nor a directory.",
                             "pass --base-url https://HOST/PATH/, file:///DIR/ or an existing directory.")
        base = p.resolve().as_uri()
    scheme = urllib.parse.urlsplit(base).scheme
    if scheme not in ("http", "https", "file"):
        raise FetchError(f"mirror {base!r} uses the unsupported scheme {scheme!r}.",
                         "use an http://, https:// or file:// URL, or a local directory.")
    return base if base.endswith("/") else base + "/"


def _download_once(url: str, name: str, expected: str, dest: Path, timeout: float) -> None:
    """One attempt: stream to a temp file beside the target, check the digest, then os.replace into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=dest)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                        out.write(chunk)
            except urllib.error.HTTPError as e:
                if e.code >= 500 or e.code in (408, 429):
                    raise _Retryable(f"HTTP {e.code} {e.reason}") from e
                raise FetchError(f"{url}: HTTP {e.code} {e.reason}.",
                                 "check the mirror URL (it must hold o200k_base.tiktoken and cl100k_base.tiktoken "
                                 "at its top level), or omit --base-url to use the official host.") from e
            except (TimeoutError, OSError) as e:  # URLError, socket.timeout, connection resets
                if isinstance(e, urllib.error.URLError) and url.startswith("file:"):
                    raise FetchError(f"{url}: {e.reason}.",
                                     "check that the mirror directory holds both .tiktoken files.") from e
                raise _Retryable(f"{type(e).__name__}: {getattr(e, 'reason', e) or 'timed out'}") from e
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if actual != expected:
            raise FetchError(f"{name} from {url} has SHA-256 {actual}, expected {expected} (tiktoken's pin); "
                             "nothing was written.",
                             "the mirror holds a corrupted or different file: replace it with a verified copy, "
                             "or omit --base-url to use the official host.")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest / name)
        tmp = ""
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def fetch_one(name: str, dest: Path, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S,
              retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF_S, log: Log = _stderr) -> dict:
    """Make `dest/name` a verified copy. Returns {name, path, url, sha256, status: present|downloaded}."""
    expected = ENCODINGS[name]
    path = dest / name
    url = base_url + name
    row = {"name": name, "path": str(path), "url": url, "sha256": expected}
    state = file_status(dest, name)
    if state == "ok":
        log(f"{name}: already present, SHA-256 verified ({path})")
        return {**row, "status": "present"}
    if state == "bad-hash":
        log(f"{name}: present but its SHA-256 does not match; fetching it again")
    attempts = max(1, retries)
    for attempt in range(1, attempts + 1):
        log(f"{name}: downloading {url} (attempt {attempt}/{attempts})")
        try:
            _download_once(url, name, expected, dest, timeout)
        except _Retryable as e:
            if attempt == attempts:
                host = urllib.parse.urlsplit(url).netloc or url
                raise FetchError(f"{name}: could not download {url} after {attempts} attempt(s) "
                                 f"(last error: {e}; timeout {timeout:g}s per read).",
                                 f"check network access to {host}, raise --timeout, or pass --base-url with a "
                                 "mirror (an http(s) URL, file:///DIR/ or a directory holding the files).") from e
            wait = backoff * (2 ** (attempt - 1))
            log(f"{name}: {e}; retrying in {wait:g}s")
            time.sleep(wait)
            continue
        log(f"{name}: downloaded and verified ({path})")
        return {**row, "status": "downloaded"}
    raise AssertionError("unreachable")


def fetch(dest: str | os.PathLike, base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
          retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF_S, log: Log = _stderr) -> list[dict]:
    """Fetch every encoding into `dest` (created if needed). Idempotent: verified files are left alone."""
    base = normalize_base_url(base_url)
    d = Path(dest).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"cannot create {d}: {e.strerror}.", "pick a --dest you can write to.") from e
    if not os.access(d, os.W_OK):
        raise FetchError(f"{d} is not writable.", "pick a --dest you can write to, or fix its permissions.")
    d = d.resolve()
    return [fetch_one(name, d, base, timeout=timeout, retries=retries, backoff=backoff, log=log)
            for name in ENCODINGS]


def export_line(dest: str | os.PathLike) -> str:
    """The shell line that points harmony at the directory."""
    import shlex

    return f"export TIKTOKEN_ENCODINGS_BASE={shlex.quote(str(Path(dest).expanduser().resolve()))}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", required=True, help="directory to write the .tiktoken files into")
    ap.add_argument("--base-url", default=None,
                    help=f"mirror URL or directory (default: ${MIRROR_ENV}, else {OFFICIAL_BASE_URL})")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per network read")
    ap.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="attempts per file")
    ap.add_argument("--backoff", type=float, default=DEFAULT_BACKOFF_S, help="first retry delay, doubled each time")
    args = ap.parse_args(argv)
    try:
        fetch(args.dest, args.base_url, timeout=args.timeout, retries=args.retries, backoff=args.backoff)
    except FetchError as e:
        _stderr(f"error: {e.message}\nfix: {e.fix}")
        return 1
    print(export_line(args.dest), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
