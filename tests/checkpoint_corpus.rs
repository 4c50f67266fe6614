//! Differential corpus: every program in `tests/corpus/` must give, under random preemption, output identical to
//! an uninterrupted run in plain CPython. The harness (cases, seeds, comparison) is `tests/common/corpus.rs`,
//! shared with the real-library corpus (`tests/checkpoint_corpus_libs.rs`).
#[path = "common/corpus.rs"]
#[macro_use]
mod corpus;

use corpus::Corpus;

/// Programs written for the engine run in milliseconds: preempt every 5-25 ms, at instants up to 300 ms.
const CORPUS: Corpus = Corpus {
    dir: "tests/corpus",
    every: (5, 25),
    at: (1, 300),
    chained_every: 40,
    every2: (8, 30),
    all_cases_checkpoint: true,
    relative: false,
};

corpus_tests!(CORPUS, 30, {
    builtin_iterators => "01_builtin_iterators.py",
    break_continue_else => "02_break_continue_else.py",
    method_call_chain => "03_method_call_chain.py",
    try_except_finally => "04_try_except_finally.py",
    with_blocks => "05_with_blocks.py",
    exception_chaining => "06_exception_chaining.py",
    closures_nonlocal => "07_closures_nonlocal.py",
    comprehensions => "08_comprehensions.py",
    call_shapes => "09_call_shapes.py",
    deep_recursion => "10_deep_recursion.py",
    module_state => "11_module_state.py",
    random_state => "12_random_state.py",
    numpy_closure_module_state => "13_numpy_closure_module_state.py",
    classes_dataclasses => "14_classes_dataclasses.py",
    generators_suspended => "15_generators_suspended.py",
    generator_iterated => "16_generator_iterated.py",
    generator_send_yield_from => "17_generator_send_yield_from.py",
    generator_try_finally => "18_generator_try_finally.py",
    lambdas_in_data => "19_lambdas_in_data.py",
    strings_bytes_sets => "20_strings_bytes_sets.py",
    match_statements => "21_match.py",
    c_callbacks => "22_c_callbacks.py",
    nested_functions => "23_nested_functions.py",
    instances_as_keys => "24_instances_as_keys.py",
    dijkstra => "25_dijkstra.py",
    knn_numpy => "26_knn_numpy.py",
    numeric_loops => "27_numeric_loops.py",
    misc_semantics => "28_misc_semantics.py",
    global_in_nested => "30_global_in_nested.py",
    shared_cells => "31_shared_cells.py",
    getitem_and_star_call => "32_getitem_and_star_call.py",
    handled_exception_kwargs => "33_handled_exception_kwargs.py",
    while_nested_break => "34_while_nested_break.py",
    static_hint => "35_static_hint.py",
    live_views => "36_live_views.py",
    numpy_views => "37_numpy_views.py",
    trampolines => "38_trampolines.py",
    none_in_cells => "39_none_in_cells.py",
    context_tokens => "40_context_tokens.py",
    generator_send => "41_generator_send.py",
    numpy_errstate => "42_numpy_errstate.py",
    context_unsaved => "43_context_unsaved.py",
    locks => "44_locks.py",
    generator_consumers => "45_generator_consumers.py",
    bound_method_star_calls => "46_bound_method_star_calls.py",
    module_locks => "47_module_locks.py",
    iter_dunder => "48_iter_dunder.py",
    with_enter => "49_with_enter.py",
    operator_dunders => "50_operator_dunders.py",
    number_identity => "51_number_identity.py",
    generators_in_c_iterators => "52_generators_in_c_iterators.py",
    module_function_state => "53_module_function_state.py",
});
