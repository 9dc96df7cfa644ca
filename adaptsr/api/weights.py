"""Official weights by name: a checksummed manifest of every official file adaptsr reads (``weights.json``: its
file in the ``ADAPTSR_WEIGHTS`` layout, the URL in its public repository, sha256, size, method, scale, arch), and
their download by pooch (github.com/fatiando/pooch) into a cache.

A name resolves, in order, to the file under ``ADAPTSR_WEIGHTS`` (a local copy of the official layout, checked
against its sha256), then to the cache (``ADAPTSR_CACHE``, default pooch's per-user cache folder ``adaptsr``), where
it is downloaded when absent: from the manifest's URL, or from ``ADAPTSR_WEIGHTS_MIRROR`` + the file's path (a
mirror of the ``ADAPTSR_WEIGHTS`` layout). pooch writes a download to a temporary name and moves it into place only
after its sha256 matched, so a partial or corrupted file never sits under the final name.
"""
import difflib
import hashlib
import json
import os
import os.path as osp

import pooch

from adaptsr.core.errors import LoadError

MANIFEST = osp.join(osp.dirname(osp.abspath(__file__)), 'weights.json')


def manifest():
    """``{name: entry}`` of the official files, entries ``{'file', 'url', 'sha256', 'size', 'method', 'scale',
    'arch', ['convert']}`` (``convert``: the ``adaptsr-convert --method`` a file in another layout needs first)."""
    with open(MANIFEST) as f:
        return json.load(f)


def entry(name):
    """The manifest entry of ``name``.

    Raises:
        LoadError: an unknown name (the closest names are given).
    """
    known = manifest()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3)
        raise LoadError(f'{name!r} is not an official weights name' + (f' (did you mean {", ".join(close)}?)' if close
                        else '') + '; adaptsr-weights list shows them')
    return known[name]


def cache_dir():
    """The download cache: ``ADAPTSR_CACHE``, else pooch's per-user cache folder for adaptsr."""
    return os.environ.get('ADAPTSR_CACHE') or str(pooch.os_cache('adaptsr'))


def sha256(path):
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _checked(path, info):
    return osp.isfile(path) and osp.getsize(path) == info['size'] and sha256(path) == info['sha256']


def local_path(name):
    """The verified file of ``name`` under ``ADAPTSR_WEIGHTS`` or in the cache, or None."""
    info = entry(name)
    candidates = [osp.join(os.environ[k], info['file']) for k in ('ADAPTSR_WEIGHTS', ) if os.environ.get(k)]
    candidates.append(osp.join(cache_dir(), info['file']))
    return next((p for p in candidates if _checked(p, info)), None)


def source_url(name):
    """Where ``name`` downloads from: ``ADAPTSR_WEIGHTS_MIRROR`` + its file, else the manifest's URL."""
    info = entry(name)
    mirror = os.environ.get('ADAPTSR_WEIGHTS_MIRROR')
    return f'{mirror.rstrip("/")}/{info["file"]}' if mirror else info['url']


def fetch(name, progress=False):
    """The verified local file of ``name``, downloaded into the cache when it is not there yet.

    Returns:
        str: the file.

    Raises:
        LoadError: an unknown name, a download that failed, or a file whose sha256 differs from the manifest's (the
            file is not kept).
    """
    found = local_path(name)
    if found:
        return found
    info = entry(name)
    target = osp.join(cache_dir(), info['file'])
    url = source_url(name)
    try:
        return pooch.retrieve(url, known_hash=f'sha256:{info["sha256"]}', fname=osp.basename(target),
                              path=osp.dirname(target), progressbar=progress)
    except ValueError as err:  # pooch's hash mismatch: the download is removed
        raise LoadError(f'{name}: the file downloaded from {url} is not the official one ({str(err).splitlines()[0]})'
                        ) from None
    except Exception as err:  # noqa: BLE001  (requests' and urllib's errors alike)
        raise LoadError(f'{name}: download from {url} failed ({type(err).__name__}: {err}); set ADAPTSR_WEIGHTS to a '
                        'copy of the official files or ADAPTSR_WEIGHTS_MIRROR to a mirror') from None


def resolve(source):
    """``(path, manifest entry)`` of a weights name, or ``(source, None)`` for anything else (a path, a YAML,
    ``bicubic``), downloading a name's file when needed (:func:`fetch`).

    Raises:
        LoadError: see :func:`fetch`; a file in another layout, naming its converter.
    """
    if osp.exists(str(source)) or str(source) not in manifest():
        return source, None
    info = entry(source)
    if info.get('convert'):
        raise LoadError(f'{source} ({info["file"]}) is in another layout: adaptsr-weights fetch {source}, then '
                        f'adaptsr-convert --method {info["convert"]} --scale {info["scale"]} --input <the file> '
                        '--output <converted.pth>')
    return fetch(source), info
