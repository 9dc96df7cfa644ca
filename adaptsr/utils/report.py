"""Trade-off tables and plots for budget sweeps and benchmarks (CSV, JSON, PNG)."""
import csv
import json
import os
import os.path as osp

from adaptsr.utils.atomic import atomic_write


def write_table(rows, path_stem, formats=('csv', 'json')):
    """Write ``rows`` (list of flat dicts) as ``<path_stem>.csv`` and/or ``<path_stem>.json`` (each atomically:
    temporary file, then rename); returns the paths."""
    os.makedirs(osp.dirname(path_stem) or '.', exist_ok=True)
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    paths = []
    if 'csv' in formats:
        paths.append(path_stem + '.csv')
        with atomic_write(paths[-1]) as tmp, open(tmp, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    if 'json' in formats:
        paths.append(path_stem + '.json')
        with atomic_write(paths[-1]) as tmp, open(tmp, 'w') as f:
            json.dump(rows, f, indent=2)
    return paths


def format_table(rows, columns):
    """Plain-text table of ``rows`` restricted to ``columns`` (floats with 4 decimals)."""
    cols = [c for c in columns if any(c in r for r in rows)]

    def fmt(v):
        return f'{v:.4f}' if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, '')) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ['  '.join(c.rjust(wd) for c, wd in zip(cols, widths))]
    lines += ['  '.join(v.rjust(wd) for v, wd in zip(row, widths)) for row in cells]
    return '\n'.join(lines)


def plot_tradeoff(rows, path, x='gflops', y='psnr', label='budget', group='dataset', title=None, refs=None,
                  series='config'):
    """PSNR-vs-cost plot (PNG): one panel per ``group`` value (e.g. dataset), one curve per ``series`` value (e.g.
    two models' budget sweeps), points annotated with ``label``.

    Args:
        rows (list[dict]): table rows with keys ``x``, ``y``, ``label``, ``group``.
        path (str): output PNG path.
        refs (list[dict], optional): reference points (e.g. the original model), drawn as a star in the panel of
            their ``group`` value.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    groups = []
    for r in rows:
        if r.get(group) not in groups:
            groups.append(r.get(group))
    ncols = min(2, len(groups))
    nrows = (len(groups) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        names = list(dict.fromkeys(r.get(series) for r in rows if r.get(group) == g))
        for name in names:
            pts = sorted((r for r in rows if r.get(group) == g and r.get(series) == name and x in r and y in r),
                         key=lambda r: r[x])
            ax.plot([r[x] for r in pts], [r[y] for r in pts], 'o-',
                    label='adaptive budgets' if name is None or len(names) == 1 else str(name))
            for r in pts:
                ax.annotate(str(r.get(label, '')), (r[x], r[y]), textcoords='offset points', xytext=(4, 4),
                            fontsize=8)
        for r in refs or []:
            if r.get(group) == g:
                ax.plot([r[x]], [r[y]], '*', markersize=12, label=str(r.get(label, 'reference')))
        ax.set_title(str(g))
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis('off')
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


def save_figure(fig, path, dpi=110):
    """Lay out a matplotlib figure, write it as a PNG atomically (the folder created) and close it; returns
    ``path``."""
    import matplotlib.pyplot as plt
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path


def write_sweep(rows, out_dir, dataset_name, title):
    """Write a budget sweep's rows as ``<out_dir>/<dataset>_sweep.{csv,json,png}`` (PSNR vs GFLOPs plot when both
    columns exist); returns the path stem."""
    stem = osp.join(out_dir, f'{dataset_name}_sweep')
    write_table(rows, stem)
    psnr_key = next((k for k in rows[0] if k.startswith('psnr')), None)
    if psnr_key is not None and 'gflops' in rows[0]:
        plot_tradeoff(rows, stem + '.png', x='gflops', y=psnr_key, title=title)
    return stem


def matched_cost_difference(rows, ref_rows, x='gflops', y='psnr_rgb'):
    """Quality of each point of one budget sweep against another sweep's curve at the same cost.

    The reference curve is ``ref_rows`` sorted by ``x`` and interpolated linearly; a point outside its ``x`` range
    is not compared (no extrapolation).

    Args:
        rows (list[dict]): the sweep to judge (e.g. one's own model), each with ``x``, ``y`` and ``budget``.
        ref_rows (list[dict]): the reference sweep (e.g. the official weights over the same knob).

    Returns:
        list[dict]: per comparable point ``budget``, ``x``, ``y``, ``y_ref`` (interpolated) and ``diff = y - y_ref``.
    """
    import numpy as np
    ref = sorted((r for r in ref_rows if x in r and y in r), key=lambda r: r[x])
    xs, ys = np.array([r[x] for r in ref]), np.array([r[y] for r in ref])
    out = []
    if len(ref) < 2:
        return out
    for r in rows:
        if xs[0] <= r[x] <= xs[-1]:
            y_ref = float(np.interp(r[x], xs, ys))
            out.append({'budget': r.get('budget'), x: r[x], y: r[y], 'y_ref': y_ref, 'diff': r[y] - y_ref})
    return out
