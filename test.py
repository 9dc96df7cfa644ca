"""Test with BasicSR's pipeline and adaptsr's registrations: ``python test.py -opt options/test/X.yml``
(the same as the installed ``adaptsr-test``, with ``results/`` beside this file)."""
import os.path as osp

from adaptsr.cli.test import main

if __name__ == '__main__':
    main(osp.abspath(osp.dirname(__file__)))
