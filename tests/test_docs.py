"""Every options file, script, command and local link that the README and docs/ name exists, and the README stays
short (details belong in docs/)."""
import glob
import os.path as osp
import re

import pytest

from conftest import ROOT

PAGES = [osp.join(ROOT, 'README.md')] + sorted(glob.glob(osp.join(ROOT, 'docs', '*.md')))
COMMANDS = re.findall(r"'(adaptsr-[a-z-]+)=", open(osp.join(ROOT, 'setup.py')).read())


def _text(page):
    with open(page) as f:
        return f.read()


@pytest.mark.parametrize('page', PAGES, ids=[osp.relpath(p, ROOT) for p in PAGES])
def test_named_files_exist(page):
    text = _text(page)
    named = set(re.findall(r'\b(options/(?:train|test|bench|compare)/[\w.\-]+\.yml)\b', text))
    named |= set(re.findall(r'\b(scripts/[\w\-]+\.(?:py|sh))\b', text))
    missing = sorted(p for p in named if not osp.exists(osp.join(ROOT, p)))
    assert not missing, f'{osp.relpath(page, ROOT)} names files that do not exist: {missing}'


@pytest.mark.parametrize('page', PAGES, ids=[osp.relpath(p, ROOT) for p in PAGES])
def test_named_commands_and_links_exist(page):
    text = _text(page)
    unknown = sorted(set(re.findall(r'`(adaptsr-[a-z]+(?:-[a-z]+)*)\b', text)) - set(COMMANDS))
    assert not unknown, f'{osp.relpath(page, ROOT)} names commands that setup.py does not install: {unknown}'
    base = osp.dirname(page)
    broken = []
    for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
        if not target.startswith(('http://', 'https://')) and not osp.exists(osp.join(base, target)):
            broken.append(target)
    assert not broken, f'{osp.relpath(page, ROOT)} links to files that do not exist: {broken}'


def test_the_readme_is_short():
    assert len(_text(PAGES[0]).splitlines()) <= 300
