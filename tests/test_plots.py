"""`icl.plots.band`: the seeds' mean as a line and their min-max as a band, NaN seeds skipped."""

import warnings

import numpy as np

from icl import plots


def test_band_skips_nan_seeds_and_leaves_gaps():
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    values = [[1.0, 3.0], [np.nan, 5.0], [np.nan, np.nan]]  # [T, S]: a seed left out at t=1, none at t=2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" warnings
        line = plots.band(ax, [0, 1, 2], values, label="x")
    np.testing.assert_array_equal(line.get_ydata(), [2.0, 5.0, np.nan])
    band = ax.collections[0].get_paths()[0].vertices
    assert np.nanmax(band[:, 1]) == 5.0 and np.nanmin(band[:, 1]) == 1.0
    plt.close(fig)


def test_band_of_one_seed_is_a_line():
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    line = plots.band(ax, [0, 1], [[1.0], [2.0]])
    np.testing.assert_array_equal(line.get_ydata(), [1.0, 2.0])
    assert not ax.collections
    plt.close(fig)
