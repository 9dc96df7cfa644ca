"""adaptsr: adaptive and efficient SR methods as BasicSR plugins (``pip install -e .``)."""
import glob

from setuptools import find_packages, setup

# the shipped options files, found by name (adaptsr-train -opt pcsr_carn_x4) in a checkout and, installed from a
# wheel, under <prefix>/share/adaptsr/options (adaptsr.core.options.find_options)
OPTION_FILES = [(f'share/adaptsr/options/{kind}', sorted(glob.glob(f'options/{kind}/*.yml')))
                for kind in ('train', 'test', 'bench', 'compare')]

setup(
    name='adaptsr',
    version='0.1.0',
    description='Adaptive and efficient single-image super-resolution methods (PCSR, APE, CABM, ETDS, SMSR) '
    'as BasicSR plugins',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['adaptsr', 'adaptsr.*']),
    package_data={'adaptsr.methods.smsr': ['csrc/*.cpp'], 'adaptsr.api': ['weights.json']},
    data_files=OPTION_FILES,  # SMSR's sparse kernel, compiled on first use for the CPU
    python_requires='>=3.9,<3.13',
    install_requires=[
        'basicsr==1.4.2', 'torch>=2.0', 'torchvision', 'pyyaml', 'lmdb', 'opencv-python', 'numpy',
        'scipy', 'scikit-image', 'tensorboard', 'tqdm', 'matplotlib', 'ninja', 'setuptools', 'addict', 'future', 'yapf',
        'requests', 'Pillow', 'pooch', 'safetensors'
    ],
    extras_require={'test': ['pytest'], 'deploy': ['onnx', 'onnxruntime', 'litert-torch'],
                    'spandrel': ['spandrel>=0.4']},
    entry_points={'console_scripts': [
        'adaptsr-infer=adaptsr.cli.infer:main', 'adaptsr-train=adaptsr.cli.train:main',
        'adaptsr-test=adaptsr.cli.test:main', 'adaptsr-bench=adaptsr.cli.bench:main',
        'adaptsr-convert=adaptsr.cli.convert:main', 'adaptsr-export=adaptsr.cli.export:main',
        'adaptsr-weights=adaptsr.cli.weights:main', 'adaptsr-prepare=adaptsr.cli.prepare:main',
        'adaptsr-cabm-table=adaptsr.cli.room_command:main'  # each room's COMMANDS (its declarations.py)
    ]},
)
