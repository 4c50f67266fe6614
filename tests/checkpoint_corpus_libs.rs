//! Real-library differential corpus: every program in `tests/corpus_libs/` (ordinary code calling networkx,
//! osmnx, scikit-learn, pandas, scipy, NeuroKit2, Pillow, face_recognition/dlib and the standard library's heavier
//! modules, as a user would write it) must give, under random preemption, output identical to an uninterrupted
//! run in plain CPython. The libraries are pinned in `python/requirements-libs.txt` (`make setup-libs`); the
//! programs read their data from `tests/data/`. Harness: `tests/common/corpus.rs`.
//!
//! Where a checkpoint request finds no resumable instant (a long C call, a C caller that keeps state), the engine
//! waits; the waits are printed (`not taken` lines of `--stats`) but only the output and the checkpoints taken
//! are asserted. `make resume-each-libs` resumes every checkpoint of every program instead (minutes).
#[path = "common/corpus.rs"]
#[macro_use]
mod corpus;

use corpus::Corpus;

/// These programs import for 0.2-3 s and run for 0.3-2 s on a quiet machine (several times longer on a loaded
/// one), and a restore re-imports the libraries: the schedules are fractions of each job's own running time, so
/// that a run takes a handful of checkpoints rather than dozens of restores however fast the machine. The
/// preempt-every case, which must take one, preempts every 8-20% of it: the load, and so the job's speed, can
/// change between the measuring run and this one by 2-3x.
const LIBS: Corpus = Corpus {
    dir: "tests/corpus_libs",
    every: (80, 200),
    at: (50, 950),
    chained_every: 250,
    every2: (150, 400),
    all_cases_checkpoint: false,
    relative: true,
};

corpus_tests!(LIBS, 20, {
    nx_dijkstra => "01_nx_dijkstra.py",
    nx_traversals => "02_nx_traversals.py",
    nx_pagerank_centrality => "03_nx_pagerank_centrality.py",
    nx_flow_mst => "04_nx_flow_mst.py",
    osmnx_ride => "05_osmnx_ride.py",
    osmnx_stats => "06_osmnx_stats.py",
    sklearn_svm_pipeline => "07_sklearn_svm_pipeline.py",
    sklearn_knn_models => "08_sklearn_knn_models.py",
    sklearn_validation => "09_sklearn_validation.py",
    pandas_groupby_merge => "10_pandas_groupby_merge.py",
    pandas_timeseries => "11_pandas_timeseries.py",
    scipy_signal => "12_scipy_signal.py",
    scipy_optimize => "13_scipy_optimize.py",
    scipy_spatial => "14_scipy_spatial.py",
    neurokit_ecg => "15_neurokit_ecg.py",
    neurokit_rsp => "16_neurokit_rsp.py",
    stress_workload => "17_stress_workload.py",
    pil_images => "18_pil_images.py",
    face_locations => "19_face_locations.py",
    face_encodings => "20_face_encodings.py",
    stdlib_inspect_dataclasses => "21_stdlib_inspect_dataclasses.py",
    stdlib_text_collections => "22_stdlib_text_collections.py",
    stdlib_numbers => "23_stdlib_numbers.py",
    matplotlib_svg => "24_matplotlib_svg.py",
    sklearn_grid_search => "25_sklearn_grid_search.py",
    pil_draw_filters => "26_pil_draw_filters.py",
    library_settings => "27_library_settings.py",
    sklearn_hist_boosting => "28_sklearn_hist_boosting.py",
    pil_open_streams => "29_pil_open_streams.py",
    pil_open_path_objects => "30_pil_open_path_objects.py",
});
